"""How many of the synthetic figures' decided orderings survive a training noise (issue 34, third session).

The standard errors of the verdicts are those of evaluation only: a trial is one training run. Trials recorded
on another machine retrain here to other models (floating point differs; ``micmco rerun --retrained-here``), and
the spread of those retrains' recorded NLL against the rows' measures how much one training's outcome moves.
This adds a standard deviation ``--training-sd`` (default: estimated from those pairs, median |difference| /
0.954, the normal median of |X - Y| / sqrt(2) for two independent draws) to every frontier value of ours and
of the paper's and counts the orderings of Figures 2-7 that stay decided. Prints markdown.

    python scripts/training_noise_sensitivity.py [--results results/cpu] [--training-sd 0.035]
"""

import argparse
import dataclasses
import math
import statistics
from pathlib import Path

from micmco.book import figures, orderings
from micmco.results import read_rows
from micmco.verdicts import decide_order

FIGURES = (2, 3, 4, 5, 6, 7)
USAGES = (0.5, 0.8, 0.95)


def retrain_differences(results: Path) -> list[float]:
    return [
        abs(row.retrain_nll - row.nll)
        for table in sorted(results.glob("cpu-*.tsv"))
        if not table.stem.startswith("cpu-ptb")
        for row in read_rows(table)
        if row.status == "complete" and row.retrain_nll == row.retrain_nll
    ]


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
    differences = retrain_differences(args.results)
    sd = args.training_sd
    if sd is None:
        sd = statistics.median(differences) / 0.954
    median, tail = statistics.median(differences), sorted(differences)[int(0.9 * len(differences))]
    print(f"{len(differences)} retrained trials: |retrain NLL - recorded NLL| median {median:.4f}, "
          f"90% {tail:.4f}, max {max(differences):.4f} nats; training sd used: {sd:.4f} nats\n")  # fmt: skip
    before, after = counts(0.0), counts(sd)
    print(f"| figure | m | evaluation noise: holds / fails / inconclusive / paper undecided | + training sd {sd:.3f} |")
    print("| --- | --- | --- | --- |")
    for key in before:
        print(f"| {key[0]} | {key[1]:g} | {' / '.join(map(str, before[key]))} | {' / '.join(map(str, after[key]))} |")
    decided = [sum(v[:2]) for v in before.values()], [sum(v[:2]) for v in after.values()]
    print(f"\ndecided pairs: {sum(decided[0])} with evaluation noise only, {sum(decided[1])} with the training sd")


if __name__ == "__main__":
    main()
