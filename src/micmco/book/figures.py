"""§7 and the appendices: the paper's experiment figures, drawn from the committed sweep results.

Every curve of a figure (:mod:`micmco.book.registry`) is one study, params/studies/<profile>/<curve>.yaml,
whose sweep exports results/<profile>/<profile>-<curve>.tsv; the paper's own trials of the same curve are a
file of data/paper-frontiers/{synthetic,ptb}/. The synthetic figures are drawn on normalised axes (usage /
ln V against NLL - ln V: vocabularies differ, the optimum is known); the Penn Treebank figures per token,
never normalised (text has no known optimal NLL, and our cpu vocabulary is not the paper's, so the two
sides are compared by their orderings, not their values). Nothing is trained here: these functions read
the committed tables, and a curve without a table is reported as missing, with the command.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..frontier_plot import draw_frontier
from ..gradients import estimator_spec
from ..naming import curve_draws, curve_label, paper_file_name, parse_curve_id
from ..verdicts import MIN_TRIALS as MIN_TRIALS_REACHING
from ..verdicts import Z
from .common import markdown_lines, markdown_table, repo_path
from .orderings import lowest_excess, measured_noise, ordering_table, same_objective, training_noise_caveat
from .registry import SYNTHETIC_FIGURES, figure_curves, figure_task

MIN_TRIALS = 8  # a curve with fewer complete trials is drawn dotted and flagged with its count


def synthetic_curve_ids() -> list[str]:
    """Every curve of the synthetic figures (35), each once, in figure order."""
    return list(dict.fromkeys(curve for _, curves in SYNTHETIC_FIGURES.values() for curve in curves))


@dataclass
class CurveResults:
    """One curve of a figure: our trials (if any) beside the paper's, both normalised (synthetic) or both
    per token (PTB)."""

    curve_id: str
    ours: Any  # micmco.pareto.Curve (synthetic: normalised, usage / ln V and NLL - ln V); None without trials
    paper: Any  # the paper's Curve, normalised
    rows: int  # our finished trials: complete + diverged + failed
    complete: int
    wall_s: float  # the sum of wall_s over our finished trials
    table: str  # results/<profile>/<profile>-<curve>.tsv, relative to the repository
    retrained: int = 0  # complete trials evaluated precisely as retrained here (their table's retrain_nll)

    @property
    def label(self) -> str:
        return curve_label(self.curve_id)

    @property
    def too_few(self) -> bool:
        return 0 < self.complete < MIN_TRIALS

    @property
    def task(self) -> str:
        return "ptb" if self.curve_id.startswith("ptb-") else "synthetic"


def paper_frontiers_dir(task: str = "synthetic") -> Path:
    """The paper's trial files of a task, vendored in the repository (a copy of shared/data/paper-frontiers)."""
    return repo_path(f"data/paper-frontiers/{task}")


def ptb_paper_files(directory: Path | None = None) -> dict[str, Path]:
    """The paper's PTB trial files by curve id (``ptb-dreg16-kl`` -> its ``l40x0-...-dreg16-kl.tsv``)."""
    from ..naming import ptb_curve_id

    directory = Path(directory or paper_frontiers_dir("ptb"))
    return {ptb_curve_id(path.stem): path for path in sorted(directory.glob("*.tsv"))}


@dataclass(frozen=True)
class OurTrials:
    """What one committed results table of ours holds for a figure."""

    curve: Any  # micmco.pareto.Curve of its (largest) setting; None without complete trials
    rows: int  # finished trials: complete + diverged + failed
    complete: int
    wall_s: float  # the sum of wall_s
    table: str  # the table's path, relative to the repository where it is inside
    retrained: int = 0  # complete rows whose precise evaluation is of a retrain here (results.RETRAIN_COLUMNS)


def read_our_trials(curve_id: str, profile: str = "cpu", results_dir: Path | None = None) -> OurTrials:
    """results/<profile>/<profile>-<curve>.tsv, if it exists (both tasks' figures read theirs here)."""
    from ..pareto import NoCompleteTrials, curves_of
    from ..results import read_rows

    results_dir = results_dir or repo_path("results") / profile
    table = Path(results_dir) / f"{profile}-{curve_id}.tsv"
    ours, rows = None, []
    if table.exists():
        rows = read_rows(table)
        try:
            curves = curves_of(rows, table)
        except NoCompleteTrials:  # a study under way: its table has no complete trial yet
            curves = []
        if curves:  # one setting per study; the largest if a table mixes several
            ours = max(curves, key=lambda c: len(c.mi))
    try:
        shown = table.relative_to(repo_path("results").parent)
    except ValueError:
        shown = table
    complete = sum(row.status == "complete" for row in rows)
    retrained = sum(row.status == "complete" and row.retrain_nll == row.retrain_nll for row in rows)  # not NaN
    return OurTrials(ours, len(rows), complete, sum(row.wall_s for row in rows), str(shown), retrained)


def load_curve(curve_id: str, profile: str = "cpu", results_dir: Path | None = None) -> CurveResults:
    """Our committed trials of a curve (results/<profile>/<profile>-<curve>.tsv) and the paper's: normalised
    for the synthetic task, per token for PTB curves (``ptb-...``)."""
    from ..pareto import read_paper_trials

    ours = read_our_trials(curve_id, profile, results_dir)
    if curve_id.startswith("ptb-"):
        files = ptb_paper_files()
        if curve_id not in files:
            raise ValueError(f"no paper trials for {curve_id!r}; the PTB curves are: {', '.join(sorted(files))}")
        paper = read_paper_trials(files[curve_id])
        return CurveResults(
            curve_id, ours.curve, paper, ours.rows, ours.complete, ours.wall_s, ours.table, ours.retrained
        )
    paper = read_paper_trials(paper_frontiers_dir() / paper_file_name(curve_id)).normalised()
    curve = None if ours.curve is None else ours.curve.normalised()
    return CurveResults(curve_id, curve, paper, ours.rows, ours.complete, ours.wall_s, ours.table, ours.retrained)


@dataclass
class FigureResults:
    number: int
    title: str
    profile: str
    curves: list[CurveResults]
    results_dir: Path | None = None  # where our tables were read (None: results/<profile>/)

    @property
    def noise(self):
        """What its verdicts assume where a number has no standard error (micmco.book.orderings.measured_noise)."""
        return measured_noise(self.task, self.profile, None if self.results_dir is None else str(self.results_dir))

    @property
    def name(self) -> str:
        return f"Figure {self.number}"

    @property
    def wall_s(self) -> float:
        return sum(c.wall_s for c in self.curves)

    @property
    def missing(self) -> list[CurveResults]:
        return [c for c in self.curves if c.ours is None]

    @property
    def task(self) -> str:
        return self.curves[0].task

    @property
    def split(self) -> str:
        """The split of its NLL: "train" (training fit, and every synthetic figure) or "valid"."""
        return "valid" if any("-valid" in c.curve_id for c in self.curves) else "train"


def load_figure(number: int, profile: str = "cpu", results_dir: Path | None = None) -> FigureResults:
    """Figure ``number`` of the paper (synthetic: 2-7, 15, 26, 27; PTB: 8-14, 16-25, 28, 29): each of its
    curves, ours and the paper's."""
    title, curve_ids = figure_curves(number)
    curves = [load_curve(c, profile, results_dir) for c in curve_ids]
    return FigureResults(number, title, profile, curves, results_dir)


def _colour_key(curve_id: str) -> str:
    """One colour per estimator, K and K′ (and PTB variant: T×16, batch, H): a curve's objectives share it."""
    if curve_id.startswith("ptb-"):
        return re.sub(r"-(kl|renyi|power|alpha)(?=\d*(-|$))", "-*", curve_id, count=1)
    setting = parse_curve_id(curve_id)
    return f"{setting.estimator}{setting.k}/{setting.k_mi}"


def _name_without_objective(curve_id: str) -> str:
    """ "DReG 16/1, KL" -> "DReG 16/1"; "REINFORCE 1, KL, T×16" -> "REINFORCE 1, T×16"."""
    name, *rest = curve_label(curve_id).split(", ")
    return ", ".join([name, *rest[1:]])


def _panels_of(figure: FigureResults) -> dict[str, list[CurveResults]]:
    """Objective -> the curves its panel draws. A single-sample curve (K = K′ = 1) whose figure has it with
    one of KL and Rényi only (the PTB figures: one objective at K = 1) is drawn in both of their panels."""
    panels: dict[str, list[CurveResults]] = {}
    for c in figure.curves:
        if c.curve_id != "vqvae":
            panels.setdefault(parse_curve_id(c.curve_id).objective, [])
    for c in figure.curves:
        if c.curve_id == "vqvae":
            for curves in panels.values():
                curves.append(c)
            continue
        setting = parse_curve_id(c.curve_id)
        panels[setting.objective].append(c)
        twins = [o for o in figure.curves if o is not c and same_objective(o.curve_id, c.curve_id)]
        if setting.k == setting.k_mi == 1 and not twins and setting.objective in ("kl", "renyi"):
            other = {"kl": "renyi", "renyi": "kl"}[setting.objective]
            if other in panels:
                panels[other].append(c)
    return panels


def _settings_text(curves: list[CurveResults]) -> str:
    """What the figure's two sides are, e.g. "ours: cpu profile, V = 200; paper: V = 10000"."""
    ours = _joined_settings({c.ours.setting_label for c in curves if c.ours is not None})
    return f"{ours or 'no results'}; paper: {_joined_settings({c.paper.setting_label for c in curves})}"


def _joined_settings(labels: set[str]) -> str:
    """Several settings of one figure with their common leading parts once: "V = 2000, dropout, naive
    masks / shared masks" rather than the whole label twice."""
    parts = [label.split(", ") for label in sorted(labels)]
    if len(parts) < 2:
        return ", ".join(parts[0]) if parts else ""
    common = 0
    while all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    tails = " / ".join(", ".join(p[common:]) for p in parts)
    return ", ".join([*parts[0][:common], tails])


# The static figures' look: seaborn's whitegrid theme at notebook scale (font scale 0.9), written out as
# matplotlib settings: importing seaborn (and scipy.stats with it) cost ~2 s in every chapter that plots.
FIGURE_STYLE: dict[str, Any] = {
    "figure.facecolor": "white", "axes.facecolor": "white", "axes.edgecolor": ".8", "axes.labelcolor": ".15",
    "axes.grid": True, "axes.axisbelow": True, "axes.linewidth": 1.25, "grid.color": ".8", "grid.linestyle": "-",
    "grid.linewidth": 1, "text.color": ".15", "xtick.color": ".15", "ytick.color": ".15",
    "xtick.direction": "out", "ytick.direction": "out", "xtick.top": False, "ytick.right": False,
    "xtick.bottom": False, "ytick.left": False, "xtick.major.width": 1.25, "ytick.major.width": 1.25,
    "xtick.minor.width": 1, "ytick.minor.width": 1, "xtick.major.size": 6, "ytick.major.size": 6,
    "xtick.minor.size": 4, "ytick.minor.size": 4, "lines.linewidth": 1.5, "lines.markersize": 6,
    "lines.solid_capstyle": "round", "patch.edgecolor": "w", "patch.force_edgecolor": True, "patch.linewidth": 1,
    "font.family": ["sans-serif"], "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "sans-serif"],
    "font.size": 10.8, "axes.labelsize": 10.8, "axes.titlesize": 10.8, "xtick.labelsize": 9.9,
    "ytick.labelsize": 9.9, "legend.fontsize": 9.9, "legend.title_fontsize": 10.8,
}  # fmt: skip


def plot_figure(figure: FigureResults):
    """Figure N as in the paper, at the page's width: one panel per objective (two a row), our frontiers
    solid with all our trials as dots (dotted when fewer than MIN_TRIALS trials), the paper's dashed and
    lighter; one legend below the panels (trial counts are in the figure's table). Synthetic figures on the
    normalised axes, PTB figures per token."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    panels = _panels_of(figure)
    per_token = figure.task == "ptb"
    names = {"kl": "KL objective", "renyi": "Rényi objective", "power": "power objective"}
    columns = min(2, len(panels))
    rows = math.ceil(len(panels) / columns)
    with plt.rc_context(FIGURE_STYLE):
        fig, axes = plt.subplots(rows, columns, figsize=(8.0, 3.6 * rows + 1.0), sharey=True, squeeze=False)
        palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        colours: dict[str, str] = {}
        names_of: dict[str, str] = {}
        for c in figure.curves:
            key = _colour_key(c.curve_id)
            colours.setdefault(key, palette[len(colours) % len(palette)])
            names_of.setdefault(key, _name_without_objective(c.curve_id))
        fronts = []  # (usage, NLL) of every frontier drawn
        flat = list(axes.flat)
        for ax, (objective, curves) in zip(flat, panels.items()):
            for c in curves:
                colour = colours[_colour_key(c.curve_id)]
                fronts.append(draw_frontier(ax, c.paper, linestyle="--", color=colour, alpha=0.55, lw=1.3))
                if c.ours is not None:
                    line = ":" if c.too_few else "-"
                    fronts.append(
                        draw_frontier(ax, c.ours, True, linestyle=line, marker="o", color=colour, ms=4, lw=1.6)
                    )
            if per_token:
                ax.set(xlabel="latent usage (nats per token)", title=names[objective])
            else:
                ax.axhline(0.0, color="0.6", lw=0.8)
                ax.set(xlim=(0, 1.05), xlabel="latent usage: MI / ln V", title=names[objective])
        for ax in flat[len(panels) :]:
            ax.set_visible(False)
        if per_token:  # the thesis's axes: usage up to 2 nats per token (Gaussian) or the discrete cap
            right = (
                2.0
                if any(estimator_spec(parse_curve_id(c.curve_id).estimator).reparameterised for c in figure.curves)
                else 0.95
            )
            inside = [nll[mi <= right] for mi, nll in fronts if (mi <= right).any()]
            low = min((float(f.min()) for f in inside), default=0.0)
            high = max((float(f.max()) for f in inside), default=1.0)
            pad = 0.05 * max(high - low, 0.1)
            flat[0].set_ylim(low - pad, high + pad)
            for ax in flat:
                ax.set_xlim(0, right)
        else:
            top = min(max((float(nll.max()) for _, nll in fronts), default=0.25), 0.3)  # the paper's: 0.25 nats
            flat[0].set_ylim(-0.01, top * 1.05 + 0.01)
        ylabel = f"{'validation' if figure.split == 'valid' else 'training'} NLL (nats per token)"
        for row in axes:
            row[0].set_ylabel(ylabel if per_token else "excess NLL: NLL − ln V")
        handles = [Line2D([], [], color=colour, lw=2, label=names_of[key]) for key, colour in colours.items()]
        handles += [
            Line2D([], [], color="0.3", marker="o", ms=4, label="ours: frontier (dots: every trial)"),
            Line2D([], [], color="0.3", ls="--", alpha=0.6, label="the paper's frontier"),
        ]
        ncol = 3 if per_token else 4
        fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, bbox_to_anchor=(0.5, 0.0))
        settings = textwrap.fill(f"(ours: {figure.profile} profile, {_settings_text(figure.curves)})", 90)
        fig.suptitle(f"{figure.name}: {figure.title}\n{settings}")
        legend_rows = math.ceil(len(handles) / ncol)
        fig.tight_layout(rect=(0, 0.06 * legend_rows / rows + 0.02, 1, 1))
    return fig


def figure_table(figure: FigureResults, min_usages: list[float]) -> str:
    """Markdown: per curve, our trial count and compute, then the frontier at usage >= m, ours ± its standard
    error (``~``: assumed, the trial has no precise evaluation yet) and the paper's ("–": no trial reaches that
    usage; "no results": no table yet): excess NLL at usage / ln V >= m on the synthetic task (4 decimals),
    NLL per token at usage >= m nats per token on PTB (3 decimals)."""
    noise = figure.noise
    per_token = figure.task == "ptb"
    headers = ["curve", "our trials (complete/run)", "compute (min)" if per_token else "compute (s)"]
    headers += [f"m = {m:g}: ours / paper" for m in min_usages]
    digits = 3 if per_token else 4
    rows = []
    for c in figure.curves:
        compute = f"{c.wall_s / 60:.0f}" if per_token else f"{c.wall_s:.0f}"
        row = [c.label, f"{c.complete}/{c.rows}" + (" (too few)" if c.too_few else ""), compute]
        absent = _why_absent(c, figure)
        for m in min_usages:
            ours = noise.ours(c.ours, m)
            paper = lowest_excess(c.paper, m)
            row.append((absent if c.ours is None else ours.text(digits))
                       + " / " + ("–" if math.isnan(paper) else f"{paper:.{digits}f}"))  # fmt: skip
        rows.append(row)
    return markdown_table(rows, headers)


def has_study(curve_id: str, profile: str) -> bool:
    """Whether params/studies/<profile>/<curve>.yaml exists (the cpu profile sweeps some PTB curves only)."""
    try:
        return (repo_path(f"params/studies/{profile}") / f"{curve_id}.yaml").exists()
    except FileNotFoundError:
        return False


def _why_absent(curve: CurveResults, figure: FigureResults) -> str:
    """What a table says for a curve of ours without results: its KL twin stands for it (K = 1 on PTB, one
    objective, so the cpu profile runs one study), it has no study in this profile, or it has not run."""
    if any(o.ours is not None and same_objective(o.curve_id, curve.curve_id) for o in figure.curves):
        return "see KL (one objective)"
    return "no results" if has_study(curve.curve_id, figure.profile) else f"no {figure.profile} study"


def reproduce_command(figure: int | None = None, profile: str = "paper") -> str:
    """The one command that re-runs a figure's studies (on a GPU box at the paper profile)."""
    return f"make reproduce PROFILE={profile}" + (f" FIGURE={figure}" if figure is not None else "")


def figure_studies(figure: int | None, profile: str) -> list[str]:
    """The study files behind a figure of either task (all synthetic figures when None), cheapest first (by
    the draws max(K, K') a step takes), for ``make reproduce``. The cpu profile has studies for some PTB
    curves only (those of Figures 8-12, and the K = 64 ones): the others are left out, and a
    figure without any is an error naming the paper profile's command."""
    if profile not in ("cpu", "paper"):
        raise ValueError(f"no studies for profile {profile!r}; choose cpu or paper")
    curves = synthetic_curve_ids() if figure is None else list(figure_curves(figure)[1])
    studies = [f"params/studies/{profile}/{curve}.yaml" for curve in sorted(curves, key=curve_draws)]
    if figure is not None and figure_task(figure) == "ptb":
        folder = repo_path(f"params/studies/{profile}")
        studies = [study for study in studies if (folder / Path(study).name).exists()]
        if not studies:
            raise ValueError(f"no {profile} studies for Figure {figure}; at the paper's settings on a GPU: "
                             f"{reproduce_command(figure)}")  # fmt: skip
    return studies


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


def trials_per_curve(profile: str = "cpu", task: str = "synthetic") -> str:
    """How many trials a curve has, ours (complete rows per table of results/<profile>/) and the paper's (trials
    per trial file of data/paper-frontiers/<task>/), as a sentence: the chapters' prose quotes no such number."""
    from ..pareto import ParetoError, read_paper_trials

    ours = [sum(row.get("status") == "complete" for row in rows) for rows in result_tables(profile, None, task)]
    paper = []
    for path in sorted(paper_frontiers_dir(task).iterdir()):
        try:
            paper.append(len(read_paper_trials(path).mi))
        except (ParetoError, OSError, ValueError):
            continue
    span = lambda counts: f"{min(counts)}–{max(counts)}" if counts else "none"  # noqa: E731
    return (
        f"Trials per curve: ours {span(ours)} complete (results/{profile}/, {len(ours)} tables), the paper's "
        f"{span(paper)} (its {len(paper)} trial files, data/paper-frontiers/{task}/)."
    )


def paper_side(numbers: list[int], min_usage: float, profile: str = "cpu"):
    """The paper's side of figures, from its trial files: a table (pandas DataFrame: a table on the page, its
    text checked by nbval) of each figure's curves, trials, and lowest NLL at usage >= ``min_usage``
    (fractions of ln V for the synthetic task, nats per token for PTB) with the curve that reaches it."""
    import pandas as pd

    rows = []
    for number in numbers:
        figure = load_figure(number, profile)
        best = min(figure.curves, key=lambda c: lowest_excess(c.paper, min_usage))
        rows.append({"figure": number, "curves": len(figure.curves),
                     "paper trials": sum(len(c.paper.mi) for c in figure.curves),
                     f"lowest at usage >= {min_usage}{' ln V' if figure.task == 'synthetic' else ''}": best.label,
                     "excess NLL" if figure.task == "synthetic" else "NLL per token":
                         round(lowest_excess(best.paper, min_usage), 4)})  # fmt: skip
    return pd.DataFrame(rows).set_index("figure")


def figure_notes(figure: FigureResults) -> list[str]:
    """What a figure's table does not show: its totals, curves with too few or no complete trials, and the
    commands that re-run it (the last line)."""
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
        if c.retrained:
            lines.append(
                f"  {c.label}: {c.retrained} of {c.complete} trials were recorded on another machine and do not "
                "retrain to their recorded numbers here (floating point differs between machines): their precise "
                "numbers, which the frontier uses, are of the models retrained here (the table's retrain_nll, "
                "retrain_mi)"
            )
    try:
        figure_studies(figure.number, figure.profile)
        here = f"Re-run here: `{reproduce_command(figure.number, figure.profile)}`"
    except ValueError:
        here = f"No {figure.profile} studies"
    lines.append(
        f"{here}; at the paper's settings on a GPU: `{reproduce_command(figure.number)}`. Either with `DRY_RUN=1` "
        "first lists its studies, their trials done and left, and the projected time, and runs nothing"
    )
    return lines


def show_figure(number: int, profile: str, min_usages: list[float]) -> FigureResults:
    """A figure's section body: the plot, the table of lowest NLL at usage >= m, the orderings, the cost."""
    import matplotlib.pyplot as plt
    from IPython.display import Markdown, display

    figure = load_figure(number, profile)
    if not any(c.ours is not None for c in figure.curves):
        try:
            here = f"Run `{reproduce_command(number, profile)}` here (or `{reproduce_command(number)}` on a GPU box)"
            figure_studies(number, profile)
        except ValueError:  # a PTB figure without cpu studies
            here = f"Its studies run at the paper's settings: `{reproduce_command(number)}` on a GPU box"
        display(Markdown(f"**No results yet for {figure.name}.** {here}, then `make book`. The paper's curves alone:"))
    fig = plot_figure(figure)
    display(fig)
    plt.close(fig)
    if figure.task == "ptb":
        what = (f"Lowest {'validation' if figure.split == 'valid' else 'training'} NLL per token among trials "
                "with latent usage ≥ m nats per token")  # fmt: skip
    else:
        what = "Lowest excess NLL (nats over ln V) among trials with latent usage ≥ m · ln V"
    noise = figure.noise
    display(Markdown(
        f"{what}, ours (± standard error; `~`: assumed, from the measured noise of one evaluation, for a trial "
        "not yet evaluated precisely) and the paper's; trial counts and compute (sum of `wall_s`) are ours:\n\n"
        f"{figure_table(figure, min_usages)}"
    ))  # fmt: skip
    caveat = training_noise_caveat(
        figure.task, figure.profile, None if figure.results_dir is None else str(figure.results_dir)
    )
    display(Markdown(
        "The curves' order, pair by pair, at each threshold m, decided on each side only where the difference "
        f"exceeds {Z:g} combined standard errors and at least {MIN_TRIALS_REACHING} trials reach m "
        f"({noise.describe()}; the paper's noise is assumed, `micmco.verdicts`). {caveat}"
        f"\n\n{ordering_table(figure, min_usages, noise)}"
    ))  # fmt: skip
    display(Markdown(markdown_lines(figure_notes(figure))))
    return figure
