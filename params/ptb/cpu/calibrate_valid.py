"""The calibration that chose the cpu PTB validation profile (§7.2's profiles; the book reads its table).

    python params/ptb/cpu/calibrate_valid.py      # ~20 min on one CPU thread; rerun to continue

Every run costs the same (1000 steps of 32 sentences, learning rate 0.01, vocabulary 2000, hidden 64, the
whole validation split): what changes is how many training sentences those steps pass over (320 sentences
100 times, ..., 32,000 once), the dropout rates and λ. Each run is `micmco train` on a base config of
params/ptb/cpu/ with the `--set` overrides below (its run directory under runs/calibrate-valid/, its config
recorded in its result.json); a finished run is not trained again. The table goes to
results/calibration/cpu-ptb-valid.tsv, with each run's overrides, so that any row can be re-run alone.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
OUTPUT = REPO / "runs/calibrate-valid"
TABLE = REPO / "results/calibration/cpu-ptb-valid.tsv"
DROPOUT = ["model.input_dropout=0.3", "model.state_dropout=0.2", "model.output_dropout=0.3"]
BASES = {  # the single-sample estimators on the validation profile's base configs
    "reinforce1": ("params/ptb/cpu/ptb-valid-vimco16-kl.yaml", ["estimator.base=reinforce", "estimator.num_samples=1"]),
    "dreg1": ("params/ptb/cpu/ptb-valid-dreg16-kl.yaml", ["estimator.num_samples=1"]),
    "vimco16": ("params/ptb/cpu/ptb-valid-vimco16-kl.yaml", []),
}


def grid() -> list[tuple[str, int, float, list[str]]]:
    """(estimator, training sentences, λ, other overrides) of every calibration run."""
    runs = [(est, n, lam, DROPOUT) for n in (320, 3200, 32000) for est in ("reinforce1", "dreg1") for lam in (0.0, 0.9)]
    runs += [("reinforce1", 1600, lam, DROPOUT) for lam in (0.0, 0.9)]
    runs += [("reinforce1", n, 0.0, []) for n in (1600, 3200)]  # no dropout: does the profile still overfit?
    runs += [("vimco16", 3200, 0.9, [*DROPOUT, "model.masks=shared"])]
    return runs


def run(estimator: str, sentences: int, lam: float, extra: list[str]) -> dict:
    base, sets = BASES[estimator]
    sets = [*sets, f"objective.lam={lam}", f"data.train_sentences={sentences}", *extra]
    command = [sys.executable, "-m", "micmco", "train", base, "--output-dir", str(OUTPUT), "--quiet"]
    for item in sets:
        command += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"calibration run failed ({' '.join(sets)}):\n{done.stderr[-2000:]}")
    path = Path(done.stdout.strip().splitlines()[-1].removeprefix("result: "))
    record = json.loads((REPO / path if not path.is_absolute() else path).read_text())
    config = record["config"]
    model = config["model"]
    return {
        "estimator": estimator,
        "train_sentences": sentences,
        "passes": f"{config['train']['steps'] * config['data']['batch_size'] / sentences:g}",
        "lam": lam,
        "dropout": "/".join(f"{model.get(k, 0.0):g}" for k in ("input_dropout", "state_dropout", "output_dropout")),
        "masks": model.get("masks", "naive"),
        "nll": f"{record['metrics']['nll']:.4f}",
        "mi": f"{record['metrics']['mutual_information']:.4f}",
        "wall_s": f"{record['train_wall_time_s'] + record['eval_wall_time_s']:.0f}",
        "base": base,
        "set": " ".join(sets),
        "run": record["fingerprint"],
        "commit": record.get("git_commit") or "",
    }


def main() -> None:
    rows = []
    for index, point in enumerate(grid()):
        print(f"[{index + 1}/{len(grid())}] {point[0]}, {point[1]} sentences, lambda {point[2]}", flush=True)
        rows.append(run(*point))
    with TABLE.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {TABLE.relative_to(REPO)}")


if __name__ == "__main__":
    main()
