"""Collect the measured noise of one evaluation from finished runs' precise evaluations (issue 34).

Writes results/calibration/evaluation-noise-<profile>.tsv: one row per run under ``--runs-dir`` with a
precise evaluation (its repeats' standard deviation is the noise of one recorded evaluation), for the
verdicts' assumption where a task's tables have no precisely evaluated trial yet (micmco.book.orderings).

    python scripts/measure_noise.py --runs-dir runs/sweeps --profile cpu
"""

import argparse
import csv
import json
import statistics
from pathlib import Path

COLUMNS = ["task", "study", "run", "split", "units", "samples", "repeats", "nll_sd", "mi_sd", "nll_se", "mi_se"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/sweeps"))
    parser.add_argument("--profile", default="cpu")
    args = parser.parse_args()
    rows = []
    for path in sorted(args.runs_dir.glob(f"{args.profile}-*/*/result.json")):
        record = json.loads(path.read_text())
        precise = record.get("precise_evaluation")
        if not precise or precise["repeats"] < 2:
            continue
        values = precise["values"]
        rows.append({
            "task": record["config"].get("task", "synthetic"), "study": path.parent.parent.name,
            "run": path.parent.name, "split": precise["split"], "units": precise["units"],
            "samples": precise["samples"], "repeats": precise["repeats"],
            "nll_sd": f"{statistics.stdev(values['nll']):.6f}",
            "mi_sd": f"{statistics.stdev(values['mutual_information']):.6f}",
            "nll_se": f"{precise['nll_se']:.6f}", "mi_se": f"{precise['mutual_information_se']:.6f}",
        })  # fmt: skip
    out = Path("results/calibration") / f"evaluation-noise-{args.profile}.tsv"
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{out}: {len(rows)} runs")


if __name__ == "__main__":
    main()
