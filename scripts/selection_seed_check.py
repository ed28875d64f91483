"""Does a reported frontier depend on the evaluation seed that selected its trials? (issue 34)

The rule (micmco.pareto.frontier_value): choose on the even-numbered repeats of each trial's precise evaluation,
report the odd-numbered ones. Here two independent selecting evaluations stand in for two seeds: the repeats
numbered 0 mod 4 and those numbered 2 mod 4 (each a quarter of the repeats: a conservative stand-in for a half),
both reporting the odd half. For contrast, the old rule: choose on a single evaluation (repeat 0, then repeat
2). A trial without a precise evaluation in its run directory is chosen on its recorded numbers (as the rule
does); only points where both choices fall on precisely evaluated trials count.
Prints, per table and m, whether the two choices agree and how far apart the reported values are.

    python scripts/selection_seed_check.py --runs-dir runs/sweeps [--results results/cpu]
"""

import argparse
import csv
import json
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/sweeps"))
    parser.add_argument("--results", type=Path, default=Path("results/cpu"))
    parser.add_argument("--usages", default="0.2,0.5,0.8")
    args = parser.parse_args()
    usages = [float(u) for u in args.usages.split(",")]
    tally = {"quarters": [0, 0, []], "single": [0, 0, []]}  # same, other, |differences| when other
    for table in sorted(args.results.glob("cpu-*.tsv")):
        if table.name.startswith("cpu-ptb"):
            continue
        rows = [r for r in csv.DictReader(open(table), delimiter="\t") if r["status"] == "complete"]
        values = []
        for row in rows:
            path = args.runs_dir / table.stem / row["run"] / "result.json"
            precise = json.loads(path.read_text()).get("precise_evaluation") if path.exists() else None
            ok = precise and precise["repeats"] >= 8
            values.append(
                (np.array(precise["values"]["mutual_information"]), np.array(precise["values"]["nll"]), True)
                if ok else (np.full(8, float(row["mi"])), np.full(8, float(row["nll"])), False)
            )  # fmt: skip
        if not any(v[2] for v in values):
            continue
        log_v = float(rows[0]["optimal_nll"])
        for m in usages:
            for rule, picks in (("quarters", (slice(0, None, 4), slice(2, None, 4))), ("single", (0, 2))):
                chosen = [choose(values, pick, m * log_v) for pick in picks]
                if any(c is None or not values[c][2] for c in chosen):
                    continue
                reported = [values[c][1][1::2].mean() for c in chosen]
                same = chosen[0] == chosen[1]
                tally[rule][0 if same else 1] += 1
                if not same:
                    tally[rule][2].append(abs(reported[0] - reported[1]))
                if rule == "quarters":
                    print(
                        f"{table.stem:24s} m={m:g}: {'same trial' if same else 'other trial'}; reported "
                        f"{reported[0] - log_v:.4f} / {reported[1] - log_v:.4f}"
                    )
    for rule, (same, other, gaps) in tally.items():
        gap = f"; reported values then differ by {np.median(gaps):.4f} (median), {max(gaps):.4f} (max)" if gaps else ""
        print(f"chosen on {rule}: {same + other} points, the same trial at {same}, another at {other}{gap}")


def choose(values, pick, threshold):
    """The trial of lowest mean NLL among those whose mean MI reaches the threshold, both over ``pick`` of its
    repeats; None where none reaches it."""
    eligible = [
        (np.mean(nll[pick]), i)
        for i, (mi, nll, _) in enumerate(values)
        if np.mean(mi[pick]) >= threshold and np.isfinite(np.mean(nll[pick]))
    ]
    return min(eligible)[1] if eligible else None


if __name__ == "__main__":
    main()
