"""What a sweep prints about itself: a progress line (counts, rate, ETA, frontier) and a final summary."""

from __future__ import annotations

import time

from ..results import STATUSES
from .census import Census
from .optuna_study import FINAL_STATUSES, Sweep, done_count, rows_of, table_rows

__all__ = ["progress_line", "summary_lines"]


def _capped_mi(row) -> float:
    """A row's MI, capped at its reference NLL (ln V) where the row has one: usage cannot exceed it."""
    mi = float(row["mi"])
    return min(mi, float(row["optimal_nll"])) if row.get("optimal_nll") else mi


def progress_line(sweep: Sweep, started: float, done_at_start: int) -> str:
    from ..pareto import pareto_frontier

    census = Census.of(sweep.trials())
    rows = rows_of(census.results)
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    done = done_count(rows)
    walls = [float(r["wall_s"]) for r in rows if r["wall_s"] and r["status"] in FINAL_STATUSES]
    per_trial = sum(walls) / len(walls) if walls else float("nan")
    elapsed = time.time() - started
    new = done - done_at_start
    rate = new / elapsed * 3600 if elapsed > 0 and new > 0 else float("nan")
    remaining = max(0, sweep.study.trials - done)
    eta = f", ETA {remaining / rate * 60:.0f} min" if rate == rate and rate > 0 else ""
    timing = f"{per_trial:.0f} s/trial, {rate:.0f} trials/h{eta}" if rate == rate else "no trial finished yet"
    complete = [r for r in rows if r["status"] == "complete"]
    mi, nll = [_capped_mi(r) for r in complete], [float(r["nll"]) for r in complete]
    front = pareto_frontier(mi, nll)[-8:]
    front_text = " ".join(f"({mi[i]:.4f}, {nll[i]:.4f})" for i in front) or "-"  # PTB: MI ~0.01-0.8 per token
    return (
        f"[{time.strftime('%H:%M:%S')}] {sweep.study.name}: {done}/{sweep.study.trials} done "
        f"({counts['complete']} complete, {counts['diverged']} diverged), {counts['failed']} failed, "
        f"{len(census.running)} running, {len(census.waiting)} queued; {timing}; frontier (MI, NLL): {front_text}"
    )


def summary_lines(sweep: Sweep) -> list[str]:
    """The counts, then the exported table's frontier as ``micmco pareto`` summarises it: the same thresholds
    (fractions 0.5, 0.8, 0.95 of ln V; nats per token for text), standard errors, and frontier points worse
    than the uniform model named."""
    from ..pareto import ParetoError, distinct_labels, read_results
    from ..pareto_cli import task_summary
    from ..results import TableError

    rows = table_rows(sweep.trials())
    complete = [r for r in rows if r["status"] == "complete"]
    failed = len(rows) - done_count(rows)
    retried = f", {failed} failed (retried by a rerun)" if failed else ""
    lines = [
        f"{sweep.study.name}: {len(complete)} complete of {done_count(rows)} finished{retried}; "
        f"export: {sweep.export_path}"
    ]
    if not complete:
        return lines
    try:
        curves = read_results(sweep.export_path)
    except (ParetoError, TableError, OSError) as error:
        return lines + [f"  no frontier summary: {error}"]
    summary = task_summary(curves, distinct_labels(curves), None, False, False)
    return lines + ["  " + line for line in summary.splitlines()]
