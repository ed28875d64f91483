"""Retrain committed synthetic cpu trials from their journals (issue 34), for precise re-evaluation.

Order: each table's Pareto trials (those a frontier can select: no other trial has both lower NLL and
at least its MI) first, cheapest first; then the other complete trials. ``--worker i --workers n``
takes every n-th trial. One line of JSON per trial in ``--log``. Resumable: a finished run is found.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from micmco.rerun import evaluate_and_record, rerun, table_trials

# A retrained trial whose recorded NLL and MI differ from its row by at most this many nats (far below the ~0.03
# of one evaluation's noise) is the same model up to another machine's floating point: its precise evaluation
# is recorded (the log says it was not bit for bit).
TOLERANCE = 1e-3


def near(record, row, tolerance):
    if record.get("status") != row["status"] or row["status"] != "complete":
        return False
    metrics = record["metrics"]
    return (
        abs(metrics["nll"] - float(row["nll"])) <= tolerance
        and abs(metrics["mutual_information"] - float(row["mi"])) <= tolerance
    )


def pareto(rows):
    done = [r for r in rows if r["status"] == "complete" and r["nll"] and r["mi"]]
    keep = []
    for r in done:
        nll, mi = float(r["nll"]), float(r["mi"])
        if not any(float(o["nll"]) < nll and float(o["mi"]) >= mi for o in done if o is not r):
            keep.append(r)
    return keep


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--results", default="results/cpu")
    p.add_argument("--runs-dir", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--worker", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--repeats", type=int, default=None, help="default: the run config's eval.repeats")
    p.add_argument("--target-se", type=float, default=None, help="default: the run config's eval.target_se")
    p.add_argument("--no-evaluate", action="store_true")
    p.add_argument(
        "--retrained-here",
        action="store_true",
        help="evaluate a row that does not rerun to its numbers here as retrained here (micmco rerun --retrained-here)",
    )
    args = p.parse_args()
    first, rest = [], []
    for table in sorted(Path(args.results).glob("cpu-*.tsv")):
        if table.stem.startswith("cpu-ptb"):
            continue
        items = table_trials(table)
        front = {r["run"] for r in pareto([i.row for i in items])}
        for item in items:
            if item.row["status"] != "complete":
                continue
            (first if item.row["run"] in front else rest).append(item)
    order = sorted(first, key=lambda i: float(i.row["wall_s"])) + sorted(rest, key=lambda i: float(i.row["wall_s"]))
    mine = order[args.worker :: args.workers]
    print(f"{len(first)} frontier trials, {len(rest)} others; worker {args.worker} takes {len(mine)}", flush=True)
    skip_file = Path(args.log).with_name("skip-tables.txt")  # tables whose rows do not rerun here: not retried
    for n, item in enumerate(mine):
        skipped = set(skip_file.read_text().split()) if skip_file.exists() and not args.retrained_here else set()
        if item.table.name in skipped:
            continue
        started = time.time()
        record = rerun(item, args.runs_dir, echo=lambda s: None)
        precise = None
        close = record["reproduced"] or near(record, item.row, TOLERANCE)
        if not close and not args.retrained_here:  # recorded on a machine whose floating point differs: NOTES.md
            if item.row["estimator"] in ("reinforce", "vimco"):  # amplified in every trial: skip the table
                with open(skip_file, "a") as f:
                    f.write(item.table.name + "\n")
        elif (
            record.get("status") == item.row["status"] == "complete"
            and not args.no_evaluate
            and not item.row.get("eval_repeats")
        ):
            precise = evaluate_and_record(
                item, args.runs_dir, record=True, repeats=args.repeats, target_se=args.target_se
            )
        line = {
            "table": item.table.name,
            "trial": item.trial,
            "run": item.row["run"],
            "pareto": item in first,
            "reproduced": record["reproduced"],
            "close": bool(close),
            "nll": record.get("metrics", {}) and record["metrics"]["nll"],
            "row_nll": item.row["nll"],
            "precise": precise
            and {
                k: precise[k]
                for k in ("nll", "nll_se", "mutual_information", "mutual_information_se", "repeats", "wall_time_s")
            },
            "wall_s": round(time.time() - started, 1),
        }
        with open(args.log, "a") as f:
            f.write(json.dumps(line) + "\n")
        print(n, json.dumps(line), flush=True)


if __name__ == "__main__":
    sys.exit(main())
