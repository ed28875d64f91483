"""A study's journal file checked before anything reads or writes it, and repaired from its intact prefix.

Optuna's journal is one JSON operation per line, appended under a lock. A crash or a copy cut short
leaves a torn last line, and a merge of the committed journal can leave git's conflict markers: Optuna
then silently drops the torn line (and the trial it finished) or fails later with a bare JSONDecodeError
after appending to it. :func:`check_journal` finds such damage first, naming the file and the line;
:func:`repair_journal` keeps the intact prefix (the damaged file is saved beside it, never overwritten),
and the sweep's own recovery does the rest: a trial whose end was cut off is released and its retry
finds its finished run directory, and rows of the table that the prefix lacks are enqueued again
(:meth:`micmco.sweep.optuna_study.Sweep.recover_table_rows`), recorded from their run directories
without training.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

from ..util import write_atomically

__all__ = ["DamagedJournal", "Damage", "find_damage", "check_journal", "repair_journal"]

CONFLICT_MARKERS = (b"<<<<<<<", b"=======", b">>>>>>>")


class DamagedJournal(RuntimeError):
    """A journal file that cannot be read as it is; the message says where and how to recover."""


class Damage:
    """Where a journal stops being readable: the 1-based ``line``, why, and the byte length of the intact prefix."""

    def __init__(self, line: int, reason: str, intact_bytes: int, intact_lines: int):
        self.line = line
        self.reason = reason
        self.intact_bytes = intact_bytes
        self.intact_lines = intact_lines


def find_damage(path: Path) -> Damage | None:
    """The first damaged line of a journal file, None if every line is a complete JSON operation."""
    data = Path(path).read_bytes()
    offset = 0
    number = 0
    for line in data.splitlines(keepends=True):
        number += 1
        if line.startswith(CONFLICT_MARKERS):
            return Damage(number, f"a git conflict marker ({line[:7].decode()})", offset, number - 1)
        if not line.endswith(b"\n"):
            return Damage(number, "the last line is cut short (no line end)", offset, number - 1)
        try:
            operation = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            why = getattr(error, "msg", error)
            return Damage(number, f"not a JSON operation ({why})", offset, number - 1)
        if not isinstance(operation, dict) or "op_code" not in operation:
            return Damage(number, "not a journal operation (no op_code)", offset, number - 1)
        offset += len(line)
    return None


def check_journal(path: Path, study_file: str = "STUDY", table: Path | None = None, settle: float = 0.6) -> None:
    """Raise :class:`DamagedJournal` if the journal at ``path`` is damaged (a missing or empty file is fine).

    A last line without its line end may be another worker's append in flight: it is read again after
    ``settle`` seconds, and only damage that stays is reported."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return
    damage = find_damage(path)
    deadline = time.monotonic() + settle
    while damage is not None and damage.reason.startswith("the last line") and time.monotonic() < deadline:
        time.sleep(0.1)
        damage = find_damage(path)
    if damage is None:
        return
    keep = f"lines 1-{damage.intact_lines} are intact" if damage.intact_lines else "no line before it is intact"
    table_text = f"; the table {table} is left as it is" if table is not None else ""
    raise DamagedJournal(
        f"the study's journal {path} is damaged at line {damage.line}: {damage.reason}. Nothing was read from it "
        f"or written{table_text}. To recover: `micmco sweep {study_file} --repair-journal` keeps the intact "
        f"prefix ({keep}), saves the damaged file beside it, and enqueues again the table's rows that the prefix "
        "lacks; then rerun the sweep: trials whose run directories are finished are recorded from them without "
        "training (a git conflict: resolve it by keeping one side's lines instead, if you know which)"
    )


def repair_journal(path: Path) -> tuple[Path | None, Damage | None]:
    """Keep the intact prefix of a damaged journal: (where the damaged file was saved, the damage), or
    (None, None) when it was not damaged. The damaged file is copied to ``<journal>.damaged-<UTC time>``."""
    path = Path(path)
    if not path.exists():
        return None, None
    damage = find_damage(path)
    if damage is None:
        return None, None
    data = path.read_bytes()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    saved = path.with_name(f"{path.name}.damaged-{stamp}")
    with open(saved, "xb") as copy:  # never overwrites an earlier copy
        copy.write(data)
        copy.flush()
        os.fsync(copy.fileno())
    write_atomically(path, data[: damage.intact_bytes].decode("utf-8"))
    return saved, damage


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


def drop_table_rows(table: Path, rows: list[dict[str, str]]) -> Path | None:
    """Remove ``rows`` (by run) from the table, a copy of it saved first as ``<table>.before-repair-<UTC time>``."""
    if not rows:
        return None
    runs = {row["run"] for row in rows}
    lines = table.read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\n").split("\t")
    column = header.index("run")
    kept = [lines[0]] + [
        line for line in lines[1:] if not line.strip() or line.rstrip("\n").split("\t")[column] not in runs
    ]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    saved = table.with_name(f"{table.name}.before-repair-{stamp}")
    saved.write_text("".join(lines))
    write_atomically(table, "".join(kept))
    return saved


def repair(study, storage_url: str | None, results_dir: Path, runs_dir: Path, study_file: str, echo) -> None:
    """``micmco sweep STUDY --repair-journal``: keep the journal's intact prefix (a journal file, under its lock),
    then enqueue again the table's finished rows the study lacks; rows that cannot be (their tuned values do not
    give their run directory back) leave the table, which is saved first. Runs nothing: the next sweep records
    the enqueued rows."""
    from optuna.storages.journal import JournalFileOpenLock

    from .optuna_study import Sweep

    journal = Path(storage_url) if storage_url and "://" not in storage_url else None
    if not storage_url:
        journal = Path(results_dir) / study.config.profile / f"{study.name}.journal"
    if journal is not None and journal.exists():
        lock = JournalFileOpenLock(str(journal))
        lock.acquire()
        try:
            saved, damage = repair_journal(journal)
        finally:
            lock.release()
        if damage is None:
            echo(f"journal {journal}: intact, kept as it is")
        else:
            echo(
                f"journal {journal}: damaged at line {damage.line} ({damage.reason}); "
                f"kept lines 1-{damage.intact_lines}; the damaged file is saved as {saved}"
            )
    elif journal is not None:
        echo(f"journal {journal}: missing; a new one is made and the table's rows enqueued into it")
    sweep = Sweep(study, storage_url, results_dir, runs_dir, echo=echo, study_file=study_file, recovering=True)
    enqueued, lost = recover_rows(sweep)
    if enqueued:
        echo(
            f"enqueued again {len(enqueued)} rows of {sweep.export_path}: {describe_rows(enqueued)} (their run names "
            "stay; their trial numbers become the new trials')"
        )
    if lost:
        saved_table = drop_table_rows(sweep.export_path, lost)
        echo(
            f"cannot enqueue {len(lost)} rows (their tuned values do not give their run directory back): "
            f"{describe_rows(lost)}; removed from the table (saved first as {saved_table}); rerun them with "
            "`micmco rerun TABLE TRIAL` on the saved copy"
        )
    pending = missing_rows(sweep)[1]
    if len(pending) > len(enqueued):
        echo(
            f"{len(pending) - len(enqueued)} rows are held by trials the journal left running: the sweep releases "
            "them and records them again"
        )
    if not enqueued and not lost and not pending:
        echo(f"the study holds every finished row of {sweep.export_path}")
    echo(f"next: `micmco sweep {study_file}` records the enqueued rows (finished run directories without training)")
