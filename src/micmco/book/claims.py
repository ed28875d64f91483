"""§7-§8 and the appendices: the paper's claims about its figures (both tasks), each decided on the paper's
trials and on ours, and the pairs of curves compared across the figures (:mod:`micmco.book.orderings` compares
them within one)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..pareto import frontier_value
from ..verdicts import VERDICTS, Estimate, combine, decide_order, decide_par
from .common import markdown_table
from .figures import CurveResults, load_curve, synthetic_curve_ids
from .orderings import Noise, PairComparison, compare_curves, measured_noise
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
# is expected ("tie": on par, the two sides within the claim's tolerance), and the range of usage m (nats per
# token) the claim speaks of.
ON_PAR = {"expect": "tie", "tolerance": 0.01}  # "on par": within 0.01 nats per token, 1% of perplexity
HIGH_USAGE = {"usages": (0.5, 0.8)}  # "at high(er) usage"
PTB_CLAIMS: tuple[tuple, ...] = (
    ("DReG 16 with Rényi beats DReG 1 in training fit at high usage", 8, ("ptb-dreg16-renyi",),
     ("ptb-dreg1-kl", "ptb-dreg1-renyi"), HIGH_USAGE),
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
     ("ptb-dreg16-kl-valid-shared", "ptb-dreg16-renyi-valid-shared"), {**ON_PAR, "usages": (0.1, 0.2, 0.3, 0.5)}),
    ("compute-matched REINFORCE 1 (T×16, bs×16) loses to VIMCO 16 in training fit at higher usage", 13,
     ("ptb-vimco16-kl", "ptb-vimco16-renyi"),
     ("ptb-vimco1-kl-t16", "ptb-vimco1-renyi-t16", "ptb-vimco1-kl-bs16", "ptb-vimco1-renyi-bs16"), HIGH_USAGE),
    ("compute-matched REINFORCE 1 (T×16, bs×16) does not close the gap to VIMCO 16 in validation", 14,
     ("ptb-vimco16-kl-valid-shared", "ptb-vimco16-renyi-valid-shared"),
     ("ptb-vimco1-kl-valid-t16", "ptb-vimco1-renyi-valid-t16", "ptb-vimco1-kl-valid-bs16",
      "ptb-vimco1-renyi-valid-bs16")),
    ("compute-matched DReG 1 (T×16, bs×16) loses to DReG 16 in training fit at higher usage", 24,
     ("ptb-dreg16-kl", "ptb-dreg16-renyi"),
     ("ptb-dreg1-kl-t16", "ptb-dreg1-renyi-t16", "ptb-dreg1-kl-bs16", "ptb-dreg1-renyi-bs16"), HIGH_USAGE),
    ("compute-matched DReG 1 (T×16, bs×16) does not close the gap to DReG 16 in validation", 25,
     ("ptb-dreg16-kl-valid-shared", "ptb-dreg16-renyi-valid-shared"),
     ("ptb-dreg1-kl-valid-t16", "ptb-dreg1-renyi-valid-t16", "ptb-dreg1-kl-valid-bs16", "ptb-dreg1-renyi-valid-bs16")),
    ("latents barely improve the best perplexity: the best 16-sample curve is on par with REINFORCE 1 (whose "
     "best trial uses almost no latent information), at any usage", 12,
     ("ptb-dreg16-kl-valid-shared", "ptb-dreg16-renyi-valid-shared", "ptb-vimco16-kl-valid-shared",
      "ptb-vimco16-renyi-valid-shared"), ("ptb-vimco1-kl-valid",),
     {"expect": "tie", "tolerance": 0.02, "usages": (0.0, 0.1, 0.2, 0.5)}),
)  # fmt: skip
CLAIMS = {"synthetic": SYNTHETIC_CLAIMS, "ptb": PTB_CLAIMS}  # the claims of each task's figures


DEFAULT_USAGES = {"synthetic": (0.2, 0.5, 0.8), "ptb": (0.1, 0.2, 0.5)}  # m (ln V; nats per token)


def _best(curves: dict[str, CurveResults], ids: tuple[str, ...], source: str, min_usage: float,
          noise: Noise) -> tuple[Estimate, int]:  # fmt: skip
    """The lowest frontier at usage >= m over a set of curves (with its standard error), and how many have results.
    The lowest is chosen on the numbers each frontier chose its trial on and reported on the independent ones it
    reports (:func:`micmco.pareto.frontier_value`): picking the lowest of reported values would be a winner's
    curse across curves."""
    with_results = [getattr(curves[i], source) for i in ids if getattr(curves[i], source) is not None]
    candidates = []
    for curve in with_results:
        estimate = getattr(noise, source)(curve, min_usage)
        if not math.isnan(estimate.value):
            candidates.append((frontier_value(curve, min_usage).chosen_on, estimate))
    best = min(candidates, key=lambda c: c[0])[1] if candidates else Estimate(math.nan, math.nan, 0)
    return best, len(with_results)


def _decide(low: Estimate, high: Estimate, expect: str, tolerance: float) -> tuple[str, str]:
    """The claim at one m: "holds" means what the claim says (below, or on par for a claim of parity)."""
    return decide_par(low, high, tolerance) if expect == "tie" else decide_order(low, high)


def check_claims(
    usages: float | tuple[float, ...] | None = None, profile: str = "cpu", figures: tuple[int, ...] | None = None,
    results_dir: Path | None = None, task: str = "synthetic", noise: Noise | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Each claim of the paper about a task's figures (:data:`CLAIMS`), decided on the paper's trials and on
    ours at every m of its range of usage (its own ``usages``, else ``usages``, else :data:`DEFAULT_USAGES`;
    synthetic: excess NLL at usage / ln V >= m; PTB: per token) by :mod:`micmco.verdicts` (a difference within
    the combined standard errors, or fewer than its minimum of trials reaching m, is inconclusive), then
    combined over the range (:func:`micmco.verdicts.combine`). A claim of parity ("expect": "tie") holds when
    both sides lie within its tolerance of each other, measured. ``supported``: both sides hold. ``noise``: what
    is assumed where a number has no standard error (default: measured, :func:`measured_noise`)."""
    if task not in CLAIMS:
        raise ValueError(f"no claims for task {task!r}; choose one of {', '.join(CLAIMS)}")
    if usages is None:
        usages = DEFAULT_USAGES[task]
    usages = (usages,) if isinstance(usages, (int, float)) else tuple(usages)
    ids = {i for claim in CLAIMS[task] for i in (*claim[2], *claim[3])}
    curves = {i: load_curve(i, profile, results_dir) for i in sorted(ids)}
    noise = noise or measured_noise(task, profile, None if results_dir is None else str(results_dir))
    rows = []
    for text, figure, better, worse, *options in CLAIMS[task]:
        if figures is not None and figure not in figures:
            continue
        option = {"expect": "holds", "usages": usages, "tolerance": 0.0, **(options[0] if options else {})}
        row = {"claim": text, "figure": figure, **option}
        for source in ("paper", "ours"):
            at_m = []
            for m in option["usages"]:
                low, have_low = _best(curves, better, source, m, noise)
                high, have_high = _best(curves, worse, source, m, noise)
                if not (have_low and have_high):
                    at_m = None
                    break
                verdict, reason = _decide(low, high, option["expect"], option["tolerance"])
                at_m.append({"m": m, "low": low, "high": high, "verdict": verdict, "reason": reason})
            row[source] = "no results yet" if at_m is None else combine(v["verdict"] for v in at_m)
            row[f"{source}_at"] = at_m or []
            have = sum(getattr(curves[i], source) is not None for i in (*better, *worse))
            total = len(better) + len(worse)
            partial = f"; partial: {have} of {total} curves" if 0 < have < total else ""
            values = [f"m {v['m']:g}: {v['low'].text()} vs {v['high'].text()} ({v['verdict']})" for v in at_m or []]
            row[f"{source}_values"] = "; ".join(values) + (partial if values else "")
        row["supported"] = row["ours"] == row["paper"] == "holds"
        rows.append(row)
    return rows


def claims_table(rows: list[dict[str, Any]], task: str = "synthetic") -> str:
    """Markdown: claim, figure, the paper's and our verdicts over the claim's range of m, with each m's two
    frontier values (± standard error; "~": assumed, see micmco.verdicts) and its verdict."""
    unit = "nats per token" if task == "ptb" else "ln V"

    def claim(r: dict[str, Any]) -> str:
        extra = [f"m ∈ {{{', '.join(f'{m:g}' for m in r['usages'])}}} {unit}"]
        if r.get("expect", "holds") == "tie":
            extra.append(f"on par: within {r['tolerance']:g} nats")
        return r["claim"] + f" ({'; '.join(extra)})"

    return markdown_table(
        [[claim(r), f"Figure {r['figure']}", f"**{r['paper']}** ({r['paper_values']})",
          f"**{r['ours']}** ({r['ours_values']})"] for r in rows],
        ["the paper's claim", "figure", "paper: verdict (lower vs the others, at each m)", "ours (cpu profile)"],
    )  # fmt: skip


def claims_summary(rows: list[dict[str, Any]]) -> list[str]:
    """Counted: how many claims the paper's data and ours decide, and which way (holds: what the claim says)."""
    kinds = (*VERDICTS, "no results yet")
    paper = ", ".join(f"{sum(r['paper'] == v for r in rows)} {v}" for v in kinds if any(r["paper"] == v for r in rows))
    lines = [f"{len(rows)} claims; the paper's own trials: {paper}."]
    for verdict in kinds:
        chosen = [r for r in rows if r["ours"] == verdict]
        if chosen:
            lines.append(f"ours, {verdict}: {len(chosen)}")
            lines += [f"  - {r['claim']} (the paper's own trials: {r['paper']})" for r in chosen]
    return lines


def unswept_sentence(rows: list[dict[str, Any]]) -> str:
    """Which claims have no results on our side (their curves not swept in this profile), computed: the chapters
    quote no such list by hand."""
    missing = [f"{r['claim']} (Figure {r['figure']})" for r in rows if r["ours"] == "no results yet"]
    if not missing:
        return "Every claim has results on our side."
    return "Decided on the paper's side only (no results yet on ours): " + "; ".join(missing) + "."


def slope_statement(
    low: float, high: float, profile: str = "cpu", results_dir: Path | None = None, noise: Noise | None = None
) -> str:
    """ "All Pareto curves slope upwards": the frontier at usage >= ``high`` ln V lies above the one at >=
    ``low`` ln V by more than the noise (:func:`micmco.verdicts.decide_order`). Counted for our curves with
    results and for the paper's curves of the same figures."""
    noise = noise or measured_noise("synthetic", profile, None if results_dir is None else str(results_dir))
    counts = {"ours": [0, [], 0], "paper": [0, [], 0]}  # rising, not decidedly rising (labels), never reaching high
    total = 0
    for curve_id in synthetic_curve_ids():
        c = load_curve(curve_id, profile, results_dir)
        if c.ours is None:
            continue
        total += 1
        for source, curve in (("ours", c.ours), ("paper", c.paper)):
            a, b = getattr(noise, source)(curve, low), getattr(noise, source)(curve, high)
            if math.isnan(b.value):
                counts[source][2] += 1
            elif decide_order(a, b, min_trials=1)[0] == "holds":
                counts[source][0] += 1
            else:
                counts[source][1].append(c.label)
    ours, paper = counts["ours"], counts["paper"]
    text = (
        f"Of our {total} curves with results, {ours[0]} rise by more than their noise "
        f"from usage ≥ {low:g} ln V to ≥ {high:g} ln V, {len(ours[1])} do not"
        + (f" ({'; '.join(ours[1])})" if ours[1] else "")
        + f" and {ours[2]} never reach {high:g} ln V; the paper's {total} curves of the same settings: "
        f"{paper[0]} rise, {len(paper[1])} do not"
        + (f" ({'; '.join(paper[1])})" if paper[1] else "")
        + f" and {paper[2]} never reach {high:g} ln V."
    )
    return text


def compare_pairs(
    min_usage: float, profile: str = "cpu", figures: tuple[int, ...] = (2, 3, 4, 5, 6, 7),
    results_dir: Path | None = None, noise: Noise | None = None,
) -> list[PairComparison]:  # fmt: skip
    """Every pair of curves that share a figure of ``figures`` (each pair once, :func:`compare_curves`),
    leaving out the KL and Rényi curves of one estimator with K′ = 1 (one objective: their order is
    tuning noise)."""
    curves = {c: load_curve(c, profile, results_dir) for f in figures for c in figure_curves(f)[1]}
    noise = noise or measured_noise("synthetic", profile, None if results_dir is None else str(results_dir))
    seen, out = set(), []
    for f in figures:
        for pair in compare_curves([curves[c] for c in figure_curves(f)[1]], min_usage, noise):
            key = frozenset((pair.better.curve_id, pair.worse.curve_id))
            if key not in seen and not pair.equivalent:
                seen.add(key)
                out.append(pair)
    return out
