"""The paper's mutual-information augmented objectives (§4.1-§4.3).

Each estimates O(λ, x) = ln p(x) + λ KL(p(z|x) || p(z)) (eq. 6) from samples z_i ~ q(z|x):

- ``none``:  Ŝ^K, the base Monte-Carlo objective alone (λ = 0).
- ``kl``:    (1 - λ) Ŝ^K + λ Û^K', eq. 11.
- ``renyi``: (1 - λ) Ŝ^K + λ V̂_α^K' with V̂_α = (Ŝ_α - Ŝ)/(α - 1), eq. 15 (α = 1 is the KL objective).
- ``power``: Ŝ_α^K / α, eq. 18: the Rényi objective with λ tied to (α - 1)/α.

K samples estimate ln p(x); the first K' of the same draws estimate the term that carries the
divergence (the paper's "16/1" and "1/16" ablations). K' = K unless set, everywhere: in
:class:`Objective`, :func:`objective_value` and the run configs (``estimator.mi_samples``). With K' = K the forms
above equal eq. 12 and 16, Ŝ^K + λ D̂^K with D̂ = Û - Ŝ or (Ŝ_α - α Ŝ)/(α - 1), and that is how
they are computed. With K' ≠ K they do not: Ŝ^K + λ D̂^K' (eq. 12's grouping) is unbounded above,
because the ln p(x) term sees the best of K samples while -λ Ŝ^K' rewards spreading q away from
the prior (DReG 16/1 trials reached a training objective of +10^21 nats). Eq. 11's grouping is
bounded: Û and V̂_α are weighted means of ln p(x|z) ≤ 0 (discrete data), sample by sample, and
E Ŝ^K ≤ ln p(x), so E O ≤ (1 - λ) ln p(x) ≤ 0 for every K, K', α and λ in [0, 1)
(``tests/test_estimators.py`` checks it exactly on enumerable models). V̂_α is the Rényi
analogue of Û: ln p(x) + D_α(p(z|x) || p(z)) = (ln p^α(x) - ln p(x))/(α - 1), and V̂_α -> Û as α -> 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from torch import Tensor

from .config import check, check_choice, check_types, parse_enum
from .estimators import (
    check_alpha,
    check_some_weight,
    log_marginal_of_weights,
    log_weights,
    power_log_weights,
    renyi_estimate_of_weights,
    snis_log_lik_of_weights,
)
from .pertrial import PerTrial, per_trial_values

__all__ = ["ObjectiveKind", "ObjectiveConfig", "Objective", "objective_value", "LAMBDA_BELOW", "check_lambda"]

# λ < 1: at λ = 1 the ln p(x) term vanishes from eq. 11, and beyond it the objective rewards a worse fit.
# A negative λ is a β-VAE with β = 1 - λ > 1 (Prop. 6). The paper tunes λ in [-0.05, 0.9999] (Table 2:
# the studies' default range, micmco.tasks.base.OBJECTIVE_RANGES).
LAMBDA_BELOW = 1.0


class ObjectiveKind(str, Enum):
    NONE = "none"
    KL = "kl"
    RENYI = "renyi"
    POWER = "power"


@dataclass
class ObjectiveConfig:
    kind: str = "none"  # none (Ŝ^K alone), kl (eq. 11), renyi (eq. 15) or power (eq. 18); K' ≠ K: eq. 11's grouping
    lam: float | None = None  # λ, weight of the divergence term: kl and renyi only, below 1 (Table 2: [-0.05, 0.9999])
    alpha: float | None = None  # α > 0: Rényi order (renyi) or power on p(x|z) (power)

    def __post_init__(self) -> None:
        check_types(self)
        check_choice(self.kind, [k.value for k in ObjectiveKind], "kind")
        kind = ObjectiveKind(self.kind)
        if kind in (ObjectiveKind.KL, ObjectiveKind.RENYI):
            check(self.lam is not None, "lam", f"the {kind.value} objective needs λ (lam), below 1")
            check_lambda(self.lam)
        elif kind is ObjectiveKind.POWER:
            check(self.lam is None, "lam", "the power objective ties λ = (α - 1)/α; set alpha, not lam")
        else:
            check(self.lam in (None, 0.0), "lam", "the 'none' objective has no divergence term; use kind kl or renyi")
        if kind in (ObjectiveKind.RENYI, ObjectiveKind.POWER):
            check(self.alpha is not None, "alpha", f"the {kind.value} objective needs alpha > 0")
            check(self.alpha > 0, "alpha", f"must be > 0, got {self.alpha}")
        else:
            check(self.alpha is None, "alpha", f"alpha has no effect on the {kind.value} objective; remove it")


def check_lambda(lam: float) -> None:
    """λ finite and below 1, for configs and the Python API alike; a ConfigError (a ValueError) on ``lam``."""
    check(
        math.isfinite(lam) and lam < LAMBDA_BELOW,
        "lam",
        f"must be a finite number below {LAMBDA_BELOW:g} (at λ = 1 the ln p(x) term vanishes; "
        f"λ < 0 is a β-VAE with β = 1 - λ > 1), got {lam}",
    )


@dataclass(frozen=True)
class Objective:
    """A resolved objective: kind, λ, α and the sample counts K (ln p(x)) and K' (divergence).

    ``kind`` may be an :class:`ObjectiveKind` or its string value ("kl", ...); both behave
    identically, anything else is a ValueError naming the valid choices. ``mi_samples`` left
    out (None) is K, as in the run configs: ``Objective("kl", lam=0.5, num_samples=4)`` is 4/4,
    the 16/1 ablation is ``num_samples=16, mi_samples=1``. A field of the wrong type is a
    ConfigError (a ValueError) naming it.
    """

    kind: ObjectiveKind | str = ObjectiveKind.NONE  # stored as an ObjectiveKind
    lam: float | PerTrial = 0.0  # λ (kl, renyi); power ties it to (α - 1)/α; per trial in a batch (micmco.batched)
    alpha: float | PerTrial = 1.0  # α > 0 (renyi, power); per trial in a batch
    num_samples: int = 1  # K
    mi_samples: int | None = None  # K'; None = K (stored resolved, so Objective(k, num_samples=4).mi_samples == 4)

    def __post_init__(self) -> None:
        check_types(self)
        object.__setattr__(self, "kind", parse_kind(self.kind))
        if self.mi_samples is None:
            object.__setattr__(self, "mi_samples", self.num_samples)
        for lam in per_trial_values(self.lam):
            if self.kind in (ObjectiveKind.KL, ObjectiveKind.RENYI):
                check_lambda(lam)
            elif not math.isfinite(lam):
                raise ValueError(f"lam must be a finite number, got {lam}")
        if self.kind in (ObjectiveKind.RENYI, ObjectiveKind.POWER):
            check_alpha(self.alpha)
        for name in ("num_samples", "mi_samples"):
            count = getattr(self, name)
            check(count >= 1, name, f"must be an integer >= 1, got {count!r}")

    @classmethod
    def from_config(cls, config: ObjectiveConfig, num_samples: int, mi_samples: int | None = None) -> "Objective":
        return cls(
            kind=ObjectiveKind(config.kind),
            lam=config.lam or 0.0,
            alpha=1.0 if config.alpha is None else config.alpha,
            num_samples=num_samples,
            mi_samples=mi_samples,
        )

    @property
    def num_draws(self) -> int:
        """How many samples from q(z|x) one evaluation needs: max(K, K')."""
        return max(self.num_samples, self.mi_samples)

    def single_sample(self) -> "Objective":
        return Objective(self.kind, self.lam, self.alpha, 1, 1)

    def __call__(self, log_w: Tensor, log_lik: Tensor) -> Tensor:
        """The objective estimate [B] from log weights and log-likelihoods [max(K, K'), B]."""
        main = log_w[: self.num_samples]
        if self.kind is ObjectiveKind.NONE:
            return log_marginal_of_weights(main)
        if self.kind is ObjectiveKind.POWER:
            return (
                log_marginal_of_weights(power_log_weights(main, log_lik[: self.num_samples], self.alpha)) / self.alpha
            )
        return log_marginal_of_weights(main) + self.lam * self.divergence(log_w, log_lik)

    def divergence(self, log_w: Tensor, log_lik: Tensor) -> Tensor:
        """λ's term, V̂^K' - Ŝ^K: the divergence estimate of the first K' samples, D̂^K' = Û - Ŝ (kl) or the
        Rényi estimate (renyi), plus Ŝ^K' - Ŝ^K when K' ≠ K (eq. 11's grouping; see the module docstring)."""
        mi_w, mi_lik = log_w[: self.mi_samples], log_lik[: self.mi_samples]
        if self.kind is ObjectiveKind.RENYI:
            estimate = renyi_estimate_of_weights(mi_w, mi_lik, self.alpha)
        else:
            estimate = snis_log_lik_of_weights(mi_w, mi_lik) - log_marginal_of_weights(mi_w)
        if self.mi_samples == self.num_samples:
            return estimate
        return estimate + (log_marginal_of_weights(mi_w) - log_marginal_of_weights(log_w[: self.num_samples]))


def parse_kind(kind: str | ObjectiveKind) -> ObjectiveKind:
    """The ObjectiveKind for an enum member or its string value; a ValueError naming the choices otherwise."""
    return parse_enum(ObjectiveKind, kind, "objective kind")


def objective_value(
    kind: str | ObjectiveKind,
    log_lik: Tensor,
    log_prior: Tensor,
    log_q: Tensor,
    lam: float = 0.0,
    alpha: float = 1.0,
    num_samples: int | None = None,
    mi_samples: int | None = None,
) -> Tensor:
    """Estimate of O(λ, x) [B] from [K, B] samples: eq. 11 (kl), 15 (renyi), 18 (power), Ŝ^K (none).

    ``lam`` is ignored by ``none`` and ``power`` (which ties λ = (α-1)/α); ``alpha`` by ``none``
    and ``kl``. ``num_samples`` selects the first K samples for the ln p(x) term (default: all),
    ``mi_samples`` the first K' for the divergence term (default: K, as everywhere). A count of 0
    or above the samples given is a ValueError naming it. For kl and renyi, a data point whose
    every sample has zero weight (ln p(x|z) = -∞) is a ValueError naming ``log_lik``: its
    divergence estimate is -∞ - (-∞), undefined (see :func:`micmco.estimators.kl_estimate`).
    """
    log_w = log_weights(log_lik, log_prior, log_q)  # checks the arguments' shapes
    draws = log_w.shape[0]
    objective = Objective(kind, lam, alpha, draws if num_samples is None else num_samples, mi_samples)
    for name, count in (("num_samples", objective.num_samples), ("mi_samples", objective.mi_samples)):
        if not 1 <= count <= draws:
            raise ValueError(f"{name} must be in [1, {draws}] (the number of samples given), got {count}")
    if objective.kind in (ObjectiveKind.KL, ObjectiveKind.RENYI):
        check_some_weight(log_w[: objective.mi_samples])
    return objective(log_w, log_lik)
