"""§7.1, Appendices A and B.3: the synthetic figures, drawn from the committed sweep results.

Every curve of Figures 2-7, 15, 26 and 27 is one study, params/studies/<profile>/<curve>.yaml, whose
sweep exports results/<profile>/<profile>-<curve>.tsv; the paper's own trials of the same curve are
data/paper-frontiers/synthetic/<paper file>.tsv. Nothing is trained here: these functions read
the committed tables, and a curve without a table is reported as missing, with the command.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..naming import curve_draws, curve_label, paper_file_name, parse_curve_id
from .common import markdown_table, repo_path

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
# The figures and claims of each task, by paper figure number (claims: micmco.book.claims.CLAIMS).
FIGURES = {"synthetic": SYNTHETIC_FIGURES}
MIN_TRIALS = 8  # a curve with fewer complete trials is drawn dotted and flagged with its count


def synthetic_curve_ids() -> list[str]:
    """Every curve of the synthetic figures (35), each once, in figure order."""
    return list(dict.fromkeys(curve for _, curves in SYNTHETIC_FIGURES.values() for curve in curves))


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


@dataclass(frozen=True)
class OurTrials:
    """What one committed results table of ours holds for a figure."""

    curve: Any  # micmco.pareto.Curve of its (largest) setting; None without complete trials
    rows: int  # finished trials: complete + diverged + failed
    complete: int
    wall_s: float  # the sum of wall_s
    table: str  # the table's path, relative to the repository where it is inside


def read_our_trials(curve_id: str, profile: str = "cpu", results_dir: Path | None = None) -> OurTrials:
    """results/<profile>/<profile>-<curve>.tsv, if it exists (both tasks' figures read theirs here)."""
    from ..pareto import curves_of
    from ..results import read_rows

    results_dir = results_dir or repo_path("results") / profile
    table = Path(results_dir) / f"{profile}-{curve_id}.tsv"
    ours, rows = None, []
    if table.exists():
        rows = read_rows(table)
        curves = curves_of(rows, table)
        if curves:  # one setting per study; the largest if a table mixes several
            ours = max(curves, key=lambda c: len(c.mi))
    try:
        shown = table.relative_to(repo_path("results").parent)
    except ValueError:
        shown = table
    complete = sum(row.status == "complete" for row in rows)
    return OurTrials(ours, len(rows), complete, sum(row.wall_s for row in rows), str(shown))


def load_curve(curve_id: str, profile: str = "cpu", results_dir: Path | None = None) -> CurveResults:
    """Our committed trials of a curve (results/<profile>/<profile>-<curve>.tsv) and the paper's, normalised."""
    from ..pareto import read_paper_trials

    paper = read_paper_trials(paper_frontiers_dir() / paper_file_name(curve_id)).normalised()
    ours = read_our_trials(curve_id, profile, results_dir)
    curve = None if ours.curve is None else ours.curve.normalised()
    return CurveResults(curve_id, curve, paper, ours.rows, ours.complete, ours.wall_s, ours.table)


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
    """The lowest NLL (excess NLL on normalised curves) among trials with usage >= ``min_usage`` (NaN: none
    reach it, or no curve)."""
    from ..pareto import lowest_nll

    return math.nan if curve is None else lowest_nll(curve, min_usage)


def _colour_key(curve_id: str) -> str:
    setting = parse_curve_id(curve_id)  # one colour per estimator, K and K′: its objectives share it
    return f"{setting.estimator}{setting.k}/{setting.k_mi}"


def _settings_text(curves: list[CurveResults]) -> str:
    """What the figure's two sides are, e.g. "ours: cpu profile, V = 200; paper: V = 10000"."""
    ours = sorted({c.ours.setting_label for c in curves if c.ours is not None})
    paper = sorted({c.paper.setting_label for c in curves})
    return f"{', '.join(ours) or 'no results'}; paper: {', '.join(paper)}"


def figure_style() -> dict[str, Any]:
    """The static figures' look: seaborn's whitegrid theme at notebook scale when seaborn is installed (the
    book extra), matplotlib's defaults otherwise; for ``matplotlib.rc_context``, so nothing global changes."""
    try:
        import seaborn as sns
    except ImportError:
        return {}
    return {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.9)}


def plot_figure(figure: FigureResults):
    """Figure N as in the paper, on the normalised axes, at the page's width: one panel per objective (two
    a row), our frontiers solid with all our trials as dots (dotted when fewer than MIN_TRIALS trials), the
    paper's dashed and lighter; one legend below the panels (trial counts are in the figure's table)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    objectives = list(dict.fromkeys(parse_curve_id(c.curve_id).objective for c in figure.curves
                                    if c.curve_id != "vqvae"))  # fmt: skip
    names = {"kl": "KL objective", "renyi": "Rényi objective", "power": "power objective"}
    columns = min(2, len(objectives))
    rows = math.ceil(len(objectives) / columns)
    with plt.rc_context(figure_style()):
        fig, axes = plt.subplots(rows, columns, figsize=(8.0, 3.6 * rows + 1.0), sharey=True, squeeze=False)
        palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        colours: dict[str, str] = {}
        names_of: dict[str, str] = {}
        for c in figure.curves:
            key = _colour_key(c.curve_id)
            colours.setdefault(key, palette[len(colours) % len(palette)])
            names_of.setdefault(key, c.label.split(",")[0])
        tops = []
        flat = list(axes.flat)
        for ax, objective in zip(flat, objectives):
            for c in figure.curves:
                if c.curve_id != "vqvae" and parse_curve_id(c.curve_id).objective != objective:
                    continue
                colour = colours[_colour_key(c.curve_id)]
                front = c.paper.frontier()
                ax.plot(c.paper.mi[front], c.paper.nll[front], "--", color=colour, alpha=0.55, lw=1.3)
                tops.append(float(c.paper.nll[front].max()))
                if c.ours is None:
                    continue
                front = c.ours.frontier()
                ax.plot(c.ours.mi, c.ours.nll, ".", color=colour, alpha=0.3, ms=4)
                ax.plot(c.ours.mi[front], c.ours.nll[front], ":" if c.too_few else "-", marker="o", color=colour,
                        ms=4, lw=1.6)  # fmt: skip
                tops.append(float(c.ours.nll[front].max()))
            ax.axhline(0.0, color="0.6", lw=0.8)
            ax.set(xlim=(0, 1.05), xlabel="latent usage: MI / ln V", title=names[objective])
        for ax in flat[len(objectives) :]:
            ax.set_visible(False)
        top = min(max(tops, default=0.25), 0.3)  # the paper's axes span 0.25 nats of excess NLL
        flat[0].set_ylim(-0.01, top * 1.05 + 0.01)
        for row in axes:
            row[0].set_ylabel("excess NLL: NLL − ln V")
        handles = [Line2D([], [], color=colour, lw=2, label=names_of[key]) for key, colour in colours.items()]
        handles += [
            Line2D([], [], color="0.3", marker="o", ms=4, label="ours: frontier (dots: every trial)"),
            Line2D([], [], color="0.3", ls="--", alpha=0.6, label="the paper's frontier"),
        ]
        fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False, bbox_to_anchor=(0.5, 0.0))
        fig.suptitle(f"{figure.name}: {figure.title}\n(ours: {figure.profile} profile, "
                     f"{_settings_text(figure.curves)})")  # fmt: skip
        legend_rows = math.ceil(len(handles) / 4)
        fig.tight_layout(rect=(0, 0.06 * legend_rows / rows + 0.02, 1, 1))
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


def same_objective(curve_a: str, curve_b: str) -> bool:
    """The KL and Rényi curves of one estimator whose divergence term has one sample (K′ = 1): the same
    objective, since V̂_α¹ = Û¹ = ln p(x|z₁) (Props. 4-5, and eq. 11's grouping for K > 1), so their order
    is tuning noise."""
    a, b = parse_curve_id(curve_a), parse_curve_id(curve_b)
    same_setting = a.estimator == b.estimator != "vqvae" and a.k == b.k and a.k_mi == b.k_mi == 1
    return same_setting and {a.objective, b.objective} <= {"kl", "renyi"}


def reproduce_command(figure: int | None = None, profile: str = "paper") -> str:
    """The one command that re-runs a figure's studies (on a GPU box at the paper profile)."""
    return f"make reproduce PROFILE={profile}" + (f" FIGURE={figure}" if figure is not None else "")


def figure_studies(figure: int | None, profile: str) -> list[str]:
    """The study files behind a figure (all synthetic figures when None), cheapest first (by the draws
    max(K, K') a step takes), for ``make reproduce``."""
    if profile not in ("cpu", "paper"):
        raise ValueError(f"no synthetic studies for profile {profile!r}; choose cpu or paper")
    curves = synthetic_curve_ids() if figure is None else list(load_figure_ids(figure))
    return [f"params/studies/{profile}/{curve}.yaml" for curve in sorted(curves, key=curve_draws)]


def load_figure_ids(figure: int) -> tuple[str, ...]:
    """The curves of a synthetic figure, in its order (an error naming the figures for another number)."""
    if figure not in SYNTHETIC_FIGURES:
        raise ValueError(f"no synthetic figure {figure}; choose one of {sorted(SYNTHETIC_FIGURES)}")
    return SYNTHETIC_FIGURES[figure][1]


def result_tables(
    profile: str = "cpu", results_dir: Path | None = None, task: str | None = None
) -> Iterator[list[dict[str, str]]]:
    """The rows (one per finished trial) of every table in results/<profile>/, table by table, by name;
    with ``task``, only that task's tables (a table without a task column is synthetic)."""
    from ..results import read_table

    results_dir = Path(results_dir or repo_path("results") / profile)
    for table in sorted(results_dir.glob("*.tsv")):
        _, rows = read_table(table)
        rows = [row for _, row in rows]
        if task is None or all((row.get("task") or "synthetic") == task for row in rows):
            yield rows


def compute_summary(
    profile: str = "cpu", results_dir: Path | None = None, task: str | None = "synthetic"
) -> tuple[int, int, float]:
    """Over the tables of one task (None: all) in results/<profile>/: (tables, finished trials, sum of
    wall_s in seconds). The synthetic chapters count the synthetic task only."""
    tables, trials, seconds = 0, 0, 0.0
    for rows in result_tables(profile, results_dir, task):
        tables += 1
        trials += len(rows)
        seconds += sum(float(row.get("wall_s") or 0) for row in rows)
    return tables, trials, seconds


def show_figure(number: int, profile: str, min_usages: list[float], tolerance: float = 0.005) -> FigureResults:
    """A figure's section body: the plot, the table of lowest excess NLL, the computed reading, the cost."""
    import matplotlib.pyplot as plt
    from IPython.display import Markdown, display

    from .claims import figure_notes, ordering_table  # the reading compares curves: claims builds on this module

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
    display(Markdown(
        "The curves' order, pair by pair, at each threshold m (pairs the paper separates by less than "
        f"{tolerance:g} nats are ties):\n\n{ordering_table(figure, min_usages, tolerance)}"
    ))  # fmt: skip
    for line in figure_notes(figure):
        print(line)
    return figure
