"""§3-§6, checked exactly on the testbed (:mod:`micmco.testbed`): Proposition 1 on small joint
distributions, the estimates' bias and variance as K grows and Propositions 2-3 (with the
counterexamples where the paper's claims fail), Propositions 4-5 sample by sample, Proposition 6.

The testbed's latent spaces are finite, so an expectation over K samples is a sum over all
multisets of samples: a check is exact up to float64 rounding, not a Monte-Carlo average.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..estimators import kl_estimate, log_marginal, log_power_marginal, renyi_estimate, snis_log_lik
from ..objectives import ObjectiveKind, objective_value
from ..testbed import DTYPE, TableModel
from .common import markdown_table

TOLERANCE = 1e-12  # float64 slack for "exactly equal" in the checks


# --- §3: Proposition 1 on a small discrete joint distribution ----------------------------------------


def joint_distribution(table: list[list[float]]) -> Tensor:
    """p_D(x1, x2) from a nested list, normalised, float64."""
    p = torch.tensor(table, dtype=DTYPE)
    return p / p.sum()


def _kl(p: Tensor, q: Tensor) -> float:
    mask = p > 0
    return (p[mask] * (p[mask].log() - q[mask].log())).sum().item()


@dataclass
class Proposition1Row:
    model: str  # which p(x, z)
    collapse_error: float  # (i) max |p(x, z) − p(x) p(z)|
    fit_error: float  # (ii) max |p(x) − p_D(x)|
    cia_error: float  # (iii) max |p(x, z) − p(z) p(x1|z) p(x2|z)|
    mutual_information: float  # I(X; Z) in nats

    @property
    def all_three_hold(self) -> bool:
        return max(self.collapse_error, self.fit_error, self.cia_error) < TOLERANCE


def proposition1_errors(name: str, joint: Tensor, p_data: Tensor) -> Proposition1Row:
    """How far p(z, x1, x2) [S, n1, n2] is from each of Prop. 1's conditions (i)-(iii), entry by entry."""
    p_z = joint.sum((1, 2))
    p_x = joint.sum(0)
    independent = p_z[:, None, None] * p_x[None]
    x1_given_z = joint.sum(2) / p_z[:, None]
    x2_given_z = joint.sum(1) / p_z[:, None]
    cia = p_z[:, None, None] * x1_given_z[:, :, None] * x2_given_z[:, None, :]
    return Proposition1Row(
        model=name,
        collapse_error=(joint - independent).abs().max().item(),
        fit_error=(p_x - p_data).abs().max().item(),
        cia_error=(joint - cia).abs().max().item(),
        mutual_information=_kl(joint.flatten(), independent.flatten()),
    )


@dataclass
class Proposition1Check:
    data_factorises: bool  # p_D(x1, x2) = p_D(x1) p_D(x2), entry by entry
    rows: list[Proposition1Row]  # the candidate models and their errors
    collapsed_cia_gap: float  # KL(p_D ‖ p_D(x1) p_D(x2)) = I_D(X1; X2): the best any collapsed CIA model can do
    random_search_min_gap: float  # the smallest KL(p_D ‖ p) among random collapsed CIA models

    @property
    def some_model_satisfies_all_three(self) -> bool:
        return any(row.all_three_hold for row in self.rows if row.mutual_information < TOLERANCE)


def check_proposition1(
    p_data: Tensor, prior: Tensor, num_random_models: int = 2000, seed: int = 0
) -> Proposition1Check:
    """Proposition 1 computed exactly on a two-part observation x = (x1, x2) and a prior p(z).

    Candidates: the proof's construction p(z) p_D(x) (collapsed, fits the data), the product
    p(z) p_D(x1) p_D(x2) (collapsed and CIA), and the informative model z = x with
    p(x_i|z) = δ(x_i = z_i) (CIA, fits the data, uses the latents). A collapsed CIA model has
    p(x_i|z) = p(x_i), so p(x) = p(x1) p(x2): its KL from p_D is at least I_D(X1; X2), reached
    by the product of p_D's marginals; random collapsed CIA models are searched as a check.
    """
    marginal1, marginal2 = p_data.sum(1), p_data.sum(0)
    product = torch.outer(marginal1, marginal2)
    informative = torch.zeros(p_data.numel(), *p_data.shape, dtype=DTYPE)
    for k, (i, j) in enumerate(itertools.product(range(p_data.shape[0]), range(p_data.shape[1]))):
        informative[k, i, j] = p_data[i, j]
    informative = informative[informative.sum((1, 2)) > 0]
    rows = [
        proposition1_errors("p(z) p_D(x): the proof's construction", prior[:, None, None] * p_data[None], p_data),
        proposition1_errors("p(z) p_D(x1) p_D(x2): collapsed and CIA", prior[:, None, None] * product[None], p_data),
        proposition1_errors("z = x, p(x_i|z) = δ: informative and CIA", informative, p_data),
    ]
    generator = torch.Generator().manual_seed(seed)
    gaps = []
    for _ in range(num_random_models):
        a = torch.rand(len(marginal1), generator=generator, dtype=DTYPE) ** 2
        b = torch.rand(len(marginal2), generator=generator, dtype=DTYPE) ** 2
        gaps.append(_kl(p_data.flatten(), torch.outer(a / a.sum(), b / b.sum()).flatten()))
    return Proposition1Check(
        data_factorises=bool((p_data - product).abs().max() < TOLERANCE),
        rows=rows,
        collapsed_cia_gap=_kl(p_data.flatten(), product.flatten()),
        random_search_min_gap=min(gaps),
    )


def proposition1_report(checks: dict[str, Proposition1Check]) -> None:
    """Print, per data distribution, whether it factorises and whether a collapsed model meets (i)-(iii)."""
    for name, check in checks.items():
        print(f"{name} data:")
        print(f"  p_D factorises:                              {check.data_factorises}")
        print(f"  a collapsed model satisfies (i)-(iii):       {check.some_model_satisfies_all_three}")
        print(f"  best collapsed CIA model: KL(p_D ‖ p) = I_D(X1; X2) = {check.collapsed_cia_gap:.6f} nats")
        print(f"  best random collapsed CIA model:  KL(p_D ‖ p) = {check.random_search_min_gap:.6f} nats")


def proposition1_table(check: Proposition1Check) -> str:
    rows = [[r.model, r.collapse_error, r.fit_error, r.cia_error, r.mutual_information] for r in check.rows]
    return markdown_table(
        rows, ["model p(x, z)", "(i) collapse error", "(ii) fit error", "(iii) CIA error", "I(X; Z) (nats)"], digits=6
    )


# --- §4: the estimates' bias and variance as K grows; Propositions 2 and 3 --------------------------


def estimate_bias_variance(model: TableModel, sample_counts: list[int], alpha: float) -> list[dict[str, float]]:
    """Exact bias and variance of the three estimates of §4 for each K.

    - KL estimate Û^K − Ŝ^K against KL(p(z|x) ‖ p(z)) (eq. 12),
    - Rényi estimate (Ŝ_α^K − α Ŝ^K)/(α − 1) against D_α(p(z|x) ‖ p(z)) (eq. 16),
    - power objective Ŝ_α^K/α against ln p^α(x)/α (eq. 18),
    plus Ŝ^K against ln p(x).
    """
    targets = {
        "log p(x): Ŝ^K": (log_marginal, model.log_marginal),
        "KL: Û^K − Ŝ^K": (kl_estimate, model.true_kl),
        f"Rényi α={alpha:g}": (lambda a, b, c: renyi_estimate(a, b, c, alpha), model.renyi_divergence(alpha)),
        f"power α={alpha:g}": (
            lambda a, b, c: log_power_marginal(a, b, c, alpha) / alpha,
            model.log_power_marginal(alpha) / alpha,
        ),
    }
    rows = []
    for K in sample_counts:
        for name, (estimator, truth) in targets.items():
            mean, variance = model.expectation(estimator, K)
            rows.append(
                {
                    "K": K,
                    "estimate": name,
                    "truth": truth,
                    "mean": mean,
                    "bias": mean - truth,
                    "variance": variance,
                    "mse": (mean - truth) ** 2 + variance,
                }
            )
    return rows


def plot_bias_variance(rows: list[dict[str, float]]):
    import matplotlib.pyplot as plt

    fig, (bias_ax, var_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name in dict.fromkeys(r["estimate"] for r in rows):
        selected = [r for r in rows if r["estimate"] == name]
        Ks = [r["K"] for r in selected]
        bias_ax.plot(Ks, [abs(r["bias"]) for r in selected], marker="o", label=name)
        var_ax.plot(Ks, [r["variance"] for r in selected], marker="o", label=name)
    Ks = sorted({r["K"] for r in rows})
    for ax, what in ((bias_ax, "|bias| (nats)"), (var_ax, "variance (nats²)")):
        ax.plot(Ks, [1 / k for k in Ks], color="gray", linestyle=":", label="1/K")
        ax.set(xscale="log", yscale="log", xlabel="K (samples)", ylabel=what)
        ax.set_xticks(Ks, [str(k) for k in Ks])
    bias_ax.set_title("bias of each estimate")
    var_ax.set_title("variance of each estimate")
    var_ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@dataclass
class Counterexample:
    num_states: int
    num_samples: int
    seed: int
    proposal: str
    model: TableModel = field(repr=False)
    expected_value: float  # E[Û^K − Ŝ^K] (ii) or Var(Û^{K+1}) (iii)
    reference: float  # KL(p(z|x) ‖ p(z)) (ii) or Var(Û^K) (iii)
    premise_margin: float = 0.0  # ln p(x) − E[Ŝ^K] >= 0 (ii)
    claim: str = "2 ii"  # which part of Proposition 2 it contradicts: "2 ii" or "2 iii"

    @property
    def contradicts_claim(self) -> bool:
        if self.claim == "2 ii":  # premise holds, conclusion fails
            return self.premise_margin >= -TOLERANCE and self.expected_value < self.reference
        return self.expected_value > self.reference  # the variance rose with K

    def report(self) -> None:
        """Print the counterexample (what a chapter shows)."""
        K = self.num_samples
        if self.claim == "2 ii":
            print(f"counterexample to Proposition 2 ii, with K = {K}:")
        else:
            print("counterexample to the monotone decay in Proposition 2 iii:")
        print(f"  model:            {self.num_states} states, proposal = {self.proposal} (seed {self.seed})")
        if self.claim == "2 ii":
            print(f"  premise holds:    ln p(x) − E[Ŝ^K] = {self.premise_margin:.6f} ≥ 0")
            print(f"  conclusion fails: E[Û^K − Ŝ^K] = {self.expected_value:.6f}")
            print(f"                    < KL(p(z|x) ‖ p(z)) = {self.reference:.6f}")
        else:
            print(f"  Var(Û^{K + 1}) = {self.expected_value:.6f} > Var(Û^{K}) = {self.reference:.6f}")

    def describe_model(self, digits: int = 4) -> str:
        """The model's tables (prior, likelihood, proposal, true posterior) as Markdown."""
        rows = [
            [
                z,
                self.model.log_prior[z].exp().item(),
                self.model.log_lik[z].exp().item(),
                self.model.log_q[z].exp().item(),
                self.model.log_posterior[z].exp().item(),
            ]
            for z in range(self.num_states)
        ]
        return markdown_table(rows, ["z", "p(z)", "p(x|z)", "q(z|x)", "p(z|x)"], digits)


def find_prop2ii_counterexample(
    proposals: tuple[str, ...] = ("random", "prior"),
    max_states: int = 6,
    sample_counts: tuple[int, ...] = (1, 2, 3, 4, 8),
    seeds: int = 20,
    min_samples: int = 1,
) -> Counterexample | None:
    """The smallest model (fewest states, then fewest samples, then lowest seed) where Prop. 2 ii fails.

    Prop. 2 ii: E Ŝ^K ≤ ln p(x) ⇒ E[Û^K − Ŝ^K] ≥ KL(p(z|x) ‖ p(z)). The premise is checked too
    (it always holds for IWAE's Ŝ^K). Models are :meth:`TableModel.random` draws.
    """
    for num_states in range(2, max_states + 1):
        for K in (k for k in sample_counts if k >= min_samples):
            for seed in range(seeds):
                for proposal in proposals:
                    model = TableModel.random(num_states, seed, q=proposal)
                    premise_margin = model.log_marginal - model.expectation(log_marginal, K)[0]
                    mean = model.expectation(kl_estimate, K)[0]
                    if premise_margin >= -TOLERANCE and mean < model.true_kl - 1e-9:
                        return Counterexample(
                            num_states, K, seed, proposal, model, mean, model.true_kl, premise_margin, "2 ii"
                        )
    return None


def prop2ii_upward_bias_rate(
    states: tuple[int, ...] = (3, 4, 5, 6), sample_counts: tuple[int, ...] = (1, 2, 4, 8), seeds: int = 10
) -> tuple[int, int]:
    """How often E[Û^K − Ŝ^K] ≥ KL(p(z|x) ‖ p(z)) over random models and proposals: (holds, cases)."""
    holds = cases = 0
    for num_states in states:
        for seed in range(seeds):
            model = TableModel.random(num_states, seed, q="random")
            for K in sample_counts:
                cases += 1
                holds += model.expectation(kl_estimate, K)[0] >= model.true_kl - 1e-9
    return holds, cases


def bias_variance_table(rows: list[dict[str, float]]) -> str:
    """One row per K: each estimate's bias and, in brackets, its variance."""
    names = list(dict.fromkeys(r["estimate"] for r in rows))
    table = []
    for K in dict.fromkeys(r["K"] for r in rows):
        cells = {r["estimate"]: f"{r['bias']:+.4f} ({r['variance']:.4f})" for r in rows if r["K"] == K}
        table.append([K] + [cells[name] for name in names])
    return markdown_table(table, ["K"] + [f"{name}: bias (variance)" for name in names])


def kl_convergence_rows(model: TableModel, sample_counts: list[int]) -> list[list[float]]:
    """K, E[Û^K − Ŝ^K] (exact), the true KL and the representational KL."""
    return [[K, model.expectation(kl_estimate, K)[0], model.true_kl, model.representational_kl] for K in sample_counts]


def snis_variances(model: TableModel, sample_counts: list[int]) -> list[float]:
    """Var(Û^K) for each K, exactly."""
    return [model.expectation(snis_log_lik, K)[1] for K in sample_counts]


def find_prop2iii_counterexample(max_states: int = 6, max_samples: int = 8, seeds: int = 20) -> Counterexample | None:
    """The smallest model and K with Var(Û^{K+1}) > Var(Û^K): the variance does not decay monotonically."""
    for num_states in range(2, max_states + 1):
        for seed in range(seeds):
            for proposal in ("random", "prior"):
                model = TableModel.random(num_states, seed, q=proposal)
                variances = snis_variances(model, list(range(1, max_samples + 1)))
                for K, (now, after) in enumerate(zip(variances, variances[1:]), start=1):
                    if after > now * (1 + 1e-9):
                        return Counterexample(num_states, K, seed, proposal, model, after, now, claim="2 iii")
    return None


def plot_snis_variance(models: dict[str, TableModel], sample_counts: list[int]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, model in models.items():
        ax.plot(sample_counts, snis_variances(model, sample_counts), marker="o", label=name)
    ax.set(xscale="log", yscale="log", xlabel="K (samples)", ylabel="Var(Û^K) (nats²)", title="variance of Û^K")
    ax.set_xticks(sample_counts, [str(k) for k in sample_counts])
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@dataclass
class Proposition3Check:
    alpha: float
    x: int
    log_p: float  # ln p(x)
    log_p_alpha: float  # ln p^α(x)
    lower_holds: bool  # α ln p(x) <= ln p^α(x)
    upper_holds: bool  # ln p^α(x) <= ln p(x)
    upper_gap: float  # ln p(x) − ln p^α(x)
    identity_error: float  # |ln p^α − α ln p − (α − 1) D_α|


def check_proposition3(prior: Tensor, likelihood: Tensor, alphas: list[float]) -> list[Proposition3Check]:
    """Prop. 3 for every observation x of a joint model p(z) [S], p(x|z) [S, X] and every α > 1."""
    rows = []
    for x in range(likelihood.shape[1]):
        model = TableModel(prior.log(), likelihood[:, x].log(), prior.log())
        for alpha in alphas:
            log_p, log_pa = model.log_marginal, model.log_power_marginal(alpha)
            identity = abs(log_pa - alpha * log_p - (alpha - 1) * model.renyi_divergence(alpha))
            rows.append(
                Proposition3Check(
                    alpha,
                    x,
                    log_p,
                    log_pa,
                    alpha * log_p <= log_pa + TOLERANCE,
                    log_pa <= log_p + TOLERANCE,
                    log_p - log_pa,
                    identity,
                )
            )
    return rows


def conditional_entropy(prior: Tensor, likelihood: Tensor) -> float:
    """H_p(X|Z) in nats."""
    terms = torch.where(likelihood > 0, likelihood * likelihood.log(), torch.zeros_like(likelihood))
    return -(prior[:, None] * terms).sum().item()


def check_renyi_brackets_kl(model: TableModel, alphas: list[float]) -> list[list[Any]]:
    """D_α against KL(p(z|x) ‖ p(z)): below for α < 1, above for α > 1 (§4.2)."""
    kl = model.true_kl
    return [
        [
            alpha,
            model.renyi_divergence(alpha),
            kl,
            (model.renyi_divergence(alpha) <= kl + TOLERANCE)
            if alpha < 1
            else (model.renyi_divergence(alpha) >= kl - TOLERANCE),
        ]
        for alpha in alphas
    ]


# --- §5: Propositions 4 and 5, sample by sample --------------------------------------------------------


@dataclass
class SingleSampleCheck:
    max_kl_error: float  # max over z of |(Û^1 − Ŝ^1)(z) − ln q(z|x)/p(z)|
    max_renyi_error: dict[float, float]  # α -> max over z of |Rényi estimate(z) − ln q/p|
    expected_estimate: float  # E_q[Û^1 − Ŝ^1]
    representational_kl: float  # KL(q(z|x) ‖ p(z))
    true_kl: float  # KL(p(z|x) ‖ p(z))
    per_sample: list[list[float]]  # z, ln q/p, KL estimate, Rényi estimates...


def check_single_sample_identities(model: TableModel, alphas: list[float]) -> SingleSampleCheck:
    """Props. 4 and 5 at every latent state z (K = 1), and in expectation over q."""
    z = torch.arange(model.num_states)[None, :]  # each state is one sample: [K=1, B=S]
    args = (model.log_lik[z], model.log_prior[z], model.log_q[z])
    log_ratio = model.log_q - model.log_prior
    kl = kl_estimate(*args)
    renyi = {alpha: renyi_estimate(*args, alpha) for alpha in alphas}
    per_sample = [
        [s, log_ratio[s].item(), kl[s].item()] + [renyi[a][s].item() for a in alphas] for s in range(model.num_states)
    ]
    return SingleSampleCheck(
        max_kl_error=(kl - log_ratio).abs().max().item(),
        max_renyi_error={a: (r - log_ratio).abs().max().item() for a, r in renyi.items()},
        expected_estimate=model.expectation(kl_estimate, 1)[0],
        representational_kl=model.representational_kl,
        true_kl=model.true_kl,
        per_sample=per_sample,
    )


def plot_kl_estimate_vs_K(model: TableModel, sample_counts: list[int]):
    """E[Û^K − Ŝ^K] (± 1 std) from KL(q ‖ p) at K = 1 towards the true KL."""
    import matplotlib.pyplot as plt

    stats = [model.expectation(kl_estimate, K) for K in sample_counts]
    mean = [m for m, _ in stats]
    std = [math.sqrt(v) for _, v in stats]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(sample_counts, mean, marker="o", label="E[Û^K − Ŝ^K] (exact)")
    ax.fill_between(
        sample_counts,
        [m - s for m, s in zip(mean, std)],
        [m + s for m, s in zip(mean, std)],
        alpha=0.2,
        label="± 1 standard deviation",
    )
    ax.axhline(model.true_kl, color="black", linestyle="--", label="true KL(p(z|x) ‖ p(z))")
    ax.axhline(model.representational_kl, color="tab:red", linestyle=":", label="representational KL(q ‖ p)")
    ax.set(xscale="log", xlabel="K (samples)", ylabel="nats", title="the KL estimate as K grows")
    ax.set_xticks(sample_counts, [str(k) for k in sample_counts])
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- §6: Proposition 6 -----------------------------------------------------------------------------------


def check_proposition6(model: TableModel, betas: list[float], alphas: list[float]) -> list[list[Any]]:
    """Each single-sample objective's exact expectation against the β-VAE objective (eq. 19).

    Rows: β, which objective (with its λ or α), its expectation, the β-VAE value, the difference.
    """
    expected_log_lik = (model.log_q.exp() * model.log_lik).sum().item()
    rows = []
    for beta in betas:
        beta_vae = expected_log_lik - beta * model.representational_kl
        cases = [("KL", f"λ = {1 - beta:g}", ObjectiveKind.KL, 1 - beta, 1.0)]
        cases += [("Rényi", f"λ = {1 - beta:g}, α = {a:g}", ObjectiveKind.RENYI, 1 - beta, a) for a in alphas]
        cases.append(("power", f"α = {1 / beta:g}", ObjectiveKind.POWER, 0.0, 1 / beta))
        for name, setting, kind, lam, alpha in cases:
            value = model.expectation(lambda a, b, c: objective_value(kind, a, b, c, lam=lam, alpha=alpha), 1)[0]
            rows.append([beta, name, setting, value, beta_vae, value - beta_vae])
    return rows


def proposition6_table(rows: list[list[Any]]) -> str:
    """The rows of :func:`check_proposition6` as a table (differences in scientific notation)."""
    formatted = [
        [f"{beta:g}", name, setting, value, beta_vae, f"{difference:.1e}"]
        for beta, name, setting, value, beta_vae, difference in rows
    ]
    headers = ["β", "objective", "setting", "E[single-sample objective]", "β-VAE (eq. 19)", "difference"]
    return markdown_table(formatted, headers, digits=6)


# --- §4 with K′ ≠ K: why the asymmetric objectives are grouped as eq. 11 ---------------------------------


def asymmetric_groupings(
    sigmas: list[float], dims: int = 40, lam: float = 0.9, draws: int = 20_000, seed: int = 0
) -> list[list[float]]:
    """DReG 16/1's objective two ways, by Monte Carlo, for a decoder that ignores z (ln p(x|z) = 0, so
    ln p(x) = 0) and q = N(0, σ² I) against the prior N(0, I) in ``dims`` dimensions. Rows: σ, the mean of
    eq. 12's grouping Ŝ^16 + λ (Û^1 - Ŝ^1), the mean of eq. 11's (1 - λ) Ŝ^16 + λ Û^1, and the bound
    (1 - λ) ln p(x) = 0 of the latter."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for sigma in sigmas:
        z = sigma * torch.randn(16, draws, dims, generator=generator, dtype=DTYPE)  # [K, B, D]
        log_prior = (-0.5 * z.square() - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_q = (-0.5 * (z / sigma).square() - math.log(sigma) - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_lik = torch.zeros_like(log_prior)
        eq12 = log_marginal(log_lik, log_prior, log_q) + lam * kl_estimate(log_lik[:1], log_prior[:1], log_q[:1])
        eq11 = objective_value("kl", log_lik, log_prior, log_q, lam=lam, num_samples=16, mi_samples=1)
        rows.append([sigma, eq12.mean().item(), eq11.mean().item(), 0.0])
    return rows
