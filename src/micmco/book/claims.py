"""§7-§8 and the appendices: the paper's claims about its figures (both tasks), each decided on the paper's
trials and on ours, and the pairs of curves compared across the figures (:mod:`micmco.book.orderings` compares
them within one)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .common import markdown_table
from .figures import CurveResults, load_curve, synthetic_curve_ids
from .orderings import PairComparison, compare_curves, lowest_excess
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
    return text


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
