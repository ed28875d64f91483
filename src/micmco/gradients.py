"""Gradient estimators for the objectives of :mod:`micmco.objectives`.

Each base estimator is one function returning a :class:`Surrogate`: a per-example tensor
[B] whose *value* is the objective estimate and whose *gradient* (with respect to the
decoder θ and the encoder φ) is the estimator's, so a trainer just maximises
``surrogate.value.mean()`` without knowing which estimator runs.

- ``elbo``: reparameterised, with the analytic KL(q || p) in place of ln p(z) - ln q(z|x);
  the divergence term is then the representational KL (Prop. 4-6: a β-VAE, β = 1 - λ).
- ``iwae``: reparameterised; the plain autodiff gradient of the objective.
- ``stl``: sticking the landing (Roeder et al. 2017): autodiff with q's parameters detached
  in ln q(z|x). Unbiased only for K = K' = 1, where it equals ``dreg``.
- ``dreg``: doubly reparameterised (Tucker et al. 2018), extended to Û and Ŝ_α (below).
- ``reinforce``: score function with a zero baseline.
- ``vimco``: score function with leave-one-out baselines (Mnih & Rezende 2016).

θ-gradients are always the autodiff gradient of the objective with the samples fixed.
The φ-gradient derivations are in the docstrings below; tests/test_gradients.py checks
every pair (base × objective) for unbiasedness against exact gradients.

The registry: everything the package knows about a base estimator is its :class:`EstimatorSpec`
in ``BASE_ESTIMATORS`` (name -> spec, in the order of :class:`BaseEstimator`): its surrogate
function, the paper's label, its latents (reparameterised or score function), the K it takes,
the memory a training step keeps alive and its Table 1 family. Configs (``estimator.base``),
the config checks, curve ids (:mod:`micmco.naming`), memory estimates and Table 1 read it. A new
estimator is one surrogate function and one call::

    register_estimator(EstimatorSpec("mine", mine, "Mine", reparameterised=True))

after which ``estimator.base: mine`` trains and ``mine16-kl`` is a curve id (tests/test_estimator_registry.py
does that with a copy of IWAE).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

import torch
from torch import Tensor

from .config import ConfigError, check, check_choice, check_types
from .estimators import log_marginal_of_weights, power_log_weights, snis_log_lik_of_weights
from .memory import StepCopies
from .objectives import Objective, ObjectiveConfig, ObjectiveKind, parse_kind

__all__ = [
    "BaseEstimator",
    "EstimatorSpec",
    "BASE_ESTIMATORS",
    "register_estimator",
    "estimator_spec",
    "EstimatorConfig",
    "Surrogate",
    "check_combination",
    "check_estimator",
    "surrogate_objective",
    "VariationalLoss",
]

LogLikelihood = Callable[[Tensor], Tensor]  # z [K, B, ...] -> ln p(x|z) [K, B]


class BaseEstimator(str, Enum):
    """The names of the built-in estimators (``BASE_ESTIMATORS`` may hold more: :func:`register_estimator`)."""

    ELBO = "elbo"
    IWAE = "iwae"
    STL = "stl"
    DREG = "dreg"
    REINFORCE = "reinforce"
    VIMCO = "vimco"


@dataclass
class EstimatorConfig:
    base: str = "iwae"  # a name in BASE_ESTIMATORS: elbo, iwae, stl, dreg (gaussian latents), reinforce, vimco (any)
    num_samples: int = 1  # K: samples from q(z|x) for the ln p(x) term
    mi_samples: int | None = None  # K': the first K' of the same draws estimate the divergence; None = K

    def __post_init__(self) -> None:
        check_types(self)
        check_choice(self.base, BASE_ESTIMATORS, "base")
        check(self.num_samples >= 1, "num_samples", f"must be >= 1, got {self.num_samples}")
        check(self.mi_samples is None or self.mi_samples >= 1, "mi_samples", f"must be >= 1, got {self.mi_samples}")


def check_combination(estimator: EstimatorConfig, objective: ObjectiveConfig, latent_kind: str) -> None:
    """Reject combinations of base estimator, objective and latent space that are invalid (config form).

    Errors name the key (``estimator.base`` ...) and say what to use instead.
    """
    K = estimator.num_samples
    K_mi = K if estimator.mi_samples is None else estimator.mi_samples
    check_estimator(estimator.base, objective.kind, K, K_mi, latent_kind == "gaussian", latent_kind)


def check_estimator(
    base: BaseEstimator | str,
    kind: ObjectiveKind | str,
    num_samples: int,
    mi_samples: int,
    reparameterized: bool | None = None,
    latent_name: str = "these",
) -> None:
    """The checks behind every entry point (YAML configs, :class:`VariationalLoss`, :func:`surrogate_objective`).

    ``reparameterized`` says whether the latent space has reparameterised samples (None: not known yet).
    """
    spec, kind = estimator_spec(base), parse_kind(kind)
    K, K_mi = num_samples, mi_samples
    if kind in (ObjectiveKind.NONE, ObjectiveKind.POWER) and K_mi != K:
        raise ConfigError(
            "estimator.mi_samples",
            f"the {kind.value} objective has no separate divergence term; remove mi_samples "
            "or use objective kind kl or renyi",
        )
    if spec.reparameterised and reparameterized is False:
        score_function = [s for s in BASE_ESTIMATORS.values() if not s.reparameterised]
        choices = " or ".join(
            s.name + (f" (K >= {s.min_samples})" if s.min_samples > 1 else "") for s in score_function
        )
        raise ConfigError(
            "estimator.base",
            f"{spec.name} needs reparameterised samples, which {latent_name} latents do not have; use {choices}",
        )
    if spec.max_samples is not None and max(K, K_mi) > spec.max_samples:
        most = "one sample" if spec.max_samples == 1 else f"at most {spec.max_samples} samples"
        raise ConfigError(
            "estimator.base",
            f"{spec.name} is unbiased only with {most} (K, K' <= {spec.max_samples}, got {K}/{K_mi}); " + spec.advice,
        )
    if spec.analytic_divergence and K_mi != K:
        raise ConfigError(
            "estimator.mi_samples",
            f"{spec.name} uses the analytic KL(q || p) as its divergence term, which takes no samples; "
            "remove mi_samples",
        )
    if max(K, K_mi) < spec.min_samples:
        raise ConfigError(
            "estimator.num_samples", f"{spec.name} needs at least {spec.min_samples} samples; " + spec.advice
        )


def _check_with_latent(spec: EstimatorSpec, objective: Objective, latent) -> None:
    reparameterized = getattr(latent, "reparameterized", None)
    name = type(latent).__name__.removesuffix("Latent").lower() or "these"
    check_estimator(spec.name, objective.kind, objective.num_samples, objective.mi_samples, reparameterized, name)


class Surrogate(NamedTuple):
    value: Tensor  # [B]: value = objective estimate, gradient = the estimator's
    log_marginal: Tensor  # [B], detached: Ŝ^K (the ELBO for elbo)
    divergence: Tensor  # [B], detached: Û^K - Ŝ^K (the analytic KL(q || p) for elbo)


def surrogate_objective(
    base: BaseEstimator | str,
    objective: Objective,
    latent,
    proposal,
    log_likelihood: LogLikelihood,
    generator: torch.Generator | None = None,
) -> Surrogate:
    """Draw max(K, K') samples from ``proposal`` and build the surrogate of ``base``.

    ``latent`` is a latent space (:mod:`micmco.latents`), ``proposal`` its q(z|x) for the
    batch, and ``log_likelihood`` maps samples z [K, B, ...] to ln p(x|z) [K, B].
    """
    spec = estimator_spec(base)
    _check_with_latent(spec, objective, latent)
    return spec.surrogate(objective, latent, proposal, log_likelihood, generator)


def _monitor(log_w: Tensor, log_lik: Tensor, num_samples: int) -> tuple[Tensor, Tensor]:
    log_w, log_lik = log_w[:num_samples].detach(), log_lik[:num_samples].detach()
    log_marginal = log_marginal_of_weights(log_w)
    return log_marginal, snis_log_lik_of_weights(log_w, log_lik) - log_marginal


def _surrogate(value: Tensor, extra: Tensor | None, log_w: Tensor, log_lik: Tensor, objective: Objective) -> Surrogate:
    """value plus a zero-valued term carrying ``extra``'s gradient."""
    if extra is not None:
        value = value + (extra - extra.detach())
    return Surrogate(value, *_monitor(log_w, log_lik, objective.num_samples))


# --- reparameterised estimators --------------------------------------------------------------


def elbo(objective: Objective, latent, proposal, log_likelihood: LogLikelihood, generator=None) -> Surrogate:
    """ELBO base: each sample's objective with ln p(z) - ln q(z|x) replaced by -KL(q || p), averaged over K.

    With one sample per term the kl and renyi objectives become ln p(x|z) - (1 - λ) KL(q || p)
    and the power objective ln p(x|z) - KL(q || p)/α: β-VAEs (Prop. 6).
    """
    z = latent.sample(proposal, objective.num_samples, generator)  # [K, B, ...]
    log_lik = log_likelihood(z)  # [K, B]
    K, B = log_lik.shape  # samples, batch
    log_w = log_lik - latent.kl_to_prior(proposal)
    value = objective.single_sample()(log_w.reshape(1, K * B), log_lik.reshape(1, K * B)).view(K, B).mean(0)
    log_marginal = log_w.detach().mean(0)
    return Surrogate(value, log_marginal, latent.kl_to_prior(proposal).detach())


def iwae(objective: Objective, latent, proposal, log_likelihood: LogLikelihood, generator=None) -> Surrogate:
    """Plain reparameterised gradient of the objective (Burda et al. 2015)."""
    z = latent.sample(proposal, objective.num_draws, generator)
    log_lik = log_likelihood(z)
    log_w = log_lik + latent.log_prior(z) - latent.log_q(proposal, z)
    return _surrogate(objective(log_w, log_lik), None, log_w, log_lik, objective)


def stl(objective: Objective, latent, proposal, log_likelihood: LogLikelihood, generator=None) -> Surrogate:
    """Sticking the landing: the score term of ln q(z|x) dropped (Roeder et al. 2017); K = K' = 1."""
    z = latent.sample(proposal, objective.num_draws, generator)
    log_lik = log_likelihood(z)
    log_w = log_lik + latent.log_prior(z) - latent.log_q(proposal.detach(), z)
    return _surrogate(objective(log_w, log_lik), None, log_w, log_lik, objective)


def dreg(objective: Objective, latent, proposal, log_likelihood: LogLikelihood, generator=None) -> Surrogate:
    """Doubly reparameterised gradients (Tucker et al. 2018) for every objective.

    The φ-gradient is Σ_i c_i · ∂v_i/∂z_i · ∂z_i/∂φ, with v_i evaluated with q's parameters
    detached (see :func:`dreg_path_surrogate` for the coefficients c_i). One decoder pass:
    the path term is taken by ``autograd.grad`` with respect to a detached copy of z, and
    the θ-gradient by autodiff of the objective at that copy.
    """
    z = latent.sample(proposal, objective.num_draws, generator)  # depends on φ
    z_fixed = z.detach().requires_grad_(True)
    log_lik = log_likelihood(z_fixed)
    log_w = log_lik + latent.log_prior(z_fixed) - latent.log_q(proposal.detach(), z_fixed)
    value = objective(log_w, log_lik)  # its gradient reaches θ only
    encoder_term = None
    if torch.is_grad_enabled() and z.requires_grad:
        path_surrogate = dreg_path_surrogate(objective, log_w, log_lik)
        (path,) = torch.autograd.grad(path_surrogate.sum(), z_fixed, retain_graph=True)
        encoder_term = (path * z).flatten(2).sum(-1).sum(0)  # [B]: gradient Σ_i path_i ∂z_i/∂φ
    return _surrogate(value, encoder_term, log_w, log_lik, objective)


def _dreg_log_marginal_of_weights(log_w: Tensor) -> Tensor:
    """DReG of ln mean_i exp(v_i): coefficients w̃_i² on ∂v_i (Tucker et al. 2018, eq. 6)."""
    w = torch.softmax(log_w.detach(), dim=0)
    return (w.square() * log_w).sum(0)


def _dreg_snis_log_lik_of_weights(log_w: Tensor, log_lik: Tensor) -> Tensor:
    """DReG of Û = Σ_i w̃_i ℓ_i: 2 w̃_i² (ℓ_i - Û) on ∂ln w_i and w̃_i² on ∂ℓ_i.

    From ∂Û/∂ln q_i = -w̃_i (ℓ_i - Û) and the reparameterisation identity
    E[f(z) ∇_φ ln q(z)] = E[∂f/∂z ∂z/∂φ], applied sample by sample (z_{-i} fixed).
    """
    w = torch.softmax(log_w.detach(), dim=0)
    ell = log_lik.detach()
    centered = ell - (w * ell).sum(0)
    return (2 * w.square() * centered * log_w + w.square() * log_lik).sum(0)


def dreg_path_surrogate(objective: Objective, log_w: Tensor, log_lik: Tensor) -> Tensor:
    """Σ_i c_i v_i [B] whose z-gradient is the DReG path term of ``objective``.

    Each term of the objective is a log-mean-exp (Ŝ, Ŝ_α) or the SNIS Û; their DReG
    coefficients combine with the objective's own coefficients (eq. 11, 15, 18).
    """
    K, K_mi = objective.num_samples, objective.mi_samples
    main = _dreg_log_marginal_of_weights(log_w[:K])
    if objective.kind is ObjectiveKind.NONE:
        return main
    if objective.kind is ObjectiveKind.POWER:
        return (
            _dreg_log_marginal_of_weights(power_log_weights(log_w[:K], log_lik[:K], objective.alpha)) / objective.alpha
        )
    mi_w, mi_lik = log_w[:K_mi], log_lik[:K_mi]
    if objective.kind is ObjectiveKind.RENYI and objective.alpha != 1.0:
        alpha = objective.alpha
        power = _dreg_log_marginal_of_weights(power_log_weights(mi_w, mi_lik, alpha))
        divergence = (power - alpha * _dreg_log_marginal_of_weights(mi_w)) / (alpha - 1.0)
    else:  # kl, and renyi at its α = 1 limit
        divergence = _dreg_snis_log_lik_of_weights(mi_w, mi_lik) - _dreg_log_marginal_of_weights(mi_w)
    if K_mi != K:  # λ multiplies V̂^K' - Ŝ^K (Objective.divergence): add Ŝ^K' - Ŝ^K
        divergence = divergence + (_dreg_log_marginal_of_weights(mi_w) - main)
    return main + objective.lam * divergence


# --- score-function estimators ---------------------------------------------------------------


def reinforce(objective: Objective, latent, proposal, log_likelihood: LogLikelihood, generator=None) -> Surrogate:
    """Score function (Williams 1987) with a zero baseline: Σ_i F ∇_φ ln q(z_i|x) + ∂F/∂φ."""
    return _score_function(objective, latent, proposal, log_likelihood, generator, leave_one_out=False)


def vimco(objective: Objective, latent, proposal, log_likelihood: LogLikelihood, generator=None) -> Surrogate:
    """VIMCO (Mnih & Rezende 2016): the learning signal of sample i is F - F_{-i}, where F_{-i}
    recomputes F with sample i's ln w_i and ln p(x|z_i) replaced by the mean over the others."""
    return _score_function(objective, latent, proposal, log_likelihood, generator, leave_one_out=True)


def _score_function(objective, latent, proposal, log_likelihood, generator, leave_one_out: bool) -> Surrogate:
    z = latent.sample(proposal, objective.num_draws, generator, reparameterize=False)
    log_lik = log_likelihood(z)
    log_q = latent.log_q(proposal, z)  # [M, B]
    log_w = log_lik + latent.log_prior(z) - log_q
    value = objective(log_w, log_lik)  # autodiff: θ, and φ through ln q's explicit dependence
    signal = value.detach()  # [B], broadcast over samples
    if leave_one_out:
        signal = signal - leave_one_out_baselines(objective, log_w.detach(), log_lik.detach())  # [M, B]
    score_term = (signal * log_q).sum(0)
    return _surrogate(value, score_term, log_w, log_lik, objective)


def leave_one_out_baselines(objective: Objective, log_w: Tensor, log_lik: Tensor) -> Tensor:
    """F_{-i} for every sample i, [M, B]: F with sample i's quantities replaced by the mean of the others.

    Independent of z_i, so subtracting it keeps the score-function estimator unbiased.
    """
    M, B = log_w.shape  # samples, batch
    if M < 2:
        raise ValueError("leave-one-out baselines need at least 2 samples")
    eye = torch.eye(M, dtype=torch.bool, device=log_w.device).unsqueeze(-1)  # [M (sample j), M (left-out i), 1]

    def replaced(values: Tensor) -> Tensor:
        others_mean = (values.sum(0, keepdim=True) - values) / (M - 1)  # [M, B], for each i
        return torch.where(eye, others_mean.unsqueeze(0), values.unsqueeze(1)).reshape(M, M * B)

    return objective(replaced(log_w), replaced(log_lik)).view(M, B)


# --- the registry ------------------------------------------------------------------------------

SurrogateFunction = Callable[..., Surrogate]  # (objective, latent, proposal, log_likelihood, generator) -> Surrogate


@dataclass(frozen=True)
class EstimatorSpec:
    """One base estimator, all the package knows of it: an entry of ``BASE_ESTIMATORS``."""

    name: str  # estimator.base in configs and the estimator of curve ids (dreg16-kl): lowercase letters
    surrogate: SurrogateFunction  # the estimator itself, as elbo ... vimco above
    label: str  # as the paper writes it: "DReG"; curve labels and figures use it
    reparameterised: bool  # differentiates through z, so Gaussian latents only; False: score function, any latents
    min_samples: int = 1  # the least max(K, K') it takes (VIMCO: 2, its baseline of sample i averages the others)
    max_samples: int | None = None  # the most K and K' at which it is unbiased (STL: 1); None: no limit
    advice: str = ""  # what to use instead when K or K' is out of its range, for the config error
    analytic_divergence: bool = False  # its divergence term is the analytic KL(q || p) (ELBO): K' must equal K
    memory: StepCopies = StepCopies()  # the tensors a training step keeps alive (memory.step_memory)
    table1_family: str | None = None  # the Table 1 columns its curves fill ("DReG", "VIMCO"); None: none


BASE_ESTIMATORS: dict[str, EstimatorSpec] = {}  # name -> spec: every estimator a config may name


def register_estimator(spec: EstimatorSpec) -> EstimatorSpec:
    """Add ``spec`` to ``BASE_ESTIMATORS``: from then on configs, curve ids and memory estimates know it."""
    if not spec.name.isascii() or not spec.name.isalpha() or not spec.name.islower():
        raise ValueError(f"estimator name {spec.name!r}: lowercase letters only (a curve id's K follows it)")
    if spec.name in BASE_ESTIMATORS or spec.name == "vqvae":  # the VQ-VAE's curves are named vqvae too
        raise ValueError(f"estimator name {spec.name!r} is taken")
    BASE_ESTIMATORS[spec.name] = spec
    return spec


def estimator_spec(base: BaseEstimator | str) -> EstimatorSpec:
    """The registered spec of an estimator name (or BaseEstimator); a ValueError naming the choices otherwise."""
    spec = BASE_ESTIMATORS.get(base.value if isinstance(base, BaseEstimator) else base)
    if spec is None:
        raise ValueError(f"unknown base estimator {base!r}; valid choices: {', '.join(BASE_ESTIMATORS)}")
    return spec


register_estimator(EstimatorSpec("elbo", elbo, "ELBO", reparameterised=True, analytic_divergence=True))
register_estimator(EstimatorSpec("iwae", iwae, "IWAE", reparameterised=True))
register_estimator(
    EstimatorSpec(
        "stl",
        stl,
        "STL",
        reparameterised=True,
        max_samples=1,
        advice="use dreg, its unbiased multi-sample generalisation",
    )
)
register_estimator(  # DReG retains the decoder graph for its path term: more logits, and two backward passes
    EstimatorSpec(
        "dreg", dreg, "DReG", reparameterised=True, memory=StepCopies(logits=6, hidden=16), table1_family="DReG"
    )
)
register_estimator(  # in Table 1's VIMCO columns: the paper's VIMCO 1 is REINFORCE 1 (one sample has no baseline)
    EstimatorSpec("reinforce", reinforce, "REINFORCE", reparameterised=False, table1_family="VIMCO")
)
register_estimator(
    EstimatorSpec(
        "vimco",
        vimco,
        "VIMCO",
        reparameterised=False,
        min_samples=2,
        advice="its baseline of sample i averages the others, so use reinforce for a single sample",
        memory=StepCopies(baselines=10),  # the leave-one-out objectives: [K, K, B] tensors through the objective
        table1_family="VIMCO",
    )
)


class VariationalLoss:
    """A trainer loss for latent variable models: minus the mean surrogate of ``base`` for ``objective``.

    The model provides ``latent``, ``proposal(x)`` and ``log_likelihood(x, z)``. ``base`` may be a
    :class:`BaseEstimator` or its string value. Invalid combinations (``stl`` with K > 1, ``vimco``
    with one sample, ...) are rejected here; ``dreg`` etc. with categorical latents on the first call,
    where the model's latent space is known.
    """

    def __init__(self, base: BaseEstimator | str, objective: Objective):
        if not isinstance(objective, Objective):
            raise TypeError(f"objective must be a micmco.objectives.Objective, got {type(objective).__name__}")
        self.base = estimator_spec(base).name
        self.objective = objective
        check_estimator(self.base, objective.kind, objective.num_samples, objective.mi_samples)

    def __call__(self, model, x: Tensor, generator: torch.Generator | None = None):
        result = surrogate_objective(
            self.base, self.objective, model.latent, model.proposal(x), lambda z: model.log_likelihood(x, z), generator
        )
        metrics = {
            "log_marginal": result.log_marginal.mean(),
            "divergence": result.divergence.mean(),
        }
        return -result.value.mean(), metrics
