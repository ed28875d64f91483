"""The exact testbed: tractable models with exact answers, for checking estimators and their gradients.

Used by the tests, the book's chapters and readers checking their own estimators (book appendix).

- :class:`TableModel`: a latent variable model over a few discrete states given by tables,
  with every quantity of the paper (ln p(x), KL(p(z|x) || p(z)), ln p^α(x), D_α, ...)
  computed exactly, and exact expectations over K samples by enumerating multisets.
- :class:`DiscreteToy` / :class:`GaussianToy`: small encoder/decoder networks whose
  parameters are replicated once per independent draw, so one backward pass yields N
  independent gradient estimates; their exact expected gradients come from enumerating
  every K-tuple of categorical samples, or from Gauss-Hermite quadrature for Gaussian ones.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .gradients import surrogate_objective
from .latents import CategoricalLatent, CategoricalProposal, GaussianLatent, GaussianProposal
from .objectives import Objective

DTYPE = torch.float64


# --- exact quantities on table models ------------------------------------------------------------


@dataclass
class TableModel:
    log_prior: Tensor  # [S]: ln p(z)
    log_lik: Tensor  # [S]: ln p(x|z) for the observed x
    log_q: Tensor  # [S]: ln q(z|x)

    @classmethod
    def random(cls, num_states: int, seed: int, concentration: float = 1.0, q: str = "random") -> "TableModel":
        g = torch.Generator().manual_seed(seed)
        gamma = torch.distributions.Gamma(torch.tensor(concentration, dtype=DTYPE), torch.tensor(1.0, dtype=DTYPE))
        torch.manual_seed(seed)
        prior = gamma.sample((num_states,))
        prior = prior / prior.sum()
        # p(x|z) for one observed x among several symbols: any value in (0, 1)
        lik = torch.rand(num_states, generator=g, dtype=DTYPE) ** 3 * 0.9 + 0.01
        if q == "prior":
            proposal = prior.clone()
        elif q == "posterior":
            proposal = prior * lik / (prior * lik).sum()
        else:
            proposal = gamma.sample((num_states,))
            proposal = proposal / proposal.sum()
        return cls(prior.log(), lik.log(), proposal.log())

    @property
    def num_states(self) -> int:
        return self.log_prior.shape[0]

    @property
    def log_marginal(self) -> float:
        """ln p(x) = ln Σ_z p(z) p(x|z)."""
        return torch.logsumexp(self.log_prior + self.log_lik, 0).item()

    @property
    def log_posterior(self) -> Tensor:
        joint = self.log_prior + self.log_lik
        return joint - torch.logsumexp(joint, 0)

    @property
    def true_kl(self) -> float:
        """KL(p(z|x) || p(z))."""
        post = self.log_posterior
        return (post.exp() * (post - self.log_prior)).sum().item()

    @property
    def representational_kl(self) -> float:
        """KL(q(z|x) || p(z))."""
        return (self.log_q.exp() * (self.log_q - self.log_prior)).sum().item()

    def log_power_marginal(self, alpha: float) -> float:
        """ln p^α(x) = ln Σ_z p(z) p(x|z)^α."""
        return torch.logsumexp(self.log_prior + alpha * self.log_lik, 0).item()

    def renyi_divergence(self, alpha: float) -> float:
        """D_α(p(z|x) || p(z)) = ln Σ_z post^α prior^(1-α) / (α - 1)."""
        post = self.log_posterior
        return (torch.logsumexp(alpha * post + (1 - alpha) * self.log_prior, 0) / (alpha - 1)).item()

    def samples_and_probs(self, num_samples: int) -> tuple[Tensor, Tensor]:
        """Every multiset of K samples as per-sample tables [K, T] of (ln p(x|z), ln p(z), ln q(z|x))
        and its probability [T] under q: exact expectations of symmetric estimators."""
        multisets, counts = sample_multisets(self.num_states, num_samples)
        log_coef = math.lgamma(num_samples + 1) - torch.lgamma(counts + 1).sum(-1)
        log_prob = log_coef + (counts * self.log_q).sum(-1)
        return multisets, log_prob.exp()

    def expectation(self, estimator, num_samples: int) -> tuple[float, float]:
        """Exact mean and variance over z_1..z_K ~ q of estimator(log_lik, log_prior, log_q) [K, T] -> [T]."""
        idx, prob = self.samples_and_probs(num_samples)
        values = estimator(self.log_lik[idx], self.log_prior[idx], self.log_q[idx])
        mean = (prob * values).sum()
        return mean.item(), (prob * (values - mean).square()).sum().item()

    def ordered_expectation(self, estimator, num_samples: int) -> float:
        """Exact mean over z_1..z_K ~ q of an estimator that tells its samples apart (the asymmetric K/K′
        objectives use the first K and the first K′): every ordered K-tuple, S^K of them."""
        idx = torch.tensor(list(itertools.product(range(self.num_states), repeat=num_samples)), dtype=torch.long).T
        prob = self.log_q[idx].sum(0).exp()  # [T]
        values = estimator(self.log_lik[idx], self.log_prior[idx], self.log_q[idx])
        return (prob * values).sum().item()


@functools.lru_cache(maxsize=16)
def sample_multisets(num_states: int, num_samples: int) -> tuple[Tensor, Tensor]:
    """Every multiset of K = ``num_samples`` draws from S = ``num_states`` states, in the order of
    ``itertools.combinations_with_replacement`` (each a non-decreasing K-tuple): the states [K, T] and their
    counts [T, S]. Built from the counts (compositions of K into S parts), not K-tuples of Python ints, and
    cached: K = 256 of 3 states is 33,153 multisets of 256 draws."""

    def compositions(total: int, parts: int):  # the counts, in combinations_with_replacement's order
        if parts == 1:
            yield (total,)
            return
        for first in range(total, -1, -1):
            for rest in compositions(total - first, parts - 1):
                yield (first, *rest)

    counts = torch.tensor(list(compositions(num_samples, num_states)), dtype=torch.long)  # [T, S]
    bounds = counts.cumsum(-1)[:, :-1]  # [T, S-1]: where each state's run of draws ends
    draws = torch.arange(num_samples).view(-1, 1, 1)  # [K, 1, 1]
    multisets = (draws >= bounds.unsqueeze(0)).sum(-1)  # [K, T]: the state of each draw
    return multisets, counts.to(DTYPE)


# --- networks with per-draw parameter copies -------------------------------------------------------


class Toy:
    """Parameters as a dict of tensors; ``replicate(n)`` gives n independent leaf copies."""

    params: dict[str, Tensor]
    encoder_keys: tuple[str, ...]

    def replicate(self, n: int) -> dict[str, Tensor]:
        return {k: v.detach().expand(n, *v.shape).clone().requires_grad_(True) for k, v in self.params.items()}

    def base(self) -> dict[str, Tensor]:
        return {k: v.detach().unsqueeze(0).clone().requires_grad_(True) for k, v in self.params.items()}

    def draws(self, base: str, objective: Objective, num_draws: int, seed: int, estimator=None):
        """N independent gradient estimates, [N, P] (parameters flattened in dict order)."""
        params = self.replicate(num_draws)
        generator = torch.Generator().manual_seed(seed)
        proposal = self.proposal(params)
        log_lik = lambda z: self.log_likelihood(params, z)  # noqa: E731
        if estimator is None:
            result = surrogate_objective(base, objective, self.latent, proposal, log_lik, generator)
        else:
            result = estimator(objective, self.latent, proposal, log_lik, generator)
        result.value.sum().backward()
        return torch.cat([params[k].grad.reshape(num_draws, -1) for k in params], dim=1)

    def encoder_columns(self) -> Tensor:
        """Boolean mask over the flattened parameters: True for encoder (φ) entries."""
        return torch.cat([torch.full((v.numel(),), k in self.encoder_keys) for k, v in self.params.items()])

    def reference_gradient(self, objective: Objective, **kwargs) -> Tensor:
        params = self.base()
        expected = self.expected_objective(params, objective, **kwargs)
        grads = torch.autograd.grad(expected, list(params.values()))
        return torch.cat([g.reshape(-1) for g in grads])


class DiscreteToy(Toy):
    """q(z|x) = Π_l Categorical(softmax(φ_l)); p(x|z) = softmax(W2 tanh(W1 onehot(z) + b1) + b2)[x]."""

    encoder_keys = ("logits",)

    def __init__(self, num_latents=2, num_categories=2, num_symbols=3, hidden=3, x=1, seed=0):
        g = torch.Generator().manual_seed(seed)
        L, C = num_latents, num_categories
        self.latent = CategoricalLatent(L, C)
        self.x = x
        r = lambda *shape: torch.randn(*shape, generator=g, dtype=DTYPE)  # noqa: E731
        self.params = {
            "logits": r(L, C) * 0.7,
            "w1": r(L * C, hidden),
            "b1": r(hidden) * 0.5,
            "w2": r(hidden, num_symbols),
            "b2": r(num_symbols) * 0.5,
        }

    def proposal(self, params) -> CategoricalProposal:
        return CategoricalProposal(params["logits"].log_softmax(-1))

    def log_likelihood(self, params, z: Tensor) -> Tensor:
        onehot = torch.nn.functional.one_hot(z, self.latent.num_categories).flatten(-2).to(DTYPE)  # [M, n, L*C]
        h = torch.tanh((onehot.unsqueeze(-2) @ params["w1"]).squeeze(-2) + params["b1"])
        logits = (h.unsqueeze(-2) @ params["w2"]).squeeze(-2) + params["b2"]
        return logits.log_softmax(-1)[..., self.x]

    def expected_objective(self, params, objective: Objective) -> Tensor:
        """E over all tuples z_1..z_M ~ q of the objective, exactly."""
        states = self.latent.enumerate()  # [S, L]
        M = objective.num_draws
        tuples = torch.tensor(list(itertools.product(range(len(states)), repeat=M))).T  # [M, T]
        z = states[tuples]  # [M, T, L]
        proposal = self.proposal(params)
        log_q = self.latent.log_q(proposal, z)  # [M, T]
        log_lik = self.log_likelihood(params, z)
        log_w = log_lik + self.latent.log_prior(z) - log_q
        return (log_q.sum(0).exp() * objective(log_w, log_lik)).sum()


class GaussianToy(Toy):
    """q(z|x) = N(μ, diag(exp(v))); p(x|z) = N(x; a tanh(w·z + b) + c, exp(s)²) for a fixed x."""

    encoder_keys = ("mean", "log_var")

    def __init__(self, dim=1, x=1.3, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.latent = GaussianLatent(dim)
        self.x = x
        r = lambda *shape: torch.randn(*shape, generator=g, dtype=DTYPE)  # noqa: E731
        self.params = {
            "mean": r(dim) * 0.5,
            "log_var": r(dim) * 0.3 - 0.5,
            "w": r(dim) + 1.0,
            "b": r(()) * 0.3,
            "a": r(()) + 1.5,
            "c": r(()) * 0.3,
            "log_sigma": r(()) * 0.2 - 0.3,
        }

    def proposal(self, params) -> GaussianProposal:
        return GaussianProposal(params["mean"], params["log_var"])

    def log_likelihood(self, params, z: Tensor) -> Tensor:
        mean = params["a"] * torch.tanh((z * params["w"]).sum(-1) + params["b"]) + params["c"]
        log_sigma = params["log_sigma"]
        return -0.5 * ((self.x - mean) / log_sigma.exp()).square() - log_sigma - 0.5 * math.log(2 * math.pi)

    def expected_objective(self, params, objective: Objective, nodes: int = 40) -> Tensor:
        """E over z_1..z_M ~ q of the objective by Gauss-Hermite quadrature in M·D dimensions.

        z = μ + σ ε at fixed nodes ε, so autodiff gives the quadrature of the pathwise
        gradient: the exact gradient of E[objective] up to quadrature error.
        """
        M, D = objective.num_draws, self.latent.dim
        assert M * D <= 3, "quadrature grids beyond 3 dimensions are too large"
        t, w = np.polynomial.hermite.hermgauss(nodes)
        eps1 = torch.tensor(t * math.sqrt(2.0), dtype=DTYPE)
        w1 = torch.tensor(w / math.sqrt(math.pi), dtype=DTYPE)
        grid = torch.cartesian_prod(*[torch.arange(nodes)] * (M * D)).reshape(-1, M * D)  # [G, M*D]
        eps = eps1[grid].reshape(-1, M, D).transpose(0, 1)  # [M, G, D]
        weight = w1[grid].prod(-1)  # [G]
        proposal = self.proposal(params)
        z = proposal.mean + (0.5 * proposal.log_var).exp() * eps
        log_lik = self.log_likelihood(params, z)
        log_w = log_lik + self.latent.log_prior(z) - self.latent.log_q(proposal, z)
        return (weight * objective(log_w, log_lik)).sum()


def z_scores(draws: Tensor, reference: Tensor) -> Tensor:
    """(mean of the draws - reference) / standard error, per coordinate."""
    mean = draws.mean(0)
    se = draws.std(0) / math.sqrt(draws.shape[0])
    return (mean - reference) / se.clamp_min(1e-12)
