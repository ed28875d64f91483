"""run_batch: N run configs of one study, trained together where the task has a batched model.

Each trial is a run as :func:`micmco.experiment.run` makes it: its run directory and ``config.yaml``, its lock
(held for the whole batch), its checkpoint, its ``result.json``. A finished trial is read back, not retrained;
the others train as one batch, from their checkpoints if they have them (at any step: one that is behind
trains alone until the others' step, :mod:`micmco.batched.trainer`), and each is evaluated alone after.
A trial's record says so (``batch``: the trials of its batch and its position); its ``train_wall_time_s`` is
its share, 1/N of the batch's training time, so that summed wall times stay the compute spent.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

from ..config import flat_keys, to_dict
from ..experiment import finished_record, preflight, result_record, run, run_lock, torch_threads
from ..models.batched import trial_state
from ..runconfig import run_directory, write_config_record
from ..tasks import get_task
from ..tasks.base import RunConfig
from ..trainer import CheckpointError, TrainState, checkpoint_head, usable_checkpoint
from ..util import write_atomically
from .loss import BatchedVariationalLoss
from .trainer import BatchTrainer, Trial

__all__ = ["run_batch", "batchable", "PER_TRIAL"]

PER_TRIAL = ("objective.lam", "objective.alpha", "train.learning_rate")  # the settings trials of a batch may differ in


def batchable(configs: Sequence[RunConfig]) -> str | None:
    """None when ``configs`` can train as one batch, else why not (one line)."""
    if not configs:
        return "no trials"
    first = configs[0]
    task = get_task(first.task)
    if not task.batches(first):
        return f"the {first.task} task trains this model one trial per process"
    shared = {key: value for key, value in flat_keys(to_dict(first)).items() if key not in PER_TRIAL}
    for config in configs[1:]:
        other = flat_keys(to_dict(config))
        differ = sorted(key for key, value in shared.items() if other.get(key) != value)
        differ += sorted(key for key in other if key not in shared and key not in PER_TRIAL)
        if differ:
            return f"the trials differ in {', '.join(differ)}; a batch may differ only in {', '.join(PER_TRIAL)}"
    alphas = {config.objective.alpha == 1.0 for config in configs}
    if len(alphas) > 1:  # α = 1 takes another branch of the Rényi estimate (its KL limit)
        return "some trials have α = 1 (the KL limit of the Rényi objective) and some not"
    return None


def run_batch(configs: Sequence[RunConfig], echo=print) -> list[dict[str, Any]]:
    """Train (or resume) and evaluate each of ``configs``; their result records, in order, also written as JSON.

    Raises as :func:`micmco.experiment.run` does: RunLocked, ConfigError, CheckpointError, KeyboardInterrupt
    (every trial of the batch checkpointed, resumable alone or in another batch).
    """
    configs = list(configs)
    reason = batchable(configs)
    if reason is not None:
        if len(configs) > 1:
            echo(f"note: {reason}; training the {len(configs)} trials one after another")
        return [run(config, echo) for config in configs]
    records: dict[int, dict[str, Any]] = {}
    pending = []
    for index, config in enumerate(configs):
        run_dir = run_directory(config)
        if (run_dir / "result.json").exists():
            records[index] = finished_record(run_dir, echo)
        else:
            pending.append((index, config, run_dir, preflight(config, create_output_dir=True)))
    with contextlib.ExitStack() as locks:
        todo = []
        for index, config, run_dir, checks in pending:
            run_dir.mkdir(exist_ok=True)
            locks.enter_context(run_lock(run_dir))
            if (run_dir / "result.json").exists():  # finished by another process while we waited to look
                records[index] = finished_record(run_dir, echo)
            else:
                todo.append((index, config, run_dir, checks))
        if todo:
            threads = todo[0][1].train.threads or 1
            with torch_threads(threads):
                for index, record in _train_batch(todo, threads, echo):
                    write_atomically(run_directory(configs[index]) / "result.json", json.dumps(record, indent=1))
                    records[index] = record
    return [records[index] for index in range(len(configs))]


def _train_batch(todo, threads: int, echo):
    """Train the trials of ``todo`` [(index, config, run_dir, preflight)] as one batch; (index, record) each."""
    configs = [config for _, config, _, _ in todo]
    first = configs[0]
    task = get_task(first.task)
    device = todo[0][3].device
    trials, optimizer_states = [], []
    for _, config, run_dir, _ in todo:
        write_config_record(config, run_dir)
        model = task.build_model(config)
        fingerprint = run_dir.name.rsplit("-", 1)[-1]
        payload = usable_checkpoint(run_dir / "checkpoint.pt", fingerprint, device)
        state = None
        if payload is not None and checkpoint_head(payload) != config.train.head:
            raise CheckpointError(
                f"checkpoint {run_dir / 'checkpoint.pt'} was trained with train.head={checkpoint_head(payload)} and "
                f"this batch runs train.head={config.train.head} (a batch shares one head): resume it with --set "
                f"train.head={checkpoint_head(payload)}, or alone with `micmco train`, which keeps its head"
            )
        if payload is not None:
            echo(f"{run_dir}: resuming from its checkpoint")
            try:
                model.load_state_dict(payload["model"])
                state = TrainState(**payload["state"])
            except (KeyError, TypeError, ValueError, RuntimeError) as error:
                raise CheckpointError(
                    f"checkpoint {run_dir / 'checkpoint.pt'} does not match this model ({type(error).__name__}); "
                    "delete it to start over"
                ) from None
            state.resumed_from.append(state.step)
        floor, floor_reason = task.loss_floor(config)
        trials.append(Trial(config.train, run_dir / "checkpoint.pt", fingerprint, model, floor, floor_reason, state))
        optimizer_states.append(None if payload is None else payload["optimizer"])
    batched = task.batched_model([trial.template for trial in trials])
    loss = BatchedVariationalLoss(
        first.estimator.base,
        first.objective.kind,
        [config.objective.lam or 0.0 for config in configs],
        [1.0 if config.objective.alpha is None else config.objective.alpha for config in configs],
        first.estimator.num_samples,
        first.estimator.mi_samples,
    )
    trainer = BatchTrainer(batched, loss, task.training_data(first), trials, first.seed, device, task.data_point)
    for n, state in enumerate(optimizer_states):
        if state is not None:
            trainer.load_optimizer_state(n, state)
    echo(f"training {len(trials)} trial{'s' if len(trials) != 1 else ''} as one batch on {device}")
    trainer.fit()
    for n, (index, config, run_dir, checks) in enumerate(todo):
        trial = trials[n]
        model = trial.template
        model.load_state_dict(trial_state(trainer.model, n))
        record = result_record(config, run_dir, checks, threads, trial.state, trial.diverged, model.to(device), device)
        record["batch"] = {"trials": len(todo), "position": n}
        yield index, record
