"""§7-§8 and the appendices: the paper's claims about the synthetic figures, each decided on the
paper's trials and on ours, and the orderings of the curves, compared pair by pair (within each
figure, and across the figures by how far apart the paper has two curves)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import markdown_table, wrap_lines
from .figures import (
    MIN_TRIALS,
    CurveResults,
    FigureResults,
    figure_studies,
    load_curve,
    lowest_excess,
    reproduce_command,
    same_objective,
    synthetic_curve_ids,
)
from .registry import figure_curves

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
# §7.2's and §8's claims about language modelling, per token. A fifth element, where present, overrides what
# is expected ("tie": the two sides within the tolerance), the usage m (nats per token) and the tolerance.
ON_PAR = {"expect": "tie", "tolerance": 0.01}  # "on par": within 0.01 nats per token, 1% of perplexity
PTB_CLAIMS: tuple[tuple, ...] = (
    ("DReG 16 with Rényi beats DReG 1 in training fit at high usage", 8, ("ptb-dreg16-renyi",),
     ("ptb-dreg1-kl", "ptb-dreg1-renyi")),
    ("VIMCO 16 beats REINFORCE 1 markedly in training fit", 9, ("ptb-vimco16-kl", "ptb-vimco16-renyi"),
     ("ptb-vimco1-kl", "ptb-vimco1-renyi")),
    ("naive dropout removes DReG 16's gain: DReG 1 matches or beats it in validation", 10, ("ptb-dreg1-kl-valid",),
     ("ptb-dreg16-kl-valid", "ptb-dreg16-renyi-valid")),
    ("L2 instead of dropout keeps DReG 16's training-fit gain over DReG 1 in validation", 11,
     ("ptb-dreg16-kl-valid-l2", "ptb-dreg16-renyi-valid-l2"), ("ptb-dreg1-kl-valid-l2",)),
    ("shared masks restore DReG 16's gain over DReG 1 in validation", 12,
     ("ptb-dreg16-kl-valid-shared", "ptb-dreg16-renyi-valid-shared"), ("ptb-dreg1-kl-valid",)),
    ("shared masks restore VIMCO 16's gain over REINFORCE 1 in validation", 12,
     ("ptb-vimco16-kl-valid-shared", "ptb-vimco16-renyi-valid-shared"), ("ptb-vimco1-kl-valid",)),
    ("with shared masks, discrete (VIMCO 16) and continuous (DReG 16) latents are on par up to usage 0.5 per token",
     12, ("ptb-vimco16-kl-valid-shared", "ptb-vimco16-renyi-valid-shared"),
     ("ptb-dreg16-kl-valid-shared", "ptb-dreg16-renyi-valid-shared"), {**ON_PAR, "min_usage": 0.5}),
    ("compute-matched REINFORCE 1 (T×16, bs×16) loses to VIMCO 16 in training fit at higher usage", 13,
     ("ptb-vimco16-kl", "ptb-vimco16-renyi"),
     ("ptb-vimco1-kl-t16", "ptb-vimco1-renyi-t16", "ptb-vimco1-kl-bs16", "ptb-vimco1-renyi-bs16"), {"min_usage": 0.8}),
    ("compute-matched REINFORCE 1 (T×16, bs×16) does not close the gap to VIMCO 16 in validation", 14,
     ("ptb-vimco16-kl-valid-shared", "ptb-vimco16-renyi-valid-shared"),
     ("ptb-vimco1-kl-valid-t16", "ptb-vimco1-renyi-valid-t16", "ptb-vimco1-kl-valid-bs16",
      "ptb-vimco1-renyi-valid-bs16")),
    ("compute-matched DReG 1 (T×16, bs×16) loses to DReG 16 in training fit at higher usage", 24,
     ("ptb-dreg16-kl", "ptb-dreg16-renyi"),
     ("ptb-dreg1-kl-t16", "ptb-dreg1-renyi-t16", "ptb-dreg1-kl-bs16", "ptb-dreg1-renyi-bs16"), {"min_usage": 0.8}),
    ("compute-matched DReG 1 (T×16, bs×16) does not close the gap to DReG 16 in validation", 25,
     ("ptb-dreg16-kl-valid-shared", "ptb-dreg16-renyi-valid-shared"),
     ("ptb-dreg1-kl-valid-t16", "ptb-dreg1-renyi-valid-t16", "ptb-dreg1-kl-valid-bs16", "ptb-dreg1-renyi-valid-bs16")),
    ("latents barely improve the best perplexity: the best 16-sample curve is on par with REINFORCE 1 (whose "
     "best trial uses almost no latent information), at any usage", 12,
     ("ptb-dreg16-kl-valid-shared", "ptb-dreg16-renyi-valid-shared", "ptb-vimco16-kl-valid-shared",
      "ptb-vimco16-renyi-valid-shared"), ("ptb-vimco1-kl-valid",),
     {"expect": "tie", "tolerance": 0.02, "min_usage": 0.0}),
)  # fmt: skip
CLAIMS = {"synthetic": SYNTHETIC_CLAIMS, "ptb": PTB_CLAIMS}  # the claims of each task's figures


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
    results_dir: Path | None = None, task: str = "synthetic",
) -> list[dict[str, Any]]:  # fmt: skip
    """Each claim of the paper about a task's figures (:data:`CLAIMS`), decided on the paper's trials and on
    ours: the lowest NLL at usage >= m (synthetic: excess NLL at usage / ln V >= m; PTB: per token) of the
    curves that should be lower against the others ("holds", "fails", "tie" within ``tolerance`` nats,
    "neither reaches m", "no results yet"). A claim may set its own m, tolerance and expected verdict;
    ``supported``: both sides give the expected one."""
    if task not in CLAIMS:
        raise ValueError(f"no claims for task {task!r}; choose one of {', '.join(CLAIMS)}")
    ids = {i for claim in CLAIMS[task] for i in (*claim[2], *claim[3])}
    curves = {i: load_curve(i, profile, results_dir) for i in sorted(ids)}
    rows = []
    for text, figure, better, worse, *options in CLAIMS[task]:
        if figures is not None and figure not in figures:
            continue
        option = {"expect": "holds", "min_usage": min_usage, "tolerance": tolerance, **(options[0] if options else {})}
        row = {"claim": text, "figure": figure, **option}
        for source in ("paper", "ours"):
            low, have_low = _best(curves, better, source, option["min_usage"])
            high, have_high = _best(curves, worse, source, option["min_usage"])
            row[source] = _verdict(low, high, have_low > 0 and have_high > 0, option["tolerance"])
            partial = have_low < len(better) or have_high < len(worse)
            row[f"{source}_values"] = f"{_cell(low)} vs {_cell(high)}" + (
                f"; partial: {have_low + have_high} of {len(better) + len(worse)} curves" if partial else ""
            )
        row["supported"] = row["ours"] == row["paper"] == option["expect"]
        rows.append(row)
    return rows


def claims_table(rows: list[dict[str, Any]], min_usage: float, task: str = "synthetic") -> str:
    """Markdown: claim, figure, the paper's and our verdicts with the two lowest NLLs each (for claims whose
    expected verdict is not "holds", or whose m is not ``min_usage``, the claim says so)."""
    unit = "per token" if task == "ptb" else "ln V"
    value = "NLL per token" if task == "ptb" else "excess NLL"

    def claim(r: dict[str, Any]) -> str:
        extra = []
        if r.get("expect", "holds") != "holds":
            extra.append(f"expected: {r['expect']} within {r['tolerance']:g} nats")
        if r.get("min_usage", min_usage) != min_usage:
            extra.append(f"at usage ≥ {r['min_usage']:g}")
        return r["claim"] + (f" ({'; '.join(extra)})" if extra else "")

    return markdown_table(
        [
            [
                claim(r),
                f"Figure {r['figure']}",
                f"{r['paper']} ({r['paper_values']})",
                f"{r['ours']} ({r['ours_values']})",
            ]
            for r in rows
        ],  # fmt: skip
        [
            "the paper's claim",
            "figure",
            f"paper: verdict ({value} at usage ≥ {min_usage:g} {unit})",
            "ours (cpu profile)",
        ],  # fmt: skip
    )


def claims_summary(rows: list[dict[str, Any]]) -> list[str]:
    """Counted: how many claims our runs support, contradict, or cannot decide yet."""
    counts: dict[str, list[str]] = {}
    for r in rows:
        counts.setdefault(r["ours"], []).append(r["claim"])
    paper_holds = sum(r["paper"] == r.get("expect", "holds") for r in rows)
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
    return "\n".join(wrap_lines([text]))


# --- the curves' orderings, pair by pair ----------------------------------------------------------------

MARGIN_BINS = (0.005, 0.02, 0.1)  # nats: edges of the paper's margins between two curves


@dataclass
class PairComparison:
    """Two curves of one figure, both reaching usage / ln V >= m on both sides; ``better`` is the
    lower in the paper (the first of the two when the paper has them equal)."""

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

    @property
    def equivalent(self) -> bool:
        """The KL and Rényi curves of one estimator with K′ = 1 (:func:`~micmco.book.figures.same_objective`):
        one objective, so their order is tuning noise, not an ordering to compare."""
        return same_objective(self.better.curve_id, self.worse.curve_id)


def compare_curves(curves: list[CurveResults], min_usage: float) -> list[PairComparison]:
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
                    f"  not compared (within {self.tolerance:g} nats in the paper, or KL vs Rényi with K′ = 1): "
                    + "; ".join(f"{a} ~ {b}" for a, b in self.ties)
                )
        if self.unreached:
            out.append(f"  ours reach no usage >= {self.min_usage:g}: {'; '.join(self.unreached)}")
        if self.missing:
            out.append(f"  no results yet: {'; '.join(self.missing)}")
        return out


def compare_ordering(figure: FigureResults, min_usage: float, tolerance: float = 0.005) -> OrderingComparison:
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
    try:
        figure_studies(figure.number, figure.profile)
        here = f"Re-run here: {reproduce_command(figure.number, figure.profile)}"
    except ValueError:
        here = f"No {figure.profile} studies"
    lines.append(f"{here}; at the paper's settings on a GPU: {reproduce_command(figure.number)}")
    return wrap_lines(lines)


def figure_notes(figure: FigureResults) -> list[str]:
    """What a figure's table does not show: its totals, curves with too few or no complete trials, and the
    commands that re-run it."""
    return figure_facts(figure, [], 0.0)


def ordering_table(figure: FigureResults, min_usages: list[float], tolerance: float = 0.005) -> str:
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


def compare_pairs(
    min_usage: float, profile: str = "cpu", figures: tuple[int, ...] = (2, 3, 4, 5, 6, 7),
    results_dir: Path | None = None,
) -> list[PairComparison]:  # fmt: skip
    """Every pair of curves that share a figure of ``figures`` (each pair once, :func:`compare_curves`),
    leaving out the KL and Rényi curves of one estimator with K′ = 1 (one objective: their order is
    tuning noise)."""
    curves = {c: load_curve(c, profile, results_dir) for f in figures for c in figure_curves(f)[1]}
    seen, out = set(), []
    for f in figures:
        for pair in compare_curves([curves[c] for c in figure_curves(f)[1]], min_usage):
            key = frozenset((pair.better.curve_id, pair.worse.curve_id))
            if key not in seen and not pair.equivalent:
                seen.add(key)
                out.append(pair)
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
    none = f"none: every pair the paper separates by {min_margin:g} nats or more is ordered as there"
    return wrap_lines(lines or [none])
