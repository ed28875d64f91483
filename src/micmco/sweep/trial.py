"""One trial's run as the sweep sees it: its run config, the environment of its training subprocess, its heartbeat,
and what the subprocess's exit and the run's ``result.json`` make of it (a row, an outcome, the values told to
Optuna).

Shared by a worker's two ways of running trials: one ``micmco train`` per trial, or N trials in one
``micmco train-batch`` (:mod:`.batch`); a trial is recorded the same way whichever ran it."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from ..config import ConfigError
from ..results import full_precision, result_row
from ..util import EXIT_DIVERGED, EXIT_INPUT, EXIT_INTERRUPTED, git_commit
from .census import heartbeat_stamp, process_start
from .sampler import diverged_values, sampler_values
from .storage import STORAGE_ENV, WORKER_STORAGE_ENV

__all__ = [
    "INTERRUPTED_CODES",
    "Heartbeat",
    "trial_config",
    "invalid_point",
    "trial_outcome",
    "child_env",
    "read_json",
    "last_line",
    "wait_for_holder",
]

# Exits of a training subprocess that was stopped (its steps checkpointed), not one that failed.
INTERRUPTED_CODES = (EXIT_INTERRUPTED, -signal.SIGTERM, -signal.SIGINT)


def trial_config(sweep, params: dict[str, float]):
    """The run config of a trial at `params` (ConfigError if the run config rejects the point)."""
    from ..runconfig import load_config

    return load_config(sweep.study.base_path, sweep.study.trial_overrides(params) + [f"output_dir={sweep.runs_dir}"])


def invalid_point(sweep, params: dict[str, float], error: ConfigError, threads: int):
    """(status, row, values, exit code) of a proposed point the run config rejects: a failed trial, not a crash.
    Its row is the study's base config with the point's values."""
    from ..config import to_dict
    from ..runconfig import load_config

    resolved = load_config(sweep.study.base_path, sweep.study.overrides)
    reason = f"invalid run config: {error}"
    row = result_row(to_dict(resolved), None, "failed", reason, 0.0, "", threads, git_commit())
    row.update({name: full_precision(value) for name, value in params.items() if name in row})
    return "failed", row, None, EXIT_INPUT


def trial_outcome(sweep, config, record: dict | None, code: int, wall: float, log_path: Path, threads: int):
    """(status, row, values, exit code) of a trial whose training exited with `code` and left `record` (its
    result.json, None if none): complete, diverged (told as a dominated point) or failed (told nothing)."""
    from ..config import to_dict
    from ..runconfig import run_directory
    from ..tasks import get_task

    run = run_directory(config).name
    if code == 0 and record is not None and record.get("status", "complete") == "complete":
        status, reason = "complete", "; ".join(record.get("warnings", []))
    elif code == EXIT_DIVERGED or (record is not None and record.get("status") == "diverged"):
        divergence = (record or {}).get("divergence") or {}
        status = "diverged"
        reason = divergence.get("reason") or last_line(log_path) or "diverged"
        if "step" in divergence:
            reason += f" (step {divergence['step']})"
    else:
        status = "failed"
        tail = last_line(log_path)
        exit_text = f"killed by {_signal_name(-code)}" if code < 0 else f"exit {code}"  # SIGKILL: out of memory?
        reason = f"{exit_text}: {tail}" if tail else exit_text
    commit = (record or {}).get("git_commit") or git_commit()
    row = result_row(to_dict(config), record, status, reason, wall, run, threads, commit)
    values = None
    mode = sweep.optuna_study.user_attrs.get("sampler_values", "log-excess")
    task = get_task(config.task)
    if status == "complete":
        metrics = record["metrics"]
        values = sampler_values(metrics["nll"], metrics["mutual_information"], task.reference_nll(config), mode)
        if not all(math.isfinite(v) for v in values):  # the run's own breakdown: final, like a divergence
            status, reason = "diverged", "non-finite metrics in result.json"
            row = result_row(to_dict(config), record, status, reason, wall, run, threads, commit)
    if status == "diverged":
        values = diverged_values(task.uniform_nll(config), task.reference_nll(config), mode)
    return status, row, values, code


def child_env(threads: int) -> dict[str, str]:
    """The environment of a training subprocess: this one's, without the storage URL (it needs none, and a
    password must not reach its logs), with `threads` for OpenMP and MKL."""
    env = {k: v for k, v in os.environ.items() if k not in (STORAGE_ENV, WORKER_STORAGE_ENV)}
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


class Heartbeat(threading.Thread):
    """Stamps running trials with this process's heartbeat every `every` seconds until stopped (a trial that
    is finished or released is left alone from then on; a passing storage error skips one beat)."""

    def __init__(self, storage, trial_ids: Iterable[int], every: float):
        super().__init__(daemon=True)
        self.storage, self.every = storage, every
        self.trial_ids = list(trial_ids)
        self.lock = threading.Lock()  # a batch adds its trials while the thread beats
        self.done = threading.Event()

    def add(self, trial_id: int) -> None:
        with self.lock:
            self.trial_ids.append(trial_id)

    def run(self) -> None:
        from optuna.exceptions import UpdateFinishedTrialError

        while not self.done.wait(self.every):
            with self.lock:
                beating = list(self.trial_ids)
            for trial_id in beating:
                try:
                    self.storage.set_trial_user_attr(trial_id, "heartbeat", heartbeat_stamp())
                except UpdateFinishedTrialError:  # finished or released: nothing left to keep alive
                    with self.lock:
                        self.trial_ids.remove(trial_id)
                except Exception:  # noqa: BLE001 - e.g. a busy database: the next beat may get through
                    continue

    def stop(self) -> None:
        self.done.set()


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def last_line(path: Path) -> str:
    """The last line the trial's last attempt wrote to its log (an attempt that wrote nothing: "")."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    starts = [i for i, line in enumerate(lines) if line.startswith("--- trial ")]
    lines = lines[starts[-1] + 1 :] if starts else lines
    return lines[-1][:300] if lines else ""


def wait_for_holder(log_path: Path, stopping: threading.Event) -> None:
    """After exit 4 (a run directory locked by another process, e.g. a killed worker's child still
    checkpointing): wait until the process the log names is gone (at most an hour, or until stopped)."""
    match = re.search(r"already running \(pid (\d+)\)", last_line(log_path))
    deadline = time.time() + 3600
    while match and time.time() < deadline and not stopping.is_set():
        if process_start(int(match.group(1))) is None:
            return
        stopping.wait(1.0)
    stopping.wait(2.0)
