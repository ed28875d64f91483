"""A study's journal file checked before anything reads or writes it, and repaired from its intact prefix.

Optuna's journal is one JSON operation per line, appended under a lock. A crash or a copy cut short
leaves a torn last line, and a merge of the committed journal can leave git's conflict markers: Optuna
then silently drops the torn line (and the trial it finished) or fails later with a bare JSONDecodeError
after appending to it. :func:`check_journal` finds such damage first, naming the file and the line;
:func:`repair_journal` keeps the intact prefix (the damaged file is saved beside it, never overwritten),
and the sweep's own recovery does the rest: a trial whose end was cut off is released and its retry
finds its finished run directory, and rows of the table that the prefix lacks are enqueued again
(:func:`micmco.sweep.rows.recover_rows`, by ``micmco sweep --repair-journal``: :mod:`.repair`), recorded
from their run directories without training.
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
