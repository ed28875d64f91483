"""The curves' orderings, pair by pair: for every two curves of a figure that both our runs and the paper's
trials have at usage >= m, is the same one lower? Read by every figure's section (micmco.book.figures) and by
the comparisons across figures (micmco.book.claims). Works on anything shaped like
:class:`micmco.book.figures.Any` (curve_id, label, ours, paper, complete) and its figure.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..naming import parse_curve_id, same_curve_but_objective
from ..pareto import frontier_value, lowest_nll
from ..verdicts import Estimate, decide_order, single_evaluation_noise, typical_noise
from .common import markdown_table, repo_path


def same_objective(curve_a: str, curve_b: str) -> bool:
    """The KL and Rényi curves of one estimator whose divergence term has one sample (K′ = 1): the same
    objective, since V̂_α¹ = Û¹ = ln p(x|z₁) (Props. 4-5, and eq. 11's grouping for K > 1), so their order
    is tuning noise."""
    a, b = parse_curve_id(curve_a), parse_curve_id(curve_b)
    same_setting = a.estimator == b.estimator != "vqvae" and a.k == b.k and a.k_mi == b.k_mi == 1
    return same_setting and {a.objective, b.objective} <= {"kl", "renyi"} and same_curve_but_objective(curve_a, curve_b)


def lowest_excess(curve, min_usage: float) -> float:
    """The frontier's NLL (excess NLL on normalised curves) at usage >= ``min_usage`` as reported
    (:func:`micmco.pareto.frontier_value`; NaN: none reach it, or no curve)."""
    return math.nan if curve is None else lowest_nll(curve, min_usage)


@dataclass(frozen=True)
class Noise:
    """What the verdicts assume where a number has no measured standard error (:mod:`micmco.verdicts`)."""

    single: float  # measured standard deviation of one recorded evaluation of ours (nats per unit); NaN: unmeasured
    units: float | None  # the data points our evaluation averages over (synthetic: V); None where unknown
    measured_on: int = 0  # precisely evaluated trials the measurement comes from

    def ours(self, curve, min_usage: float) -> Estimate:
        """Our frontier at usage >= m: the chosen trial's precise value and standard error, or its recorded
        value with the measured single-evaluation noise (assumed)."""
        if curve is None:
            return Estimate(math.nan, math.nan, 0)
        value = frontier_value(curve, min_usage)
        if value.precise:
            return Estimate(value.value, value.se, value.trials)
        return Estimate(value.value, self.single, value.trials, assumed=True)

    def paper_se(self, curve) -> float:
        """The paper's assumed standard error: ours scaled by √(our units / its units) where both are known."""
        if self.units and curve.reference_nll is not None and curve.uniform_nll is not None:
            paper_units = math.exp(curve.reference_nll)
            return self.single * math.sqrt(self.units / paper_units)
        return self.single

    def paper(self, curve, min_usage: float) -> Estimate:
        value = frontier_value(curve, min_usage)
        return Estimate(value.value, self.paper_se(curve), value.trials, assumed=True)

    def describe(self) -> str:
        if math.isnan(self.single):
            return "no trial of this task has a precise evaluation yet, so its noise is unmeasured"
        return (f"one recorded evaluation's NLL varies by ~{self.single:.4f} nats (standard deviation, the "
                f"median over {self.measured_on} precisely evaluated trials)")  # fmt: skip


@functools.lru_cache(maxsize=16)
def measured_noise(task: str, profile: str = "cpu", results_dir: str | None = None) -> Noise:
    """The single-evaluation noise of ``task``'s trials in results/<profile>/ (:func:`single_evaluation_noise`)."""
    from ..pareto import NoCompleteTrials, curves_of
    from ..results import read_rows

    folder = Path(results_dir) if results_dir else repo_path("results") / profile
    curves = []
    for table in sorted(folder.glob("*.tsv")):
        rows = [row for row in read_rows(table) if row.task == task]
        try:
            curves += curves_of(rows, table) if rows else []
        except NoCompleteTrials:
            continue
    measured = sum(int(np.isfinite(c.nll_se).sum()) for c in curves)
    units = next((math.exp(c.reference_nll) for c in curves if c.reference_nll is not None), None)
    single = single_evaluation_noise(curves)
    if math.isnan(single):  # no trial of the task re-evaluated in its table: the runs measured for calibration
        single, measured = calibrated_noise(task, profile)
    return Noise(single, units, measured)


@functools.lru_cache(maxsize=16)
def measured_training_noise(task: str, profile: str = "cpu", results_dir: str | None = None) -> tuple[float, int]:
    """The standard deviation of one training's NLL of ``task``, from its trials in results/<profile>/ that were
    trained twice (:func:`micmco.verdicts.training_noise`); (NaN, 0) where none was."""
    from ..results import read_rows
    from ..verdicts import training_noise

    folder = Path(results_dir) if results_dir else repo_path("results") / profile
    return training_noise(row for table in sorted(folder.glob("*.tsv")) for row in read_rows(table) if row.task == task)


def training_noise_caveat(task: str, profile: str = "cpu", results_dir: str | None = None) -> str:
    """A sentence for the verdicts' readers: their standard errors leave out the measured noise of training
    (:func:`measured_training_noise`); empty where nothing measured it."""
    training, retrained = measured_training_noise(task, profile, results_dir)
    if not retrained:
        return ""
    return (
        f"These standard errors are evaluation's: each trial is one training. {retrained} trials recorded on "
        "another machine were retrained here, and their two trainings put the standard deviation of one "
        f"training's NLL at ~{training:.3f} nats (a few differ by far more); the verdicts leave it out "
        "(`scripts/training_noise_sensitivity.py` counts the orderings it would leave undecided)."
    )


NOISE_CALIBRATION = "results/calibration/evaluation-noise-{profile}.tsv"  # scripts/measure_noise.py writes it


def calibrated_noise(task: str, profile: str) -> tuple[float, int]:
    """(the typical standard deviation of one evaluation's NLL, :func:`micmco.verdicts.typical_noise`; runs)
    over the runs of ``task`` measured in :data:`NOISE_CALIBRATION` (NaN, 0 where none)."""
    import csv

    path = repo_path(NOISE_CALIBRATION.format(profile=profile))
    if not path.exists():
        return math.nan, 0
    with open(path, newline="") as handle:
        values = [float(r["nll_sd"]) for r in csv.DictReader(handle, delimiter="\t") if r["task"] == task]
    return typical_noise(values), len(values)


MARGIN_BINS = (0.005, 0.02, 0.1)  # nats: edges of the paper's margins between two curves


@dataclass
class PairComparison:
    """Two curves of one figure at usage >= m; ``better`` is the lower in the paper (the first of the two when
    the paper has them equal). Each side's values carry their standard errors (:class:`Estimate`)."""

    better: Any
    worse: Any
    paper: tuple[Estimate, Estimate]  # better, then worse
    ours: tuple[Estimate, Estimate]

    @property
    def margin(self) -> float:
        return self.paper[1].value - self.paper[0].value

    @property
    def same_order(self) -> bool:
        return self.ours[0].value <= self.ours[1].value

    @property
    def paper_verdict(self) -> tuple[str, str]:
        """Does the paper's own data separate the two (holds), or is its order within its noise?"""
        return decide_order(*self.paper)

    @property
    def ours_verdict(self) -> tuple[str, str]:
        return decide_order(*self.ours)

    @property
    def verdict(self) -> str:
        """holds (ours ordered as the paper's, both decided), fails (ours decidedly reversed), inconclusive
        (either side within its noise, or too few trials reach m)."""
        if self.paper_verdict[0] != "holds":
            return "inconclusive"
        return self.ours_verdict[0]

    @property
    def equivalent(self) -> bool:
        """The KL and Rényi curves of one estimator with K′ = 1 (:func:`same_objective`):
        one objective, so their order is tuning noise, not an ordering to compare."""
        return same_objective(self.better.curve_id, self.worse.curve_id)


def compare_curves(curves: list[Any], min_usage: float, noise: Noise) -> list[PairComparison]:
    """Pairwise: every two of ``curves`` (in their order) that both we and the paper have trials of at usage
    >= m, each side's frontier values with their standard errors. What both the reading of one figure and the
    comparison across figures are made of."""
    values = [(c, noise.paper(c.paper, min_usage), noise.ours(c.ours, min_usage)) for c in curves if c.ours is not None]
    values = [(c, paper, ours) for c, paper, ours in values if not (math.isnan(paper.value) or math.isnan(ours.value))]
    pairs = []
    for (a, paper_a, ours_a), (b, paper_b, ours_b) in itertools.combinations(values, 2):
        if paper_a.value <= paper_b.value:
            pairs.append(PairComparison(a, b, (paper_a, paper_b), (ours_a, ours_b)))
        else:
            pairs.append(PairComparison(b, a, (paper_b, paper_a), (ours_b, ours_a)))
    return pairs


@dataclass
class OrderingComparison:
    """Whether our runs order the curves of a figure as the paper's do at usage / ln V >= m, pair by pair,
    each decided by :func:`micmco.verdicts.decide_order` on both sides."""

    figure: int
    min_usage: float
    holds: list[tuple[str, str]]  # (paper's better, worse): the paper separates them and so do we, the same way
    fails: list[tuple[str, str]]  # the paper separates them and we decidedly reverse them
    inconclusive: list[tuple[str, str]]  # the paper separates them; ours are within our noise (or too few trials)
    paper_undecided: list[tuple[str, str]]  # within the paper's own (assumed) noise: no ordering to reproduce
    equivalent: list[tuple[str, str]]  # the KL and Rényi curves of one estimator with K′ = 1: one objective
    paper_best: str  # the lowest of the compared curves in the paper
    ours_best: str  # ... and in ours
    compared: list[str]  # curves with values in both
    unreached: list[str]  # curves of ours with trials but none at usage >= m
    missing: list[str]  # curves without results

    @property
    def pairs(self) -> int:
        return len(self.holds) + len(self.fails)

    @property
    def reproduced(self) -> bool | None:
        """True when no decided pair is reversed and at least one is decided; None when none is decided."""
        return None if not self.pairs else not self.fails


def compare_ordering(figure: Any, min_usage: float, noise: Noise | None = None) -> OrderingComparison:
    """Pairwise (:func:`compare_curves`): for each two curves that both we and the paper have at usage / ln V
    >= m, is the order the paper's data decide the one ours decide?"""
    noise = noise or figure.noise
    values = {}
    unreached, missing = [], []
    for c in figure.curves:
        ours, paper = lowest_excess(c.ours, min_usage), lowest_excess(c.paper, min_usage)
        if c.ours is None:
            missing.append(c.label)
        elif math.isnan(ours):
            unreached.append(c.label)
        elif not math.isnan(paper):
            values[c.label] = (ours, paper)
    kinds: dict[str, list[tuple[str, str]]] = {k: [] for k in ("holds", "fails", "inconclusive", "undecided", "same")}
    for pair in compare_curves(figure.curves, min_usage, noise):
        names = (pair.better.label, pair.worse.label)
        if pair.equivalent:
            kinds["same"].append(names)
        elif pair.paper_verdict[0] != "holds":
            kinds["undecided"].append(names)
        else:
            kinds[pair.ours_verdict[0]].append(names)
    best = lambda index: min(values, key=lambda k: values[k][index]) if values else "-"  # noqa: E731
    return OrderingComparison(figure.number, min_usage, kinds["holds"], kinds["fails"], kinds["inconclusive"],
                              kinds["undecided"], kinds["same"], best(1), best(0), list(values), unreached,
                              missing)  # fmt: skip


def ordering_table(figure: Any, min_usages: list[float], noise: Noise | None = None) -> str:
    """Markdown: one row per threshold m, the pairwise ordering of the figure's curves, ours against the
    paper's (:func:`compare_ordering`): how many pairs the paper's data separate, and of those how many ours
    order the same way (holds), reverse (fails) or leave within our noise (inconclusive)."""
    noise = noise or figure.noise
    rows = []
    for m in min_usages:
        c = compare_ordering(figure, m, noise)
        if len(c.compared) < 2:
            none = f"fewer than two curves ({len(c.compared)})"
            rows.append([f"{m:g}", none, "–", "–", "–", "–", "; ".join(c.unreached) or "none"])
            continue
        decided = len(c.holds) + len(c.fails) + len(c.inconclusive)
        reversed_pairs = "<br>".join(f"{b} < {w}" for b, w in c.fails) or "none"
        rows.append([f"{m:g}", f"{decided} of {decided + len(c.paper_undecided)}",
                     f"{len(c.holds)} / {len(c.fails)} / {len(c.inconclusive)}", reversed_pairs,
                     c.ours_best, c.paper_best, "; ".join(c.unreached) or "none"])  # fmt: skip
    headers = ["m", "pairs the paper's data separate", "ours: holds / fails / inconclusive",
               "reversed by ours (the paper's order)", "lowest of the compared: ours", "lowest: paper",
               "ours reach no usage ≥ m"]  # fmt: skip
    return markdown_table(rows, headers)


def agreement_by_margin(pairs: list[PairComparison], bins: tuple[float, ...] = MARGIN_BINS) -> list[list[Any]]:
    """Where we agree with the paper, by how far apart the paper has two curves. Rows: [the paper's margin,
    pairs, the paper's data separate them, ours: holds, fails, inconclusive]."""
    edges = [0.0, *bins, math.inf]
    rows = []
    for low, high in itertools.pairwise(edges):
        inside = [p for p in pairs if low <= p.margin < high]
        decided = [p for p in inside if p.paper_verdict[0] == "holds"]
        counts = [sum(p.ours_verdict[0] == v for p in decided) for v in ("holds", "fails", "inconclusive")]
        span = f"{low:g} to {high:g} nats" if math.isfinite(high) else f"{low:g} nats or more"
        rows.append([span, len(inside), len(decided), *counts])
    return rows


MARGIN_HEADERS = ["the paper's margin", "pairs", "separated by the paper's data", "ours: holds", "fails",
                  "inconclusive"]  # fmt: skip


def strong_reversals(pairs: list[PairComparison], min_margin: float = MARGIN_BINS[-1]) -> list[str]:
    """The pairs the paper separates by at least ``min_margin`` nats that we decidedly order the other way
    (:attr:`PairComparison.verdict` fails), with the numbers and our trial counts behind them."""
    lines = []
    for p in sorted(pairs, key=lambda p: -p.margin):
        if p.margin >= min_margin and p.verdict == "fails":
            lines.append(
                f"{p.better.label} below {p.worse.label}: paper {p.paper[0].text()} vs {p.paper[1].text()}, "
                f"ours {p.ours[0].text()} vs {p.ours[1].text()} ({p.better.complete} and {p.worse.complete} trials)"
            )
    none = f"none: no pair the paper separates by {min_margin:g} nats or more is decidedly reversed by ours"
    return lines or [none]
