"""The best trial of a curve, and the paper's Table 1: the best validation results on Penn Treebank.

Table 1 has six columns, DReG and VIMCO with 1 and 16 samples, the 16-sample ones with the KL and
with the Rényi objective; with one sample the two objectives are one column ("K/R"). Each cell is
the trial of lowest validation NLL per token of its curves, with its perplexity exp(NLL) and its
latent usage ("per-token KL"). The curves are those of Figure 12: validation runs with dropout,
the same mask for all samples of a sentence (with one sample, naive and shared masks coincide).
The paper's VIMCO 1 is REINFORCE 1 (no other samples, no baseline), so it fills the VIMCO 1 column.

    micmco table1 [FILES-OR-DIRS...] [--paper DIR]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .gradients import BASE_ESTIMATORS
from .pareto import Curve, ParetoError, at_paper_main_setting, read_inputs, read_paper_folder

__all__ = ["Best", "best_trial", "TABLE1_COLUMNS", "table1", "table1_curves", "format_table1", "cli_main"]

TABLE1_TASK = "ptb"  # Table 1 is the paper's table of its Penn Treebank results


@dataclass(frozen=True)
class Best:
    """The trial of lowest NLL among some curves, chosen and reported as a frontier's trial is
    (:func:`micmco.pareto.frontier_value`: on independent halves of its precise evaluation where it has one)."""

    nll: float  # nats per the task's unit (per token for text)
    mi: float  # its latent usage, same unit (its whole precise evaluation's where it has one: the closest estimate)
    hyperparameters: dict[str, float]  # learning_rate, lam, alpha, dropout rates ... of that trial
    path: Path  # the file it came from
    trials: int  # trials among which it is the best
    nll_se: float = math.nan  # the standard error of nll (NaN: the trial has no precise evaluation)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll)


def best_trial(curves: Sequence[Curve]) -> Best | None:
    """The trial of lowest finite NLL among ``curves`` (None when they have none)."""
    candidates = []
    for curve in curves:
        chosen_on = curve.selection_nll
        finite = np.flatnonzero(np.isfinite(chosen_on))
        if len(finite):
            index = int(finite[np.argmin(chosen_on[finite])])
            candidates.append((float(chosen_on[index]), curve, index))
    if not candidates:
        return None
    _, curve, index = min(candidates, key=lambda candidate: candidate[0])
    hyperparameters = {name: float(values[index]) for name, values in curve.hyperparameters.items()}
    trials = sum(len(curve.nll) for curve in curves)
    mi = float(curve.mi_precise[index] if np.isfinite(curve.mi_precise[index]) else curve.mi[index])
    return Best(nll=float(curve.reported_nll[index]), mi=mi, hyperparameters=hyperparameters, path=curve.path,
                trials=trials, nll_se=float(curve.reported_nll_se[index]))  # fmt: skip


@dataclass(frozen=True)
class Column:
    """One column of Table 1."""

    family: str  # an EstimatorSpec.table1_family: "DReG" (Gaussian latents) or "VIMCO" (categorical)
    k: int
    objective: str | None  # "kl" or "renyi"; None: both (one sample)

    @property
    def heading(self) -> tuple[str, str]:
        return f"{self.family} {self.k}", {"kl": "K", "renyi": "R", None: "K/R"}[self.objective]

    def takes(self, curve: Curve) -> bool:
        spec = BASE_ESTIMATORS.get(curve.estimator)  # None for the VQ-VAE
        family = spec.table1_family if spec else None
        objective_ok = (
            curve.objective in ("kl", "renyi") if self.objective is None else curve.objective == self.objective
        )
        return family == self.family and curve.k == curve.k_mi == self.k and objective_ok


TABLE1_COLUMNS = (
    Column("DReG", 1, None),
    Column("DReG", 16, "kl"),
    Column("DReG", 16, "renyi"),
    Column("VIMCO", 1, None),
    Column("VIMCO", 16, "kl"),
    Column("VIMCO", 16, "renyi"),
)


def table1_curves(curves: Sequence[Curve]) -> list[Curve]:
    """The curves Table 1 draws on: Figure 12's validation runs (dropout with shared masks; with one
    sample any dropout), the paper's at its main settings (40 thousand steps, batch 256, hidden 128)."""
    chosen = []
    for curve in curves:
        regulariser = curve.task_values.get("regulariser", "none")
        dropout = regulariser == "dropout-shared" or (curve.k == 1 and regulariser == "dropout-naive")
        main = at_paper_main_setting(curve)
        if curve.task == TABLE1_TASK and curve.split == "valid" and dropout and (curve.source != "paper" or main):
            chosen.append(curve)
    return chosen


def table1(curves: Sequence[Curve]) -> dict[Column, Best | None]:
    """Each column's best trial among ``table1_curves(curves)``; None where no curve fills it."""
    chosen = table1_curves(curves)
    return {column: best_trial([curve for curve in chosen if column.takes(curve)]) for column in TABLE1_COLUMNS}


def format_table1(table: dict[Column, Best | None]) -> str:
    """The table in the paper's layout: perplexity, NLL and per-token KL, then the trials behind each cell."""
    headings = [column.heading for column in table]
    cells = list(table.values())

    def row(name: str, value) -> str:
        return f"{name:14s}" + "".join(f"{'-' if best is None else value(best):>10s}" for best in cells)

    lines = [
        f"{'':14s}" + "".join(f"{top:>10s}" for top, _ in headings),
        f"{'':14s}" + "".join(f"{bottom:>10s}" for _, bottom in headings),
        row("Perplexity", lambda best: f"{best.perplexity:.1f}"),
        row("NLL", lambda best: f"{best.nll:.3f}"),
        row("Per-token KL", lambda best: f"{best.mi:.3f}"),
        row("trials", lambda best: str(best.trials)),
    ]
    return "\n".join(lines)


def cli_main(argv: list[str]) -> int:
    """``micmco table1 [FILES-OR-DIRS...] [--paper DIR]``; the exit status."""
    parser = argparse.ArgumentParser(
        prog="micmco table1",
        description="The paper's Table 1, the best validation NLL per token (with perplexity and latent usage) of "
        "DReG and VIMCO with 1 and 16 samples, from Figure 12's curves: validation runs with dropout, masks shared "
        "across a sentence's samples.",
    )
    parser.add_argument(
        "files", nargs="*", type=Path, help="our results tables (results/<profile>/), or folders of them"
    )
    parser.add_argument("--paper", type=Path, metavar="DIR", help="also the table of the paper's trials in DIR "
                        "(data/paper-frontiers/ptb)")  # fmt: skip
    args = parser.parse_args(argv)
    if not args.files and not args.paper:
        parser.error("give results tables, folders of them, or --paper DIR")
    try:
        sources = []
        if args.files:
            ours = read_inputs(args.files)
            if not table1_curves(ours):
                raise ParetoError(
                    "no PTB validation curves with dropout among the given tables (Table 1 takes Figure 12's studies, "
                    "e.g. results/cpu/cpu-ptb-dreg16-kl-valid-shared.tsv and cpu-ptb-dreg1-kl-valid.tsv)"
                )
            sources.append(("ours", ours))
        if args.paper:
            papers = read_paper_folder(args.paper)
            if not table1_curves(papers):
                raise ParetoError(
                    f"{args.paper}: none of the paper's PTB validation files (-valid.tsv, -valid-nsd.tsv); --paper "
                    "takes data/paper-frontiers/ptb"
                )
            sources.append(("the paper's trials", papers))
    except ParetoError as error:
        print(f"micmco table1: error: {error}", file=sys.stderr)
        return 2
    for name, curves in sources:
        table = table1(curves)
        sizes = sorted({(c.task_values["vocab_size"], c.task_values["hidden_size"]) for c in table1_curves(curves)})
        setting = "; ".join(f"V = {vocab}, H = {hidden}" for vocab, hidden in sizes)  # perplexity depends on V
        print(f"Table 1 from {name} ({setting}): the best validation results per token")
        print(format_table1(table), end="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(sys.argv[1:]))
