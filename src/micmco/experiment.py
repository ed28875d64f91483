"""The run hub: one run of any task, from a config to a result record.

config → task (:mod:`micmco.tasks`) → data and model → loss → trainer → evaluation → record.

A run lives in ``<output_dir>/<name>-<fingerprint>/``: the resolved ``config.yaml``, the
training ``checkpoint.pt`` (resumed when the same config is run again), a ``lock`` file held
by the process training it, and, once finished, ``result.json`` with the status
(``complete`` or ``diverged``), config, metrics, seed, versions (micmco, torch, CUDA, cuDNN, Python),
device, threads, precision (and the float32 and determinism flags it set) and wall time.

Everything that can be checked before work is checked by :func:`preflight` (the config, the
device, the task's data, the memory a step needs, the output directory), so a bad input ends
with one line and leaves no run directory behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from . import __version__
from .config import ConfigError, to_dict
from .evaluation import EvalConfig, evaluate, evaluate_repeated
from .memory import MemoryEstimate, available_memory, format_bytes
from .runconfig import run_directory, write_config_record
from .runtime import device_record, numerics, numerics_settings, resolve_device, step_generator, to_device
from .tasks import get_task
from .tasks.base import RunConfig
from .trainer import Diverged, Trainer, TrainState
from .util import git_commit, write_atomically

__all__ = [
    "RunLocked",
    "Preflight",
    "preflight",
    "check_output_dir",
    "duration_text",
    "run",
    "run_lock",
    "torch_threads",
    "result_record",
    "finished_record",
    "summary",
    "time_steps",
    "projection",
    "GPU_PROFILES",
    "precise_record",
    "precise_text",
    "evaluate_run",
]


@dataclass(frozen=True)
class Preflight:
    device: torch.device  # where the run trains
    memory: MemoryEstimate  # estimated peak tensor memory
    available: int | None  # bytes available on that device now (None: unknown)
    notes: tuple[str, ...] = ()  # what the user should know about the data (Task.check_data), one line each

    def describe(self) -> str:
        free = "unknown" if self.available is None else format_bytes(self.available)
        return f"device {self.device}; memory {self.memory.describe()}; available {free}"


def preflight(config: RunConfig, create_output_dir: bool = False) -> Preflight:
    """Everything checkable before work: device, data, memory, output directory. ConfigError naming the key."""
    try:
        device = resolve_device(config.train.device)
    except RuntimeError as error:
        raise ConfigError("train.device", str(error)) from None
    task = get_task(config.task)
    task.split(config)  # a ConfigError naming eval.split and the task's splits
    notes = tuple(task.check_data(config))  # missing, unreadable or wrong data: before any run directory exists
    memory = task.estimate_memory(config, device)
    available = available_memory(device)
    if available is not None and memory.peak_bytes > available:
        raise ConfigError(
            "",
            f"this run needs {memory.describe()}, but only {format_bytes(available)} is available on {device}; "
            f"{task.memory_hint}",
        )
    check_output_dir(Path(config.output_dir), create=create_output_dir)
    return Preflight(device, memory, available, notes)


def check_output_dir(path: Path, create: bool, key: str = "output_dir") -> None:
    """A ConfigError under ``key`` unless ``path`` can be (``create``: is) made and written."""
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise ConfigError(key, f"cannot create or write {path}: {reason}") from None
        return
    existing = path
    while not existing.exists():  # the nearest existing ancestor must be a writable directory
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(key, f"cannot create {path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(key, f"cannot create or write {path}: {existing} is not writable")


GPU_PROFILES = ("paper",)  # profiles sized for an accelerator


def time_steps(config: RunConfig, device: torch.device, steps: int = 2) -> float:
    """Seconds per training step of ``config`` on ``device``, timed over ``steps`` forward and backward
    passes (after one warm-up) of a fresh copy of the model, in the run's precision: the run itself is not
    touched."""
    task = get_task(config.task)
    precision = config.train.precision
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")
    with torch.random.fork_rng(devices=[]), torch_threads(config.train.threads or 1), numerics(precision, device):
        model, loss = task.build_model(config).to(device), task.build_loss(config)
        batch = to_device(task.training_data(config)(0), device)
        timings = []
        for step in range(steps + 1):
            started = time.perf_counter()
            with autocast:
                value, _ = loss(model, batch, step_generator(config.seed, "noise", step, device))
            value.backward()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            timings.append(time.perf_counter() - started)
            model.zero_grad(set_to_none=True)
    return sum(timings[1:]) / steps


def projection(config: RunConfig, device: torch.device, steps_done: int = 0) -> tuple[str, str | None]:
    """(a line with the projected training time from timed steps, a warning when a profile sized for a GPU
    runs on a CPU or None)."""
    steps = 2
    per_step = time_steps(config, device, steps)
    remaining = max(0, config.train.steps - steps_done)
    line = (
        f"projected from {steps} timed steps: {per_step:.3g} s per step on {device}, {remaining} steps to go: "
        f"~{duration_text(per_step * remaining)} of training"
    )
    warning = None
    if config.profile in GPU_PROFILES and device.type == "cpu":
        warning = (
            f"the {config.profile} profile is sized for a GPU; on this CPU it takes "
            f"~{duration_text(per_step * remaining)}"
            " (a cpu profile config is sized for a laptop)"
        )
    return line, warning


def duration_text(seconds: float) -> str:
    """Seconds as a reader says them: 45 s, 12 min, 3.5 h."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class RunLocked(RuntimeError):
    """Another process is training this run directory now."""

    def __init__(self, run_dir: Path, pid: int | None):
        self.run_dir, self.pid = run_dir, pid
        holder = f"pid {pid}" if pid else "pid unknown"
        super().__init__(f"{run_dir}: already running ({holder}); wait for it, or stop it and rerun to resume")


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """An exclusive lock on ``run_dir`` (flock: the OS releases it when the holder dies, even by kill -9)."""
    path = run_dir / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            raise RunLocked(run_dir, int(text) if text.isdigit() else None) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run(config: RunConfig, echo=print) -> dict[str, Any]:
    """Train (or resume) and evaluate one run; returns the result record, also written as JSON.

    The record's ``status`` is ``complete``, or ``diverged`` (with a ``divergence`` entry: reason,
    step, last finite metrics) when training or its metrics broke down. Raises
    :class:`RunLocked` when another process trains the same run, ConfigError when the run
    cannot start here (nothing is created then), KeyboardInterrupt when interrupted (resumable).
    """
    run_dir = run_directory(config)
    result_path = run_dir / "result.json"
    if result_path.exists():
        return finished_record(run_dir, echo)
    checks = preflight(config, create_output_dir=True)
    for note in checks.notes:
        echo(f"note: {note}")
    run_dir.mkdir(exist_ok=True)
    with run_lock(run_dir):
        if result_path.exists():  # finished by another process while we waited to look
            return finished_record(run_dir, echo)
        threads = config.train.threads or 1
        with torch_threads(threads):
            record = _train_and_evaluate(config, run_dir, checks, threads, echo)
        write_atomically(result_path, json.dumps(record, indent=1, allow_nan=True))
    return record


class DamagedRecord(ValueError):
    """A run's result.json that cannot be its record (cut short, empty, not a record, another run's)."""


def read_record(run_dir: Path) -> dict[str, Any]:
    """A finished run's result record, checked: a :class:`DamagedRecord` names the file and the remedy (its
    final checkpoint is evaluated again by rerunning the run once the damaged file is moved aside)."""
    path = Path(run_dir) / "result.json"
    remedy = (
        f"move it aside (mv {path} {path}.damaged) and rerun the same command: the run's final checkpoint is "
        "evaluated again, without training"
        if (Path(run_dir) / "checkpoint.pt").exists()
        else f"move it aside (mv {path} {path}.damaged) and rerun the same command to train the run again"
    )
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DamagedRecord(f"the run's record {path} is cut short or not JSON; {remedy}") from None
    if not isinstance(record, dict) or not {"fingerprint", "status"} <= record.keys():
        raise DamagedRecord(f"the run's record {path} is not a result record (no fingerprint or status); {remedy}")
    if record["fingerprint"] != Path(run_dir).name.rsplit("-", 1)[-1]:
        raise DamagedRecord(f"the run's record {path} is another run's (fingerprint {record['fingerprint']}); {remedy}")
    if record["status"] == "complete" and not isinstance(record.get("metrics"), dict):
        raise DamagedRecord(f"the run's record {path} is complete but has no metrics; {remedy}")
    return record


def finished_record(run_dir: Path, echo=print) -> dict[str, Any]:
    record = read_record(run_dir)
    echo(f"{run_dir}: already finished ({record.get('status', 'complete')})")
    return record


def resumed_head(config: RunConfig, run_dir: Path, echo=print) -> RunConfig:
    """``config`` with the softmax head of the run's checkpoint where it has one (a run keeps the head it started
    with: checkpoints from before ``train.head`` are the legacy head's); unchanged for a new run. An unreadable
    checkpoint is left to the trainer to report."""
    import dataclasses

    from .trainer import CheckpointError, checkpoint_head, read_checkpoint

    path = Path(run_dir) / "checkpoint.pt"
    if not path.exists():
        return config
    try:
        head = checkpoint_head(read_checkpoint(path))
    except CheckpointError:
        return config
    if head == config.train.head:
        return config
    echo(f"note: resuming with train.head={head}, the head its checkpoint was trained with")
    return dataclasses.replace(config, train=dataclasses.replace(config.train, head=head))


def _train_and_evaluate(config: RunConfig, run_dir: Path, checks: Preflight, threads: int, echo) -> dict[str, Any]:
    config = resumed_head(config, run_dir, echo)
    write_config_record(config, run_dir)
    task = get_task(config.task)
    floor, floor_reason = task.loss_floor(config)
    trainer = Trainer(
        task.build_model(config),
        task.build_loss(config),
        task.training_data(config),
        config.train,
        config.seed,
        checkpoint_path=run_dir / "checkpoint.pt",
        fingerprint=run_dir.name.rsplit("-", 1)[-1],
        min_loss=floor,
        min_loss_reason=floor_reason,
        loss_unit=task.data_point,
    )
    if trainer.checkpoint_path.exists():
        echo(f"{run_dir}: resuming from its checkpoint")
    try:
        state, diverged = trainer.fit(), None
    except Diverged as error:
        state, diverged = trainer.state, error
    return result_record(config, run_dir, checks, threads, state, diverged, trainer.model, trainer.device)


def result_record(
    config: RunConfig,
    run_dir: Path,
    checks: Preflight,
    threads: int,
    state: TrainState,
    diverged: Diverged | None,
    model: torch.nn.Module,
    device: torch.device,
) -> dict[str, Any]:
    """A trained run's result record: its model evaluated (unless training diverged) and everything it ran with."""
    task = get_task(config.task)
    record: dict[str, Any] = {"name": config.name, "fingerprint": run_dir.name.rsplit("-", 1)[-1], "status": "complete"}
    data = task.data_record(config)
    if data is not None:
        record["data"] = data
    if checks.notes:
        record["warnings"] = list(checks.notes)
    started = time.perf_counter()
    if diverged is not None:
        record.update(status="diverged", metrics=None)
        record["divergence"] = {
            "reason": diverged.reason,
            "step": diverged.step,
            "last_finite_metrics": diverged.last_finite,
        }
        metrics = None
    else:
        split = task.split(config)
        batches = list(task.evaluation_batches(config, split))  # read twice: the recorded and the precise evaluation
        with numerics(config.train.precision, device):
            metrics = evaluate(model, batches, config.eval, seed=config.seed, progress=config.train.progress)
        record["evaluation"] = {"split": split, "unit": task.unit, "units": metrics.pop("units")}
        if config.eval.repeats:
            with numerics(config.train.precision, device):
                record["precise_evaluation"] = precise_record(model, batches, config, split)
        reference = task.reference_nll(config)
        if reference is not None:
            metrics["optimal_nll"] = reference
        reason, warnings = task.plausibility(metrics, config)
        record["metrics"] = metrics
        record["warnings"] = list(checks.notes) + warnings
        if reason:
            record["status"] = "diverged"
            record["divergence"] = {"reason": reason, "step": state.step, "last_finite_metrics": state.history[-1]}
    with numerics(config.train.precision, device):
        applied = numerics_settings()  # the flags training and evaluation ran under
    record.update(
        {
            "config": to_dict(config),
            "train_history": state.history,
            "seed": config.seed,
            "steps": state.step,
            "resumed_from_steps": state.resumed_from,
            "train_wall_time_s": state.elapsed,
            "eval_wall_time_s": time.perf_counter() - started if metrics is not None else 0.0,
            "device": _describe_device(device, threads),
            "threads": threads,
            "precision": config.train.precision,
            "numerics": applied,
            **device_record(device),  # device_kind, device_name, torch, CUDA and cuDNN versions
            "memory_estimate_bytes": checks.memory.peak_bytes,
            "micmco_version": __version__,
            "git_commit": git_commit(),
            "python_version": platform.python_version(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    )
    return record


def precise_record(
    model: torch.nn.Module,
    batches,
    config: RunConfig,
    split: str,
    seed: int | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """The precise evaluation of a trained model as a result record keeps it: means and standard errors over
    independent evaluations (:func:`micmco.evaluation.evaluate_repeated`), with what it ran with."""
    started = time.perf_counter()
    progress = config.train.progress if progress is None else progress
    precise = evaluate_repeated(
        model, batches, config.eval, seed=config.seed if seed is None else seed, progress=progress
    )
    return {
        "split": split,
        **precise,
        "max_repeats": config.eval.repeats,
        "target_se": config.eval.target_se,
        "wall_time_s": time.perf_counter() - started,
    }


def precise_text(precise: dict[str, Any], unit: str) -> str:
    """ "NLL 5.3166 ± 0.0012, MI 4.5581 ± 0.0009 nats per symbol (mean ± standard error of 64 evaluations, K = 100)"."""
    return (
        f"NLL {precise['nll']:.4f} ± {precise['nll_se']:.4f}, MI {precise['mutual_information']:.4f} "
        f"± {precise['mutual_information_se']:.4f} nats per {unit} (mean ± standard error of {precise['repeats']} "
        f"evaluations, K = {precise['samples']}, {precise['split']} split)"
    )


def summary(record: dict[str, Any]) -> str:
    if record.get("status") == "diverged" and record.get("metrics") is None:
        d = record["divergence"]
        return f"{record['name']}: diverged at step {d['step']}: {d['reason']}"
    m = record["metrics"]
    task = get_task(record.get("config", {}).get("task", "synthetic"))
    return (
        f"{record['name']}: {task.describe_metrics(m)}, "
        f"mutual information {m['mutual_information']:.4f} nats per {task.unit}, "
        f"KL(q||p) {m['representational_kl']:.4f} nats per {task.unit}, "
        + _time_text(record)
        + (
            f"; precisely: {precise_text(record['precise_evaluation'], task.unit)}"
            if record.get("precise_evaluation")
            else ""
        )
    )


def _time_text(record: dict[str, Any]) -> str:
    """Steps and training time; a batched trial's time is its share of its batch's, and says so."""
    batch = record.get("batch") or {}
    if batch.get("trials", 1) > 1:
        return (
            f"{record['steps']} steps, {record['train_wall_time_s']:.1f} s as its 1/{batch['trials']} share of a "
            f"batch on {record['device']}"
        )
    return f"{record['steps']} steps in {record['train_wall_time_s']:.1f} s on {record['device']}"


def _describe_device(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})"


def evaluate_run(
    run_dir: str | Path,
    samples: int | None = None,
    repeats: int | None = None,
    target_se: float | None = None,
    seed: int | None = None,
    split: str | None = None,
    record: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Re-score a finished run from its checkpoint, without training: the precise evaluation
    (:func:`evaluate_repeated`) of its final model, with K = ``samples``, at most ``repeats`` evaluations
    (until both standard errors are <= ``target_se``), seeded by ``seed`` on ``split`` (each None: the
    run's own). Returns the precise numbers, plus ``recorded_reproduced`` where K and the split are the
    run's: whether its recorded evaluation comes out again exactly (None otherwise).

    The run's ``result.json`` is left as it is unless ``record`` (then its ``precise_evaluation`` is
    replaced; only for the run's own K and split). ConfigError (one line, naming the problem) for a
    directory that is not a finished run or a value out of range.
    """
    import dataclasses

    from .runconfig import config_from_dict
    from .trainer import CheckpointError, read_checkpoint

    run_dir = Path(run_dir)
    result_path, config_path, checkpoint_path = (
        run_dir / name for name in ("result.json", "config.yaml", "checkpoint.pt")
    )
    if not run_dir.is_dir():
        raise ConfigError("", f"{run_dir}: no such run directory (micmco train prints its run's directory)")
    if not config_path.exists():
        raise ConfigError("", f"{run_dir}: not a run directory (no config.yaml)")
    if not result_path.exists():
        raise ConfigError(
            "", f"{run_dir}: the run has not finished (no result.json); `micmco train` it to the end first"
        )
    try:
        result = json.loads(result_path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(
            "", f"{result_path} is unreadable ({type(error).__name__}); `--record` cannot update it"
        ) from None
    if result.get("status") == "diverged" and result.get("metrics") is None:
        raise ConfigError("", f"{run_dir}: the run diverged in training; it has no model to evaluate")
    if not checkpoint_path.exists():
        raise ConfigError("", f"{run_dir}: no checkpoint.pt (deleted?); retrain the run to re-score it")
    config = config_from_dict(yaml.safe_load(config_path.read_text(encoding="utf-8")))
    task = get_task(config.task)
    own_split = task.split(config)
    overrides = {"num_samples": samples, "repeats": repeats, "target_se": target_se, "split": split}
    try:
        eval_config = dataclasses.replace(config.eval, **{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as error:
        raise ConfigError(f"eval.{error.key}" if error.key else "", error.message) from None
    if eval_config.repeats < 1 and repeats is None:  # a config that asked for none at training: the default
        eval_config = dataclasses.replace(eval_config, repeats=EvalConfig().repeats)
    if eval_config.repeats < 1:
        raise ConfigError("repeats", "must be >= 1 to evaluate")
    config = dataclasses.replace(config, eval=eval_config)
    chosen_split = task.split(config)  # a ConfigError naming eval.split and the task's splits
    own = chosen_split == own_split and eval_config.num_samples == result.get("config", {}).get("eval", {}).get(
        "num_samples", 100
    )
    if record and not own:
        raise ConfigError("", "--record keeps only the run's own split and K; drop --record to evaluate elsewhere")
    try:
        payload = read_checkpoint(checkpoint_path)
    except CheckpointError as error:
        raise ConfigError("", str(error)) from None
    fingerprint = run_dir.name.rsplit("-", 1)[-1]
    if payload.get("fingerprint") != fingerprint:
        raise ConfigError("", f"{checkpoint_path} belongs to another run (fingerprint {payload.get('fingerprint')})")
    device = resolve_device(config.train.device)
    model = task.build_model(config)
    model.load_state_dict(payload["model"])
    model.to(device)
    batches = list(task.evaluation_batches(config, chosen_split))
    with torch_threads(config.train.threads or 1), numerics(config.train.precision, device):
        reproduced = None
        if own and result.get("metrics"):
            single = evaluate(model, batches, eval_config, seed=config.seed)
            recorded = result["metrics"]
            reproduced = all(single[key] == recorded[key] for key in ("nll", "mutual_information"))
        precise = precise_record(model, batches, config, chosen_split, seed=seed, progress=progress)
    if record:
        result["precise_evaluation"] = precise
        write_atomically(result_path, json.dumps(result, indent=1, allow_nan=True))
    return {**precise, "recorded_reproduced": reproduced, "unit": task.unit, "run": run_dir.name}
