"""How many of the synthetic figures' decided orderings survive a training noise (issue 34, third session).

The standard errors of the verdicts are those of evaluation only: a trial is one training run. Trials recorded
on another machine retrain here to other models (floating point differs; ``micmco rerun --retrained-here``), so
the difference d between a row's recorded NLL (one evaluation of the original model) and its retrain's precise
NLL measures how much one training's outcome moves. Var(d) = 2 sd_train^2 + sd_eval^2 (two trainings; the
recorded evaluation's noise, taken as the retrained model's, sqrt(repeats) x its standard error), estimated
robustly (median |d| / 0.674). This adds sd_train (or ``--training-sd``) to every frontier value, ours and the
paper's, and counts the orderings of Figures 2-7 that stay decided. Prints markdown.

    python scripts/training_noise_sensitivity.py [--results results/cpu] [--training-sd 0.035]
"""

import argparse
import dataclasses
import math
import statistics
from pathlib import Path

from micmco.book import figures, orderings
from micmco.results import read_rows
from micmco.verdicts import decide_order, training_noise

FIGURES = (2, 3, 4, 5, 6, 7)
USAGES = (0.5, 0.8, 0.95)


def synthetic_rows(results: Path) -> list:
    return [row for table in sorted(results.glob("cpu-*.tsv")) if not table.stem.startswith("cpu-ptb")
            for row in read_rows(table)]  # fmt: skip


def counts(training_sd: float) -> dict[tuple[int, float], tuple[int, int, int, int]]:
    def widened(low, high, *args, **kwargs):
        wide = [dataclasses.replace(e, se=math.hypot(e.se, training_sd)) for e in (low, high)]
        return decide_order(*wide, *args, **kwargs)

    saved, orderings.decide_order = orderings.decide_order, widened
    try:
        found = {}
        for number in FIGURES:
            figure = figures.load_figure(number, "cpu")
            for m in USAGES:
                c = orderings.compare_ordering(figure, m)
                found[number, m] = (len(c.holds), len(c.fails), len(c.inconclusive), len(c.paper_undecided))
        return found
    finally:
        orderings.decide_order = saved


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", type=Path, default=Path("results/cpu"))
    parser.add_argument("--training-sd", type=float, default=None)
    args = parser.parse_args()
    rows = [r for r in synthetic_rows(args.results) if r.status == "complete" and math.isfinite(r.retrain_nll)]
    measured, used = training_noise(rows)
    sd = measured if args.training_sd is None else args.training_sd
    sizes = sorted(abs(r.nll_precise - r.nll) for r in rows)
    beyond = sum(abs(r.nll_precise - r.nll) > 4 * r.nll_se * math.sqrt(r.eval_repeats) for r in rows)
    print(f"{used} retrained trials: |d| median {statistics.median(sizes):.4f}, 90% "
          f"{sizes[int(0.9 * len(sizes))]:.4f}, max {sizes[-1]:.4f} nats; {beyond} beyond 4 evaluation sd; "
          f"training sd measured {measured:.4f}, used {sd:.4f} nats\n")  # fmt: skip
    before, after = counts(0.0), counts(sd)
    print(f"| figure | m | evaluation noise: holds / fails / inconclusive / paper undecided | + training sd {sd:.3f} |")
    print("| --- | --- | --- | --- |")
    for key in before:
        print(f"| {key[0]} | {key[1]:g} | {' / '.join(map(str, before[key]))} | {' / '.join(map(str, after[key]))} |")
    decided = [sum(v[:2]) for v in before.values()], [sum(v[:2]) for v in after.values()]
    print(f"\ndecided pairs: {sum(decided[0])} with evaluation noise only, {sum(decided[1])} with the training sd")


if __name__ == "__main__":
    main()
