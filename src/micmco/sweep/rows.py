"""A study's exported table kept whole: the finished rows of ``results/<profile>/<study>.tsv`` that the study
lacks (a journal cut at a line end, one not copied with its table, a wrong ``--storage``) are refused before
anything is written, and enqueued again by a repair (:mod:`.repair`)."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "TableRowsMissing",
    "finished_rows",
    "refuse_new_study",
    "missing_rows",
    "describe_rows",
    "check_table_kept",
    "recover_rows",
]


class TableRowsMissing(RuntimeError):
    """The study lacks finished rows that its exported table has: exporting would shrink the table."""


def _study_runs(sweep) -> tuple[set[str], set[str]]:
    """(runs with a result in the study, runs still pending: trials waiting or running, recovered rows included)."""
    from optuna.trial import TrialState

    from ..config import ConfigError
    from ..runconfig import run_directory
    from .census import is_result, point_of
    from .trial import trial_config

    results, pending = set(), set()
    for trial in sweep.trials():
        if is_result(trial) and "row" in trial.user_attrs:
            results.add(trial.user_attrs["row"].get("run", ""))
        elif trial.state in (TrialState.WAITING, TrialState.RUNNING):
            point = point_of(trial, sweep.study.parameters)
            if point is not None:
                try:
                    pending.add(run_directory(trial_config(sweep, point)).name)
                except ConfigError:
                    pass
    return results, pending


def _table_rows(table: Path) -> list[dict[str, str]]:
    from ..results import TableError, read_table

    if not table.exists():
        return []
    try:
        return [row for _, row in read_table(table)[1]]
    except TableError:
        return []  # an unreadable table protects nothing; the export rewrites it


def finished_rows(table: Path) -> list[dict[str, str]]:
    return [row for row in _table_rows(table) if row.get("status") in ("complete", "diverged") and row.get("run")]


def refuse_new_study(table: Path, label: str, study_file: str) -> None:
    """Before a study is created: raise :class:`TableRowsMissing` if its table already has finished rows (a new,
    empty study would rewrite the table without them)."""
    rows = finished_rows(table)
    if rows:
        raise TableRowsMissing(
            f"{label} holds no study yet, but its table {table} has {len(rows)} finished rows: nothing was created "
            f"or written. Restore the journal the table was exported from (or give its --storage), or "
            f"`micmco sweep {study_file} --repair-journal` makes a new study with these rows enqueued again "
            "(recorded from their run directories without training where those are finished)"
        )


def missing_rows(sweep) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(finished rows of the exported table the study lacks, those of them still pending in the study)."""
    results, pending = _study_runs(sweep)
    missing = [row for row in finished_rows(sweep.export_path) if row["run"] not in results]
    return missing, [row for row in missing if row["run"] in pending]


def describe_rows(rows: list[dict[str, str]], limit: int = 6) -> str:
    shown = ", ".join(f"trial {row.get('trial', '?')} ({row.get('run', '?')})" for row in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def check_table_kept(sweep, study_file: str = "STUDY") -> list[dict[str, str]]:
    """Raise :class:`TableRowsMissing` when the study lacks finished rows of its table that are not pending;
    else the rows still pending (enqueued again by a repair, not recorded yet)."""
    missing, pending = missing_rows(sweep)
    lost = [row for row in missing if row not in pending]
    if lost:
        raise TableRowsMissing(
            f"the study in {sweep.storage_label} lacks {len(lost)} finished rows of its table {sweep.export_path}: "
            f"{describe_rows(lost)}. Nothing was written and the table is left as it is: the journal is not the "
            f"one the table was exported from (a wrong --storage, a journal not copied with its table, or one cut "
            f"short). Restore that journal, or `micmco sweep {study_file} --repair-journal` enqueues these rows "
            "again (recorded from their run directories without training where those are finished)"
        )
    return pending


def recover_rows(sweep) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Enqueue again the table's finished rows that the study lacks: (enqueued, not recoverable). A row is
    enqueued with its tuned values only where they give its run directory back (rows recorded with rounded
    values do not); a finished run directory is then recorded without training."""
    from ..config import ConfigError
    from ..runconfig import run_directory
    from .trial import trial_config

    missing, pending = missing_rows(sweep)
    enqueued, lost = [], []
    for row in missing:
        if row in pending:
            continue
        try:
            point = {p.name: float(row[p.name]) for p in sweep.study.parameters}
            point = {p.name: int(point[p.name]) if p.integer else point[p.name] for p in sweep.study.parameters}
            run = run_directory(trial_config(sweep, point)).name
        except (KeyError, ValueError, ConfigError):
            lost.append(row)
            continue
        if run != row["run"]:
            lost.append(row)
            continue
        grid = [index for index, values in enumerate(sweep.study.grid) if values == point]
        slot = f"grid:{grid[0]}" if grid else f"recovered:{run}"  # a grid point keeps its slot: not run twice
        sweep.optuna_study.enqueue_trial(point, user_attrs={"slot": slot}, skip_if_exists=False)
        enqueued.append(row)
    return enqueued, lost
