"""The trainer of N trials in one batch: :class:`micmco.trainer.Trainer`'s loop, with a trial dimension.

Each trial keeps what its single run has: its TrainState (step, history, partial sums), its checkpoint file
in the single run's format, its divergence checks at its log steps, its learning rate. The trials share the
seed, so step t's batch and sampling noise are the same for all. A trial resumed at another step than the
others waits (inactive, its state untouched) until the batch's step reaches its own, then trains with them:
from then on every active trial's step is the batch's. A trial that breaks down is recorded and left out
of every later update; its NaN never reaches another trial (the parameters are separate and the updates
masked, :class:`~micmco.batched.adam.BatchedAdam`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..models.batched import trial_state
from ..runtime import numerics, step_generator, to_device
from ..trainer import (
    Diverged,
    TrainerConfig,
    TrainState,
    checkpoint_payload,
    final_loss_divergence,
    signals_deferred,
    window_divergence,
    write_checkpoint,
)
from .adam import BatchedAdam, host_to_device

__all__ = ["Trial", "BatchTrainer"]

BatchedLoss = Callable[[nn.Module, Any, torch.Generator], tuple[Tensor, dict[str, Tensor]]]  # losses [N], metrics


@dataclass
class Trial:
    """One trial of a batch: what its single Trainer would be given."""

    config: TrainerConfig  # its training settings (the batch's, but for the learning rate)
    checkpoint_path: Path | None  # its checkpoint, in the single run's format
    fingerprint: str  # its run's identity (a checkpoint of another is refused)
    template: nn.Module  # a single model of its shape: the format of its checkpoint's model and optimizer state
    min_loss: float | None = None  # as Trainer's
    min_loss_reason: str = ""
    state: TrainState | None = None  # restored from its checkpoint (None: a fresh trial)
    diverged: Diverged | None = None  # set when it breaks down


class BatchTrainer:
    """Adam on the N per-trial losses of ``loss(model, batch, generator)`` over ``data(step)`` batches."""

    def __init__(
        self, model: nn.Module, loss: BatchedLoss, data, trials: Sequence[Trial], seed: int, device, loss_unit: str
    ):
        self.model, self.loss, self.data, self.seed = model.to(device), loss, data, seed
        self.trials = list(trials)
        self.device = device
        self.loss_unit = loss_unit
        first = self.trials[0].config
        self.config = first  # shared settings: steps, logging, checkpoints, precision
        names = [name for name, _ in self.trials[0].template.named_parameters()]
        batched = dict(model.named_parameters())
        self.optimizer = BatchedAdam(
            {name: batched[name] for name in names},
            [t.config.learning_rate for t in self.trials],
            (first.adam_beta1, first.adam_beta2),
            first.adam_eps,
        )
        for trial in self.trials:
            trial.state = trial.state or TrainState()
        self._stop_requested = False

    def load_optimizer_state(self, trial: int, state_dict: dict) -> None:
        """Trial ``trial``'s Adam state from its checkpoint's (a ``torch.optim.Adam`` state dict)."""
        self.optimizer.load_trial(trial, state_dict)

    def request_stop(self) -> None:
        self._stop_requested = True

    def fit(self) -> list[Trial]:
        """Train every trial to ``config.steps``; SIGINT/SIGTERM: every trial checkpointed, KeyboardInterrupt."""
        config, trials = self.config, self.trials
        N, step = len(trials), min(t.state.step for t in trials)
        # metric sums since each trial's last log, [N] per metric, on the device: no synchronisation per step
        names = sorted({name for t in trials for name in t.state.partial_sums})
        sums = {name: self._per_trial([t.state.partial_sums.get(name, 0.0) for t in trials]) for name in names}
        counts = [t.state.partial_count for t in trials]
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=config.precision == "bfloat16")
        bar = tqdm(
            total=config.steps, initial=step, disable=not config.progress, dynamic_ncols=True,
            desc=f"train {N} trials (nats per {self.loss_unit})",
        )  # fmt: skip
        started = time.perf_counter()
        self.model.train()
        self._stop_requested = False
        try:
            deferred = signals_deferred(self.request_stop, lambda: self._stop_requested)
            with deferred, numerics(config.precision, self.device):
                while step < config.steps and any(t.diverged is None for t in trials):
                    if self._stop_requested:
                        self._checkpoint(started, sums, counts)
                        raise KeyboardInterrupt
                    active = [t.diverged is None and t.state.step == step for t in trials]
                    batch = to_device(self.data(step), self.device)
                    generator = step_generator(self.seed, "noise", step, self.device)
                    with autocast:
                        losses, metrics = self.loss(self.model, batch, generator)
                    self.optimizer.zero_grad()
                    losses.sum().backward()  # each trial's loss reaches its own parameters only
                    finite = torch.isfinite(losses)
                    if self.device.type == "cpu" and bool(finite.all()):
                        finite = None  # the update in place (a host read costs nothing on a CPU)
                    self.optimizer.step(active, finite)  # a non-finite loss: no update (its log step diverges)
                    on = self._per_trial(active).bool()
                    for name, value in {"loss": losses.detach(), **metrics}.items():
                        total = sums.get(name, torch.zeros_like(on, dtype=torch.float32))
                        sums[name] = torch.where(on, total + value.detach().float(), total)
                    if step == 0:
                        for n in (n for n in range(N) if active[n]):
                            trials[n].state.initial_loss = losses[n].item()
                    step += 1
                    bar.update(1)
                    for n in (n for n in range(N) if active[n]):
                        counts[n] += 1
                        trials[n].state.step = step
                        if step % config.log_every == 0 or step == config.steps:
                            self._log(trials[n], {name: total[n] for name, total in sums.items()}, counts[n])
                            for total in sums.values():
                                total[n] = 0.0
                            counts[n] = 0
                    if config.checkpoint_every and step % config.checkpoint_every == 0:
                        self._checkpoint(started, sums, counts)
                        started = time.perf_counter()
                self._checkpoint(started, sums, counts)
                if self._stop_requested:
                    raise KeyboardInterrupt
        finally:
            bar.close()
        return trials

    def _per_trial(self, values) -> Tensor:
        return host_to_device(torch.tensor([float(v) for v in values], dtype=torch.float32), self.device)

    def _log(self, trial: Trial, sums: dict[str, Tensor], count: int) -> None:
        means = {name: (total / count).item() for name, total in sums.items()}
        state = trial.state
        trial.diverged = window_divergence(state, means, count, trial.min_loss, trial.min_loss_reason)
        if trial.diverged is not None:
            return
        state.history.append({"step": state.step, **means})
        if state.step == trial.config.steps:
            trial.diverged = final_loss_divergence(state, means["loss"])

    def _checkpoint(self, started: float, sums: dict[str, Tensor], counts: list[int]) -> None:
        """Every trial's checkpoint, as its single Trainer writes it (a diverged trial's is not rewritten)."""
        # each trial's share of the batch's time, so that summed wall times stay the compute spent (the batch's
        # own time is its trials' shares added up)
        elapsed = (time.perf_counter() - started) / len(self.trials)
        for n, trial in enumerate(self.trials):
            if trial.diverged is not None or trial.checkpoint_path is None:
                continue
            trial.state.elapsed += elapsed
            trial.state.partial_sums = {name: float(total[n]) for name, total in sums.items()} if counts[n] else {}
            trial.state.partial_count = counts[n]
            model = trial.template
            model.load_state_dict(trial_state(self.model, n))
            optimizer = self.optimizer.trial_state_dict(n, model)
            payload = checkpoint_payload(
                trial.fingerprint, self.device, trial.state, model.state_dict(), optimizer, trial.config.head
            )
            write_checkpoint(trial.checkpoint_path, payload)
