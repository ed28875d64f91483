"""The curves' orderings, pair by pair: for every two curves of a figure that both our runs and the paper's
trials have at usage >= m, is the same one lower? Read by every figure's section (micmco.book.figures) and by
the comparisons across figures (micmco.book.claims). Works on anything shaped like
:class:`micmco.book.figures.Any` (curve_id, label, ours, paper, complete) and its figure.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from ..naming import parse_curve_id, same_curve_but_objective
from ..pareto import lowest_nll
from .common import markdown_table


def same_objective(curve_a: str, curve_b: str) -> bool:
    """The KL and Rényi curves of one estimator whose divergence term has one sample (K′ = 1): the same
    objective, since V̂_α¹ = Û¹ = ln p(x|z₁) (Props. 4-5, and eq. 11's grouping for K > 1), so their order
    is tuning noise."""
    a, b = parse_curve_id(curve_a), parse_curve_id(curve_b)
    same_setting = a.estimator == b.estimator != "vqvae" and a.k == b.k and a.k_mi == b.k_mi == 1
    return same_setting and {a.objective, b.objective} <= {"kl", "renyi"} and same_curve_but_objective(curve_a, curve_b)


def lowest_excess(curve, min_usage: float) -> float:
    """The lowest NLL (excess NLL on normalised curves) among trials with usage >= ``min_usage`` (NaN: none
    reach it, or no curve)."""
    return math.nan if curve is None else lowest_nll(curve, min_usage)


MARGIN_BINS = (0.005, 0.02, 0.1)  # nats: edges of the paper's margins between two curves


@dataclass
class PairComparison:
    """Two curves of one figure, both reaching usage / ln V >= m on both sides; ``better`` is the
    lower in the paper (the first of the two when the paper has them equal)."""

    better: Any
    worse: Any
    paper: tuple[float, float]  # lowest excess NLL, better then worse
    ours: tuple[float, float]

    @property
    def margin(self) -> float:
        return self.paper[1] - self.paper[0]

    @property
    def same_order(self) -> bool:
        return self.ours[0] <= self.ours[1]

    @property
    def equivalent(self) -> bool:
        """The KL and Rényi curves of one estimator with K′ = 1 (:func:`same_objective`):
        one objective, so their order is tuning noise, not an ordering to compare."""
        return same_objective(self.better.curve_id, self.worse.curve_id)


def compare_curves(curves: list[Any], min_usage: float) -> list[PairComparison]:
    """Pairwise: every two of ``curves`` (in their order) that both we and the paper have at usage / ln V
    >= m, each with the lowest excess NLL of both sides; ``same_order`` says whether ours has the same one
    lower. What both the reading of one figure and the comparison across figures are made of."""
    values = [(c, lowest_excess(c.paper, min_usage), lowest_excess(c.ours, min_usage)) for c in curves]
    values = [(c, paper, ours) for c, paper, ours in values if not (math.isnan(paper) or math.isnan(ours))]
    pairs = []
    for (a, paper_a, ours_a), (b, paper_b, ours_b) in itertools.combinations(values, 2):
        if paper_a <= paper_b:
            pairs.append(PairComparison(a, b, (paper_a, paper_b), (ours_a, ours_b)))
        else:
            pairs.append(PairComparison(b, a, (paper_b, paper_a), (ours_b, ours_a)))
    return pairs


@dataclass
class OrderingComparison:
    """Whether our runs order the curves of a figure as the paper's do at usage / ln V >= m."""

    figure: int
    min_usage: float
    agree: list[tuple[str, str]]  # (better, worse) in both
    disagree: list[tuple[str, str]]  # (paper's better, paper's worse) that ours reverse
    ties: list[tuple[str, str]]  # not compared: closer than the tolerance in the paper, or the same objective
    # (the KL and Rényi curves of an estimator with K′ = 1: one objective)
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


def compare_ordering(figure: Any, min_usage: float, tolerance: float = 0.005) -> OrderingComparison:
    """Pairwise (:func:`compare_curves`): for each two curves that both we and the paper have at usage /
    ln V >= m, is the one with the lower excess NLL the same? Pairs the paper separates by less than
    ``tolerance`` nats are ties, not compared."""
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
    agree, disagree, ties = [], [], []
    for pair in compare_curves(figure.curves, min_usage):
        names = (pair.better.label, pair.worse.label)
        if pair.margin < tolerance or pair.equivalent:
            ties.append(names)
        else:
            (agree if pair.same_order else disagree).append(names)
    best = lambda index: min(values, key=lambda k: values[k][index]) if values else "-"  # noqa: E731
    return OrderingComparison(figure.number, min_usage, agree, disagree, ties, best(1), best(0), list(values),
                              unreached, missing, tolerance)  # fmt: skip


def ordering_table(figure: Any, min_usages: list[float], tolerance: float = 0.005) -> str:
    """Markdown: one row per threshold m, the pairwise ordering of the figure's curves, ours against the
    paper's (:func:`compare_ordering`)."""
    rows = []
    for m in min_usages:
        c = compare_ordering(figure, m, tolerance)
        if len(c.compared) < 2:
            none = f"fewer than two curves ({len(c.compared)})"
            rows.append([f"{m:g}", none, "–", "–", "–", "–", "; ".join(c.unreached) or "none"])
            continue
        reversed_pairs = "; ".join(f"paper: {b} < {w}" for b, w in c.disagree) or "none"
        ties = "; ".join(f"{a} ~ {b}" for a, b in c.ties) or "none"
        rows.append([f"{m:g}", f"{len(c.agree)} of {c.pairs}", c.ours_best, c.paper_best, reversed_pairs, ties,
                     "; ".join(c.unreached) or "none"])  # fmt: skip
    headers = ["m", "pairs ordered as in the paper", "lowest: ours", "lowest: paper", "reversed",
               f"not compared (within {tolerance:g} nats, or one objective)", "ours reach no usage ≥ m"]  # fmt: skip
    return markdown_table(rows, headers)


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
    none = f"none: every pair the paper separates by {min_margin:g} nats or more is ordered as there"
    return lines or [none]
