"""One run of the synthetic experiment (§7.1), from a config to a result record.

A run lives in ``<output_dir>/<name>-<fingerprint>/``: the resolved ``config.yaml``, the
training ``checkpoint.pt`` (resumed when the same config is run again) and, once finished,
``result.json`` with the config, metrics, seed, versions, device and wall time.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from . import __version__
from .config import ConfigError, apply_overrides, check_choice, from_dict, to_dict
from .data import SyntheticDataConfig, UniformSymbols
from .evaluation import EvalConfig, evaluate
from .gradients import EstimatorConfig, VariationalLoss, check_combination
from .latents import make_latent
from .models import VQVAE, SingleSymbolVAE, SyntheticModelConfig
from .objectives import Objective, ObjectiveConfig
from .trainer import Trainer, TrainerConfig, derive_seed

__all__ = ["RunConfig", "load_config", "build_model", "build_loss", "run", "fingerprint", "summary"]

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
    """Read a YAML run config, apply ``key=value`` overrides and validate everything."""
    with open(path) as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict):
        raise ConfigError("", f"{path} does not hold a mapping of config sections")
    return from_dict(RunConfig, apply_overrides(data, overrides))


def fingerprint(config: RunConfig) -> str:
    """Short hash of everything that affects the results (not output_dir, not the progress bar)."""
    data = to_dict(config)
    data.pop("output_dir")
    data["train"].pop("progress")
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]


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


def run(config: RunConfig, echo=print) -> dict[str, Any]:
    """Train (or resume) and evaluate one run; returns the result record, also written as JSON."""
    config_hash = fingerprint(config)
    run_dir = Path(config.output_dir) / f"{config.name}-{config_hash}"
    result_path = run_dir / "result.json"
    if result_path.exists():
        echo(f"{run_dir}: already complete")
        return json.loads(result_path.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    data = UniformSymbols(config.data, config.seed)
    model = build_model(config)
    trainer = Trainer(
        model,
        build_loss(config),
        data,
        config.train,
        config.seed,
        checkpoint_path=run_dir / "checkpoint.pt",
        fingerprint=config_hash,
    )
    if trainer.checkpoint_path.exists():
        echo(f"{run_dir}: resuming from its checkpoint")
    state = trainer.fit()
    started = time.perf_counter()
    metrics = evaluate(trainer.model, data.evaluation_set(), config.eval, seed=config.seed)
    metrics["optimal_nll"] = data.optimal_nll
    record = {
        "name": config.name,
        "fingerprint": config_hash,
        "config": to_dict(config),
        "metrics": metrics,
        "train_history": state.history,
        "seed": config.seed,
        "steps": state.step,
        "resumed_from_steps": state.resumed_from,
        "train_wall_time_s": state.elapsed,
        "eval_wall_time_s": time.perf_counter() - started,
        "device": _describe_device(trainer.device),
        "micmco_version": __version__,
        "git_commit": _git_commit(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    partial = result_path.with_suffix(".partial")
    partial.write_text(json.dumps(record, indent=1))
    os.replace(partial, result_path)
    return record


def summary(record: dict[str, Any]) -> str:
    m = record["metrics"]
    gap = m["nll"] - m["optimal_nll"]
    return (
        f"{record['name']}: NLL {m['nll']:.4f} (optimum ln V = {m['optimal_nll']:.4f}, gap {gap:+.4f}), "
        f"mutual information {m['mutual_information']:.3f} nats, KL(q||p) {m['representational_kl']:.3f}, "
        f"{record['steps']} steps in {record['train_wall_time_s']:.1f} s on {record['device']}"
    )


def _describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
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

