"""What a study holds: trial slots and outcomes, the census every worker agrees on, heartbeats, lost trials.

Enqueued trials carry a ``slot`` (``grid:<i>``, or ``retry:<n>`` for the retry of lost trial n) and
a retry carries the ``origin`` of its point (the first trial of it: a retry of a retry points at
the original). A trial whose slot an earlier trial already holds is redundant and dropped when
popped, and so is the retry of a trial that finished after all or that was itself redundant or
dropped. A finished trial's ``outcome`` (complete, diverged, failed; or duplicate, surplus,
unstarted for trials that never ran) says whether it is a result. A running trial is stamped with
a heartbeat (host, process, time); one whose worker is gone is lost.

A failed trial (its ``micmco train`` exited with an error, or left no result) is not a result:
the failure is rarely the point's own (missing data, files, permissions, memory), so its point is
retried, like a lost trial's, until it completes or diverges; it counts against the budget once,
as a point. Failures that repeat stop the sweep (:func:`failure_stop`).
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..util import EXIT_FAILED, EXIT_INPUT

__all__ = [
    "DROPPED",
    "HOST",
    "STOP_AFTER",
    "slot",
    "outcome",
    "origin_of",
    "is_result",
    "is_final",
    "is_failure",
    "FailureStop",
    "failure_stop",
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


def origin_of(trial) -> int:
    """The number of the first trial of a trial's point (retries carry it)."""
    return trial.user_attrs.get("origin", trial.number)


def is_final(trial) -> bool:
    """A result of its point, never retried: complete (state COMPLETE) or diverged (COMPLETE with penalty
    values, or FAIL in studies from before those)."""
    from optuna.trial import TrialState

    kind = outcome(trial)
    if kind == "complete":
        return trial.state == TrialState.COMPLETE
    return kind == "diverged" and trial.state in (TrialState.COMPLETE, TrialState.FAIL)


def is_failure(trial) -> bool:
    """A failed trial (state FAIL): not a result; its point is retried."""
    from optuna.trial import TrialState

    return outcome(trial) == "failed" and trial.state == TrialState.FAIL


def is_result(trial) -> bool:
    """A finished trial with a row of the export: final (complete, diverged) or failed."""
    return is_final(trial) or is_failure(trial)


@dataclass
class Census:
    """What the study holds, classified by rules that depend only on earlier trials (so every worker agrees)."""

    effective: list  # trials that count against the budget (a lost or failed trial and its retries count once)
    redundant: set  # enqueued trials whose slot an earlier trial holds, or whose lost trial finished or never ran
    results: list  # the rows of the export: final trials, then the last failure of each point without one
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
                if lost is not None and (is_final(lost) or lost.number in redundant or outcome(lost) in DROPPED):
                    redundant.add(t.number)
        effective = [
            t
            for t in sorted(trials, key=lambda t: t.number)
            if t.number not in redundant
            and not (slot(t) or "").startswith("retry:")
            and outcome(t) not in DROPPED  # never ran: a repeated or surplus proposal, or an unstarted one
        ]
        final = [t for t in trials if is_final(t)]
        done = {origin_of(t) for t in final}
        failed = {origin_of(t): t for t in sorted(trials, key=lambda t: t.number) if is_failure(t)}  # the last one
        results = final + [t for origin, t in failed.items() if origin not in done]
        running = [t for t in trials if t.state == TrialState.RUNNING]
        waiting = [t for t in trials if t.state == TrialState.WAITING and t.number not in redundant]
        return cls(effective, redundant, results, running, waiting)

    def rank(self, number: int) -> int | None:
        for index, t in enumerate(self.effective):
            if t.number == number:
                return index
        return None


# --- failures that stop a sweep --------------------------------------------------------------

STOP_AFTER = 3  # failures in a row with one error, or of one point, that stop a sweep


@dataclass(frozen=True)
class FailureStop:
    """Why a sweep stops: the error of its failed trials and the exit code to stop with."""

    error: str
    code: int  # EXIT_INPUT: a trial's input was refused; EXIT_FAILED: repeated failures
    failures: int  # failed trials in the window looked at

    def line(self, study: str) -> str:
        if self.code == EXIT_INPUT:
            what = "a trial's input was refused (exit 2), and every trial shares it but for the tuned values"
        else:
            what = f"{self.failures} trials failed"
        return (
            f"micmco sweep: {study}: stopped: {what}: {self.error}. Fix the cause and rerun the same command: "
            "failed trials are retried and do not count against the budget."
        )


def error_of(trial) -> str:
    """A failed trial's error line, with its run directory's name replaced, so that the same error of
    different points (e.g. a path inside each run directory) reads the same."""
    row = trial.user_attrs.get("row") or {}
    reason = str(row.get("reason") or "unknown error")
    return reason.replace(row["run"], "<run>") if row.get("run") else reason


def failure_stop(trials: Sequence, since: float) -> FailureStop | None:
    """Whether the trials finished since `since` (a time.time()) stop the sweep, and why: a trial whose input
    was refused (exit 2: all trials share the config but for the tuned values, which were checked at the
    ends of their ranges before the first trial, so the next trials would be refused too), the last
    STOP_AFTER finished trials failed with one error, or one point failed STOP_AFTER times. Failures
    before `since` (an earlier run's) do not count: they are being retried. The trials of one failed
    ``micmco train-batch`` (user attribute ``batch``) failed once, together: they count as one in a row, or
    a batch of three killed once (e.g. out of memory) would stop the sweep where three single trials would
    not. None: go on."""
    finished = sorted(
        (t for t in trials if is_result(t) and t.datetime_complete and t.datetime_complete.timestamp() >= since),
        key=lambda t: (t.datetime_complete, t.number),
    )
    failures = [t for t in finished if is_failure(t)]
    for t in failures:
        if t.user_attrs.get("exit_code") == EXIT_INPUT:
            return FailureStop(error_of(t), EXIT_INPUT, len(failures))
    last = []
    batches = set()
    for t in reversed(finished):
        if not is_failure(t) or len(last) == STOP_AFTER:
            break
        batch = t.user_attrs.get("batch")
        if batch is not None and batch in batches:
            continue
        batches.add(batch)
        last.append(error_of(t))
    if len(last) == STOP_AFTER and len(set(last)) == 1:
        return FailureStop(last[0], EXIT_FAILED, len(failures))
    per_point = Counter(origin_of(t) for t in failures)
    for t in reversed(failures):
        if per_point[origin_of(t)] >= STOP_AFTER:
            return FailureStop(error_of(t), EXIT_FAILED, len(failures))
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
