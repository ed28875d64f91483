"""What a study holds: trial slots and outcomes, the census every worker agrees on, heartbeats, lost trials.

Enqueued trials carry a ``slot`` (``grid:<i>``, or ``retry:<n>`` for the retry of lost trial n);
a trial whose slot an earlier trial already holds is redundant and dropped when popped. A finished
trial's ``outcome`` (complete, diverged, failed; or duplicate, surplus for trials that never ran)
says whether it is a result. A running trial is stamped with a heartbeat (host, process, time);
one whose worker is gone is lost.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DROPPED",
    "HOST",
    "slot",
    "outcome",
    "is_result",
    "Census",
    "process_start",
    "heartbeat_stamp",
    "is_lost",
]

DROPPED = ("duplicate", "surplus")  # outcomes of trials that never ran: not results


def slot(trial) -> str | None:
    return trial.user_attrs.get("slot")


def outcome(trial) -> str | None:
    return trial.user_attrs.get("outcome")


def is_result(trial) -> bool:
    """A finished trial whose outcome is a result: complete (state COMPLETE), diverged (COMPLETE with
    penalty values, or FAIL in studies from before those) or failed (FAIL)."""
    from optuna.trial import TrialState

    kind = outcome(trial)
    if kind == "complete":
        return trial.state == TrialState.COMPLETE
    if kind == "diverged":
        return trial.state in (TrialState.COMPLETE, TrialState.FAIL)
    return kind == "failed" and trial.state == TrialState.FAIL


@dataclass
class Census:
    """What the study holds, classified by rules that depend only on earlier trials (so every worker agrees)."""

    effective: list  # trials that count against the budget (a lost trial and its retries count once)
    redundant: set  # numbers of enqueued trials whose slot an earlier trial holds, or whose lost trial finished
    results: list  # finished trials with an outcome: the rows of the export
    running: list
    waiting: list

    @classmethod
    def of(cls, trials: Sequence) -> Census:
        from optuna.trial import TrialState

        by_number = {t.number: t for t in trials}
        first_with_slot: dict[str, int] = {}
        redundant = set()
        for t in sorted(trials, key=lambda t: t.number):
            held = slot(t)
            if held is None:
                continue
            if held in first_with_slot:
                redundant.add(t.number)
                continue
            first_with_slot[held] = t.number
            if held.startswith("retry:"):
                lost = by_number.get(int(held.split(":")[1]))
                if lost is not None and is_result(lost):  # it finished after all
                    redundant.add(t.number)
        effective = [
            t
            for t in sorted(trials, key=lambda t: t.number)
            if t.number not in redundant
            and not (slot(t) or "").startswith("retry:")
            and outcome(t) != "duplicate"  # a repeated proposal, dropped by its worker
        ]
        results = [t for t in trials if is_result(t)]
        running = [t for t in trials if t.state == TrialState.RUNNING]
        waiting = [t for t in trials if t.state == TrialState.WAITING and t.number not in redundant]
        return cls(effective, redundant, results, running, waiting)

    def rank(self, number: int) -> int | None:
        for index, t in enumerate(self.effective):
            if t.number == number:
                return index
        return None


# --- heartbeats ------------------------------------------------------------------------------


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
    """The kernel's start time of a process (defeats pid reuse); None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return ""
        return ""


HOST = f"{socket.gethostname()}/{_boot_id()}"


def heartbeat_stamp() -> dict[str, Any]:
    """This process's heartbeat: host, pid, its start time and the time now."""
    return {"host": HOST, "pid": os.getpid(), "start": process_start(os.getpid()) or "", "t": time.time()}


def is_lost(trial, stale_after: float, now: float) -> bool:
    """A running trial whose worker is gone."""
    beat = trial.user_attrs.get("heartbeat")
    if not beat:
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        return now - started > stale_after
    if beat.get("host") == HOST:
        start = process_start(int(beat["pid"]))
        if start is None or (beat.get("start") and start and start != beat["start"]):
            return True
    return now - float(beat["t"]) > stale_after
