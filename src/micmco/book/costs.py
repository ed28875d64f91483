"""Appendix C: the optimisation settings the studies tune (Table 2), the run sizes of the profiles,
and the measured cost of our finished trials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import repo_path
from .figures import result_tables, synthetic_curve_ids


def table2_rows() -> list[list[Any]]:
    """Appendix C, Table 2 as the studies use it: every tuned parameter of the committed cpu studies,
    its run-config key, range and scale, and how many of the synthetic studies tune it."""
    from ..study import load_study

    seen: dict[str, list[Any]] = {}
    root = repo_path("params").parent
    for curve in synthetic_curve_ids():
        study = load_study(root / "params" / "studies" / "cpu" / f"{curve}.yaml", root=root)
        for p in study.parameters:
            row = seen.setdefault(p.name, [p.name, p.key, p.low, p.high, "log" if p.log else "linear", 0])
            row[5] += 1
    return list(seen.values())


def profiles_rows() -> list[list[Any]]:
    """The run sizes of the cpu and paper profiles of one curve (DReG 16, KL) and their studies."""
    from ..runconfig import load_config
    from ..study import load_study

    root = repo_path("params").parent
    rows = []
    for profile, run in (
        ("cpu", "params/synthetic/cpu/trial-dreg16-kl.yaml"),
        ("paper", "params/synthetic/paper/dreg16-kl.yaml"),
    ):
        config = load_config(root / run)
        trials = [load_study(root / "params" / "studies" / profile / f"{c}.yaml", root=root).trials
                  for c in synthetic_curve_ids()]  # fmt: skip
        spread = f"{min(trials)}" if min(trials) == max(trials) else f"{min(trials)}-{max(trials)}"
        rows.append([profile, config.data.vocab_size, config.data.batch_size, config.train.steps,
                     spread, sum(trials), config.cost])  # fmt: skip
    return rows


def trial_costs(profile: str = "cpu", results_dir: Path | None = None) -> list[list[Any]]:
    """Measured cost of our finished trials, one group per task, base estimator, draws max(K, K') and steps:
    [task, estimator, draws, steps, trials, mean wall_s, total minutes]."""
    groups: dict[tuple[str, str, int, int], list[float]] = {}
    for rows in result_tables(profile, results_dir):
        for row in rows:
            draws = max(int(row["k"] or 1), int(row["k_mi"] or row["k"] or 1))
            key = (row.get("task") or "synthetic", row["estimator"], draws, int(row["steps"]))
            groups.setdefault(key, []).append(float(row["wall_s"] or 0))
    return [[task, estimator, draws, steps, len(v), sum(v) / len(v), sum(v) / 60]
            for (task, estimator, draws, steps), v in sorted(groups.items(), key=lambda item: (
                item[0][0] != "synthetic", item[0]))]  # fmt: skip


def gpu_step_costs(directory: Path | None = None) -> list[list[Any]]:
    """What `make gpu-check` measured on a lent GPU (results/gpu-checks/gpu-check-*.json): per file, task,
    K (DReG) and precision, milliseconds per training step at the paper's sizes, and minutes for 40k steps."""
    import json

    directory = Path(directory or repo_path("results/gpu-checks"))
    rows = []
    for path in sorted(directory.glob("gpu-check-*.json")):
        report = json.loads(path.read_text())
        sections = report.get("sections", {})
        device = sections.get("versions", {}).get("device_name") or path.stem.split("-")[2].upper()
        for setting, ms in sections.get("step_time", {}).get("ms_per_step", {}).items():
            task, k, *rest = setting.split(" ")
            rows.append([device, task, k, " ".join(rest), ms, ms * 40_000 / 60_000])
    return rows
