"""Latent spaces: prior p(z), the family of q(z|x), sampling and log densities (paper §7.1).

- :class:`GaussianLatent`: D real latents, isotropic standard normal prior,
  q(z|x) = N(mean, diag(exp(log_var))), reparameterised samples.
- :class:`CategoricalLatent`: L independent categorical latents with C categories each,
  uniform prior, q(z|x) = Π_l Categorical(softmax(logits_l)); samples are integer codes.

Samples are shaped ``[K, B, ...]``; log densities ``[K, B]``.

q(z|x) is the *proposal* (:class:`GaussianProposal`, :class:`CategoricalProposal`, made by a latent's
``proposal(params)`` and a model's ``proposal(x)``): in this paper "the posterior" is the true p(z|x), whose
KL to the prior the objectives estimate, so the code never calls q a posterior.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .config import check, check_choice, check_types

__all__ = [
    "LatentConfig",
    "GaussianProposal",
    "CategoricalProposal",
    "GaussianLatent",
    "CategoricalLatent",
    "make_latent",
]

LATENT_KINDS = ("gaussian", "categorical")


@dataclass
class LatentConfig:
    kind: str = "gaussian"  # gaussian (N(0, I) prior) or categorical (uniform prior)
    num_latents: int | None = None  # latent dimensions (gaussian, default 40) or variables (categorical, default 8)
    num_categories: int | None = None  # categories per variable, categorical only (default 10)

    def __post_init__(self) -> None:
        check_types(self)
        check_choice(self.kind, LATENT_KINDS, "kind")
        if self.kind == "gaussian":
            check(self.num_categories is None, "num_categories", "applies to categorical latents only; remove it")
            self.num_latents = 40 if self.num_latents is None else self.num_latents
        else:
            self.num_latents = 8 if self.num_latents is None else self.num_latents
            self.num_categories = 10 if self.num_categories is None else self.num_categories
            check(self.num_categories >= 2, "num_categories", f"must be >= 2, got {self.num_categories}")
        check(self.num_latents >= 1, "num_latents", f"must be >= 1, got {self.num_latents}")


@dataclass
class GaussianProposal:
    mean: Tensor  # [B, D]
    log_var: Tensor  # [B, D]

    def detach(self) -> "GaussianProposal":
        return GaussianProposal(self.mean.detach(), self.log_var.detach())


@dataclass
class CategoricalProposal:
    log_probs: Tensor  # [B, L, C], normalised over C

    def detach(self) -> "CategoricalProposal":
        return CategoricalProposal(self.log_probs.detach())


_LOG_2PI = math.log(2 * math.pi)


class GaussianLatent:
    """D independent N(0, 1) latents; q(z|x) is a diagonal Gaussian."""

    reparameterized = True

    def __init__(self, dim: int):
        self.dim = dim
        self.proposal_size = 2 * dim  # encoder outputs: mean and log variance

    def proposal(self, params: Tensor) -> GaussianProposal:
        mean, log_var = params.chunk(2, dim=-1)
        return GaussianProposal(mean, log_var)

    def sample(
        self,
        proposal: GaussianProposal,
        num_samples: int,
        generator: torch.Generator | None = None,
        reparameterize: bool = True,
        trials: int = 1,
    ) -> Tensor:
        """Samples [K, B, D]. ``trials`` > 1: the B rows are that many trials' copies of one batch (trial-major),
        which share one draw of noise, so that each trial sees the noise its run alone draws (micmco.batched)."""
        B, D = proposal.mean.shape  # batch (all trials), latent
        # float32 noise (float64 for float64 proposals), also where autocast made the proposal bfloat16
        dtype = torch.promote_types(proposal.mean.dtype, torch.float32)
        shape = (num_samples, B // trials, D)
        noise = torch.randn(shape, generator=generator, device=proposal.mean.device, dtype=dtype)
        if trials > 1:
            noise = noise.repeat(1, trials, 1)
        z = proposal.mean + (0.5 * proposal.log_var).exp() * noise  # [K, B, D]
        return z if reparameterize else z.detach()

    def log_q(self, proposal: GaussianProposal, z: Tensor) -> Tensor:
        inv_var = (-proposal.log_var).exp()
        sq = (z - proposal.mean).square() * inv_var
        return -0.5 * (sq + proposal.log_var + _LOG_2PI).sum(-1)

    def log_prior(self, z: Tensor) -> Tensor:
        return -0.5 * (z.square() + _LOG_2PI).sum(-1)

    def kl_to_prior(self, proposal: GaussianProposal) -> Tensor:
        """Analytic KL(q(z|x) || N(0, I)), [B]."""
        mean, log_var = proposal.mean, proposal.log_var
        return 0.5 * (mean.square() + log_var.exp() - 1.0 - log_var).sum(-1)


class CategoricalLatent:
    """L independent uniform categorical latents with C categories; z holds integer codes."""

    reparameterized = False

    def __init__(self, num_latents: int, num_categories: int):
        self.num_latents = num_latents
        self.num_categories = num_categories
        self.proposal_size = num_latents * num_categories  # encoder outputs: logits

    @property
    def entropy(self) -> float:
        """H(Z) under the uniform prior, L ln C: the most information z can carry."""
        return self.num_latents * math.log(self.num_categories)

    def proposal(self, params: Tensor) -> CategoricalProposal:
        logits = params.unflatten(-1, (self.num_latents, self.num_categories))
        return CategoricalProposal(logits.log_softmax(-1))

    def sample(
        self,
        proposal: CategoricalProposal,
        num_samples: int,
        generator: torch.Generator | None = None,
        trials: int = 1,
        **options,
    ) -> Tensor:
        """Exact samples [K, B, L]; ``reparameterize=True`` is an error (categorical latents have no path).
        ``trials``: as for :meth:`GaussianLatent.sample`, one draw of noise shared by that many trials' rows."""
        if options.pop("reparameterize", False):
            raise ValueError("categorical latents cannot be reparameterised; use a score-function estimator")
        if options:
            raise TypeError(f"unknown argument(s) {', '.join(options)}; sample takes reparameterize and trials only")
        log_probs = proposal.log_probs.detach()
        B, L, C = log_probs.shape  # batch, latents, categories
        uniform = torch.rand((num_samples, B // trials, L, C), generator=generator, device=log_probs.device)
        if trials > 1:
            uniform = uniform.repeat(1, trials, 1, 1)
        gumbel = -torch.log(-torch.log(uniform.clamp_min(torch.finfo(uniform.dtype).tiny)))
        return (log_probs + gumbel).argmax(-1)  # Gumbel-max: exact samples, [K, B, L]

    def log_q(self, proposal: CategoricalProposal, z: Tensor) -> Tensor:
        log_probs = proposal.log_probs.expand(*z.shape, self.num_categories)  # [K, B, L, C]
        return log_probs.gather(-1, z.unsqueeze(-1)).squeeze(-1).sum(-1)

    def log_prior(self, z: Tensor) -> Tensor:
        return torch.full(z.shape[:2], -self.entropy, device=z.device)

    def kl_to_prior(self, proposal: CategoricalProposal) -> Tensor:
        """Analytic KL(q(z|x) || uniform) = Σ_l Σ_c q ln q + L ln C, [B]."""
        probs = proposal.log_probs.exp()
        neg_entropy = torch.where(probs > 0, probs * proposal.log_probs, 0.0).sum((-2, -1))
        return neg_entropy + self.entropy

    def enumerate(self) -> Tensor:
        """All C^L latent configurations, [C^L, L] (for exact computations on small spaces)."""
        codes = itertools.product(range(self.num_categories), repeat=self.num_latents)
        return torch.tensor(list(codes), dtype=torch.long)


def make_latent(config: LatentConfig) -> GaussianLatent | CategoricalLatent:
    if config.kind == "gaussian":
        return GaussianLatent(config.num_latents)
    return CategoricalLatent(config.num_latents, config.num_categories)
