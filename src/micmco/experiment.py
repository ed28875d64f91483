"""One run of the synthetic experiment (§7.1), from a config to a result record.

A run lives in ``<output_dir>/<name>-<fingerprint>/``: the resolved ``config.yaml``, the
training ``checkpoint.pt`` (resumed when the same config is run again), a ``lock`` file held
by the process training it, and, once finished, ``result.json`` with the status
(``complete`` or ``diverged``), config, metrics, seed, versions, device, threads and wall time.

Everything that can be checked before work is checked by :func:`preflight` (the config, the
device, the memory a step needs, the output directory), so a bad input ends with one line
and leaves no run directory behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from . import __version__
from .config import ConfigError, apply_overrides, check, check_choice, from_dict, read_yaml_file, to_dict
from .data import SyntheticDataConfig, UniformSymbols
from .evaluation import EvalConfig, evaluate
from .gradients import EstimatorConfig, VariationalLoss, check_combination
from .latents import make_latent
from .memory import MemoryEstimate, available_memory, estimate_memory, format_bytes
from .models import VQVAE, SingleSymbolVAE, SyntheticModelConfig
from .objectives import Objective, ObjectiveConfig
from .trainer import Diverged, Trainer, TrainerConfig, derive_seed, resolve_device

__all__ = [
    "RunConfig",
    "RunLocked",
    "Preflight",
    "load_config",
    "preflight",
    "build_model",
    "build_loss",
    "run",
    "run_directory",
    "fingerprint",
    "summary",
    "plausibility",
]

PROFILES = ("smoke", "cpu", "paper", "custom")


@dataclass
class RunConfig:
    name: str  # run name; results go to <output_dir>/<name>-<fingerprint>/
    profile: str = "custom"  # smoke (CI, seconds), cpu (laptop, minutes), paper (the paper's settings, GPU) or custom
    reproduces: str = ""  # the paper figure or table this run contributes to
    cost: str = ""  # rough wall time on the profile's hardware
    seed: int = 0  # seeds the initialisation, the data stream and all sampling
    data: SyntheticDataConfig = field(default_factory=SyntheticDataConfig)
    model: SyntheticModelConfig = field(default_factory=SyntheticModelConfig)
    estimator: EstimatorConfig | None = None  # gradient estimator (model kind vae only)
    objective: ObjectiveConfig | None = None  # training objective (model kind vae only)
    train: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    output_dir: str = "runs"  # where run directories are created

    def __post_init__(self) -> None:
        check_choice(self.profile, PROFILES, "profile")
        check(0 <= self.seed < 2**63, "seed", f"must be in [0, 2^63), got {self.seed}")
        check(
            bool(self.name) and "/" not in self.name, "name", f"must be a non-empty name without '/', got {self.name!r}"
        )
        if self.model.kind == "vae":
            for section in ("estimator", "objective"):
                if getattr(self, section) is None:
                    raise ConfigError(section, "required for model kind vae")
            check_combination(self.estimator, self.objective, self.model.latent.kind)
        else:
            for section in ("estimator", "objective"):
                if getattr(self, section) is not None:
                    raise ConfigError(
                        section, "a vqvae trains its own loss (reconstruction + β commitment); remove this section"
                    )


def load_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """Read a YAML run config (strictly: safe loader, no duplicate keys), apply ``key=value`` overrides, validate."""
    data = read_yaml_file(path)
    if not isinstance(data, dict):
        raise ConfigError("", f"{path} does not hold a mapping of config sections (name, data, model, ...)")
    return from_dict(RunConfig, apply_overrides(data, overrides))


def fingerprint(config: RunConfig) -> str:
    """Short hash of everything that affects the results (not output_dir, progress bar or thread count)."""
    data = to_dict(config)
    data.pop("output_dir")
    data["train"].pop("progress")
    data["train"].pop("threads")
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]


def run_directory(config: RunConfig) -> Path:
    return Path(config.output_dir) / f"{config.name}-{fingerprint(config)}"


@dataclass(frozen=True)
class Preflight:
    device: torch.device  # where the run trains
    memory: MemoryEstimate  # estimated peak tensor memory
    available: int | None  # bytes available on that device now (None: unknown)

    def describe(self) -> str:
        free = "unknown" if self.available is None else format_bytes(self.available)
        return f"device {self.device}; memory {self.memory.describe()}; available {free}"


def preflight(config: RunConfig, create_output_dir: bool = False) -> Preflight:
    """Everything checkable before work: device, memory, output directory. ConfigError naming the key."""
    try:
        device = resolve_device(config.train.device)
    except RuntimeError as error:
        raise ConfigError("train.device", str(error)) from None
    memory = estimate_memory(config, device)
    available = available_memory(device)
    if available is not None and memory.peak_bytes > available:
        raise ConfigError(
            "",
            f"this run needs {memory.describe()}, but only {format_bytes(available)} is available on {device}; "
            "reduce data.vocab_size, data.batch_size, estimator.num_samples or eval.batch_size",
        )
    _check_output_dir(Path(config.output_dir), create=create_output_dir)
    return Preflight(device, memory, available)


def _check_output_dir(path: Path, create: bool) -> None:
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise ConfigError("output_dir", f"cannot create or write {path}: {reason}") from None
        return
    existing = path
    while not existing.exists():  # the nearest existing ancestor must be a writable directory
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError("output_dir", f"cannot create {path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError("output_dir", f"cannot create or write {path}: {existing} is not writable")


def build_model(config: RunConfig) -> nn.Module:
    """The model, initialised from the run's seed without touching the global RNG."""
    latent = make_latent(config.model.latent)
    vocab, hidden = config.data.vocab_size, config.model.hidden_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "init"))
        if config.model.kind == "vqvae":
            return VQVAE(vocab, latent, config.model.vq, hidden)
        return SingleSymbolVAE(vocab, latent, hidden)


def build_loss(config: RunConfig):
    if config.model.kind == "vqvae":
        return lambda model, x, generator: model.loss(x, generator)
    objective = Objective.from_config(config.objective, config.estimator.num_samples, config.estimator.mi_samples)
    return VariationalLoss(config.estimator.base, objective)


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
        return _finished(run_dir, echo)
    checks = preflight(config, create_output_dir=True)
    run_dir.mkdir(exist_ok=True)
    with run_lock(run_dir):
        if result_path.exists():  # finished by another process while we waited to look
            return _finished(run_dir, echo)
        threads = config.train.threads or 1
        with torch_threads(threads):
            record = _train_and_evaluate(config, run_dir, checks, threads, echo)
        partial = result_path.with_suffix(".partial")
        partial.write_text(json.dumps(record, indent=1, allow_nan=True))
        os.replace(partial, result_path)
    return record


def _finished(run_dir: Path, echo) -> dict[str, Any]:
    record = json.loads((run_dir / "result.json").read_text())
    echo(f"{run_dir}: already finished ({record.get('status', 'complete')})")
    return record


def _train_and_evaluate(config: RunConfig, run_dir: Path, checks: Preflight, threads: int, echo) -> dict[str, Any]:
    config_hash = run_dir.name.rsplit("-", 1)[-1]
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    data = UniformSymbols(config.data, config.seed)
    trainer = Trainer(
        build_model(config),
        build_loss(config),
        data,
        config.train,
        config.seed,
        checkpoint_path=run_dir / "checkpoint.pt",
        fingerprint=config_hash,
    )
    if trainer.checkpoint_path.exists():
        echo(f"{run_dir}: resuming from its checkpoint")
    record: dict[str, Any] = {"name": config.name, "fingerprint": config_hash, "status": "complete"}
    started = time.perf_counter()
    try:
        state = trainer.fit()
    except Diverged as diverged:
        record.update(status="diverged", metrics=None)
        record["divergence"] = {
            "reason": diverged.reason,
            "step": diverged.step,
            "last_finite_metrics": diverged.last_finite,
        }
        state = trainer.state
        metrics = None
    else:
        started = time.perf_counter()
        metrics = evaluate(trainer.model, data.evaluation_set(), config.eval, seed=config.seed)
        metrics["optimal_nll"] = data.optimal_nll
        reason, warnings = plausibility(metrics, data.optimal_nll)
        record["metrics"] = metrics
        record["warnings"] = warnings
        if reason:
            record["status"] = "diverged"
            record["divergence"] = {"reason": reason, "step": state.step, "last_finite_metrics": state.history[-1]}
    record.update(
        {
            "config": to_dict(config),
            "train_history": state.history,
            "seed": config.seed,
            "steps": state.step,
            "resumed_from_steps": state.resumed_from,
            "train_wall_time_s": state.elapsed,
            "eval_wall_time_s": time.perf_counter() - started if metrics is not None else 0.0,
            "device": _describe_device(trainer.device, threads),
            "threads": threads,
            "memory_estimate_bytes": checks.memory.peak_bytes,
            "micmco_version": __version__,
            "git_commit": _git_commit(),
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    )
    return record


# Tolerances of the plausibility checks, in nats. The NLL estimate is an upper bound of the
# model's NLL in expectation, itself at least the data entropy; averaged over the whole
# vocabulary its noise is far below NLL_SLACK. Û^K ≤ 0 for discrete data, so Û - Ŝ ≤ -Ŝ
# holds exactly, sample by sample: the MI estimate can never exceed the NLL estimate.
NLL_SLACK = 0.1
MI_SLACK = 1e-3


def plausibility(metrics: dict[str, float], data_entropy: float) -> tuple[str | None, list[str]]:
    """(reason the metrics are impossible or None, warnings) for evaluation metrics on data of entropy H."""
    nll, mi = metrics["nll"], metrics["mutual_information"]
    bad = [name for name, value in metrics.items() if not math.isfinite(value)]
    if bad:
        return f"non-finite evaluation metrics: {', '.join(bad)}", []
    if nll < data_entropy - NLL_SLACK:
        return f"NLL {nll:.4f} is below the data entropy {data_entropy:.4f}: impossible, the estimate broke down", []
    if mi > nll + MI_SLACK:
        return f"mutual information {mi:.4f} exceeds the NLL {nll:.4f}: impossible, the estimate broke down", []
    warnings = []
    if mi > data_entropy + NLL_SLACK:
        warnings.append(
            f"mutual information {mi:.3f} exceeds the data entropy ln V = {data_entropy:.3f}: possible only because "
            f"the model is far from the data (NLL gap {nll - data_entropy:+.3f}); it is not a latent usage of p_D"
        )
    return None, warnings


def summary(record: dict[str, Any]) -> str:
    if record.get("status") == "diverged" and record.get("metrics") is None:
        d = record["divergence"]
        return f"{record['name']}: diverged at step {d['step']}: {d['reason']}"
    m = record["metrics"]
    gap = m["nll"] - m["optimal_nll"]
    return (
        f"{record['name']}: NLL {m['nll']:.4f} (optimum ln V = {m['optimal_nll']:.4f}, gap {gap:+.4f}), "
        f"mutual information {m['mutual_information']:.3f} nats, KL(q||p) {m['representational_kl']:.3f}, "
        f"{record['steps']} steps in {record['train_wall_time_s']:.1f} s on {record['device']}"
    )


def _describe_device(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})"


def _git_commit() -> str | None:
    """The commit of the source tree micmco runs from, with '-dirty' for uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = ["git", "status", "--porcelain", "--untracked-files=no"]
        dirty = subprocess.run(status, cwd=here, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")
