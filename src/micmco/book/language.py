"""§7.2: the Penn Treebank figures, from the committed sweep results beside the paper's own trials.

Every curve is a study, params/studies/<profile>/ptb-*.yaml, whose sweep exports
results/<profile>/<profile>-<curve>.tsv; the paper's trials of the same curve are the file of
data/paper-frontiers/ptb/ whose name maps to that curve (:func:`micmco.naming.ptb_curve_id`). The axes
are per token and never normalised: text has no known optimal NLL, and our cpu profile's vocabulary
(2000) is not the paper's (10000), so the two sides are compared by their orderings, not their values.
Nothing is trained here; a curve without a table is reported as missing, with its command.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..naming import ptb_curve_id
from .common import markdown_table, repo_path
from .figures import MIN_TRIALS, lowest_excess, read_our_trials

# The curves of the figures our cpu profile sweeps (§7.2.4, §7.2.5), by paper figure number. With one sample
# KL and Rényi are one objective, so the K = 1 curves are the KL studies (Figure 12 reuses Figure 10's: with
# one sample the naive and shared masks coincide).
PTB_FIGURES: dict[int, tuple[str, tuple[str, ...]]] = {
    8: ("DReG with K samples, training fit", ("ptb-dreg1-kl", "ptb-dreg16-kl", "ptb-dreg16-renyi")),
    9: ("VIMCO with K samples, training fit (VIMCO 1 is REINFORCE 1)",
        ("ptb-vimco1-kl", "ptb-vimco16-kl", "ptb-vimco16-renyi")),
    10: ("validation fit with dropout, naive masks",
         ("ptb-dreg1-kl-valid", "ptb-vimco1-kl-valid", "ptb-dreg16-kl-valid", "ptb-dreg16-renyi-valid",
          "ptb-vimco16-kl-valid", "ptb-vimco16-renyi-valid")),
    12: ("validation fit with dropout, shared masks",
         ("ptb-dreg1-kl-valid", "ptb-vimco1-kl-valid", "ptb-dreg16-kl-valid-shared",
          "ptb-dreg16-renyi-valid-shared", "ptb-vimco16-kl-valid-shared", "ptb-vimco16-renyi-valid-shared")),
}  # fmt: skip


def paper_files(directory: Path | None = None) -> dict[str, Path]:
    """The paper's PTB trial files by curve id (``ptb-dreg16-kl`` -> its ``l40x0-...-dreg16-kl.tsv``)."""
    directory = Path(directory or repo_path("data/paper-frontiers/ptb"))
    return {ptb_curve_id(path.stem): path for path in sorted(directory.glob("*.tsv"))}


@dataclass
class PTBCurve:
    """One curve of a PTB figure: our trials (if any) beside the paper's, both per token."""

    curve_id: str
    ours: Any  # micmco.pareto.Curve (per token); None without complete trials
    paper: Any  # the paper's Curve (per token, V = 10000)
    rows: int  # our finished trials: complete + diverged + failed
    complete: int
    wall_s: float  # the sum of wall_s over our finished trials
    table: str  # results/<profile>/<profile>-<curve>.tsv, relative to the repository

    @property
    def label(self) -> str:
        return self.paper.label

    @property
    def too_few(self) -> bool:
        return 0 < self.complete < MIN_TRIALS


def load_ptb_curve(curve_id: str, profile: str = "cpu", results_dir: Path | None = None) -> PTBCurve:
    """Our committed trials of a PTB curve (results/<profile>/<profile>-<curve>.tsv) and the paper's."""
    from ..pareto import read_paper_trials

    files = paper_files()
    if curve_id not in files:
        raise ValueError(f"no paper trials for {curve_id!r}; the PTB curves are: {', '.join(sorted(files))}")
    ours = read_our_trials(curve_id, profile, results_dir)
    paper = read_paper_trials(files[curve_id])
    return PTBCurve(curve_id, ours.curve, paper, ours.rows, ours.complete, ours.wall_s, ours.table)


@dataclass
class PTBFigure:
    number: int
    title: str
    profile: str
    curves: list[PTBCurve]

    @property
    def name(self) -> str:
        return f"Figure {self.number}"

    @property
    def wall_s(self) -> float:
        return sum(c.wall_s for c in self.curves)


def load_ptb_figure(number: int, profile: str = "cpu", results_dir: Path | None = None) -> PTBFigure:
    """Figure ``number`` of §7.2 (8, 9, 10, 12): each of its curves, ours and the paper's."""
    if number not in PTB_FIGURES:
        raise ValueError(f"no PTB figure {number} in the cpu studies; choose one of {sorted(PTB_FIGURES)}")
    title, curve_ids = PTB_FIGURES[number]
    return PTBFigure(number, title, profile, [load_ptb_curve(c, profile, results_dir) for c in curve_ids])


lowest = lowest_excess  # per token here: the same lowest NLL at usage >= m, on curves that are not normalised


def ptb_figure_table(figure: PTBFigure, min_usages: list[float]) -> str:
    """Markdown: per curve, our trial count and compute, then the lowest NLL per token at usage >= m nats per
    token, ours and the paper's ("–": no trial reaches m; "no results": no table yet)."""
    headers = ["curve", "our trials (complete/run)", "compute (min)"]
    headers += [f"m = {m:g}: ours / paper" for m in min_usages]
    rows = []
    for c in figure.curves:
        row = [c.label, f"{c.complete}/{c.rows}" + (" (too few)" if c.too_few else ""), f"{c.wall_s / 60:.0f}"]
        for m in min_usages:
            ours, paper = lowest(c.ours, m), lowest(c.paper, m)
            mine = "no results" if c.ours is None else ("–" if math.isnan(ours) else f"{ours:.3f}")
            row.append(f"{mine} / " + ("–" if math.isnan(paper) else f"{paper:.3f}"))
        rows.append(row)
    return markdown_table(rows, headers)


def missing_commands(figure: PTBFigure) -> list[str]:
    """The sweep command of each curve without results."""
    return [f"micmco sweep params/studies/{figure.profile}/{c.curve_id}.yaml --workers 2"
            for c in figure.curves if c.ours is None]  # fmt: skip
