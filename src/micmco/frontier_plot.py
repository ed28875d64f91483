"""Plots of Pareto frontiers in the paper's style: latent usage on x, NLL on y, one line per curve.

Synthetic curves have an optimum, ln V, so curves of different vocabularies overlay once normalised
(excess NLL over ln V against usage / ln V). Text has no known optimum: its curves are drawn in
nats per token, and ours and the paper's sit in panels side by side, each with its own NLL range,
because a reduced profile (a smaller vocabulary, model and corpus) shifts the whole frontier.
"""

from __future__ import annotations

from collections.abc import Sequence

from .pareto import Curve, distinct_labels

__all__ = ["plot_frontiers"]

MAX_EXCESS_SHOWN = 0.25  # nats over ln V: the paper's synthetic axes (9.20 to 9.45 at ln V = 9.21)
PER_TOKEN_NLL_SPAN = 1.2  # nats per token above a panel's best NLL: the paper's PTB axes span about 1.1


def plot_frontiers(curves: Sequence[Curve], normalised: bool = True, ax=None, title: str | None = None):
    """The frontiers in the paper's style; returns the matplotlib Figure.

    One colour per estimator and sample count; KL objective hollow markers, Rényi filled
    (power: triangles, none: squares); the paper's curves dashed and lighter beside ours.
    ``normalised`` plots excess NLL over ln V against usage / ln V, so vocabularies overlay
    (synthetic curves only). Curves without a known optimum (text) are drawn per token, ours and
    the paper's in separate panels unless ``ax`` is given.
    """
    import matplotlib.pyplot as plt

    per_token = any(curve.reference_nll is None for curve in curves)
    shown = [curve.normalised() for curve in curves] if normalised else list(curves)  # raises for text
    labels = distinct_labels(curves)
    panels: list[list[int]] = [list(range(len(curves)))]
    if per_token and ax is None:
        sources = list(dict.fromkeys(curve.source for curve in curves))
        panels = [[i for i, curve in enumerate(curves) if curve.source == source] for source in sources]
    if ax is None:
        figure, axes = plt.subplots(1, len(panels), figsize=(10.5 + 3.5 * (len(panels) - 1), 4.8), squeeze=False)
        axes = list(axes[0])
    else:
        figure, axes = ax.figure, [ax]
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours: dict[tuple, str] = {}
    for panel, indices in zip(axes, panels):
        for i in indices:
            curve, view = curves[i], shown[i]
            frontier = view.frontier()
            colour = colours.setdefault((curve.estimator, curve.k, curve.k_mi), palette[len(colours) % len(palette)])
            paper = curve.source == "paper"
            panel.plot(
                view.mi[frontier],
                view.nll[frontier],
                linestyle="--" if paper else "-",
                marker={"kl": "o", "renyi": "o", "power": "^", "none": "s"}[curve.objective],
                markersize=4 if paper else 5,
                color=colour,
                markerfacecolor="none" if curve.objective == "kl" else colour,
                alpha=0.45 if paper else 1.0,
                label=labels[i],
            )
        group = [shown[i] for i in indices]
        if per_token:
            _per_token_axes(panel, group, titled=len(panels) > 1)
        else:
            _synthetic_axes(panel, group, normalised)
        panel.grid(alpha=0.3)
    if title:
        (figure.suptitle if len(axes) > 1 else axes[0].set_title)(title)
    # Beside the axes, never over the data; a second column once the entries outgrow the height.
    handles = [handle for panel in axes for handle in panel.get_legend_handles_labels()[0]]
    axes[-1].legend(handles=handles, fontsize="x-small", frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                    ncol=1 if len(curves) <= 18 else 2)  # fmt: skip
    figure.tight_layout()
    return figure


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
    tops = [float(view.nll[view.frontier()].max()) for view in (curve.normalised() for curve in curves)]
    return min(max(tops, default=MAX_EXCESS_SHOWN), MAX_EXCESS_SHOWN)


def _per_token_axes(ax, curves: Sequence[Curve], titled: bool) -> None:
    """Axes in nats per token around the frontiers: usage from 0, NLL from the best to at most 1.2 above."""
    fronts = [(curve.mi[curve.frontier()], curve.nll[curve.frontier()]) for curve in curves]
    best = min(float(nll.min()) for _, nll in fronts)
    top = min(max(float(nll.max()) for _, nll in fronts), best + PER_TOKEN_NLL_SPAN)
    most = max(float(mi[nll <= top].max(initial=0.0)) for mi, nll in fronts)  # usage of the points shown
    pad = max(top - best, 0.01) * 0.05
    ax.set_xlim(0, max(most, 0.01) * 1.05)
    ax.set_ylim(best - pad, top + pad)
    ax.set_xlabel("latent usage per token (nats)")
    ax.set_ylabel(f"{curves[0].split} NLL per token (nats)")
    if titled:
        source = curves[0].source
        ax.set_title("ours" if source == "ours" else "the paper's trials", fontsize="medium")
