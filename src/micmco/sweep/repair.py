"""``micmco sweep STUDY --repair-journal``: a damaged journal's intact prefix kept (:mod:`.journal`) and the
table's finished rows that the study lacks enqueued again (:mod:`.rows`); it runs nothing."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from ..util import write_atomically
from .journal import repair_journal
from .rows import describe_rows, missing_rows, recover_rows

__all__ = ["repair", "drop_table_rows"]


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
        untrained = [row for row in enqueued if not (sweep.runs_dir / row["run"] / "result.json").exists()]
        if untrained:
            echo(
                f"{len(untrained)} of them have no finished run directory under {sweep.runs_dir}: the sweep trains "
                f"them again ({describe_rows(untrained)}); the others are recorded without training"
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
        echo(f"the study holds every finished row of {sweep.export_path}: nothing to record again")
        return
    echo(f"next: `micmco sweep {study_file}` records them")
