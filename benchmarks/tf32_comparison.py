"""Full trials in float32 and in TF32, seed by seed: is TF32's difference small against the paper's gaps? (issue 31)

TF32 rounds a matrix product's inputs to 10 bits of mantissa; over 40,000 steps the two arithmetics train
different models. One trial says nothing (training noise alone differs by ~0.03 nats between two trainings of
one configuration: NOTES.md, issue 34), so the comparison is paired: each seed is trained in both, and the
per-seed differences of the precisely evaluated NLL and MI give a mean and its standard error (spread over
seeds, the evaluations' own standard errors included). The verdict uses the project's rule: TF32 is *small*
when the mean difference and twice its standard error both lie within ``--tolerance`` (default 0.005 nats, a
tenth of the gaps the paper's curves differ by), *large* when the mean minus twice its error is beyond it, and
*inconclusive* otherwise (more seeds).

    python benchmarks/tf32_comparison.py [--config params/synthetic/paper/dreg16-kl.yaml] [--seeds 4]
        [--out runs/tf32-comparison] [--set key=value ...]

Runs are ordinary run directories under ``--out`` (resumable: rerun the same command), so an interrupted
comparison continues. It needs a CUDA GPU: on a CPU TF32 does nothing, and the script refuses unless
``--allow-cpu`` (a dry run of the script itself, e.g. with a smoke config). The result is written as JSON to
``<out>/comparison.json`` and summarised on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def trial(config_path: Path, seed: int, precision: str, out: Path, overrides: list[str]) -> dict:
    from micmco.experiment import run
    from micmco.runconfig import load_config

    config = load_config(
        config_path, [*overrides, f"seed={seed}", f"train.precision={precision}", f"output_dir={out / 'runs'}"]
    )
    record = run(config, echo=lambda line: print(f"  {line}", file=sys.stderr))
    precise = record.get("precise_evaluation") or {}
    metrics = record.get("metrics") or {}
    return {
        "status": record.get("status"),
        "nll": precise.get("nll", metrics.get("nll")),
        "nll_se": precise.get("nll_se", 0.0),
        "mi": precise.get("mutual_information", metrics.get("mutual_information")),
        "mi_se": precise.get("mutual_information_se", 0.0),
    }


def paired(rows: list[dict], key: str) -> tuple[float, float]:
    """Mean of the per-seed differences (tf32 - float32) of ``key`` and its standard error."""
    differences = [r["tf32"][key] - r["float32"][key] for r in rows]
    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return mean, math.inf
    spread = statistics.stdev(differences) / math.sqrt(len(differences))
    evaluation = math.sqrt(sum(r["tf32"][f"{key}_se"] ** 2 + r["float32"][f"{key}_se"] ** 2 for r in rows)) / len(rows)
    return mean, max(spread, evaluation)


def verdict(mean: float, se: float, tolerance: float) -> str:
    if abs(mean) + 2 * se <= tolerance:
        return "small"
    if abs(mean) - 2 * se > tolerance:
        return "large"
    return "inconclusive"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "params/synthetic/paper/dreg16-kl.yaml")
    parser.add_argument("--seeds", type=int, default=4, help="seeds, each trained in float32 and in TF32")
    parser.add_argument("--out", type=Path, default=REPO / "runs/tf32-comparison")
    parser.add_argument("--tolerance", type=float, default=0.005, help="nats: what 'small' means")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--allow-cpu", action="store_true", help="run on a CPU (TF32 does nothing there: a dry run)")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        print(
            "tf32_comparison: needs a CUDA GPU (on a CPU TF32 does nothing); --allow-cpu for a dry run", file=sys.stderr
        )
        return 2
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    rows = []
    for seed in range(args.seeds):
        print(f"seed {seed}: float32, then tf32", file=sys.stderr)
        rows.append({p: trial(args.config, seed, p, args.out, args.overrides) for p in ("float32", "tf32")})
    complete = [r for r in rows if all(r[p]["status"] == "complete" for p in ("float32", "tf32"))]
    result = {"config": str(args.config), "overrides": args.overrides, "seeds": args.seeds, "trials": rows}
    print(f"{args.config.name}: {len(complete)} of {len(rows)} seeds complete in both precisions")
    for key in ("nll", "mi"):
        mean, se = paired(complete, key) if complete else (math.nan, math.inf)
        decided = verdict(mean, se, args.tolerance) if complete else "inconclusive"
        result[key] = {"mean_difference": mean, "se": se, "verdict": decided}
        print(f"  {key}: tf32 - float32 = {mean:+.4f} ± {se:.4f} nats over {len(complete)} seeds: {decided}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "comparison.json").write_text(json.dumps(result, indent=1))
    print(f"written: {args.out / 'comparison.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
