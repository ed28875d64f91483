"""``micmco pareto``: the frontiers, summaries and plots of :mod:`micmco.pareto` from the command line.

micmco pareto FILES-OR-DIRS... [--min-usage m ...] [--normalised] [--plot out.png] [--paper DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .pareto import (
    PER_UNIT_USAGES,
    Curve,
    ParetoError,
    default_fractions,
    distinct_labels,
    frontier_table,
    paper_counterparts,
    read_inputs,
    summary_table,
    uniform_notes,
)
from .tasks import TASKS, get_task, task_of_paper_folder

__all__ = ["cli_main"]


def cli_main(argv: list[str]) -> int:
    """``micmco pareto FILES-OR-DIRS... [--min-usage m ...] [--normalised] [--plot out.png]``; the exit status."""
    parser = argparse.ArgumentParser(
        prog="micmco pareto",
        description="Pareto frontiers (lowest NLL for at least that much latent usage) of our results "
        "(results/<profile>/<study>.tsv, or a folder of them) and of the paper's trials "
        "(data/paper-frontiers/synthetic/*.tsv, data/paper-frontiers/ptb/*.tsv). Tables of several tasks get a "
        "summary each; NLL and usage are nats per symbol (synthetic) or per token (PTB).",
    )
    parser.add_argument("files", nargs="+", type=Path, help="results tables, paper trial files, or folders of them")
    parser.add_argument(
        "--min-usage",
        type=float,
        nargs="+",
        metavar="M",
        help="summary thresholds: nats (per symbol, or per token for PTB); with --normalised, fractions of ln V "
        "for the synthetic task (PTB, which has no optimum to normalise by, keeps its default in nats per token). "
        f"Default: {' '.join(map(str, default_fractions()))} of each synthetic curve's own ln V (any vocabulary), "
        f"{' '.join(map(str, PER_UNIT_USAGES))} nats per token for PTB",
    )
    parser.add_argument(
        "--normalised",
        action="store_true",
        help="excess NLL over ln V against usage / ln V (vocabularies overlay); synthetic curves only: the "
        "plot leaves the others out and says so, their summary stays in nats",
    )
    parser.add_argument("--plot", type=Path, metavar="OUT", help="write a plot of the frontiers (png, pdf, svg)")
    parser.add_argument(
        "--paper",
        type=Path,
        metavar="DIR",
        help="add the paper's curves of the same settings from DIR (data/paper-frontiers/synthetic or .../ptb); "
        "an error when it has none, a warning for each task of the tables it has no trials of",
    )
    parser.add_argument("--no-frontiers", action="store_true", help="print the summary only")
    args = parser.parse_args(argv)

    def warn(message: str) -> None:
        print(f"micmco pareto: warning: {message}", file=sys.stderr)

    try:
        if args.plot:
            check_plot_path(args.plot)
        curves = read_inputs(args.files)
        if args.paper:
            papers, notes = checked_counterparts(curves, args.paper)
            curves += papers
            for note in notes:
                warn(note)
        shown, left_out = normalised_where_possible(curves) if args.normalised else (list(curves), [])
        plotted = [view for view in shown if view.normalised_view] if args.normalised else shown
        if args.plot:
            check_one_task(plotted)
    except ParetoError as error:
        print(f"micmco pareto: error: {error}", file=sys.stderr)
        return 2
    if left_out:
        tasks = ", ".join(dict.fromkeys(curve.task for curve in left_out))
        files = ", ".join(dict.fromkeys(curve.path.name for curve in left_out))
        warn(f"--normalised left out {len(left_out)} curve(s) of the {tasks} task from the plot (no known optimal "
             f"NLL to normalise by; their summary is in nats): {files}")  # fmt: skip
    labels = distinct_labels(shown)
    if not args.no_frontiers:
        for curve, label in zip(shown, labels):
            print(f"== {label}: {curve.path.name}, {curve.steps} steps, batch {curve.batch_size}, "
                  f"{len(curve.mi)} trials, {len(curve.frontier())} on the frontier")  # fmt: skip
            print(frontier_table(curve), end="\n\n")
    tasks = list(dict.fromkeys(curve.task for curve in shown))
    for task in tasks:  # one summary per task: each has its own units and default thresholds
        indices = [i for i, curve in enumerate(shown) if curve.task == task]
        group, group_labels = [shown[i] for i in indices], [labels[i] for i in indices]
        print(task_summary(group, group_labels, args.min_usage, args.normalised, named=len(tasks) > 1))
    if args.plot:
        from .frontier_plot import plot_frontiers

        figure = plot_frontiers(plotted, normalised=args.normalised)
        try:
            figure.savefig(args.plot, dpi=150, bbox_inches="tight")
        except OSError as error:
            print(f"micmco pareto: error: cannot write {args.plot}: {error.strerror or error}", file=sys.stderr)
            return 2
        print(f"plot: {args.plot}")
    return 0


def task_summary(
    group: Sequence[Curve], labels: Sequence[str], min_usage: Sequence[float] | None, normalised: bool, named: bool
) -> str:
    """The summary of one task's curves (``labels``: theirs): a heading naming what it lists and the unit of
    its thresholds (and the task when ``named``), the table, and a note on each curve with frontier points
    worse than the uniform model. ``min_usage`` None: the defaults; ``normalised``: --normalised was asked,
    which a task without a known optimum (text) ignores."""
    task = group[0].task
    shown_normalised = all(curve.normalised_view for curve in group)
    known = all(curve.reference_nll is not None for curve in group)  # text has no ln V to scale by
    fractions = min_usage is None and not shown_normalised and known
    if min_usage and (shown_normalised or not normalised):
        thresholds = list(min_usage)
    else:
        thresholds = default_fractions() if fractions or shown_normalised else PER_UNIT_USAGES
    if shown_normalised:
        heading = "Lowest excess NLL over ln V among trials with usage / ln V >= m"
    elif fractions:
        heading = "Lowest NLL among trials with latent usage (each curve's ln V) >= m"
    else:
        why = f", not normalised: the {task} task has no known optimal NLL" if normalised else ""
        heading = f"Lowest NLL among trials with latent usage (nats per {get_task(task).unit}{why}) >= m"
    heading += f" ({task})" if named else ""
    return "\n".join([heading, summary_table(group, thresholds, fractions=fractions), *uniform_notes(group, labels)])


def normalised_where_possible(curves: Sequence[Curve]) -> tuple[list[Curve], list[Curve]]:
    """Each curve normalised where it has a known optimum (else as it is), and the ones left as they are;
    a ParetoError when none can be normalised."""
    left_out = [curve for curve in curves if curve.reference_nll is None]
    if curves and len(left_out) == len(curves):
        tasks = ", ".join(dict.fromkeys(curve.task for curve in curves))
        raise ParetoError(
            f"--normalised: the {tasks} task has no known optimal NLL, so none of the curves can be normalised; "
            "show them in nats (without --normalised)"
        )
    return [curve if curve.reference_nll is None else curve.normalised() for curve in curves], left_out


def check_one_task(curves: Sequence[Curve]) -> None:
    """One plot takes curves of one task: their NLLs are in different units."""
    tasks = list(dict.fromkeys(curve.task for curve in curves))
    if len(tasks) > 1:
        raise ParetoError(
            f"curves of {len(tasks)} tasks ({', '.join(tasks)}) cannot share one plot: their NLLs are in different "
            "units; plot each task's tables separately (or, with --normalised, only tasks with a known optimum)"
        )


def checked_counterparts(curves: Sequence[Curve], directory: Path) -> tuple[list[Curve], list[str]]:
    """The paper's counterparts of ``curves`` in ``directory`` and a warning for each task of ours the folder
    has no trials of; a ParetoError when it adds nothing at all (the wrong folder, or no matching setting)."""
    found = paper_counterparts(curves, directory)
    folder_task = task_of_paper_folder(directory).name
    ours = list(dict.fromkeys(curve.task for curve in curves if curve.source != "paper"))
    hint = "--paper takes " + " and ".join(
        f"data/paper-frontiers/{get_task(name).paper_folder} for {name} tables"
        for name in TASKS
        if get_task(name).paper_folder
    )
    if not found:
        raise ParetoError(
            f"{directory}: the paper's {folder_task} trials have no curve of the tables' settings (task "
            f"{', '.join(ours) or 'none'}: estimator, K, K', objective, split and regulariser at the paper's main "
            f"settings); {hint}"
        )
    return found, [
        f"{directory} holds the paper's {folder_task} trials: nothing added for the {task} tables; {hint}"
        for task in ours
        if task != folder_task
    ]


def check_plot_path(path: Path) -> None:
    """Before any work: a format matplotlib writes, in a folder that exists (or can be made) and is writable."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in formats:
        shown = suffix or "no extension"
        raise ParetoError(f"{path}: cannot plot to .{shown}; choose one of {', '.join(sorted(formats))}")
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ParetoError(f"{path}: cannot create the folder {folder}: {error.strerror or error}") from None
    if not os.access(folder, os.W_OK):
        raise ParetoError(f"{path}: the folder {folder} is not writable")


if __name__ == "__main__":
    sys.exit(cli_main(sys.argv[1:]))
