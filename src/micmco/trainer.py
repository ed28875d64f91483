"""A generic trainer: a model, a loss, a data stream, Adam, callbacks. Nothing about VAEs.

Reproducibility and resumption come from one rule (:mod:`micmco.runtime`): everything random at step t
(the batch and the loss's sampling noise) is drawn from generators seeded by (seed, t). A checkpoint
therefore needs only the step, the model and the optimizer, and a run resumed from any checkpoint ends
exactly where an uninterrupted run with the same seed does, on the same kind of device (CPU and CUDA
generators draw different numbers: a checkpoint records its kind, and another kind is refused).
"""

from __future__ import annotations

import contextlib
import math
import pickle
import re
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .config import check, check_choice, check_types
from .runtime import PRECISIONS, numerics, resolve_device, step_generator, to_device
from .util import install_handlers, restore_handlers, written_or_cleaned

__all__ = [
    "TrainerConfig",
    "Trainer",
    "TrainState",
    "Diverged",
    "CheckpointError",
    "HEADS",
    "LEGACY_HEAD",
    "checkpoint_head",
]

Loss = Callable[[nn.Module, Any, torch.Generator], tuple[Tensor, dict[str, Tensor]]]
HEADS = ("cached", "recompute")  # train.head's choices
LEGACY_HEAD = "recompute"  # the head of every run, row and checkpoint recorded before train.head existed
Callback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainerConfig:
    steps: int = 1000  # optimisation steps
    learning_rate: float = 1e-3  # Adam step size (the paper tunes it in [1e-4, 1e-2], log scale)
    adam_beta1: float = 0.0  # the paper's Adam: β1 = 0, β2 = 0.999, ε = 1e-8 (Appendix C)
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    device: str = "auto"  # auto (cuda when available, else cpu), cpu, cuda or cuda:N
    threads: int | None = None  # CPU threads for torch; None = 1 (these models are small: workers, not threads, scale)
    # float32 (full float32 on both CUDA back ends), tf32 (TensorFloat-32 in cuBLAS and cuDNN) or bfloat16
    # (autocast of the forward pass); applied by :func:`numerics` for the run
    precision: str = "float32"
    mixed_precision: bool = False  # deprecated alias: true means precision bfloat16 (kept in agreement with it)
    checkpoint_every: int = 1000  # steps between checkpoints; 0 = only when interrupted and at the end
    log_every: int = 100  # steps between logged metric averages
    progress: bool = True  # show a progress bar
    # the decoder's softmax head in training (micmco.models.cached_head): cached (forward keeps onehot - softmax
    # for a cheap backward) or recompute (backward recomputes the logits: every run recorded before it existed).
    # The same values; gradients differ by rounding, so a run records it, resumes with it, and reruns with it.
    head: str = "cached"

    def __post_init__(self) -> None:
        check_types(self)
        check(self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")
        check(self.learning_rate > 0, "learning_rate", f"must be > 0, got {self.learning_rate}")
        check(0 <= self.adam_beta1 < 1, "adam_beta1", f"must be in [0, 1), got {self.adam_beta1}")
        check(0 <= self.adam_beta2 < 1, "adam_beta2", f"must be in [0, 1), got {self.adam_beta2}")
        check(self.adam_eps > 0, "adam_eps", f"must be > 0, got {self.adam_eps}")
        check(
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
            "device",
            f"unknown device {self.device!r}; valid choices: auto, cpu, cuda, cuda:N",
        )
        check(self.checkpoint_every >= 0, "checkpoint_every", f"must be >= 0, got {self.checkpoint_every}")
        check(self.log_every >= 1, "log_every", f"must be >= 1, got {self.log_every}")
        check(self.threads is None or self.threads >= 1, "threads", f"must be >= 1, got {self.threads}")
        check_choice(self.precision, PRECISIONS, "precision")
        check_choice(self.head, HEADS, "head")
        # mixed_precision (in every recorded run's identity) and precision always agree: either spelling of a
        # bfloat16 run gives the same config, and one whose identity lists mixed_precision only keeps its hash
        if self.mixed_precision and self.precision == "float32":
            self.precision = "bfloat16"
        check(
            self.mixed_precision in (False, self.precision == "bfloat16"),
            "mixed_precision",
            f"true means precision bfloat16, which contradicts precision {self.precision!r}; "
            "drop mixed_precision (deprecated) and keep precision",
        )
        self.mixed_precision = self.precision == "bfloat16"


class Diverged(Exception):
    """Training produced a non-finite loss or metric; the model is unusable from here on."""

    def __init__(self, reason: str, step: int, last_finite: dict[str, float] | None):
        super().__init__(reason)
        self.reason = reason
        self.step = step  # the first logged step whose window held a non-finite value
        self.last_finite = last_finite  # the last logged metric averages that were all finite


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: unreadable, not ours, or of another configuration."""


@dataclass
class TrainState:
    step: int = 0  # completed optimisation steps
    elapsed: float = 0.0  # training wall time in seconds, summed over resumed sessions
    history: list[dict[str, float]] = field(default_factory=list)  # logged metric averages
    resumed_from: list[int] = field(default_factory=list)  # steps at which earlier sessions stopped
    partial_sums: dict[str, float] = field(default_factory=dict)  # metric sums since the last log
    partial_count: int = 0  # steps in partial_sums
    initial_loss: float | None = None  # the loss of step 0, before any update


class Trainer:
    """Adam on ``loss(model, batch, generator)`` over ``data(step)`` batches, with checkpoints.

    ``fingerprint`` identifies the run's configuration; a checkpoint with another
    fingerprint is never resumed (nor overwritten). ``loss_unit`` names what the loss and its
    metrics average over, for the progress bar's label (``nats per sentence``): a task's
    training loss is per data point, while its evaluation may be per token.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: Loss,
        data: Callable[[int], Any],
        config: TrainerConfig,
        seed: int,
        checkpoint_path: str | Path | None = None,
        fingerprint: str = "",
        callbacks: Sequence[Callback] = (),
        min_loss: float | None = None,
        min_loss_reason: str = "",
        loss_unit: str = "data point",
    ):
        self.config = config
        self.device = resolve_device(config.device)
        self.model = model.to(self.device)
        self.loss = loss
        self.data = data
        self.seed = seed
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.fingerprint = fingerprint
        self.callbacks = list(callbacks)
        # A loss that cannot go below ``min_loss`` (say, minus an objective bounded above) and does: a runaway
        # that a finite loss would otherwise hide; ``min_loss_reason`` says why the bound holds.
        self.min_loss, self.min_loss_reason = min_loss, min_loss_reason
        self.loss_unit = loss_unit
        self.optimizer = torch.optim.Adam(
            model.parameters(),
            lr=config.learning_rate,
            betas=(config.adam_beta1, config.adam_beta2),
            eps=config.adam_eps,
        )
        self.state = TrainState()

    # --- checkpoints -------------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        """Write the checkpoint atomically: only tensors and plain Python values (loadable with weights_only)."""
        if self.checkpoint_path is None:
            return
        payload = checkpoint_payload(
            self.fingerprint,
            self.device,
            self.state,
            self.model.state_dict(),
            self.optimizer.state_dict(),
            self.config.head,
        )
        write_checkpoint(self.checkpoint_path, payload)

    def load_checkpoint(self) -> bool:
        """Restore from the checkpoint if there is one; True if restored.

        The file is read with ``weights_only=True``: a checkpoint from someone else cannot run code. It is
        read onto the CPU: the optimizer moves its moment estimates to the parameters' device and keeps
        Adam's step counters on the CPU, as a fresh Adam does (counters on a GPU cost synchronisations in
        every step). A checkpoint written on another kind of device is refused: the run would continue
        with another noise stream, no longer the run its fingerprint names.
        """
        payload = usable_checkpoint(self.checkpoint_path, self.fingerprint, self.device)
        if payload is None:
            return False
        path = self.checkpoint_path
        try:
            self.model.load_state_dict(payload["model"])
            self.optimizer.load_state_dict(payload["optimizer"])
            self.state = TrainState(**payload["state"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(
                f"checkpoint {path} does not match this model ({type(error).__name__}); delete it to start over"
            ) from None
        return True

    # --- training ----------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop at the next step boundary: checkpoint the completed steps, then raise KeyboardInterrupt."""
        self._stop_requested = True

    def fit(self) -> TrainState:
        """Train up to ``config.steps``, resuming from the checkpoint if present.

        A SIGINT (Ctrl-C) or SIGTERM during training takes effect only at a step boundary: the
        step under way completes, the completed steps are checkpointed, then KeyboardInterrupt
        propagates. A second signal stops at once, without saving (the last checkpoint stays
        intact). A non-finite loss or metric raises :class:`Diverged` (no checkpoint is written
        from the broken state).
        """
        config = self.config
        if self.load_checkpoint():
            self.state.resumed_from.append(self.state.step)
        self.model.train()
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=config.precision == "bfloat16")
        bar = tqdm(
            total=config.steps,
            initial=self.state.step,
            disable=not config.progress,
            desc=f"train (nats per {self.loss_unit})",  # the units of the loss and metrics shown after the bar
            dynamic_ncols=True,
        )
        sums: dict[str, Tensor] = {k: torch.tensor(v, device=self.device) for k, v in self.state.partial_sums.items()}
        count = self.state.partial_count
        started = time.perf_counter()
        self._stop_requested = False
        try:
            deferred = signals_deferred(self.request_stop, lambda: self._stop_requested)
            with deferred, numerics(config.precision, self.device):
                while self.state.step < config.steps:
                    if self._stop_requested:
                        self._checkpoint(started, sums, count)
                        raise KeyboardInterrupt
                    step = self.state.step
                    batch = to_device(self.data(step), self.device)
                    generator = step_generator(self.seed, "noise", step, self.device)
                    with autocast:
                        loss, metrics = self.loss(self.model, batch, generator)
                    if step == 0:
                        self.state.initial_loss = loss.item()
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                    for name, value in {"loss": loss.detach(), **metrics}.items():
                        sums[name] = sums.get(name, 0.0) + value.detach().float()
                    count += 1
                    self.state.step = step + 1
                    bar.update(1)
                    if self.state.step % config.log_every == 0 or self.state.step == config.steps:
                        means = self._log(sums, count, bar)
                        sums, count = {}, 0
                        for callback in self.callbacks:
                            callback(self.state.step, means)
                    if config.checkpoint_every and self.state.step % config.checkpoint_every == 0:
                        self._checkpoint(started, sums, count)
                        started = time.perf_counter()
                self._checkpoint(started, sums, count)
                if self._stop_requested:  # the signal came during the last step: honour it, resumable
                    raise KeyboardInterrupt
        finally:
            bar.close()
        return self.state

    def _check_final_loss(self, final: float) -> None:
        diverged = final_loss_divergence(self.state, final)
        if diverged is not None:
            raise diverged

    def _checkpoint(self, started: float, sums: dict[str, Tensor], count: int) -> None:
        self.state.elapsed += time.perf_counter() - started
        self.state.partial_sums = {name: float(total) for name, total in sums.items()}
        self.state.partial_count = count
        self.save_checkpoint()

    def _log(self, sums: dict[str, Tensor], count: int, bar) -> dict[str, float]:
        means = {name: (total / count).item() for name, total in sums.items()}
        diverged = window_divergence(self.state, means, count, self.min_loss, self.min_loss_reason)
        if diverged is not None:
            raise diverged
        self.state.history.append({"step": self.state.step, **means})
        if self.state.step == self.config.steps:
            self._check_final_loss(means["loss"])
        bar.set_postfix({name: f"{value:.4g}" for name, value in means.items()}, refresh=False)
        return means


@contextlib.contextmanager
def signals_deferred(request_stop: Callable[[], None], stop_requested: Callable[[], bool]) -> Iterator[None]:
    """SIGINT/SIGTERM call ``request_stop`` (a trainer checks for it between steps); a second one, once
    ``stop_requested()``, interrupts at once. A signal the process was started ignoring (as background jobs of a
    script ignore SIGINT) is left ignored, as Python itself does."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def handler(signum, frame):
        if stop_requested():
            raise KeyboardInterrupt  # the user insists: stop now, keep the last checkpoint
        request_stop()

    previous = install_handlers(handler)
    try:
        yield
    finally:
        restore_handlers(previous)


def window_divergence(
    state: TrainState, means: dict[str, float], count: int, min_loss: float | None, min_loss_reason: str
) -> Diverged | None:
    """Why the metric averages of the ``count`` steps up to ``state.step`` show a breakdown, or None: a non-finite
    average, or a loss below ``min_loss`` (a runaway that a finite loss would otherwise hide)."""
    first = state.step - count + 1
    last_finite = state.history[-1] if state.history else None
    bad = [name for name, value in means.items() if not math.isfinite(value)]
    if bad:
        return Diverged(
            f"non-finite {', '.join(bad)} in steps {first}-{state.step} (try a smaller learning rate)",
            state.step,
            last_finite,
        )
    if min_loss is not None and means["loss"] < min_loss:
        return Diverged(
            f"the training loss averaged {means['loss']:.4g} in steps {first}-{state.step}, below "
            f"{min_loss:g}, which is impossible ({min_loss_reason}): the objective ran away upwards",
            state.step,
            last_finite,
        )
    return None


# A finite blow-up (say, a learning rate far too large) leaves a finite but useless model:
# the loss the optimiser minimised ends far above where it started.
LOSS_RISE_NATS = 1.0
LOSS_RISE_FRACTION = 0.5


def final_loss_divergence(state: TrainState, final: float) -> Diverged | None:
    """A Diverged when the final loss average ends far above the loss of step 0, else None."""
    initial = state.initial_loss
    if initial is None or not math.isfinite(initial):
        return None
    allowed = max(LOSS_RISE_NATS, LOSS_RISE_FRACTION * abs(initial))
    if final > initial + allowed:
        return Diverged(
            f"the training loss rose from {initial:.4g} at step 0 to {final:.4g} at the end "
            "(the optimisation diverged; try a smaller learning rate)",
            state.step,
            state.history[-2] if len(state.history) > 1 else None,
        )
    return None


CHECKPOINT_FORMAT = 2  # 1: pickled with weights_only=False (refused: it could run code)


def checkpoint_payload(
    fingerprint: str,
    device: torch.device,
    state: TrainState,
    model_state: dict,
    optimizer_state: dict,
    head: str = LEGACY_HEAD,
) -> dict[str, Any]:
    """A checkpoint's contents: only tensors and plain Python values (loadable with weights_only)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "fingerprint": fingerprint,
        "device": device.type,  # CPU and CUDA generators draw different noise: resumed on the same kind only
        "head": head,  # the softmax head that trained it (train.head): a resumed run keeps it
        "state": dict(state.__dict__),
        "model": model_state,
        "optimizer": optimizer_state,
    }


def checkpoint_head(payload: dict[str, Any]) -> str:
    """The softmax head a checkpoint was trained with (checkpoints from before the record: the legacy head)."""
    return payload.get("head", LEGACY_HEAD)


def write_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write a checkpoint atomically: a kill never leaves a torn one, a full disk no partial file (DiskFull)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written_or_cleaned(path.with_suffix(".partial"), path, lambda partial: torch.save(payload, partial))


def usable_checkpoint(path: Path | None, fingerprint: str, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint at ``path`` (None if there is none), refused with a CheckpointError when it belongs to another
    configuration or was written on another kind of device (whose random numbers differ: the run would continue
    with another noise stream, no longer the run its fingerprint names)."""
    if path is None or not path.exists():
        return None
    payload = read_checkpoint(path)
    if payload.get("fingerprint") != fingerprint:
        raise CheckpointError(
            f"checkpoint {path} belongs to a different configuration; "
            "use another output directory or delete the checkpoint to start over"
        )
    saved_on = payload.get("device", "cpu")  # checkpoints from before the field: nothing had run on a GPU
    if saved_on != device.type:
        raise CheckpointError(
            f"checkpoint {path} was written on {saved_on} and this run is on {device.type}, whose random "
            f"numbers differ, so it would not continue the same run; resume it on a {saved_on} device, or "
            f"delete the checkpoint to start over on {device.type}"
        )
    return payload


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``) onto the CPU; a clear CheckpointError for anything unusable."""
    start_over = f"delete {path} (or its run directory) to start the run over"
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty; {start_over}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if unsafe is None:
            raise CheckpointError(f"checkpoint {path} is truncated or not a checkpoint; {start_over}") from None
        raise CheckpointError(
            f"checkpoint {path} refers to {unsafe.group(1)}, which safe loading refuses: loading it could run "
            f"code, so it was not loaded; {start_over}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint {path} is truncated or not a checkpoint ({type(error).__name__}); {start_over}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} is not a micmco checkpoint of format {CHECKPOINT_FORMAT}; {start_over}"
        )
    return payload
