"""Monte-Carlo estimators of ln p(x), ln p^α(x) and the true KL (paper §4).

Every function takes per-sample log quantities shaped ``[K, B]`` (K samples
z_1..z_K ~ q(z|x) first, then the batch) and reduces over dim 0, returning ``[B]``:

    log_lik   = ln p(x|z_i)
    log_prior = ln p(z_i)
    log_q     = ln q(z_i|x)

Everything is computed in log space with log-sum-exp, so log weights of any
magnitude are safe.

Names: an estimate's function on the three terms is named for the estimate (``log_marginal``,
``snis_log_lik``, ``renyi_estimate``); its twin on log weights ln w_i = ln p(x, z_i) - ln q(z_i|x)
is the same name with ``_of_weights`` (``log_marginal_of_weights``, ``snis_log_lik_of_weights``,
``renyi_estimate_of_weights``). The objectives, gradient estimators and evaluation use the twins,
to avoid recomputing the weights. ``power_log_weights`` makes the log weights of eq. 17's integrand,
so ``log_marginal_of_weights(power_log_weights(...))`` is Ŝ_α^K.

A sample with zero weight (ln p(x|z) = -∞) counts in K and carries no weight. A data point
whose every sample has zero weight has Ŝ = -∞ and Û = -∞ (the limit of any weighted mean of
ln p(x|z) -> -∞), but its divergence estimate Û - Ŝ is -∞ - (-∞), undefined: :func:`kl_estimate`,
:func:`renyi_estimate` and :func:`micmco.objectives.objective_value` raise a ValueError naming
``log_lik`` (:func:`check_some_weight`). The twins on log weights do not check, since reading
values would synchronise a GPU training step: there such a data point's divergence is NaN, which
the trainer reports as a divergence.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .pertrial import PerTrial, per_trial_values

__all__ = [
    "log_weights",
    "log_marginal",
    "log_power_marginal",
    "snis_log_lik",
    "kl_estimate",
    "renyi_estimate",
    "check_alpha",
    "check_terms",
    "check_some_weight",
    "finite_where_weightless",
    "log_marginal_of_weights",
    "power_log_weights",
    "snis_log_lik_of_weights",
    "renyi_estimate_of_weights",
]


def log_weights(log_lik: Tensor, log_prior: Tensor, log_q: Tensor) -> Tensor:
    """ln w_i = ln p(x|z_i) + ln p(z_i) - ln q(z_i|x), shaped [K, B]; a ValueError names a bad argument."""
    check_terms(log_lik=log_lik, log_prior=log_prior, log_q=log_q)
    return log_lik + log_prior - log_q


def check_terms(**terms: Tensor) -> None:
    """Each argument a tensor shaped [K, B] (samples first, K >= 1), all of one shape; else a ValueError
    naming the argument and the expected shape."""
    shape = None
    for name, value in terms.items():
        if not isinstance(value, Tensor):
            raise ValueError(
                f"{name} must be a torch.Tensor shaped [K, B] (samples, batch), got {type(value).__name__}"
            )
        if value.dim() != 2:
            hint = "; for one data point use x.unsqueeze(1)" if value.dim() == 1 else ""
            raise ValueError(f"{name} must be shaped [K, B] (samples, batch), got {list(value.shape)}{hint}")
        if value.shape[0] < 1:
            raise ValueError(f"{name} has K = 0 samples; every estimate needs K >= 1 (shape [K, B])")
        if shape is None:
            shape, first = value.shape, name
        elif value.shape != shape:
            raise ValueError(
                f"{name} is shaped {list(value.shape)} but {first} is {list(shape)}; all terms are [K, B] alike"
            )


def check_some_weight(log_w: Tensor) -> None:
    """A ValueError naming ``log_lik`` if some data point has zero weight in every sample (ln w = -∞ for all K):
    its divergence estimate Û - Ŝ would be -∞ - (-∞). Reads the values (a device sync): not for a training step."""
    weightless = torch.isneginf(log_w).all(0)  # [B]
    if weightless.any():
        points = weightless.nonzero().flatten().tolist()
        shown = ", ".join(map(str, points[:5])) + (", ..." if len(points) > 5 else "")
        raise ValueError(
            f"log_lik: every sample of data point {shown} has zero weight (ln p(x|z) = -inf, or ln p(z) = -inf): "
            "its divergence estimate Û - Ŝ is -inf - (-inf), undefined; ln p̂(x) (log_marginal) is -inf there"
        )


def check_alpha(alpha: float | PerTrial) -> None:
    for value in per_trial_values(alpha):  # a batch of trials: each one's (micmco.pertrial)
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"alpha must be a finite number > 0 (the order of the Rényi divergence), got {value}")


def log_marginal(log_lik: Tensor, log_prior: Tensor, log_q: Tensor) -> Tensor:
    """Ŝ^K = ln p̂^K(x) = ln (1/K) Σ_i p(x, z_i)/q(z_i|x), the IWAE estimate of ln p(x) (eq. 8)."""
    return log_marginal_of_weights(log_weights(log_lik, log_prior, log_q))


def log_power_marginal(log_lik: Tensor, log_prior: Tensor, log_q: Tensor, alpha: float) -> Tensor:
    """Ŝ_α^K = ln (1/K) Σ_i p(x|z_i)^α p(z_i)/q(z_i|x), estimating ln p^α(x) (eq. 17)."""
    check_alpha(alpha)
    return log_marginal_of_weights(power_log_weights(log_weights(log_lik, log_prior, log_q), log_lik, alpha))


def snis_log_lik(log_lik: Tensor, log_prior: Tensor, log_q: Tensor) -> Tensor:
    """Û^K = Σ_i w̃_i ln p(x|z_i), w̃ = softmax_i(ln w_i): self-normalised E_{p(z|x)} ln p(x|z) (eq. 9).

    -∞ for a data point whose every sample has ln p(x|z) = -∞ (zero weight), never NaN."""
    return snis_log_lik_of_weights(log_weights(log_lik, log_prior, log_q), log_lik)


def kl_estimate(log_lik: Tensor, log_prior: Tensor, log_q: Tensor) -> Tensor:
    """Û^K - Ŝ^K, the estimate of KL(p(z|x) || p(z)) inside the KL objective (eq. 12).

    A ValueError naming ``log_lik`` if a data point has zero weight in every sample (see the module docstring)."""
    log_w = log_weights(log_lik, log_prior, log_q)
    check_some_weight(log_w)
    return snis_log_lik_of_weights(log_w, log_lik) - log_marginal_of_weights(log_w)


def renyi_estimate(log_lik: Tensor, log_prior: Tensor, log_q: Tensor, alpha: float) -> Tensor:
    """(Ŝ_α^K - α Ŝ^K) / (α - 1), the estimate of D_α(p(z|x) || p(z)) in the Rényi objective (eq. 16).

    α = 1 returns the limit, which is the KL estimate Û^K - Ŝ^K. A ValueError naming ``log_lik`` if a data
    point has zero weight in every sample, as for :func:`kl_estimate`.
    """
    check_alpha(alpha)
    log_w = log_weights(log_lik, log_prior, log_q)
    check_some_weight(log_w)
    return renyi_estimate_of_weights(log_w, log_lik, alpha)


# --- the same on log weights ------------------------------------------------------------


def log_marginal_of_weights(values: Tensor) -> Tensor:
    """ln (1/K) Σ_i exp(values_i) over dim 0: Ŝ^K when ``values`` are log weights."""
    return torch.logsumexp(values, dim=0) - math.log(values.shape[0])


def power_log_weights(log_w: Tensor, log_lik: Tensor, alpha: float) -> Tensor:
    """ln of p(x|z_i)^α p(z_i)/q(z_i|x): the integrand of eq. 17 over q (-∞ where the weight is 0)."""
    return torch.where(torch.isneginf(log_w), log_w, log_w + (alpha - 1.0) * log_lik)


def finite_where_weightless(log_w: Tensor, values: Tensor) -> Tensor:
    """``values`` with 0 where a sample's weight is 0 (ln w = -∞, e.g. ln p(x|z) = -∞): such a sample
    carries no weight in a self-normalised average, and 0 · (-∞) would make the average NaN."""
    return torch.where(torch.isneginf(log_w), torch.zeros_like(values), values)


def snis_log_lik_of_weights(log_w: Tensor, log_lik: Tensor) -> Tensor:
    """Σ_i w̃_i ln p(x|z_i) with w̃ = softmax_i(ln w_i): Û^K from log weights; -∞ where every weight is 0."""
    weightless = torch.isneginf(log_w).all(0)  # [B]: no sample carries weight, the softmax would be NaN
    safe_w = torch.where(weightless, torch.zeros_like(log_w), log_w)  # finite there, so no NaN in the gradient
    mean = (torch.softmax(safe_w, dim=0) * finite_where_weightless(log_w, log_lik)).sum(0)
    return torch.where(weightless, torch.full_like(mean, -math.inf), mean)


def renyi_estimate_of_weights(log_w: Tensor, log_lik: Tensor, alpha: float) -> Tensor:
    """The Rényi estimate (Ŝ_α^K - α Ŝ^K)/(α - 1) from log weights; α = 1 gives Û^K - Ŝ^K."""
    # Written as Û - Ŝ + C(t)/t with t = α - 1 and C(t) = ln Σ_i w̃_i exp(t (ln p(x|z_i) - Û)),
    # which equals (Ŝ_α - α Ŝ)/(α - 1) exactly but has no cancellation as α -> 1.
    # Since Σ_i w̃_i (ln p(x|z_i) - Û) = 0, C(t) >= 0 (Jensen): sample by sample, the
    # Rényi estimate is above the KL estimate for α > 1 and below it for α < 1.
    check_alpha(alpha)
    log_snis = torch.log_softmax(log_w, dim=0)
    log_lik = finite_where_weightless(log_w, log_lik)
    u_hat = (log_snis.exp() * log_lik).sum(0)
    kl = u_hat - log_marginal_of_weights(log_w)
    t = alpha - 1.0
    if t == 0.0:
        return kl
    centered = finite_where_weightless(log_w, log_lik - u_hat)
    return kl + _centered_log_mgf(log_snis, centered, t) / t


_EXPM1_SAFE = 50.0  # exp(50) * (any weight <= 1) stays far from float32 overflow (exp(88))


def _centered_log_mgf(log_p: Tensor, centered: Tensor, t: float) -> Tensor:
    """ln Σ_i p_i exp(t d_i) for Σ_i p_i d_i = 0, accurate also for small |t|.

    log1p(Σ p_i expm1(t d_i)) keeps full relative precision near t = 0, where the plain
    log-sum-exp loses it; the log-sum-exp takes over where expm1 could overflow.
    """
    scaled = t * centered
    series = torch.log1p((log_p.exp() * torch.expm1(scaled.clamp(max=_EXPM1_SAFE))).sum(0))
    direct = torch.logsumexp(log_p + scaled, dim=0)
    return torch.where(scaled.amax(0) < _EXPM1_SAFE, series, direct)
