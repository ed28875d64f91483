"""Does a reported frontier depend on the evaluation seed that selected its trials? (issue 34)

For every synthetic cpu table with precise evaluations in its run directories, and each m (a point is left
out when either frontier chooses a trial not evaluated precisely yet): frontier A chooses on the recorded evaluation and reports the chosen trial's precise mean;
frontier B chooses on repeat r of the precise evaluation (another seed: an independent single evaluation)
and reports the mean of the other repeats. Prints, per table and m, whether the same trial was chosen and
the difference of the reported values in units of their combined standard error.

    python scripts/selection_seed_check.py --runs-dir runs/sweeps [--repeat 0]
"""

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/sweeps"))
    parser.add_argument("--repeat", type=int, default=0)
    parser.add_argument("--usages", default="0.2,0.5,0.8")
    args = parser.parse_args()
    usages = [float(u) for u in args.usages.split(",")]
    same = differ = 0
    shifts = []
    for table in sorted(Path("results/cpu").glob("cpu-*.tsv")):
        if table.name.startswith("cpu-ptb"):
            continue
        rows = [r for r in csv.DictReader(open(table), delimiter="\t") if r["status"] == "complete"]
        records = []
        for row in rows:
            path = args.runs_dir / table.stem / row["run"] / "result.json"
            precise = json.loads(path.read_text()).get("precise_evaluation") if path.exists() else None
            if precise and precise["repeats"] <= args.repeat + 1:
                precise = None
            records.append((row, precise))
        if not any(p for _, p in records):
            continue
        log_v = float(rows[0]["optimal_nll"])
        for m in usages:
            recorded = [(float(r["mi"]), float(r["nll"])) for r, _ in records]
            other = [
                (p["values"]["mutual_information"][args.repeat], p["values"]["nll"][args.repeat]) if p else recorded[i]
                for i, (_, p) in enumerate(records)
            ]  # a trial not evaluated precisely yet keeps its recorded numbers
            a, b = choose(recorded, m * log_v), choose(other, m * log_v)
            if a is None or b is None or records[a][1] is None or records[b][1] is None:
                continue
            pa, pb = records[a][1], records[b][1]
            value_a, se_a = pa["nll"], pa["nll_se"]
            rest = np.delete(np.array(pb["values"]["nll"]), args.repeat)
            value_b, se_b = rest.mean(), rest.std(ddof=1) / math.sqrt(len(rest))
            z = (value_b - value_a) / math.hypot(se_a, se_b) if se_a + se_b > 0 else 0.0
            same += a == b
            differ += a != b
            shifts.append(abs(z))
            print(
                f"{table.stem:24s} m={m:g}: {'same trial' if a == b else 'other trial'}; reported "
                f"{value_a - log_v:.4f}±{se_a:.4f} vs {value_b - log_v:.4f}±{se_b:.4f} (|z| = {abs(z):.2f})"
            )
    if shifts:
        print(
            f"{same + differ} frontier points: the same trial chosen at {same}; another at {differ}, whose reported "
            f"values differ by |z| median {np.median(shifts):.2f}, max {max(shifts):.2f}"
        )


def choose(points, threshold):
    eligible = [(nll, i) for i, (mi, nll) in enumerate(points) if mi >= threshold and math.isfinite(nll)]
    return min(eligible)[1] if eligible else None


if __name__ == "__main__":
    main()
