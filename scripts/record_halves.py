"""Record the selecting and reporting halves (micmco.evaluation.split_halves) of precise evaluations recorded
before the halves existed (issue 34): from each run's result.json, whose per-repeat values they are computed
from, into its study's journal, then re-export the table once. Rows whose run directory is not on this machine
are listed and left as they are (a frontier then chooses them on the recorded evaluation).

    python scripts/record_halves.py --runs-dir runs/sweeps [--results results/cpu]
"""

import argparse
import json
from pathlib import Path

from micmco.rerun import study_of_table, table_trials
from micmco.sweep.optuna_study import Sweep, record_evaluation


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs-dir", type=Path, required=True)
    parser.add_argument("--results", type=Path, default=Path("results/cpu"))
    args = parser.parse_args()
    recorded = missing = 0
    for table in sorted(args.results.glob("*.tsv")):
        todo = [i for i in table_trials(table) if i.row.get("eval_repeats") and not i.row.get("nll_report")]
        sweep = Sweep(study_of_table(table), None, table.parent.parent, args.runs_dir, echo=lambda line: None)
        for item in todo:
            path = args.runs_dir / table.stem / item.row["run"] / "result.json"
            precise = json.loads(path.read_text()).get("precise_evaluation") if path.exists() else None
            if not precise or not precise.get("values") or int(precise["repeats"]) != int(item.row["eval_repeats"]):
                print(f"{table.name} trial {item.trial}: no matching precise evaluation in {path.parent}")
                missing += 1
                continue
            record_evaluation(sweep.optuna_study, item.row["run"], precise)
            recorded += 1
        sweep.export()
        print(f"{table.name}: {len(todo)} rows", flush=True)
    print(f"halves recorded for {recorded} rows; {missing} without their run directory here")


if __name__ == "__main__":
    main()
