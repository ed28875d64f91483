"""``micmco sweep --batch N``: a worker takes up to N trials at once and runs them as one ``micmco train-batch``
subprocess (:func:`micmco.batched.run_batch`: one batched computation, each trial with its own run directory,
checkpoint and ``result.json``), every trial with its heartbeat; when it ends, each trial is recorded from its
own result.json as a trial run alone is (:func:`.trial.trial_outcome`, the worker's ``record``).

A batch is filled the way single trials are taken, one proposal of the worker after another: waiting grid
points and retries first (Optuna pops enqueued trials before it samples), then new proposals, and no more than
the waiting points and the budget left (the worker's loop sizes the batch), so an interrupted batch and its rerun
end at exactly the study's budget.

Proposals of one batch differ without a constant liar of our own: each proposal is asked after the earlier ones
are RUNNING with all their parameters suggested, and the samplers account for such pending trials. TPE does with
``constant_liar=True`` (:func:`.sampler.make_sampler`); ``GPSampler`` does since Optuna 4.9 (Kriging believer
for multi-objective studies, then q-LogEHVI in 5.1: the pending points are fantasised from the Gaussian
process's posterior, a principled form of the constant liar that writes no fake trials into the storage);
``pyproject.toml`` requires Optuna 5. Measured (tests/test_sweep_batch.py): four proposals of one batch are four
points, where the same four asks without pending trials are one point four times. Whatever the sampler does,
the worker's guard stays: a proposal within 2% of a running trial's point (:func:`.sampler.near`), one of this
batch's included, is dropped and the next proposal is random.

A stopped batch (a signal to the sweep: the train-batch child checkpoints every trial and exits 130) hands
every trial back for a retry; a killed one leaves them RUNNING with the heartbeats of a dead process, and
whichever worker looks next releases them (:meth:`.optuna_study.Sweep.recover`). Either way the retries resume
the same run directories, alone or in another batch. A trial whose point the run config rejects is recorded
failed before the batch starts, and the others run. A batch that fails (its train-batch exits with an error,
or is killed, e.g. out of memory) fails each trial that has no result.json, and counts as one failure towards
the rule that stops a sweep after three in a row (:func:`.census.failure_stop`).
"""

from __future__ import annotations

import sys
import time

from ..config import ConfigError
from ..util import EXIT_DIVERGED, EXIT_OK
from .trial import Heartbeat, invalid_point, read_json, trial_config, trial_outcome

__all__ = ["run_batch_of", "trial_code", "batch_command"]


def run_batch_of(worker, count: int) -> None:
    """Take up to `count` trials (grid points and retries first) and run them as one `micmco train-batch`;
    record each, or hand them all back if the worker was stopped."""
    from ..runconfig import run_directory

    sweep = worker.sweep
    beat = Heartbeat(sweep.storage, [], worker.heartbeat)
    beat.start()  # before the first proposal: asking N points can take longer than --stale-after
    try:
        held = []
        for _ in range(count):
            if worker.stopping.is_set():
                break
            proposal = worker.propose()
            if proposal is not None:
                beat.add(proposal.trial._trial_id)
                held.append(proposal)
        ready = []
        for proposal in held:
            try:
                config = trial_config(sweep, proposal.params)
            except ConfigError as error:  # this point only: recorded failed, the others run
                worker.record(proposal.trial, invalid_point(sweep, proposal.params, error, worker.threads))
                continue
            proposal.trial.set_user_attr("run", run_directory(config).name)
            ready.append((proposal, config))
        if not ready:
            return
        numbers = [p.trial.number for p, _ in ready]
        for proposal, _ in ready:  # its failures count once (census.failure_stop)
            proposal.trial.set_user_attr("batch", numbers[0])
        log_path = sweep.log_dir / f"batch-{numbers[0]:04d}.log"
        sweep.log_dir.mkdir(parents=True, exist_ok=True)
        for proposal, _ in ready:  # each point's own log says where its output went
            with open(sweep.log_dir / f"trial-{proposal.origin:04d}.log", "a") as log:
                log.write(f"--- trial {proposal.trial.number} (point {proposal.origin}): in {log_path.name}\n")
        origins = ", ".join(str(p.origin) for p, _ in ready)
        header = f"--- trial {', '.join(map(str, numbers))} (points {origins})"
        started = time.time()
        code = worker.run_child(batch_command(sweep, [p.params for p, _ in ready], worker.threads), log_path, header)
    finally:
        beat.stop()
    if code is None:  # stopped: every trial's steps are checkpointed; each is retried (alone or in a batch)
        for proposal, _ in ready:
            worker.hand_back(proposal.trial)
        return
    wall = time.time() - started
    for proposal, config in ready:
        record = read_json(run_directory(config) / "result.json")
        result = trial_outcome(sweep, config, record, trial_code(code, record), wall, log_path, worker.threads)
        worker.record(proposal.trial, result)


def batch_command(sweep, points: list[dict[str, float]], threads: int) -> list[str]:
    """The `micmco train-batch` of `points`: the study's overrides once (--set), each point's tuned ones (--trial)."""
    study = sweep.study
    shared = len(study.overrides)
    command = [sys.executable, "-m", "micmco.cli", "train-batch", str(study.base_path), "--quiet"]
    for item in study.overrides:
        command += ["--set", item]
    for params in points:
        command += ["--trial", " ".join(study.trial_overrides(params)[shared:])]
    return command + ["--output-dir", str(sweep.runs_dir), "--threads", str(threads)]


def trial_code(code: int, record: dict | None) -> int:
    """A trial's own exit out of its batch's. `micmco train-batch` exits 3 when any trial diverged and 1 when it
    failed after some trials finished; a trial's result.json (written only once it finished) says which it
    was: 0 complete, 3 diverged. A trial without one has the batch's exit."""
    if record is None:
        return code
    return EXIT_DIVERGED if record.get("status") == "diverged" else EXIT_OK
