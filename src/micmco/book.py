"""What the book's chapters share: each chapter is a few short calls into this module.

Every number a chapter shows is computed here (or by the rest of :mod:`micmco`), and every
claim of the paper is checked by exact computation on the testbed (:mod:`micmco.testbed`):
finite latent spaces whose expectations over K samples are sums over all multisets of
samples, so a check is exact up to float64 rounding, not a Monte-Carlo average.

Sections follow the chapters: §2 the posterior-collapse demo, §3 Proposition 1, §4 the
estimates' bias and variance and Propositions 2-3, §5 Propositions 4-5, §6 Proposition 6,
and the λ/α/K explorer (live with ipywidgets, static with a precomputed plotly grid).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .estimators import kl_estimate, log_marginal, log_power_marginal, renyi_estimate, snis_log_lik
from .objectives import Objective, ObjectiveKind, objective_value
from .testbed import DTYPE, DiscreteToy, GaussianToy, TableModel

__all__ = [
    "setup",
    "repo_path",
    "markdown_table",
    "train_collapse_demo",
    "collapse_table",
    "collapse_summary",
    "plot_collapse_demo",
    "joint_distribution",
    "Proposition1Row",
    "proposition1_errors",
    "Proposition1Check",
    "check_proposition1",
    "proposition1_table",
    "estimate_bias_variance",
    "plot_bias_variance",
    "Counterexample",
    "find_prop2ii_counterexample",
    "prop2ii_upward_bias_rate",
    "bias_variance_table",
    "kl_convergence_rows",
    "snis_variances",
    "find_prop2iii_counterexample",
    "plot_snis_variance",
    "Proposition3Check",
    "check_proposition3",
    "conditional_entropy",
    "check_renyi_brackets_kl",
    "SingleSampleCheck",
    "check_single_sample_identities",
    "plot_kl_estimate_vs_K",
    "check_proposition6",
    "proposition6_table",
    "ExplorerSettings",
    "explorer_curves",
    "explorer_grid",
    "static_explorer_html",
    "ExplorerFacts",
    "explorer_facts",
    "LiveExplorer",
    "draw_explorer",
    "SYNTHETIC_FIGURES",
    "SYNTHETIC_CLAIMS",
    "PairComparison",
    "compare_pairs",
    "agreement_by_margin",
    "strong_reversals",
    "MIN_TRIALS",
    "synthetic_curve_ids",
    "paper_file_name",
    "curve_label",
    "CurveResults",
    "paper_frontiers_dir",
    "load_curve",
    "FigureResults",
    "load_figure",
    "lowest_excess",
    "plot_figure",
    "figure_table",
    "OrderingComparison",
    "compare_ordering",
    "figure_facts",
    "reproduce_command",
    "figure_studies",
    "compute_summary",
    "check_claims",
    "claims_table",
    "claims_summary",
    "slope_statement",
    "show_figure",
    "FRONTIER_ESTIMATORS",
    "FRONTIER_SAMPLES",
    "FRONTIER_OBJECTIVES",
    "frontier_explorer_data",
    "frontier_title",
    "static_frontier_explorer_html",
    "FrontierExplorer",
    "draw_frontier_choice",
    "table2_rows",
    "profiles_rows",
    "trial_costs",
]

TOLERANCE = 1e-12  # float64 slack for "exactly equal" in the checks


def setup(threads: int = 1) -> None:
    """What every chapter does first: a fixed number of torch threads, crisp inline figures."""
    torch.set_num_threads(threads)
    try:
        import matplotlib

        matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "font.size": 10})
    except ImportError:  # the figures need the book extra: pip install -e '.[book]'
        pass


def repo_path(relative: str) -> Path:
    """A path inside the micmco checkout (e.g. ``params/synthetic/smoke/vimco16-renyi.yaml``).

    Looked up from the working directory upwards, then from the package's own location, so a
    chapter finds it wherever it runs (book/chapters, a build copy, Binder or Colab clones).
    """
    for start in (Path.cwd(), Path(__file__).resolve()):
        for directory in (start, *start.parents):
            if (directory / relative).exists():
                return directory / relative
    raise FileNotFoundError(f"{relative} not found above {Path.cwd()} nor above the micmco package")


def markdown_table(rows: list[list[Any]], headers: list[str], digits: int = 4) -> str:
    """A Markdown table; floats rounded to ``digits`` decimals, pipes inside cells escaped."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return str(value).replace("|", "\\|")

    numeric = [all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(headers))]
    rule = "|" + "|".join(" ---: " if is_number else " :--- " for is_number in numeric) + "|"
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", rule]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# --- §2: posterior collapse on the synthetic task ---------------------------------------------------


def train_collapse_demo(
    config_path: str | Path,
    lambdas: list[float],
    steps: int,
    vocab_size: int,
    seed: int,
    objective: str = "renyi",
    alpha: float = 10.0,
    threads: int = 1,
) -> list[dict[str, Any]]:
    """Train the synthetic model once per λ (λ = 0: no mutual-information term) and evaluate it.

    Starts from a run config (``params/synthetic/...``), overrides the steps, vocabulary,
    seed, torch threads and objective, and runs each in a fresh temporary directory through
    the public API (:func:`micmco.experiment.run`). Returns the result records, in the order of
    ``lambdas``; a run that did not complete (a diverged one) is an error naming its λ.
    """
    from .experiment import load_config, run

    records = []
    with tempfile.TemporaryDirectory(prefix="micmco-book-") as output_dir:
        for lam in lambdas:
            if lam == 0:
                objective_overrides = ["objective.kind=none", "objective.lam=null", "objective.alpha=null"]
            elif objective == "kl":
                objective_overrides = ["objective.kind=kl", f"objective.lam={lam}", "objective.alpha=null"]
            else:
                objective_overrides = [
                    f"objective.kind={objective}",
                    f"objective.lam={lam}",
                    f"objective.alpha={alpha}",
                ]
            overrides = objective_overrides + [
                f"train.steps={steps}",
                f"train.checkpoint_every={steps}",
                f"train.log_every={max(1, steps // 20)}",
                "train.progress=false",
                f"data.vocab_size={vocab_size}",
                f"train.threads={threads}",
                f"seed={seed}",
                f"output_dir={output_dir}",
            ]
            record = run(load_config(config_path, overrides), echo=lambda *_: None)
            if record.get("status", "complete") != "complete":
                raise RuntimeError(f"the run with λ = {lam} ended {record['status']}: {record.get('divergence')}")
            records.append(record)
    return records


def collapse_table(records: list[dict[str, Any]], lambdas: list[float]) -> str:
    """One row per run: λ, mutual information, NLL, NLL − ln V, KL(q ‖ p), training time."""
    rows = []
    for lam, record in zip(lambdas, records):
        m = record["metrics"]
        rows.append(
            [
                lam,
                m["mutual_information"],
                m["nll"],
                m["nll"] - m["optimal_nll"],
                m["representational_kl"],
                record["train_wall_time_s"],
            ]
        )
    headers = ["λ", "I(X, Z) (nats)", "NLL (nats)", "NLL − ln V", "KL(q ‖ p) (nats)", "train time (s)"]
    return markdown_table(rows, headers, digits=3)


def collapse_summary(records: list[dict[str, Any]], lambdas: list[float]) -> tuple[dict, dict]:
    """Print the runs without the MI term and with the largest λ; return their metrics."""
    without, best = records[0]["metrics"], records[-1]["metrics"]
    for label, m in (("without the MI term (λ = 0)", without), (f"with λ = {lambdas[-1]}", best)):
        print(
            f"{label:28s} I(X, Z) = {m['mutual_information']:.3f} nats, NLL − ln V = {m['nll'] - m['optimal_nll']:+.3f}"
        )
    print(f"the most information a symbol can carry is H(X) = ln V = {without['optimal_nll']:.3f} nats")
    return without, best


def plot_collapse_demo(records: list[dict[str, Any]], lambdas: list[float]):
    """Two panels: the mutual-information estimate during training, and the final NLL vs MI."""
    import matplotlib.pyplot as plt

    fig, (curves, frontier) = plt.subplots(1, 2, figsize=(10, 3.8))
    for lam, record in zip(lambdas, records):
        history = record["train_history"]
        label = "no MI term (λ = 0)" if lam == 0 else f"λ = {lam}"
        curves.plot([h["step"] for h in history], [h["divergence"] for h in history], marker=".", label=label)
        m = record["metrics"]
        frontier.scatter(m["mutual_information"], m["nll"], s=50, label=label)
    optimum = records[0]["metrics"]["optimal_nll"]
    frontier.axhline(optimum, color="gray", linestyle="--", label="optimum ln V")
    curves.set(xlabel="training step", ylabel="Û − Ŝ on the batch (nats)", title="latent usage during training")
    frontier.set(xlabel="mutual information I(X, Z) (nats)", ylabel="NLL (nats)", title="data fit vs latent usage")
    curves.legend()
    frontier.legend()
    fig.tight_layout()
    return fig


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


# --- the λ/α/K explorer -----------------------------------------------------------------------------------

EXPLORER_BASES = (
    "vimco",
    "reinforce",
    "dreg",
    "iwae",
)  # score function on a categorical toy, reparameterised on a Gaussian one
EXPLORER_KINDS = ("kl", "renyi", "power")


@dataclass(frozen=True)
class ExplorerSettings:
    base: str = "vimco"  # gradient estimator: vimco, reinforce (categorical toy) or dreg, iwae (Gaussian toy)
    kind: str = "renyi"  # objective: kl, renyi or power
    lam: float = 0.5  # λ (kl, renyi); the power objective ties λ = (α − 1)/α
    alpha: float = 2.0  # α (renyi, power)


def _toy_for(base: str):
    if base in ("vimco", "reinforce"):
        return DiscreteToy(num_latents=2, num_categories=2, num_symbols=3, hidden=3, x=1, seed=0)
    return GaussianToy(dim=1, x=1.3, seed=0)


def _exact_table(toy, base: str) -> TableModel:
    """The toy as a TableModel: every latent state (categorical) or a fine grid (Gaussian, 1-D)."""
    params = toy.base()
    if isinstance(toy, DiscreteToy):
        z = toy.latent.enumerate()[:, None, :]  # [S, 1, L]
        log_cell = torch.zeros(())
    else:
        grid = torch.linspace(-10, 10, 8001, dtype=DTYPE)
        z = grid[:, None, None]  # [G, 1, 1]
        log_cell = (grid[1] - grid[0]).log()
    with torch.no_grad():
        posterior = toy.posterior(params)
        log_lik = toy.log_likelihood(params, z)[:, 0]
        log_prior = toy.latent.log_prior(z)[:, 0].to(DTYPE) + log_cell
        log_q = toy.latent.log_q(posterior, z)[:, 0] + log_cell
    return TableModel(log_prior, log_lik, log_q)


def _targets(table: TableModel, settings: ExplorerSettings) -> tuple[float, float, float]:
    """(true divergence the term estimates, true KL, true value the objective estimates)."""
    kl = table.true_kl
    if settings.kind == "kl":
        return kl, kl, table.log_marginal + settings.lam * kl
    renyi = table.renyi_divergence(settings.alpha) if settings.alpha != 1 else kl
    if settings.kind == "renyi":
        return renyi, kl, table.log_marginal + settings.lam * renyi
    return renyi, kl, table.log_power_marginal(settings.alpha) / settings.alpha


def _objective(settings: ExplorerSettings, K: int) -> Objective:
    kind = ObjectiveKind(settings.kind)
    lam = settings.lam if kind in (ObjectiveKind.KL, ObjectiveKind.RENYI) else 0.0
    alpha = settings.alpha if kind in (ObjectiveKind.RENYI, ObjectiveKind.POWER) else 1.0
    return Objective(kind, lam, alpha, K, K)


def explorer_curves(settings: ExplorerSettings, sample_counts: list[int], draws: int, seed: int) -> dict[str, Any]:
    """Everything the explorer plots, for one setting and every K.

    On the toy of the chosen estimator (a 2 × 2 categorical latent for vimco/reinforce, a
    1-D Gaussian for dreg/iwae), from ``draws`` independent sets of K samples: the mean and
    standard deviation of the divergence term and of the objective estimate, and the total
    variance of the gradient estimate (trace of its covariance over all parameters); the
    true divergence and objective come from exact enumeration (or a fine 1-D grid).
    VIMCO needs K ≥ 2: its K = 1 entries are None.
    """
    toy = _toy_for(settings.base)
    table = _exact_table(toy, settings.base)
    true_divergence, true_kl, true_objective = _targets(table, settings)
    result: dict[str, Any] = {
        "K": list(sample_counts),
        "true_divergence": true_divergence,
        "true_kl": true_kl,
        "true_objective": true_objective,
        "divergence_mean": [],
        "divergence_std": [],
        "objective_mean": [],
        "objective_std": [],
        "gradient_variance": [],
    }
    for K in sample_counts:
        objective = _objective(settings, K)
        generator = torch.Generator().manual_seed(seed * 1000 + K)
        params = toy.replicate(draws)
        with torch.no_grad():
            posterior = toy.posterior(params)
            z = toy.latent.sample(posterior, K, generator, reparameterize=False)
            log_lik = toy.log_likelihood(params, z)
            log_prior = toy.latent.log_prior(z).to(DTYPE)
            log_q = toy.latent.log_q(posterior, z)
        if settings.kind == "kl":
            divergence = kl_estimate(log_lik, log_prior, log_q)
        else:
            divergence = renyi_estimate(log_lik, log_prior, log_q, settings.alpha)
        value = objective(log_lik + log_prior - log_q, log_lik)
        result["divergence_mean"].append(divergence.mean().item())
        result["divergence_std"].append(divergence.std().item())
        result["objective_mean"].append(value.mean().item())
        result["objective_std"].append(value.std().item())
        if settings.base == "vimco" and K < 2:
            result["gradient_variance"].append(None)
        else:
            gradients = toy.draws(settings.base, objective, draws, seed * 1000 + K + 1)
            result["gradient_variance"].append(gradients.var(0).sum().item())
    return result


def explorer_grid(
    lambdas: list[float],
    alphas: list[float],
    sample_counts: list[int],
    draws: int,
    seed: int,
    bases: tuple[str, ...] = EXPLORER_BASES,
    kinds: tuple[str, ...] = EXPLORER_KINDS,
) -> dict[str, Any]:
    """:func:`explorer_curves` over a grid; keys "base|kind|λ index|α index". Settings an objective
    ignores (α for kl, λ for power) are computed once and shared."""
    curves: dict[str, Any] = {}
    computed: dict[ExplorerSettings, Any] = {}
    for base, kind in itertools.product(bases, kinds):
        for i, lam in enumerate(lambdas):
            for j, alpha in enumerate(alphas):
                settings = ExplorerSettings(base, kind, 0.0 if kind == "power" else lam, 1.0 if kind == "kl" else alpha)
                if settings not in computed:
                    computed[settings] = explorer_curves(settings, sample_counts, draws, seed)
                curves[f"{base}|{kind}|{i}|{j}"] = computed[settings]
    return {
        "lambdas": list(lambdas),
        "alphas": list(alphas),
        "K": list(sample_counts),
        "bases": list(bases),
        "kinds": list(kinds),
        "curves": curves,
    }


_EXPLORER_JS = """
(function() {
  var gd = document.getElementById('{div_id}');
  var grid = {grid};
  var state = {base: 0, kind: 1, lam: {lam_index}, alpha: {alpha_index}, k: {k_index}};
  function band(mean, std, sign) { return mean.map(function(m, i) { return m === null ? null : m + sign * std[i]; }); }
  function redraw() {
    var key = grid.bases[state.base] + '|' + grid.kinds[state.kind] + '|' + state.lam + '|' + state.alpha;
    var c = grid.curves[key];
    var K = grid.K, n = K.length, k = K[state.k];
    var flat = function(v) { return K.map(function() { return v; }); };
    var data = {
      y: [band(c.divergence_mean, c.divergence_std, 1), band(c.divergence_mean, c.divergence_std, -1),
          c.divergence_mean, flat(c.true_divergence), flat(c.true_kl),
          band(c.objective_mean, c.objective_std, 1), band(c.objective_mean, c.objective_std, -1),
          c.objective_mean, flat(c.true_objective), c.gradient_variance]
    };
    var g = c.gradient_variance[state.k];
    var title = grid.bases[state.base] + ', ' + grid.kinds[state.kind] + ' objective, λ = ' + grid.lambdas[state.lam] +
      ', α = ' + grid.alphas[state.alpha] + '<br>at K = ' + k + ': divergence term ' +
      c.divergence_mean[state.k].toFixed(3) + ' ± ' + c.divergence_std[state.k].toFixed(3) +
      ' (true ' + c.true_divergence.toFixed(3) + '), objective ' + c.objective_mean[state.k].toFixed(3) +
      ' (true ' + c.true_objective.toFixed(3) + '), gradient variance ' + (g === null ? 'n/a' : g.toPrecision(3));
    var shapes = ['x', 'x2', 'x3'].map(function(ax) {
      return {type: 'line', xref: ax, yref: 'paper', x0: k, x1: k, y0: 0, y1: 1, line: {dash: 'dot', color: 'gray'}};
    });
    Plotly.update(gd, data, {'title.text': title, shapes: shapes});
  }
  gd.on('plotly_sliderchange', function(e) { state[e.slider.name] = e.slider.steps.indexOf(e.step); redraw(); });
  gd.on('plotly_buttonclicked', function(e) { state[e.menu.name] = e.menu.buttons.indexOf(e.button); redraw(); });
  redraw();
})();
"""


def static_explorer_html(grid: dict[str, Any], div_id: str = "micmco-explorer") -> str:
    """The explorer for the static book: a plotly figure whose sliders and menus redraw precomputed curves.

    No kernel runs: a small script looks the chosen (estimator, objective, λ, α) up in ``grid``
    (from :func:`explorer_grid`) and restyles the traces; the K slider moves the marker.
    plotly.js is embedded, so the page works offline.
    """
    import plotly.graph_objects as go
    import plotly.io as pio
    from plotly.subplots import make_subplots

    K = grid["K"]
    first = grid["curves"][f"{grid['bases'][0]}|{grid['kinds'][1]}|0|0"]
    fig = make_subplots(rows=1, cols=3, subplot_titles=("divergence term", "objective", "gradient variance"))
    blue, fill = "rgb(31,119,180)", "rgba(31,119,180,0.2)"
    traces = [
        (1, go.Scatter(x=K, y=first["divergence_mean"], mode="lines", line={"width": 0}, showlegend=False)),
        (
            1,
            go.Scatter(
                x=K,
                y=first["divergence_mean"],
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor=fill,
                name="± 1 sd",
            ),
        ),
        (1, go.Scatter(x=K, y=first["divergence_mean"], mode="lines+markers", line={"color": blue}, name="estimate")),
        (
            1,
            go.Scatter(
                x=K,
                y=[first["true_divergence"]] * len(K),
                mode="lines",
                line={"dash": "dash", "color": "black"},
                name="true divergence",
            ),
        ),
        (
            1,
            go.Scatter(
                x=K, y=[first["true_kl"]] * len(K), mode="lines", line={"dash": "dot", "color": "red"}, name="true KL"
            ),
        ),
        (2, go.Scatter(x=K, y=first["objective_mean"], mode="lines", line={"width": 0}, showlegend=False)),
        (
            2,
            go.Scatter(
                x=K,
                y=first["objective_mean"],
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor=fill,
                showlegend=False,
            ),
        ),
        (2, go.Scatter(x=K, y=first["objective_mean"], mode="lines+markers", line={"color": blue}, showlegend=False)),
        (
            2,
            go.Scatter(
                x=K,
                y=[first["true_objective"]] * len(K),
                mode="lines",
                line={"dash": "dash", "color": "black"},
                name="true objective O(λ, x)",
            ),
        ),
        (
            3,
            go.Scatter(
                x=K,
                y=first["gradient_variance"],
                mode="lines+markers",
                line={"color": "rgb(44,160,44)"},
                name="gradient variance",
            ),
        ),
    ]
    for col, trace in traces:
        fig.add_trace(trace, row=1, col=col)
    for col in (1, 2, 3):
        fig.update_xaxes(type="log", title_text="K", tickvals=K, row=1, col=col)
    fig.update_yaxes(type="log", row=1, col=3)

    def slider(name: str, label: str, values: list, x: float, active: int) -> dict:
        return {
            "name": name,
            "active": active,
            "x": x,
            "y": -0.12,
            "len": 0.3,
            "yanchor": "top",
            "pad": {"t": 30, "r": 10},
            "currentvalue": {"prefix": f"{label} = ", "font": {"size": 13}},
            "font": {"size": 10},
            "steps": [{"label": f"{v:g}", "method": "skip", "args": [None]} for v in values],
        }

    def menu(name: str, values: list, x: float, active: int) -> dict:
        return {
            "name": name,
            "active": active,
            "x": x,
            "y": 1.3,
            "xanchor": "left",
            "yanchor": "bottom",
            "type": "dropdown",
            "buttons": [{"label": v, "method": "skip", "args": [None]} for v in values],
        }

    def label(text: str, x: float) -> dict:
        return {
            "text": text,
            "x": x,
            "y": 1.34,
            "xref": "paper",
            "yref": "paper",
            "showarrow": False,
            "xanchor": "right",
            "yanchor": "bottom",
        }

    k_index = min(2, len(K) - 1)
    lam_index = min(1, len(grid["lambdas"]) - 1)
    alpha_index = min(1, len(grid["alphas"]) - 1)
    fig.update_annotations(font_size=12)
    fig.update_layout(
        height=600,
        margin={"t": 180, "b": 150, "l": 50, "r": 20},
        title={"text": "", "font": {"size": 12}, "x": 0.0, "xanchor": "left", "y": 0.985, "yanchor": "top"},
        legend={"orientation": "h", "x": 0.0, "y": 1.12, "yanchor": "bottom", "font": {"size": 11}},
        sliders=[
            slider("lam", "λ", grid["lambdas"], 0.0, lam_index),
            slider("alpha", "α", grid["alphas"], 0.35, alpha_index),
            slider("k", "K", K, 0.7, k_index),
        ],
        updatemenus=[menu("base", grid["bases"], 0.08, 0), menu("kind", grid["kinds"], 0.33, 1)],
        annotations=list(fig.layout.annotations) + [label("estimator", 0.075), label("objective", 0.325)],
    )
    script = (
        _EXPLORER_JS.replace("{div_id}", div_id)
        .replace("{grid}", json.dumps(grid))
        .replace("{lam_index}", str(lam_index))
        .replace("{alpha_index}", str(alpha_index))
        .replace("{k_index}", str(k_index))
    )
    return pio.to_html(
        fig,
        full_html=False,
        include_plotlyjs=True,
        div_id=div_id,
        post_script=script,
        config={"displayModeBar": False, "responsive": True},
    )


@dataclass
class ExplorerFacts:
    kl_error_first: float  # |E[Û − Ŝ] − KL| at the smallest K (KL objective)
    kl_error_last: float  # the same at the largest K
    vimco_falls: bool  # VIMCO's gradient variance at the largest K is below its first defined value
    reinforce_grows: bool  # REINFORCE's gradient variance at the largest K is above its K = 1 value
    dreg_below_iwae_at_last: bool  # DReG's gradient variance below IWAE's at the largest K
    lines: list[str]


def explorer_facts(grid: dict[str, Any]) -> ExplorerFacts:
    """What the explorer chapter's prose says, read off the grid at the first λ index 1 and α index 1."""
    i, j = min(1, len(grid["lambdas"]) - 1), min(1, len(grid["alphas"]) - 1)
    curves = lambda base, kind: grid["curves"][f"{base}|{kind}|{i}|{j}"]  # noqa: E731
    K = grid["K"]
    kl = curves("vimco", "kl")
    first, last = abs(kl["divergence_mean"][0] - kl["true_kl"]), abs(kl["divergence_mean"][-1] - kl["true_kl"])
    vimco = [v for v in curves("vimco", "renyi")["gradient_variance"] if v is not None]
    reinforce = curves("reinforce", "renyi")["gradient_variance"]
    dreg, iwae = curves("dreg", "renyi")["gradient_variance"], curves("iwae", "renyi")["gradient_variance"]
    facts = ExplorerFacts(first, last, vimco[-1] < vimco[0], reinforce[-1] > reinforce[0], dreg[-1] < iwae[-1], [])
    lam, alpha = grid["lambdas"][i], grid["alphas"][j]
    facts.lines = [
        f"KL objective: |E[Û − Ŝ] − KL| = {first:.3f} at K = {K[0]}, {last:.3f} at K = {K[-1]}",
        f"Rényi objective, λ = {lam:g}, α = {alpha:g}, gradient variance from K = {K[0]} to {K[-1]}:",
        f"  VIMCO {vimco[0]:.3g} -> {vimco[-1]:.3g} (falls: {facts.vimco_falls})",
        f"  REINFORCE {reinforce[0]:.3g} -> {reinforce[-1]:.3g} (grows: {facts.reinforce_grows})",
        f"  at K = {K[-1]}: DReG {dreg[-1]:.3g}, IWAE {iwae[-1]:.3g} (DReG below: {facts.dreg_below_iwae_at_last})",
    ]
    return facts


class LiveExplorer:
    """The explorer in a live kernel: ipywidgets controls that recompute with micmco and redraw.

    ``controls`` holds the widgets; ``update()`` is their callback (tests call it directly);
    ``curves`` is what was last plotted.
    """

    def __init__(
        self,
        sample_counts: list[int],
        draws: int,
        seed: int,
        settings: ExplorerSettings = ExplorerSettings(),
        lambdas: list[float] = (0.0, 0.25, 0.5, 0.75, 0.9),
        alphas: list[float] = (0.5, 2.0, 4.0, 8.0),
    ):
        import ipywidgets as widgets
        import matplotlib.pyplot as plt

        self.sample_counts, self.draws, self.seed = list(sample_counts), draws, seed
        self.controls = {
            "base": widgets.Dropdown(options=list(EXPLORER_BASES), value=settings.base, description="estimator"),
            "kind": widgets.Dropdown(options=list(EXPLORER_KINDS), value=settings.kind, description="objective"),
            "lam": widgets.SelectionSlider(options=list(lambdas), value=settings.lam, description="λ"),
            "alpha": widgets.SelectionSlider(options=list(alphas), value=settings.alpha, description="α"),
            "k": widgets.SelectionSlider(
                options=self.sample_counts,
                value=self.sample_counts[min(2, len(self.sample_counts) - 1)],
                description="K",
            ),
        }
        self.output = widgets.Output()
        with plt.ioff():
            self.figure, self.axes = plt.subplots(1, 3, figsize=(13, 3.6))
        self.curves: dict[str, Any] = {}
        for control in self.controls.values():
            control.observe(lambda _change: self.update(), names="value")
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.controls["base"], self.controls["kind"]]),
                widgets.HBox([self.controls["lam"], self.controls["alpha"], self.controls["k"]]),
                self.output,
            ]
        )
        self.update()

    @property
    def settings(self) -> ExplorerSettings:
        c = self.controls
        return ExplorerSettings(c["base"].value, c["kind"].value, float(c["lam"].value), float(c["alpha"].value))

    def update(self) -> None:
        """Recompute the curves for the controls' values and redraw the figure."""
        settings = self.settings
        self.curves = explorer_curves(settings, self.sample_counts, self.draws, self.seed)
        draw_explorer(self.axes, self.curves, settings, self.controls["k"].value)
        self.figure.tight_layout()
        self.output.clear_output(wait=True)
        with self.output:
            from IPython.display import display

            display(self.figure)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def draw_explorer(axes, curves: dict[str, Any], settings: ExplorerSettings, k: int) -> None:
    """The explorer's three panels on matplotlib axes."""
    K = curves["K"]
    divergence_ax, objective_ax, gradient_ax = axes
    for ax in axes:
        ax.clear()
    for ax, name, truth, truth_label in (
        (divergence_ax, "divergence", curves["true_divergence"], "true divergence"),
        (objective_ax, "objective", curves["true_objective"], "true O(λ, x)"),
    ):
        mean, std = curves[f"{name}_mean"], curves[f"{name}_std"]
        ax.plot(K, mean, marker="o", label="estimate")
        ax.fill_between(K, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], alpha=0.2)
        ax.axhline(truth, color="black", linestyle="--", label=truth_label)
    divergence_ax.axhline(curves["true_kl"], color="red", linestyle=":", label="true KL")
    variance = [(k_, v) for k_, v in zip(K, curves["gradient_variance"]) if v is not None]
    gradient_ax.plot([a for a, _ in variance], [b for _, b in variance], marker="o", color="tab:green")
    gradient_ax.set_yscale("log")
    for ax, title in zip(axes, ("divergence term (± 1 sd)", "objective (± 1 sd)", "gradient variance")):
        ax.axvline(k, color="gray", linestyle=":")
        ax.set(xscale="log", xlabel="K", title=title)
        ax.set_xticks(K, [str(v) for v in K])
    divergence_ax.legend(fontsize=8)
    objective_ax.legend(fontsize=8)
    axes[0].figure.suptitle(
        f"{settings.base}, {settings.kind} objective, λ = {settings.lam:g}, α = {settings.alpha:g}", fontsize=10
    )


# --- §7.1, Appendices A and B.3: the synthetic figures from committed sweep results -----------------
#
# Every curve of Figures 2-7, 15, 26 and 27 is one study, params/studies/<profile>/<curve>.yaml, whose
# sweep exports results/<profile>/<profile>-<curve>.tsv; the paper's own trials of the same curve are
# data/paper-frontiers/synthetic/<paper file>.tsv. Nothing is trained here: these functions read
# the committed tables, and a curve without a table is reported as missing, with the command.

SYNTHETIC_FIGURES: dict[int, tuple[str, tuple[str, ...]]] = {
    2: ("ELBO and IWAE with K samples", ("elbo-kl", "elbo-renyi", "iwae1-kl", "iwae1-renyi", "iwae16-kl",
                                          "iwae16-renyi", "iwae64-kl", "iwae64-renyi")),
    3: ("ELBO and DReG with K samples", ("elbo-kl", "elbo-renyi", "dreg1-kl", "dreg1-renyi", "dreg16-kl",
                                          "dreg16-renyi", "dreg64-kl", "dreg64-renyi")),
    4: ("DReG with asymmetric samples (K for ln p(x) / K′ for the divergence)",
        ("dreg1-kl", "dreg1-renyi", "dreg16-kl1", "dreg16-renyi1", "dreg1-kl16", "dreg1-renyi16", "dreg16-kl",
         "dreg16-renyi")),
    5: ("REINFORCE with K samples", ("reinforce1-kl", "reinforce1-renyi", "reinforce16-kl", "reinforce16-renyi",
                                      "reinforce64-kl", "reinforce64-renyi")),
    6: ("VIMCO with K samples (VIMCO 1 is REINFORCE 1)", ("reinforce1-kl", "reinforce1-renyi", "vimco16-kl",
                                                          "vimco16-renyi", "vimco64-kl", "vimco64-renyi")),
    7: ("VIMCO with asymmetric samples", ("reinforce1-kl", "reinforce1-renyi", "vimco16-kl1", "vimco16-renyi1",
                                          "vimco1-kl16", "vimco1-renyi16", "vimco16-kl", "vimco16-renyi")),
    15: ("the VQ-VAE against VIMCO and REINFORCE", ("vqvae", "reinforce1-renyi", "vimco16-kl", "vimco16-renyi")),
    26: ("the power objective with DReG 16", ("dreg16-power", "dreg16-kl", "dreg16-renyi")),
    27: ("the power objective with VIMCO 16", ("vimco16-power", "vimco16-kl", "vimco16-renyi")),
}  # fmt: skip
_CURVE_ID = re.compile(
    r"^(?P<estimator>elbo|iwae|dreg|reinforce|vimco)(?P<k>\d*)-(?P<objective>kl|renyi|power)(?P<k_mi>\d*)$"
)
_PAPER_TOKENS = {"elbo": "vae", "kl": "kl", "renyi": "renyi", "power": "alpha"}
MIN_TRIALS = 8  # a curve with fewer complete trials is drawn dotted and flagged with its count


def synthetic_curve_ids() -> list[str]:
    """Every curve of the synthetic figures (35), each once, in figure order."""
    return list(dict.fromkeys(curve for _, curves in SYNTHETIC_FIGURES.values() for curve in curves))


def paper_file_name(curve_id: str) -> str:
    """The paper's trial file of a curve: ``dreg16-kl1`` -> ``l40x0-bs256-hs128-t40-dreg16-kl1.tsv``."""
    if curve_id == "vqvae":
        return "bs256-hs128-t40-vq-vae.tsv"
    match = _CURVE_ID.match(curve_id)
    if match is None:
        raise ValueError(f"unknown curve {curve_id!r}; curves are named like dreg16-kl, vimco1-renyi16, vqvae")
    estimator, k = match["estimator"], match["k"]
    latents = "l40x0" if estimator in ("elbo", "iwae", "dreg") else "l8x10"
    if estimator == "reinforce" and k == "1":
        estimator = "vimco"  # the paper's files call REINFORCE 1 "vimco1"
    name = _PAPER_TOKENS.get(estimator, estimator) + ("" if estimator == "elbo" else k)
    return f"{latents}-bs256-hs128-t40-{name}-{_PAPER_TOKENS[match['objective']]}{match['k_mi']}.tsv"


def curve_label(curve_id: str) -> str:
    """The paper's name of a curve: "DReG 16/1, KL", "REINFORCE 1, Rényi", "VQ-VAE"."""
    if curve_id == "vqvae":
        return "VQ-VAE"
    match = _CURVE_ID.match(curve_id)
    from .pareto import ESTIMATOR_NAMES, OBJECTIVE_NAMES

    name = ESTIMATOR_NAMES[match["estimator"]]
    if match["estimator"] != "elbo":
        name += f" {match['k']}" + (f"/{match['k_mi']}" if match["k_mi"] else "")
    return f"{name}, {OBJECTIVE_NAMES[match['objective']]}"


@dataclass
class CurveResults:
    """One curve of a figure: our trials (if any) beside the paper's, both normalised."""

    curve_id: str
    ours: Any  # micmco.pareto.Curve, normalised (usage / ln V, NLL - ln V); None without complete trials
    paper: Any  # the paper's Curve, normalised
    rows: int  # our finished trials: complete + diverged + failed
    complete: int
    wall_s: float  # the sum of wall_s over our finished trials
    table: str  # results/<profile>/<profile>-<curve>.tsv, relative to the repository

    @property
    def label(self) -> str:
        return curve_label(self.curve_id)

    @property
    def too_few(self) -> bool:
        return 0 < self.complete < MIN_TRIALS


def paper_frontiers_dir() -> Path:
    """The paper's trial files, vendored in the repository (a copy of shared/data/paper-frontiers)."""
    return repo_path("data/paper-frontiers/synthetic")


def load_curve(curve_id: str, profile: str = "cpu", results_dir: Path | None = None) -> CurveResults:
    """Our committed trials of a curve (results/<profile>/<profile>-<curve>.tsv) and the paper's."""
    from .pareto import ParetoError, _read_table, read_paper_trials, read_results

    results_dir = results_dir or repo_path("results") / profile
    table = Path(results_dir) / f"{profile}-{curve_id}.tsv"
    paper = read_paper_trials(paper_frontiers_dir() / paper_file_name(curve_id)).normalised()
    ours, rows, complete, wall_s = None, 0, 0, 0.0
    if table.exists():
        _, raw = _read_table(table)
        rows = len(raw)
        complete = sum(row["status"] == "complete" for _, row in raw)
        wall_s = sum(float(row["wall_s"] or 0) for _, row in raw)
        if complete:
            try:
                curves = read_results(table)
            except ParetoError:  # e.g. the VQ-VAE's rows have no K: read the complete rows directly
                curves = [_curve_from_rows(table, [row for _, row in raw if row["status"] == "complete"])]
            if curves:  # one setting per study; the largest if a table mixes several
                ours = max(curves, key=lambda c: len(c.mi)).normalised()
    try:
        shown = table.relative_to(repo_path("results").parent)
    except ValueError:
        shown = table
    return CurveResults(curve_id, ours, paper, rows, complete, wall_s, str(shown))


def _curve_from_rows(table: Path, rows: list[dict[str, str]]):
    """A Curve of our complete trials whose setting pareto.read_results cannot read (no K: the VQ-VAE)."""
    import numpy as np

    from .pareto import Curve

    first = rows[0]
    return Curve(
        source="ours", path=table, estimator=first["estimator"], k=0, k_mi=0, objective=first["objective"] or "none",
        vocab_size=int(first["vocab_size"]), steps=int(first["steps"]), batch_size=int(first["batch_size"]),
        mi=np.array([float(row["mi"]) for row in rows]), nll=np.array([float(row["nll"]) for row in rows]),
        hyperparameters={"learning_rate": np.array([float(row["learning_rate"]) for row in rows])},
    )  # fmt: skip


@dataclass
class FigureResults:
    number: int
    title: str
    profile: str
    curves: list[CurveResults]

    @property
    def name(self) -> str:
        return f"Figure {self.number}"

    @property
    def wall_s(self) -> float:
        return sum(c.wall_s for c in self.curves)

    @property
    def missing(self) -> list[CurveResults]:
        return [c for c in self.curves if c.ours is None]


def load_figure(number: int, profile: str = "cpu", results_dir: Path | None = None) -> FigureResults:
    """Figure ``number`` of the paper (2-7, 15, 26, 27): each of its curves, ours and the paper's."""
    if number not in SYNTHETIC_FIGURES:
        raise ValueError(f"no synthetic figure {number}; choose one of {sorted(SYNTHETIC_FIGURES)}")
    title, curve_ids = SYNTHETIC_FIGURES[number]
    return FigureResults(number, title, profile, [load_curve(c, profile, results_dir) for c in curve_ids])


def lowest_excess(curve, min_usage: float) -> float:
    """The lowest excess NLL among trials with usage / ln V >= ``min_usage`` (NaN: none reach it)."""
    from .pareto import lowest_nll

    return math.nan if curve is None else lowest_nll(curve, min_usage)


def _colour_key(curve_id: str) -> str:
    return curve_id if curve_id == "vqvae" else re.sub(r"-(kl|renyi|power)", "-", curve_id)


def plot_figure(figure: FigureResults):
    """Figure N as in the paper, on the normalised axes: one panel per objective, our frontiers solid
    (dotted when fewer than MIN_TRIALS trials), the paper's dashed and lighter."""
    import matplotlib.pyplot as plt

    objectives = list(dict.fromkeys(_CURVE_ID.match(c.curve_id)["objective"] for c in figure.curves
                                    if c.curve_id != "vqvae"))  # fmt: skip
    names = {"kl": "KL objective", "renyi": "Rényi objective", "power": "power objective"}
    fig, axes = plt.subplots(1, len(objectives), figsize=(5.2 * len(objectives), 4.3), sharey=True, squeeze=False)
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours: dict[str, str] = {}
    for c in figure.curves:
        colours.setdefault(_colour_key(c.curve_id), palette[len(colours) % len(palette)])
    tops = []
    for ax, objective in zip(axes[0], objectives):
        for c in figure.curves:
            if c.curve_id != "vqvae" and _CURVE_ID.match(c.curve_id)["objective"] != objective:
                continue
            colour = colours[_colour_key(c.curve_id)]
            name = c.label.split(",")[0]
            front = c.paper.frontier()
            ax.plot(c.paper.mi[front], c.paper.nll[front], "--", color=colour, alpha=0.5, lw=1.2,
                    label=f"{name} (paper, {len(c.paper.mi)} trials)")  # fmt: skip
            tops.append(float(c.paper.nll[front].max()))
            if c.ours is None:
                ax.plot([], [], " ", label=f"{name} (ours: no results yet)")
                continue
            front = c.ours.frontier()
            ax.plot(c.ours.mi, c.ours.nll, ".", color=colour, alpha=0.25, ms=4)
            ax.plot(c.ours.mi[front], c.ours.nll[front], ":" if c.too_few else "-", marker="o", color=colour, ms=4,
                    label=f"{name} (ours, {c.complete} trials{', too few' if c.too_few else ''})")  # fmt: skip
            tops.append(float(c.ours.nll[front].max()))
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.set(xlim=(0, 1.05), xlabel="latent usage: MI / ln V", title=names[objective])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    top = min(max(tops, default=0.25), 0.3)  # the paper's axes span 0.25 nats of excess NLL
    axes[0][0].set_ylim(-0.01, top * 1.05 + 0.01)
    axes[0][0].set_ylabel("excess NLL: NLL − ln V (nats)")
    fig.suptitle(f"{figure.name}: {figure.title} (ours: {figure.profile} profile, V = 200; paper: V = 10000)",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    return fig


def figure_table(figure: FigureResults, min_usages: list[float]) -> str:
    """Markdown: per curve, our trial count and compute, then the lowest excess NLL at usage / ln V >= m,
    ours and the paper's ("–": no trial reaches that usage; "no results": no table yet)."""
    headers = ["curve", "our trials (complete/run)", "compute (s)"]
    headers += [f"m = {m:g}: ours / paper" for m in min_usages]
    rows = []
    for c in figure.curves:
        row = [c.label, f"{c.complete}/{c.rows}" + (" (too few)" if c.too_few else ""), f"{c.wall_s:.0f}"]
        for m in min_usages:
            ours = lowest_excess(c.ours, m)
            paper = lowest_excess(c.paper, m)
            row.append(("no results" if c.ours is None else ("–" if math.isnan(ours) else f"{ours:.4f}"))
                       + " / " + ("–" if math.isnan(paper) else f"{paper:.4f}"))  # fmt: skip
        rows.append(row)
    return markdown_table(rows, headers)


@dataclass
class OrderingComparison:
    """Whether our runs order the curves of a figure as the paper's do at usage / ln V >= m."""

    figure: int
    min_usage: float
    agree: list[tuple[str, str]]  # (better, worse) in both
    disagree: list[tuple[str, str]]  # (paper's better, paper's worse) that ours reverse
    ties: list[tuple[str, str]]  # not compared: closer than the tolerance in the paper, or the same objective
    # (the KL and Rényi curves of a single-sample estimator)
    paper_best: str
    ours_best: str
    compared: list[str]  # curves with values in both
    unreached: list[str]  # curves of ours with trials but none at usage >= m
    missing: list[str]  # curves without results
    tolerance: float = 0.005  # nats of excess NLL

    @property
    def pairs(self) -> int:
        return len(self.agree) + len(self.disagree)

    @property
    def reproduced(self) -> bool | None:
        """True when every compared pair is ordered as in the paper; None when fewer than two curves compare."""
        return None if len(self.compared) < 2 else not self.disagree

    def lines(self) -> list[str]:
        head = f"Figure {self.figure}, usage / ln V >= {self.min_usage:g}:"
        out = []
        if len(self.compared) < 2:
            out.append(
                f"{head} fewer than two curves have results there ({len(self.compared)}); no ordering to compare"
            )
        else:
            out.append(
                f"{head} {len(self.agree)} of {self.pairs} pairs of curves ordered as in the paper; "
                f"best: ours {self.ours_best}, the paper's {self.paper_best} (among the {len(self.compared)} compared)"
            )
            for better, worse in self.disagree:
                out.append(f"  reversed: the paper has {better} below {worse}, ours the opposite")
            if self.ties:
                out.append(
                    f"  not compared (within {self.tolerance:g} nats in the paper, or K = 1 KL vs Rényi): "
                    + "; ".join(f"{a} ~ {b}" for a, b in self.ties)
                )
        if self.unreached:
            out.append(f"  ours reach no usage >= {self.min_usage:g}: {'; '.join(self.unreached)}")
        if self.missing:
            out.append(f"  no results yet: {'; '.join(self.missing)}")
        return out


def compare_ordering(figure: FigureResults, min_usage: float, tolerance: float = 0.005) -> OrderingComparison:
    """Pairwise: for each two curves that both we and the paper have at usage / ln V >= m, is the
    one with the lower excess NLL the same? Pairs the paper separates by less than ``tolerance``
    nats are ties, not compared."""
    values = {}
    labels = {c.label: c.curve_id for c in figure.curves}
    unreached, missing = [], []
    for c in figure.curves:
        ours, paper = lowest_excess(c.ours, min_usage), lowest_excess(c.paper, min_usage)
        if c.ours is None:
            missing.append(c.label)
        elif math.isnan(ours):
            unreached.append(c.label)
        elif not math.isnan(paper):
            values[c.label] = (ours, paper)
    agree, disagree, ties = [], [], []
    for a, b in itertools.combinations(values, 2):
        (ours_a, paper_a), (ours_b, paper_b) = values[a], values[b]
        better, worse = (a, b) if paper_a <= paper_b else (b, a)
        if abs(paper_a - paper_b) < tolerance or _equivalent(labels[a], labels[b]):
            ties.append((better, worse))
            continue
        same = (ours_a <= ours_b) == (paper_a <= paper_b)
        (agree if same else disagree).append((better, worse))
    best = lambda index: min(values, key=lambda k: values[k][index]) if values else "-"  # noqa: E731
    return OrderingComparison(figure.number, min_usage, agree, disagree, ties, best(1), best(0), list(values),
                              unreached, missing, tolerance)  # fmt: skip


def _wrap(lines: list[str], width: int = 96) -> list[str]:
    """Printed lines that fit the book's column: long ones continue indented."""
    import textwrap

    out = []
    for line in lines:
        indent = " " * (len(line) - len(line.lstrip()) + 4)
        out += textwrap.wrap(line, width, subsequent_indent=indent, break_on_hyphens=False) or [""]
    return out


def _equivalent(curve_a: str, curve_b: str) -> bool:
    """The KL and Rényi curves of one single-sample estimator: the same objective (Props. 4-5), so
    their order is tuning noise."""
    a, b = _CURVE_ID.match(curve_a), _CURVE_ID.match(curve_b)
    return bool(a and b) and a["estimator"] == b["estimator"] and _draws(curve_a) == _draws(curve_b) == 1


def figure_facts(figure: FigureResults, min_usages: list[float], tolerance: float = 0.005) -> list[str]:
    """The reading of a figure, computed: trials, compute, and the ordering at each m."""
    done = [c for c in figure.curves if c.ours is not None]
    lines = [
        f"{figure.name}: {len(done)} of {len(figure.curves)} curves have results "
        f"({sum(c.complete for c in figure.curves)} complete trials, {figure.wall_s / 60:.1f} min of compute)"
    ]
    for c in figure.curves:
        if c.too_few:
            lines.append(f"  {c.label}: only {c.complete} complete trials (fewer than {MIN_TRIALS}): a rough frontier")
        if c.rows and not c.complete:
            lines.append(f"  {c.label}: {c.rows} trials run, none complete (all diverged or failed)")
    for m in min_usages:
        lines += compare_ordering(figure, m, tolerance).lines()
    lines.append(f"Re-run here: make reproduce PROFILE={figure.profile} FIGURE={figure.number}; "
                 f"at the paper's settings on a GPU: {reproduce_command(figure.number)}")  # fmt: skip
    return _wrap(lines)


def reproduce_command(figure: int | None = None, profile: str = "paper") -> str:
    """The one command that re-runs a figure's studies (on a GPU box at the paper profile)."""
    return f"make reproduce PROFILE={profile}" + (f" FIGURE={figure}" if figure is not None else "")


def figure_studies(figure: int | None, profile: str) -> list[str]:
    """The study files behind a figure (all synthetic figures when None), cheapest first (by the draws
    max(K, K') a step takes), for ``make reproduce``."""
    if profile not in ("cpu", "paper"):
        raise ValueError(f"no synthetic studies for profile {profile!r}; choose cpu or paper")
    curves = synthetic_curve_ids() if figure is None else list(load_figure_ids(figure))
    return [f"params/studies/{profile}/{curve}.yaml" for curve in sorted(curves, key=_draws)]


def _draws(curve_id: str) -> int:
    match = _CURVE_ID.match(curve_id)
    return 1 if match is None else max(int(match["k"] or 1), int(match["k_mi"] or 1))


def load_figure_ids(figure: int) -> tuple[str, ...]:
    if figure not in SYNTHETIC_FIGURES:
        raise ValueError(f"no synthetic figure {figure}; choose one of {sorted(SYNTHETIC_FIGURES)}")
    return SYNTHETIC_FIGURES[figure][1]


def compute_summary(profile: str = "cpu", results_dir: Path | None = None) -> tuple[int, int, float]:
    """Over every table in results/<profile>/: (tables, finished trials, sum of wall_s in seconds)."""
    from .pareto import _read_table

    results_dir = Path(results_dir or repo_path("results") / profile)
    tables, trials, seconds = 0, 0, 0.0
    for table in sorted(results_dir.glob("*.tsv")):
        _, rows = _read_table(table)
        tables += 1
        trials += len(rows)
        seconds += sum(float(row.get("wall_s") or 0) for _, row in rows)
    return tables, trials, seconds


# --- §8 and the appendices: the paper's claims about the synthetic figures, checked on both sides ---

# (claim in the paper's words, figure, the curves that should be lower, the curves they should beat)
SYNTHETIC_CLAIMS: tuple[tuple[str, int, tuple[str, ...], tuple[str, ...]], ...] = (
    ("IWAE 1 is much worse than the ELBO", 2, ("elbo-kl", "elbo-renyi"), ("iwae1-kl", "iwae1-renyi")),
    ("IWAE 64 degrades from IWAE 16", 2, ("iwae16-kl", "iwae16-renyi"), ("iwae64-kl", "iwae64-renyi")),
    ("DReG 1 beats the ELBO", 3, ("dreg1-kl", "dreg1-renyi"), ("elbo-kl", "elbo-renyi")),
    ("multi-sample DReG 16 beats single-sample DReG 1", 3, ("dreg16-kl", "dreg16-renyi"), ("dreg1-kl", "dreg1-renyi")),
    ("Rényi beats KL with DReG 16", 3, ("dreg16-renyi",), ("dreg16-kl",)),
    ("DReG 16 beats DReG 16/1 and DReG 1/16", 4, ("dreg16-kl", "dreg16-renyi"),
     ("dreg16-kl1", "dreg16-renyi1", "dreg1-kl16", "dreg1-renyi16")),
    ("REINFORCE 16 improves (a little) on REINFORCE 1", 5, ("reinforce16-kl", "reinforce16-renyi"),
     ("reinforce1-kl", "reinforce1-renyi")),
    ("REINFORCE 64 degrades from REINFORCE 16", 5, ("reinforce16-kl", "reinforce16-renyi"),
     ("reinforce64-kl", "reinforce64-renyi")),
    ("VIMCO 16 beats REINFORCE 1", 6, ("vimco16-kl", "vimco16-renyi"), ("reinforce1-kl", "reinforce1-renyi")),
    ("Rényi beats KL with VIMCO 16", 6, ("vimco16-renyi",), ("vimco16-kl",)),
    ("VIMCO 64 is worse than VIMCO 16", 6, ("vimco16-kl", "vimco16-renyi"), ("vimco64-kl", "vimco64-renyi")),
    ("VIMCO 16 beats VIMCO 16/1 and VIMCO 1/16", 7, ("vimco16-kl", "vimco16-renyi"),
     ("vimco16-kl1", "vimco16-renyi1", "vimco1-kl16", "vimco1-renyi16")),
    ("discrete latents with VIMCO 16 beat continuous ones with DReG 16", 6, ("vimco16-kl", "vimco16-renyi"),
     ("dreg16-kl", "dreg16-renyi")),
    ("the VQ-VAE beats REINFORCE 1", 15, ("vqvae",), ("reinforce1-renyi",)),
    ("VIMCO 16 beats the VQ-VAE", 15, ("vimco16-kl", "vimco16-renyi"), ("vqvae",)),
    ("the power objective beats KL with DReG 16", 26, ("dreg16-power",), ("dreg16-kl",)),
    ("the power objective lags Rényi with DReG 16", 26, ("dreg16-renyi",), ("dreg16-power",)),
    ("the power objective beats KL with VIMCO 16", 27, ("vimco16-power",), ("vimco16-kl",)),
    ("the power objective lags Rényi with VIMCO 16", 27, ("vimco16-renyi",), ("vimco16-power",)),
)  # fmt: skip


def _best(curves: dict[str, CurveResults], ids: tuple[str, ...], source: str, min_usage: float) -> tuple[float, int]:
    """The lowest excess NLL at usage >= m over a set of curves, and how many of them have results."""
    values = [lowest_excess(getattr(curves[i], source), min_usage) for i in ids]
    have = sum(getattr(curves[i], source) is not None for i in ids)
    finite = [v for v in values if not math.isnan(v)]
    return (min(finite) if finite else math.nan), have


def _verdict(better: float, worse: float, complete: bool, tolerance: float) -> str:
    if not complete:
        return "no results yet"
    if math.isnan(better) and math.isnan(worse):
        return "neither reaches m"
    if math.isnan(worse) or (not math.isnan(better) and better < worse - tolerance):
        return "holds"
    if math.isnan(better) or better > worse + tolerance:
        return "fails"
    return "tie"


def _cell(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.4f}"


def check_claims(
    min_usage: float, profile: str = "cpu", figures: tuple[int, ...] | None = None, tolerance: float = 0.005,
    results_dir: Path | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Each claim of the paper about the synthetic figures, decided on the paper's trials and on ours:
    the lowest excess NLL at usage / ln V >= m of the curves that should be lower against the others
    ("holds", "fails", "tie" within ``tolerance`` nats, "neither reaches m", "no results yet")."""
    ids = {i for claim in SYNTHETIC_CLAIMS for i in (*claim[2], *claim[3])}
    curves = {i: load_curve(i, profile, results_dir) for i in sorted(ids)}
    rows = []
    for text, figure, better, worse in SYNTHETIC_CLAIMS:
        if figures is not None and figure not in figures:
            continue
        row = {"claim": text, "figure": figure}
        for source in ("paper", "ours"):
            low, have_low = _best(curves, better, source, min_usage)
            high, have_high = _best(curves, worse, source, min_usage)
            row[source] = _verdict(low, high, have_low > 0 and have_high > 0, tolerance)
            partial = have_low < len(better) or have_high < len(worse)
            row[f"{source}_values"] = f"{_cell(low)} vs {_cell(high)}" + (
                f"; partial: {have_low + have_high} of {len(better) + len(worse)} curves" if partial else ""
            )
        row["supported"] = row["ours"] == row["paper"] == "holds"
        rows.append(row)
    return rows


def claims_table(rows: list[dict[str, Any]], min_usage: float) -> str:
    """Markdown: claim, figure, the paper's and our verdicts with the two lowest excess NLLs each."""
    return markdown_table(
        [
            [
                r["claim"],
                f"Figure {r['figure']}",
                f"{r['paper']} ({r['paper_values']})",
                f"{r['ours']} ({r['ours_values']})",
            ]
            for r in rows
        ],  # fmt: skip
        [
            "the paper's claim",
            "figure",
            f"paper: verdict (excess NLL at usage ≥ {min_usage:g} ln V)",
            "ours (cpu profile)",
        ],  # fmt: skip
    )


def claims_summary(rows: list[dict[str, Any]]) -> list[str]:
    """Counted: how many claims our runs support, contradict, or cannot decide yet."""
    counts: dict[str, list[str]] = {}
    for r in rows:
        counts.setdefault(r["ours"], []).append(r["claim"])
    paper_holds = sum(r["paper"] == "holds" for r in rows)
    lines = [f"{len(rows)} claims; on the paper's own trials {paper_holds} hold at this m."]
    for verdict in ("holds", "fails", "tie", "neither reaches m", "no results yet"):
        if verdict in counts:
            lines.append(f"ours, {verdict}: {len(counts[verdict])}")
            lines += [f"  - {claim}" for claim in counts[verdict]]
    return lines


def slope_statement(
    low: float, high: float, profile: str = "cpu", results_dir: Path | None = None, tolerance: float = 0.005
) -> str:
    """ "All Pareto curves slope upwards". A frontier cannot fall (fewer trials qualify at higher
    usage), so the claim is that it rises: the lowest excess NLL at usage >= ``high`` ln V is above
    the one at >= ``low`` ln V by more than ``tolerance`` nats. Counted for our curves with results
    and for the paper's curves of the same figures."""
    counts = {"ours": [0, [], 0], "paper": [0, [], 0]}  # rising, flat (labels), never reaching high
    total = 0
    for curve_id in synthetic_curve_ids():
        c = load_curve(curve_id, profile, results_dir)
        if c.ours is None:
            continue
        total += 1
        for source, curve in (("ours", c.ours), ("paper", c.paper)):
            a, b = lowest_excess(curve, low), lowest_excess(curve, high)
            if math.isnan(b):
                counts[source][2] += 1
            elif b - a > tolerance:
                counts[source][0] += 1
            else:
                counts[source][1].append(c.label)
    ours, paper = counts["ours"], counts["paper"]
    text = (
        f"Of our {total} curves with results, {ours[0]} rise by more than {tolerance:g} nats of excess NLL "
        f"from usage ≥ {low:g} ln V to ≥ {high:g} ln V, {len(ours[1])} stay within it"
        + (f" ({'; '.join(ours[1])})" if ours[1] else "")
        + f" and {ours[2]} never reach {high:g} ln V; the paper's {total} curves of the same settings: "
        f"{paper[0]} rise, {len(paper[1])} stay within it"
        + (f" ({'; '.join(paper[1])})" if paper[1] else "")
        + f" and {paper[2]} never reach {high:g} ln V."
    )
    return "\n".join(_wrap([text]))


MARGIN_BINS = (0.005, 0.02, 0.1)  # nats: edges of the paper's margins between two curves


@dataclass
class PairComparison:
    """Two curves of one figure, both reaching usage / ln V >= m on both sides; ``better`` is the
    lower in the paper."""

    better: CurveResults
    worse: CurveResults
    paper: tuple[float, float]  # lowest excess NLL, better then worse
    ours: tuple[float, float]

    @property
    def margin(self) -> float:
        return self.paper[1] - self.paper[0]

    @property
    def same_order(self) -> bool:
        return self.ours[0] <= self.ours[1]


def compare_pairs(
    min_usage: float, profile: str = "cpu", figures: tuple[int, ...] = (2, 3, 4, 5, 6, 7),
    results_dir: Path | None = None,
) -> list[PairComparison]:  # fmt: skip
    """Every pair of curves that share a figure of ``figures`` (each pair once), leaving out the KL
    and Rényi curves of one single-sample estimator (one objective: their order is tuning noise)."""
    curves = {}
    for curve_id in dict.fromkeys(c for f in figures for c in SYNTHETIC_FIGURES[f][1]):
        c = load_curve(curve_id, profile, results_dir)
        values = lowest_excess(c.paper, min_usage), lowest_excess(c.ours, min_usage)
        if not any(math.isnan(v) for v in values):
            curves[curve_id] = (c, *values)
    pairs = dict.fromkeys(frozenset(p) for f in figures for p in itertools.combinations(SYNTHETIC_FIGURES[f][1], 2))
    out = []
    for pair in pairs:
        a, b = sorted(pair)
        if a not in curves or b not in curves or _equivalent(a, b):
            continue
        (ca, paper_a, ours_a), (cb, paper_b, ours_b) = sorted((curves[a], curves[b]), key=lambda v: v[1])
        out.append(PairComparison(ca, cb, (paper_a, paper_b), (ours_a, ours_b)))
    return out


def agreement_by_margin(pairs: list[PairComparison], bins: tuple[float, ...] = MARGIN_BINS) -> list[list[Any]]:
    """Where we agree with the paper, by how far apart the paper has two curves. Rows: [the paper's
    margin, pairs, ordered as in the paper, share]; the first bin (below the figure readings'
    tolerance) holds what they count as ties."""
    edges = [0.0, *bins, math.inf]
    rows = []
    for low, high in itertools.pairwise(edges):
        inside = [p for p in pairs if low <= p.margin < high]
        same = sum(p.same_order for p in inside)
        span = f"{low:g} to {high:g} nats" if math.isfinite(high) else f"{low:g} nats or more"
        rows.append([span, len(inside), same, f"{same / len(inside):.0%}" if inside else "-"])
    return rows


def strong_reversals(pairs: list[PairComparison], min_margin: float = MARGIN_BINS[-1]) -> list[str]:
    """The pairs the paper separates by at least ``min_margin`` nats that we order the other way,
    with the numbers and our trial counts behind them."""
    lines = []
    for p in sorted(pairs, key=lambda p: -p.margin):
        if p.margin >= min_margin and not p.same_order:
            lines.append(
                f"{p.better.label} below {p.worse.label}: paper {p.paper[0]:.3f} vs {p.paper[1]:.3f}, "
                f"ours {p.ours[0]:.3f} vs {p.ours[1]:.3f} ({p.better.complete} and {p.worse.complete} trials)"
            )
    return _wrap(lines or [f"none: every pair the paper separates by {min_margin:g} nats or more is ordered as there"])


def show_figure(number: int, profile: str, min_usages: list[float], tolerance: float = 0.005) -> FigureResults:
    """A figure's section body: the plot, the table of lowest excess NLL, the computed reading, the cost."""
    import matplotlib.pyplot as plt
    from IPython.display import Markdown, display

    figure = load_figure(number, profile)
    if not any(c.ours is not None for c in figure.curves):
        display(Markdown(
            f"**No results yet for {figure.name}.** Run `make reproduce PROFILE={profile} FIGURE={number}` "
            f"(or `{reproduce_command(number)}` on a GPU box), then `make book`. The paper's curves alone:"
        ))  # fmt: skip
    fig = plot_figure(figure)
    display(fig)
    plt.close(fig)
    display(Markdown(
        f"Lowest excess NLL (nats over ln V) among trials with latent usage ≥ m · ln V, ours and the paper's; "
        f"trial counts and compute (sum of `wall_s`) are ours:\n\n{figure_table(figure, min_usages)}"
    ))  # fmt: skip
    for line in figure_facts(figure, min_usages, tolerance):
        print(line)
    return figure


# --- Appendix C: optimisation settings, tuning and cost ----------------------------------------------


def table2_rows() -> list[list[Any]]:
    """Appendix C, Table 2 as the studies use it: every tuned parameter of the committed cpu studies,
    its run-config key, range and scale, and how many of the synthetic studies tune it."""
    from .study import load_study

    seen: dict[str, list[Any]] = {}
    root = repo_path("params").parent
    for curve in synthetic_curve_ids():
        study = load_study(root / "params" / "studies" / "cpu" / f"{curve}.yaml", root=root)
        for p in study.parameters:
            row = seen.setdefault(p.name, [p.name, p.key, p.low, p.high, "log" if p.log else "linear", 0])
            row[5] += 1
    return list(seen.values())


def profiles_rows() -> list[list[Any]]:
    """The run sizes of the cpu and paper profiles of one curve (DReG 16, KL) and their studies."""
    from .experiment import load_config
    from .study import load_study

    root = repo_path("params").parent
    rows = []
    for profile, run in (
        ("cpu", "params/synthetic/cpu/trial-dreg16-kl.yaml"),
        ("paper", "params/synthetic/paper/dreg16-kl.yaml"),
    ):
        config = load_config(root / run)
        trials = [load_study(root / "params" / "studies" / profile / f"{c}.yaml", root=root).trials
                  for c in synthetic_curve_ids()]  # fmt: skip
        spread = f"{min(trials)}" if min(trials) == max(trials) else f"{min(trials)}-{max(trials)}"
        rows.append([profile, config.data.vocab_size, config.data.batch_size, config.train.steps,
                     spread, sum(trials), config.cost])  # fmt: skip
    return rows


def trial_costs(profile: str = "cpu", results_dir: Path | None = None) -> list[list[Any]]:
    """Measured cost of our finished trials, by base estimator and draws max(K, K'): trials, mean and total wall_s."""
    from .pareto import _read_table

    results_dir = Path(results_dir or repo_path("results") / profile)
    groups: dict[tuple[str, int, int], list[float]] = {}
    for table in sorted(results_dir.glob("*.tsv")):
        _, rows = _read_table(table)
        for _, row in rows:
            draws = max(int(row["k"] or 1), int(row["k_mi"] or row["k"] or 1))
            key = (row["estimator"], draws, int(row["steps"]))
            groups.setdefault(key, []).append(float(row["wall_s"] or 0))
    return [[estimator, draws, steps, len(v), sum(v) / len(v), sum(v) / 60]
            for (estimator, draws, steps), v in sorted(groups.items())]  # fmt: skip


# --- the frontier explorer: pick estimator, K and objective, see where the frontier moves -------------

FRONTIER_ESTIMATORS = ("ELBO", "IWAE", "DReG", "REINFORCE", "VIMCO", "VQ-VAE")
FRONTIER_SAMPLES = ("1", "16", "64", "16/1", "1/16")
FRONTIER_OBJECTIVES = ("KL", "Rényi", "power")


def _frontier_key(curve_id: str) -> str:
    """ "estimator|K|objective" of a curve, as the explorer's menus spell it."""
    if curve_id == "vqvae":
        return "VQ-VAE|1|KL"
    name, objective = curve_label(curve_id).split(", ")
    parts = name.split(" ")
    return f"{parts[0]}|{parts[1] if len(parts) > 1 else '1'}|{objective}"


def frontier_explorer_data(profile: str = "cpu", min_usage: float = 0.8) -> dict[str, Any]:
    """Every synthetic curve on the normalised axes, keyed "estimator|K|objective": the paper's frontier,
    our frontier and all our trials, our counts and compute, and the lowest excess NLL at usage >= m."""
    curves = {}
    for curve_id in synthetic_curve_ids():
        c = load_curve(curve_id, profile)
        front = c.paper.frontier()
        entry = {
            "label": c.label,
            "study": f"params/studies/{profile}/{curve_id}.yaml",
            "paper": {"x": c.paper.mi[front].round(4).tolist(), "y": c.paper.nll[front].round(4).tolist()},
            "paper_trials": len(c.paper.mi),
            "paper_lowest": _json_number(lowest_excess(c.paper, min_usage)),
            "complete": c.complete,
            "rows": c.rows,
            "wall_s": round(c.wall_s, 1),
            "ours": {"x": [], "y": []},
            "ours_all": {"x": [], "y": []},
            "ours_lowest": None,
        }
        if c.ours is not None:
            front = c.ours.frontier()
            entry["ours"] = {"x": c.ours.mi[front].round(4).tolist(), "y": c.ours.nll[front].round(4).tolist()}
            entry["ours_all"] = {"x": c.ours.mi.round(4).tolist(), "y": c.ours.nll.round(4).tolist()}
            entry["ours_lowest"] = _json_number(lowest_excess(c.ours, min_usage))
        curves[_frontier_key(curve_id)] = entry
    return {"profile": profile, "min_usage": min_usage, "curves": curves, "estimators": list(FRONTIER_ESTIMATORS),
            "samples": list(FRONTIER_SAMPLES), "objectives": list(FRONTIER_OBJECTIVES)}  # fmt: skip


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


def frontier_title(data: dict[str, Any], key: str) -> str:
    """The explorer's caption for a choice: what it is, how many trials, where the frontier is at m."""
    entry = data["curves"].get(key)
    if entry is None:
        return f"{key.replace('|', ' ')}: not a curve of the paper's synthetic figures"
    m = data["min_usage"]
    paper = "–" if entry["paper_lowest"] is None else f"{entry['paper_lowest']:.4f}"
    if entry["complete"]:
        ours = "–" if entry["ours_lowest"] is None else f"{entry['ours_lowest']:.4f}"
        line = f"ours: {entry['complete']} complete of {entry['rows']} trials, {entry['wall_s'] / 60:.1f} min"
    else:
        ours, line = "no results", f"ours: no results yet ({entry['study']})"
    return (f"{entry['label']} — {line}; paper: {entry['paper_trials']} trials<br>"
            f"lowest excess NLL at usage ≥ {m:g} ln V: ours {ours}, paper {paper}")  # fmt: skip


_FRONTIER_JS = """
(function() {
  var gd = document.getElementById('{div_id}');
  var data = {data};
  var state = {start};
  function redraw() {
    var key = [data.estimators[state.estimator], data.samples[state.samples],
               data.objectives[state.objective]].join('|');
    if (data.estimators[state.estimator] === 'VQ-VAE') key = 'VQ-VAE|1|KL';
    var c = data.curves[key], empty = {x: [], y: []};
    var title = c ? c.title : key.split('|').join(' ') + ': not a curve of the paper\\'s synthetic figures';
    var paper = c ? c.paper : empty, ours = c ? c.ours : empty, all = c ? c.ours_all : empty;
    Plotly.update(gd, {x: [paper.x, all.x, ours.x], y: [paper.y, all.y, ours.y]}, {'title.text': title}, {traces});
  }
  gd.on('plotly_buttonclicked', function(e) { state[e.menu.name] = e.menu.buttons.indexOf(e.button); redraw(); });
  redraw();
})();
"""


def static_frontier_explorer_html(data: dict[str, Any], div_id: str = "micmco-frontiers",
                                  start: str = "VIMCO|16|Rényi") -> str:  # fmt: skip
    """The frontier explorer for the static book: every committed frontier in grey, the chosen curve
    (three menus: estimator, K, objective) in colour beside the paper's; plotly.js embedded, no kernel."""
    import plotly.graph_objects as go
    import plotly.io as pio

    fig = go.Figure()
    for entry in data["curves"].values():
        if entry["ours"]["x"]:
            fig.add_trace(go.Scatter(x=entry["ours"]["x"], y=entry["ours"]["y"], mode="lines", hoverinfo="name",
                                     name=entry["label"], line={"color": "rgba(150,150,150,0.35)", "width": 1},
                                     showlegend=False))  # fmt: skip
    background = len(fig.data)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="the paper's frontier (V = 10000)",
                             line={"dash": "dash", "color": "rgba(31,119,180,0.6)"}, marker={"size": 4}))  # fmt: skip
    fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name=f"our trials ({data['profile']}, V = 200)",
                             marker={"color": "rgba(214,39,40,0.3)", "size": 6}))  # fmt: skip
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="our frontier",
                             line={"color": "rgb(214,39,40)", "width": 2.5}))  # fmt: skip
    estimator, samples, objective = start.split("|")

    def menu(name: str, values: list[str], x: float, active: str) -> dict:
        return {"name": name, "active": values.index(active), "x": x, "y": 1.22, "xanchor": "left",
                "yanchor": "bottom", "type": "dropdown",
                "buttons": [{"label": v, "method": "skip", "args": [None]} for v in values]}  # fmt: skip

    def label(text: str, x: float) -> dict:
        return {"text": text, "x": x, "y": 1.25, "xref": "paper", "yref": "paper", "showarrow": False,
                "xanchor": "right", "yanchor": "bottom"}  # fmt: skip

    fig.update_layout(
        height=560, margin={"t": 170, "b": 60, "l": 60, "r": 20},
        title={"text": "", "font": {"size": 12}, "x": 0.0, "xanchor": "left", "y": 0.97, "yanchor": "top"},
        xaxis={"title": "latent usage: MI / ln V", "range": [0, 1.05]},
        yaxis={"title": "excess NLL: NLL − ln V (nats)", "range": [-0.01, 0.32]},
        legend={"orientation": "h", "x": 0.0, "y": 1.02, "yanchor": "bottom", "font": {"size": 11}},
        updatemenus=[menu("estimator", data["estimators"], 0.1, estimator),
                     menu("samples", data["samples"], 0.4, samples),
                     menu("objective", data["objectives"], 0.7, objective)],
        annotations=[label("estimator", 0.095), label("K (or K/K′)", 0.395), label("objective", 0.695)],
    )  # fmt: skip
    payload = {**data, "curves": {k: {**v, "title": frontier_title(data, k)} for k, v in data["curves"].items()}}
    state = {"estimator": data["estimators"].index(estimator), "samples": data["samples"].index(samples),
             "objective": data["objectives"].index(objective)}  # fmt: skip
    script = (
        _FRONTIER_JS.replace("{div_id}", div_id)
        .replace("{data}", json.dumps(payload))
        .replace("{start}", json.dumps(state))
        .replace("{traces}", json.dumps([background, background + 1, background + 2]))
    )
    return pio.to_html(fig, full_html=False, include_plotlyjs=True, div_id=div_id, post_script=script,
                       config={"displayModeBar": False, "responsive": True})  # fmt: skip


class FrontierExplorer:
    """The frontier explorer in a live kernel: three ipywidgets menus redraw the chosen curve over the
    others (``controls``; ``update()`` is their callback; ``shown`` is the key last drawn)."""

    def __init__(self, data: dict[str, Any], start: str = "VIMCO|16|Rényi"):
        import ipywidgets as widgets
        import matplotlib.pyplot as plt

        self.data = data
        estimator, samples, objective = start.split("|")
        self.controls = {
            "estimator": widgets.Dropdown(options=data["estimators"], value=estimator, description="estimator"),
            "samples": widgets.Dropdown(options=data["samples"], value=samples, description="K (or K/K′)"),
            "objective": widgets.Dropdown(options=data["objectives"], value=objective, description="objective"),
        }
        with plt.ioff():
            self.figure, self.ax = plt.subplots(figsize=(7.5, 4.2))
        self.output = widgets.Output()
        self.shown = ""
        for control in self.controls.values():
            control.observe(lambda _change: self.update(), names="value")
        self.widget = widgets.VBox([widgets.HBox(list(self.controls.values())), self.output])
        self.update()

    @property
    def key(self) -> str:
        c = self.controls
        if c["estimator"].value == "VQ-VAE":
            return "VQ-VAE|1|KL"
        return f"{c['estimator'].value}|{c['samples'].value}|{c['objective'].value}"

    def update(self) -> None:
        self.shown = self.key
        draw_frontier_choice(self.ax, self.data, self.shown)
        self.figure.tight_layout()
        self.output.clear_output(wait=True)
        with self.output:
            from IPython.display import display

            display(self.figure)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def draw_frontier_choice(ax, data: dict[str, Any], key: str) -> None:
    """The explorer's plot on matplotlib axes: every frontier of ours in grey, the chosen one in colour."""
    ax.clear()
    for entry in data["curves"].values():
        if entry["ours"]["x"]:
            ax.plot(entry["ours"]["x"], entry["ours"]["y"], color="0.75", lw=0.8)
    entry = data["curves"].get(key)
    if entry is not None:
        ax.plot(entry["paper"]["x"], entry["paper"]["y"], "--", marker=".", color="tab:blue", alpha=0.6,
                label="the paper's frontier (V = 10000)")  # fmt: skip
        ax.plot(entry["ours_all"]["x"], entry["ours_all"]["y"], "o", color="tab:red", alpha=0.3, ms=4,
                label="our trials")  # fmt: skip
        ax.plot(entry["ours"]["x"], entry["ours"]["y"], "-o", color="tab:red", ms=4, label="our frontier")
        ax.legend(fontsize=8, frameon=False)
    ax.set(xlim=(0, 1.05), ylim=(-0.01, 0.32), xlabel="latent usage: MI / ln V", ylabel="excess NLL (nats)")
    ax.grid(alpha=0.3)
    ax.set_title(frontier_title(data, key).replace("<br>", "\n"), fontsize=9)


def _main(argv: list[str]) -> int:
    """``python -m micmco.book studies PROFILE [FIGURE]``: the study files ``make reproduce`` runs."""
    import sys

    if len(argv) not in (2, 3) or argv[0] != "studies":
        print("usage: python -m micmco.book studies cpu|paper [FIGURE]", file=sys.stderr)
        return 2
    try:
        figure = int(argv[2]) if len(argv) == 3 and argv[2] else None
        print(" ".join(figure_studies(figure, argv[1])))
    except ValueError as error:
        print(f"make reproduce: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
