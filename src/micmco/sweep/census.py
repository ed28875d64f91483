"""What a study holds: trial slots and outcomes, the census every worker agrees on, heartbeats, lost trials.

Enqueued trials carry a ``slot`` (``grid:<i>``, or ``retry:<n>`` for the retry of lost trial n) and
a retry carries the ``origin`` of its point (the first trial of it: a retry of a retry points at
the original). A trial whose slot an earlier trial already holds is redundant and dropped when
popped, and so is the retry of a trial that finished after all or that was itself redundant or
dropped. A finished trial's ``outcome`` (complete, diverged, failed; or duplicate, surplus,
unstarted for trials that never ran) says whether it is a result. A running trial is stamped with
a heartbeat (host, process, time); one whose worker is gone is lost.
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
    "point_of",
]

# Outcomes of trials that never ran, hence neither results nor points of the budget: a repeated
# proposal or a redundant retry (duplicate), a proposal beyond the budget (surplus), and a lost
# proposal whose worker died before it had all its parameters (unstarted: nothing to resume).
DROPPED = ("duplicate", "surplus", "unstarted")


def slot(trial) -> str | None:
    return trial.user_attrs.get("slot")


def outcome(trial) -> str | None:
    return trial.user_attrs.get("outcome")


def point_of(trial, parameters) -> dict | None:
    """The parameters a trial runs: those it was enqueued with (grid points, retries), completed by those
    it suggested; None while some are missing (a proposal whose worker died in the sampler)."""
    params = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
    return params if all(p.name in params for p in parameters) else None


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
    redundant: set  # enqueued trials whose slot an earlier trial holds, or whose lost trial finished or never ran
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
                # It finished after all, or it was itself redundant or dropped: nothing to retry.
                if lost is not None and (is_result(lost) or lost.number in redundant or outcome(lost) in DROPPED):
                    redundant.add(t.number)
        effective = [
            t
            for t in sorted(trials, key=lambda t: t.number)
            if t.number not in redundant
            and not (slot(t) or "").startswith("retry:")
            and outcome(t) not in DROPPED  # never ran: a repeated or surplus proposal, or an unstarted one
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
