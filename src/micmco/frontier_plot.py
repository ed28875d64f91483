"""Plots of Pareto frontiers in the paper's style: latent usage on x, NLL on y, one line per curve.

Synthetic curves have an optimum, ln V, so curves of different vocabularies overlay once normalised
(excess NLL over ln V against usage / ln V). Text has no known optimum: its curves are drawn in
nats per token, and ours and the paper's sit in panels side by side, each with its own NLL range,
because a reduced profile (a smaller vocabulary, model and corpus) shifts the whole frontier.

:func:`draw_frontier` draws one curve; :func:`plot_frontiers` (``micmco pareto --plot``) and the book's
figures (:func:`micmco.book.figures.plot_figure`, one panel per objective as the paper lays them out) both
draw every frontier through it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .pareto import Curve, compute_multiples, distinct_labels, worse_than_uniform

__all__ = ["draw_frontier", "plot_frontiers", "curve_styles"]

MAX_EXCESS_SHOWN = 0.25  # nats over ln V: the paper's synthetic axes (9.20 to 9.45 at ln V = 9.21)
PER_TOKEN_NLL_SPAN = 1.2  # nats per token above a panel's best NLL: the paper's PTB axes span about 1.1
OBJECTIVE_MARKERS = {"kl": "o", "renyi": "o", "power": "^", "none": "s"}  # KL hollow, Rényi filled
SPARE_MARKERS = ("D", "v", "P", "X", "*", "h", "<", ">", "p", "d")  # for curves a colour does not tell apart
LEGEND_FONT = 9  # points: legible beside 10-point axis labels


def curve_styles(curves: Sequence[Curve]) -> list[dict]:
    """Line2D keywords of each curve, distinct for distinct curves: one colour per estimator, K, K′, split,
    regulariser and compute baseline (micmco.pareto.compute_multiples), shared by ours and the paper's
    counterpart (the paper's dashed and lighter); the objective in the marker (KL hollow, Rényi filled,
    power triangles), and another marker where two curves would still look alike (other sizes,
    vocabularies or profiles)."""
    import matplotlib.pyplot as plt

    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours: dict[tuple, str] = {}
    taken: set[tuple] = set()
    styles = []
    for curve in curves:
        key = (curve.estimator, curve.k, curve.k_mi, curve.split, curve.task_values.get("regulariser"),
               tuple(compute_multiples(curve, curves).values()))  # fmt: skip
        colour = colours.setdefault(key, palette[len(colours) % len(palette)])
        paper = curve.source == "paper"
        fill = "none" if curve.objective == "kl" else colour
        linestyle = "--" if paper else "-"
        candidates = (OBJECTIVE_MARKERS[curve.objective], *SPARE_MARKERS)
        marker = next((m for m in candidates if (colour, m, fill, linestyle) not in taken), candidates[0])
        taken.add((colour, marker, fill, linestyle))
        styles.append(dict(color=colour, marker=marker, markerfacecolor=fill, linestyle=linestyle,
                           markersize=4 if paper else 5, alpha=0.45 if paper else 1.0))  # fmt: skip
    return styles


def draw_frontier(ax, curve: Curve, trials: bool = False, **style) -> tuple:
    """One curve on ``ax``: its Pareto frontier as a line, NLL against latent usage (``style``: Line2D keywords),
    and with ``trials`` every trial as a faint dot of the line's colour beneath it. The frontier's trials are
    chosen and drawn as the tables choose and report them (:func:`micmco.pareto.frontier_value`: at the usage
    they were chosen on and their reported NLL, with a bar of ± 2 standard errors where it is measured).
    Returns (usage, NLL) of the frontier's points, for axes fitted around what was drawn."""
    frontier = curve.frontier()
    usage, reported = curve.selection_mi, curve.reported_nll
    if trials:
        ax.plot(usage, reported, ".", color=style.get("color"), alpha=0.3, ms=4)
    ax.plot(usage[frontier], reported[frontier], **style)
    errors = curve.reported_nll_se[frontier]
    known = np.isfinite(errors)
    if known.any():
        ax.errorbar(usage[frontier][known], reported[frontier][known], yerr=2 * errors[known], fmt="none",
                    ecolor=style.get("color"), elinewidth=1.0, capsize=2, alpha=0.8)  # fmt: skip
    return usage[frontier], reported[frontier]


def plot_frontiers(curves: Sequence[Curve], normalised: bool = True, ax=None, title: str | None = None):
    """The frontiers in the paper's style; returns the matplotlib Figure.

    Styles: :func:`curve_styles`. ``normalised`` plots excess NLL over ln V against usage / ln V, so
    vocabularies overlay (synthetic curves only). Curves without a known optimum (text) are drawn per token,
    ours and the paper's in separate panels unless ``ax`` is given. Frontier points beyond the axes are drawn
    as triangles on the edge they are beyond, and counted (with those worse than the uniform model) in a note.
    The legend goes below the axes (beside ``ax`` when one is given), never over the data.
    """
    import matplotlib.pyplot as plt

    per_token = any(curve.reference_nll is None for curve in curves)
    shown = [curve.normalised() for curve in curves] if normalised else list(curves)  # raises for text
    labels = distinct_labels(curves)
    styles = curve_styles(curves)
    panels: list[list[int]] = [list(range(len(curves)))]
    if per_token and ax is None:
        sources = list(dict.fromkeys(curve.source for curve in curves))
        panels = [[i for i, curve in enumerate(curves) if curve.source == source] for source in sources]
    if ax is None:
        figure, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.8), squeeze=False)
        axes = list(axes[0])
    else:
        figure, axes = ax.figure, [ax]
    for panel, indices in zip(axes, panels):
        for i in indices:
            draw_frontier(panel, shown[i], label=labels[i], **styles[i])
        group = [shown[i] for i in indices]
        if per_token:
            _per_token_axes(panel, group, titled=len(panels) > 1)
        else:
            _synthetic_axes(panel, group, normalised)
        _mark_off_axes(panel, group, [styles[i]["color"] for i in indices])
        panel.grid(alpha=0.3)
    if title:
        (figure.suptitle if len(axes) > 1 else axes[0].set_title)(title)
    handles = [handle for panel in axes for handle in panel.get_legend_handles_labels()[0]]
    figure.tight_layout()
    if ax is not None:
        ax.legend(handles=handles, fontsize=LEGEND_FONT, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:  # below the panels, as many columns as the longest label lets fit in the figure's width
        width = figure.get_figwidth() * 72 / (0.55 * LEGEND_FONT * max(map(len, labels), default=1) + 40)
        figure.legend(handles=handles, fontsize=LEGEND_FONT, frameon=False, loc="upper center",
                      bbox_to_anchor=(0.5, 0.0), ncol=max(1, min(3, int(width))))  # fmt: skip
    return figure


def _mark_off_axes(ax, curves: Sequence[Curve], colours: Sequence[str]) -> None:
    """Frontier points beyond the axes' limits as triangles on that edge (pointing out, unclipped), and a note
    counting them and those worse than the uniform model; nothing when every point is inside."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    beyond = worse = 0
    for curve, colour in zip(curves, colours):
        frontier = curve.frontier()
        x, y = curve.selection_mi[frontier], curve.reported_nll[frontier]
        # [points] the edge each point is beyond: up, right, down, left (above first: the usual case)
        edges = np.select([y > y1, x > x1, y < y0, x < x0], ["^", ">", "v", "<"], default="")
        for marker in ("^", ">", "v", "<"):
            off = edges == marker
            if off.any():
                ax.plot(np.clip(x[off], x0, x1), np.clip(y[off], y0, y1), linestyle="none", marker=marker,
                        color=colour, markersize=6, clip_on=False, label="_off the axes")  # fmt: skip
        beyond += int((edges != "").sum())
        worse += len(worse_than_uniform(curve))
    if beyond or worse:
        note = [f"▲ {beyond} {'point' if beyond == 1 else 'points'} off the axes"] if beyond else []
        note += [f"{worse} worse than uniform (NLL > ln V)"] if worse else []
        # above the axes, right, clear of the triangles: the data fill any corner inside (titles sit left)
        ax.annotate(", ".join(note), xy=(1.0, 1.0), xycoords="axes fraction", xytext=(0, 5), textcoords="offset points",
                    ha="right", va="bottom", fontsize="small", color="0.3")  # fmt: skip


def _synthetic_axes(ax, curves: Sequence[Curve], normalised: bool) -> None:
    """The paper's synthetic axes: usage 0 to ln V, NLL from ln V to at most ln V + 0.25."""
    excess = _excess_shown(curves) * 1.05 + 0.005
    if normalised:
        ax.set_xlabel("latent usage: mutual information / ln V")
        ax.set_ylabel("excess NLL: NLL − ln V (nats)")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(-0.005, excess)
        ax.axhline(0.0, color="0.6", lw=0.8)
        return
    ax.set_xlabel("latent usage: mutual information (nats)")
    ax.set_ylabel("NLL (nats)")
    optima = sorted({curve.reference_nll for curve in curves})
    ax.set_xlim(0, optima[-1] * 1.02)
    ax.set_ylim(optima[0] - 0.005, optima[-1] + excess)
    for optimum in optima:
        ax.axhline(optimum, color="0.6", lw=0.8)  # ln V, the optimal NLL


def _excess_shown(curves: Sequence[Curve]) -> float:
    """The highest excess NLL on the frontiers, at most MAX_EXCESS_SHOWN."""
    tops = [float(view.reported_nll[view.frontier()].max()) for view in (curve.normalised() for curve in curves)]
    return min(max(tops, default=MAX_EXCESS_SHOWN), MAX_EXCESS_SHOWN)


def _per_token_axes(ax, curves: Sequence[Curve], titled: bool) -> None:
    """Axes in nats per token around the frontiers: usage from 0, NLL from the best to at most 1.2 above
    each curve's own best (training and validation NLLs lie nats apart: both stay in view)."""
    fronts = [(curve.selection_mi[curve.frontier()], curve.reported_nll[curve.frontier()]) for curve in curves]
    best = min(float(nll.min()) for _, nll in fronts)
    top = min(
        max(float(nll.max()) for _, nll in fronts), max(float(nll.min()) for _, nll in fronts) + PER_TOKEN_NLL_SPAN
    )
    most = max(float(mi[nll <= top].max(initial=0.0)) for mi, nll in fronts)  # usage of the points shown
    pad = max(top - best, 0.01) * 0.05
    ax.set_xlim(0, max(most, 0.01) * 1.05)
    ax.set_ylim(best - pad, top + pad)
    ax.set_xlabel("latent usage per token (nats)")
    splits = list(dict.fromkeys(curve.split for curve in curves))
    ax.set_ylabel(
        f"{splits[0]} NLL per token (nats)" if len(splits) == 1 else f"NLL per token (nats): {', '.join(splits)}"
    )
    if titled:
        source = curves[0].source
        ax.set_title("ours" if source == "ours" else "the paper's trials", fontsize="medium", loc="left")
