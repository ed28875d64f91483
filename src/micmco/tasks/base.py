"""What a task provides to the run hub, the sweep tool and the frontier code.

The hub (:mod:`micmco.experiment`) goes config → task → data and model → loss → trainer →
evaluation → result record, and asks the task only the questions below; nothing outside a
task module knows what its data points are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ..config import ConfigError, check_choice
from ..evaluation import EvalBatch
from ..gradients import VariationalLoss, check_combination
from ..memory import MemoryEstimate
from ..objectives import Objective
from ..runconfig import RunConfig

__all__ = ["Task", "check_trained_by_estimator"]


class Task:
    """One task; subclasses fill in the class attributes and the methods that raise NotImplementedError."""

    name: str = ""  # the value of a run config's `task:`
    config_class: type[RunConfig] = RunConfig  # the run config whose data and model sections are this task's
    unit: str = ""  # what the metrics are averaged over: "symbol", "token"
    splits: tuple[str, ...] = ()  # the data splits evaluation can use; the first is the default
    result_columns: tuple[str, ...] = ()  # this task's columns of a results table, after the common ones
    curve_columns: tuple[str, ...] = ()  # of those, the ones that set a curve apart (besides the common setting)
    memory_hint: str = ""  # the config keys that reduce a run's memory, for the preflight message

    # --- data, model, loss ---------------------------------------------------------------------

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
        """A short label of this task's curve columns for figure legends, e.g. "V = 200"."""
        return ", ".join(f"{key} {value}" for key, value in values.items())

    def reference_from_row(self, row: dict[str, str]) -> float | None:
        """The reference NLL of a results row (its config as recorded in the row)."""
        return None

    def plausibility(self, metrics: dict[str, float], config: RunConfig) -> tuple[str | None, list[str]]:
        """(the reason the evaluation metrics are impossible, or None; warnings)."""
        return None, []

    def describe_metrics(self, metrics: dict[str, float]) -> str:
        """The evaluation metrics in one phrase, for the summary line of a run."""
        return f"NLL {metrics['nll']:.4f} nats per {self.unit}"

    def estimate_memory(self, config: RunConfig, device: torch.device | str = "cpu") -> MemoryEstimate:
        raise NotImplementedError


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
