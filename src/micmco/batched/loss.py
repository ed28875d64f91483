"""The training loss of N trials: each trial's estimator surrogate, with its own λ and α (:mod:`micmco.pertrial`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..gradients import check_estimator, surrogate_objective
from ..objectives import Objective, ObjectiveKind
from ..pertrial import PerTrial

__all__ = ["BatchedVariationalLoss"]


class BatchedVariationalLoss:
    """Minus the mean surrogate of ``base`` per trial, [N], for a batched model (``trials``, ``latent``,
    ``proposal(x)`` over N·B rows, ``log_likelihood(x, z)`` -> [K, N·B]); the metrics of
    :class:`micmco.gradients.VariationalLoss`, per trial."""

    def __init__(
        self,
        base: str,
        kind: str,
        lams: Sequence[float],
        alphas: Sequence[float],
        num_samples: int,
        mi_samples: int | None = None,
    ):
        self.base, self.kind = base, ObjectiveKind(kind)
        self.lams, self.alphas = [float(v) for v in lams], [float(v) for v in alphas]
        self.num_samples, self.mi_samples = num_samples, mi_samples
        self._objectives: dict[int, Objective] = {}
        check_estimator(base, self.kind, num_samples, num_samples if mi_samples is None else mi_samples)

    def objective(self, rows: int) -> Objective:
        """The objective of the N trials, each with ``rows`` data points per batch."""
        if rows not in self._objectives:
            lam, alpha = (_shared_or_per_trial(values, rows) for values in (self.lams, self.alphas))
            self._objectives[rows] = Objective(self.kind, lam, alpha, self.num_samples, self.mi_samples)
        return self._objectives[rows]

    def __call__(self, model, x: Tensor, generator: torch.Generator | None = None):
        N, B = model.trials, x.shape[0]  # trials, batch
        result = surrogate_objective(
            self.base, self.objective(B), model.latent, model.proposal(x), lambda z: model.log_likelihood(x, z),
            generator,
        )  # fmt: skip
        metrics = {
            "log_marginal": result.log_marginal.view(N, B).mean(1),
            "divergence": result.divergence.view(N, B).mean(1),
        }
        return -result.value.view(N, B).mean(1), metrics


def _shared_or_per_trial(values: list[float], rows: int) -> float | PerTrial:
    """A float when every trial has the same value (the single path's arithmetic as it is), else a PerTrial."""
    return values[0] if len(set(values)) == 1 else PerTrial(values, rows)
