"""What a task provides to the run hub, the sweep tool and the frontier code, and the run config it extends.

The hub (:mod:`micmco.experiment`) goes config → task → data and model → loss → trainer →
evaluation → result record, and asks the task only the questions below; nothing outside a
task module knows what its data points are. A task's run config subclasses :class:`RunConfig`
(the sections every task shares) with its own ``data`` and ``model`` sections; it lives here, with
the interface, so that tasks need nothing from the module that reads configs and names runs
(:mod:`micmco.runconfig`, which asks the tasks for their config classes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import ConfigError, check, check_choice, check_types
from ..evaluation import EvalBatch, EvalConfig
from ..gradients import EstimatorConfig, VariationalLoss, check_combination
from ..memory import MemoryEstimate
from ..objectives import Objective, ObjectiveConfig
from ..trainer import TrainerConfig

__all__ = [
    "RunConfig",
    "PROFILES",
    "Task",
    "check_trained_by_estimator",
    "plausibility",
    "useless_nll",
    "USELESS_FACTOR",
    "DISCRETE_LOSS_FLOOR",
    "NLL_SLACK",
    "MI_SLACK",
    "OBJECTIVE_RANGES",
]

PROFILES = ("smoke", "cpu", "paper", "custom")


@dataclass
class RunConfig:
    """The sections every task shares; a task's subclass types ``data`` and ``model``."""

    name: str  # run name; results go to <output_dir>/<name>-<fingerprint>/
    task: str = "synthetic"  # the task module that owns data, model, loss and evaluation (micmco.tasks)
    profile: str = "custom"  # smoke (CI, seconds), cpu (laptop, minutes), paper (the paper's settings, GPU) or custom
    reproduces: str = ""  # the paper figure or table this run contributes to
    cost: str = ""  # rough wall time on the profile's hardware
    seed: int = 0  # seeds the initialisation, the data stream and all sampling
    data: Any = None  # the task's data section
    model: Any = None  # the task's model section
    estimator: EstimatorConfig | None = None  # gradient estimator (models trained by an estimator only)
    objective: ObjectiveConfig | None = None  # training objective (models trained by an estimator only)
    train: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    output_dir: str = "runs"  # where run directories are created

    def __post_init__(self) -> None:
        check_types(self)
        check_choice(self.profile, PROFILES, "profile")
        check(0 <= self.seed < 2**63, "seed", f"must be in [0, 2^63), got {self.seed}")
        check(
            bool(self.name) and "/" not in self.name, "name", f"must be a non-empty name without '/', got {self.name!r}"
        )
        check(
            not (self.profile == "paper" and self.train.precision == "bfloat16"),
            "train.precision",
            "bfloat16 is refused for the paper profile: its NLL difference from float32 has not been measured on a "
            "GPU, and the paper's curves differ by hundredths of a nat; valid choices here: float32, tf32",
        )


# The divergence rule (with the trainer's non-finite and rising-loss checks):
# - a model whose evaluated NLL is more than USELESS_FACTOR times the uniform model's (ln V) is useless:
#   the committed λ = 0.9999 ELBO and DReG 1 runs at NLL 164-567 for V = 200 (ln V = 5.3), and runaway
#   objectives at 10^17 and beyond, end as `diverged`, not `complete`;
# - for discrete data ln p(x|z) ≤ 0, so every objective here is at most (1 - λ) ln p(x) ≤ 0 in expectation
#   (micmco.objectives), and the trainer's loss, minus its estimate, cannot average below 0; a logged
#   average below DISCRETE_LOSS_FLOOR (a nat per data point of slack for the noise of the estimate, whose
#   upward tail is light: P(Ŝ > t) ≤ exp(-t)) is a runaway: the DReG 16/1 trials of eq. 12's grouping
#   reached a loss of -2.7e21 by step 250.
USELESS_FACTOR = 10.0
DISCRETE_LOSS_FLOOR = -1.0
DISCRETE_LOSS_REASON = "for discrete data ln p(x|z) <= 0, so no objective can average above 0 nats"

# Tolerances of the plausibility checks, in nats per unit. The NLL estimate is an upper bound of the model's
# NLL in expectation, itself at least the data entropy (where known); averaged over a whole split its noise is
# far below NLL_SLACK. Û^K ≤ 0 for discrete data, so Û - Ŝ ≤ -Ŝ holds exactly, data point by data point (so per
# unit too): the MI estimate never exceeds the NLL estimate beyond rounding.
NLL_SLACK = 0.1
MI_SLACK = 1e-3

# Appendix C, Table 2, the rows every task trained by an estimator shares (the optimiser's and the
# objective's): name -> (run-config key, low, high, scale). A task adds its model's (Task.tuned_ranges).
OBJECTIVE_RANGES: dict[str, tuple[str, float, float, str]] = {
    "learning_rate": ("train.learning_rate", 1e-4, 1e-2, "log"),
    "lam": ("objective.lam", -0.05, 0.9999, "linear"),
    "alpha": ("objective.alpha", 0.86, 16.0, "log"),
}


def useless_nll(nll: float, uniform_nll: float) -> str | None:
    """The reason an NLL is useless (above USELESS_FACTOR times the uniform model's), or None."""
    if nll > USELESS_FACTOR * uniform_nll:
        return (
            f"NLL {nll:.4g} is more than {USELESS_FACTOR:g} times the uniform model's ln V = {uniform_nll:.4f}: "
            "the model is useless (a runaway objective or optimisation)"
        )
    return None


def plausibility(
    metrics: dict[str, float], uniform_nll: float, reference_nll: float | None = None, unit: str = ""
) -> tuple[str | None, list[str]]:
    """(the reason evaluation metrics are impossible or useless, or None; warnings), the rule of every task:
    finite metrics; an NLL at most USELESS_FACTOR times the uniform model's ln V; an NLL not below the data
    entropy (``reference_nll``, where known); an MI estimate not above the NLL estimate. ``unit``: "symbol"."""
    bad = [name for name, value in metrics.items() if not math.isfinite(value)]
    if bad:
        return f"non-finite evaluation metrics: {', '.join(bad)}", []
    nll, mi = metrics["nll"], metrics["mutual_information"]
    per = f" per {unit}" if unit else ""
    reason = useless_nll(nll, uniform_nll)
    if reason:
        return reason, []
    if reference_nll is not None and nll < reference_nll - NLL_SLACK:
        return f"NLL {nll:.4f} is below the data entropy {reference_nll:.4f}: impossible, the estimate broke down", []
    if mi > nll + MI_SLACK:
        return f"mutual information {mi:.4f} exceeds the NLL {nll:.4f}{per}: impossible, the estimate broke down", []
    warnings = []
    if reference_nll is not None and mi > reference_nll + NLL_SLACK:
        warnings.append(
            f"mutual information {mi:.3f} exceeds the data entropy ln V = {reference_nll:.3f}: possible only because "
            f"the model is far from the data (NLL gap {nll - reference_nll:+.3f}); it is not a latent usage of p_D"
        )
    return None, warnings


class Task:
    """One task; subclasses fill in the class attributes and the methods that raise NotImplementedError."""

    name: str = ""  # the value of a run config's `task:`
    config_class: type[RunConfig] = RunConfig  # the run config whose data and model sections are this task's
    unit: str = ""  # what the metrics are averaged over: "symbol", "token"
    data_point: str = "data point"  # what the training loss is averaged over: "symbol", "sentence"
    splits: tuple[str, ...] = ()  # the data splits evaluation can use; the first is the default
    result_columns: tuple[str, ...] = ()  # this task's columns of a results table, after the common ones
    curve_columns: tuple[str, ...] = ()  # of those, the ones that set a curve apart (besides the common setting)
    memory_hint: str = ""  # the config keys that reduce a run's memory, for the preflight message
    # Table 2's ranges of the parameters its studies tune by name (micmco.study): name -> (key, low, high, scale)
    tuned_ranges: dict[str, tuple[str, float, float, str]] = OBJECTIVE_RANGES
    distinct_splits: bool = True  # whether its splits are different data: curve labels and paper matches name them
    paper_folder: str = ""  # the folder of data/paper-frontiers with the paper's trial files of this task, if any
    paper_match_columns: tuple[str, ...] = ()  # curve columns a paper counterpart shares besides the setting

    # --- data, model, loss ---------------------------------------------------------------------

    def check_data(self, config: RunConfig) -> list[str]:
        """Load and check the run's data before any work (before a run directory exists): a one-line
        ConfigError naming the key when they are missing, unreadable or wrong; notes for the user otherwise
        (e.g. files taken on the user's word). Tasks whose data are made in memory need nothing."""
        return []

    def data_identity(self, config: RunConfig) -> dict[str, Any] | None:
        """What the data add to the run's identity (fingerprint) beyond the config, or None: data read from
        files that the config does not pin (e.g. files accepted without their checksum) give their sha256s."""
        return None

    def data_record(self, config: RunConfig) -> dict[str, Any] | None:
        """Where the run's data came from, for its result record (e.g. the folder used and the files' sha256s)."""
        return None

    def training_data(self, config: RunConfig) -> Callable[[int], Any]:
        """Training batch of step t, depending only on (config, t): resumable and reproducible."""
        raise NotImplementedError

    def evaluation_batches(self, config: RunConfig, split: str) -> Iterable[EvalBatch]:
        """The batches of a split, each with its units per data point (see :func:`micmco.evaluation.evaluate`)."""
        raise NotImplementedError

    def build_model(self, config: RunConfig) -> nn.Module:
        """The model, initialised from the run's seed without touching the global RNG."""
        raise NotImplementedError

    def build_loss(self, config: RunConfig):
        """The trainer's loss(model, batch, generator): the estimator's surrogate of the objective."""
        objective = Objective.from_config(config.objective, config.estimator.num_samples, config.estimator.mi_samples)
        return VariationalLoss(config.estimator.base, objective)

    def batches(self, config: RunConfig) -> bool:
        """Whether trials of ``config`` can train N at a time (:mod:`micmco.batched`): see :meth:`batched_model`."""
        return False

    def batched_model(self, models: list[nn.Module]) -> nn.Module:
        """N models of :meth:`build_model`, differing only in their parameters, as one model with a trial
        dimension: ``trials``, ``latent``, ``proposal(x)`` over the N trials' rows and ``log_likelihood`` as
        :class:`micmco.models.synthetic.BatchedSingleSymbolVAE` has them, and the single model's parameter
        names (trial n's values at index n). Only where :meth:`batches` says so."""
        raise NotImplementedError(f"the {self.name} task trains one trial per process")

    def split_units(self, config: RunConfig, split: str) -> int:
        """The units (symbols, tokens) that a split's evaluation averages over: its batches' units add up to it."""
        raise NotImplementedError

    def split(self, config: RunConfig) -> str:
        """The split a run evaluates on (``eval.split``, or the task's default)."""
        split = config.eval.split or self.splits[0]
        check_choice(split, self.splits, "eval.split")
        return split

    # --- what its numbers mean -------------------------------------------------------------------

    def reference_nll(self, config: RunConfig) -> float | None:
        """The NLL of an optimal model (the data entropy) where it is known; None otherwise (text)."""
        return None

    def uniform_nll(self, config: RunConfig) -> float:
        """The NLL of the uniform model over the vocabulary, ln V: the scale of a useless model."""
        raise NotImplementedError

    def result_values(self, config: dict[str, Any]) -> dict[str, str]:
        """This task's columns of a results row, from a resolved config (as plain data)."""
        return {}

    def setting_label(self, values: dict[str, str]) -> str:
        """A short label of this task's curve columns for figure legends, e.g. "V = 200". Written into each
        results row (its ``setting_label`` column), so readers never ask the task."""
        return ", ".join(f"{key} {value}" for key, value in values.items())

    def plausibility(self, metrics: dict[str, float], config: RunConfig) -> tuple[str | None, list[str]]:
        """(the reason the evaluation metrics are impossible or useless, or None; warnings): :func:`plausibility`
        with this task's uniform NLL, reference NLL and unit."""
        return plausibility(metrics, self.uniform_nll(config), self.reference_nll(config), self.unit)

    def loss_floor(self, config: RunConfig) -> tuple[float, str]:
        """The training loss no sane run goes below, and why (see DISCRETE_LOSS_FLOOR)."""
        return DISCRETE_LOSS_FLOOR, DISCRETE_LOSS_REASON

    def describe_metrics(self, metrics: dict[str, float]) -> str:
        """The evaluation metrics in one phrase, for the summary line of a run."""
        return f"NLL {metrics['nll']:.4f} nats per {self.unit}"

    def estimate_memory(self, config: RunConfig, device: torch.device | str = "cpu") -> MemoryEstimate:
        raise NotImplementedError

    # --- studies and the paper's trials ----------------------------------------------------------

    def default_parameters(self, config: RunConfig) -> list[str]:
        """The parameters a study of ``config`` tunes when its file names none (keys of :attr:`tuned_ranges`):
        the learning rate, and λ and α where the objective has them."""
        kind = config.objective.kind if config.objective is not None else "none"
        names = ["learning_rate"]
        names += ["lam"] if kind in ("kl", "renyi") else []
        names += ["alpha"] if kind in ("renyi", "power") else []
        return names

    def paper_curve(self, named: Any) -> dict[str, Any]:
        """This task's fields of a curve of the paper's trial file ``named`` (a micmco.naming.PaperFile):
        ``split``, ``task_values``, ``reference_nll``, ``uniform_nll`` and ``setting_label`` (see
        micmco.pareto.Curve). Only tasks with a :attr:`paper_folder` have such files."""
        raise NotImplementedError(f"the {self.name} task has no paper trial files")


def check_trained_by_estimator(config: RunConfig, trained_by_estimator: bool, latent_kind: str, why: str) -> None:
    """A model trained by an estimator needs the estimator and objective sections (and a valid pair of
    them for its latent space); a model that trains its own loss must have neither (``why`` says so)."""
    for section in ("estimator", "objective"):
        present = getattr(config, section) is not None
        if trained_by_estimator and not present:
            raise ConfigError(section, "required for model kind vae")
        if not trained_by_estimator and present:
            raise ConfigError(section, f"{why}; remove this section")
    if trained_by_estimator:
        check_combination(config.estimator, config.objective, latent_kind)
