"""One worker: pops or proposes trials and runs each as a ``micmco train`` subprocess, with a
heartbeat, until the study's budget is spent; each finished trial becomes a row and is told to Optuna.
Failed trials are retried (first), and failures that repeat stop the worker (:func:`.census.failure_stop`)."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from ..config import ConfigError
from ..results import result_row
from ..util import EXIT_DIVERGED, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNNING, git_commit
from .census import DROPPED, Census, FailureStop, failure_stop, heartbeat_stamp, outcome, process_start, slot
from .optuna_study import Sweep
from .sampler import diverged_values, make_sampler, near, sampler_values
from .storage import STORAGE_ENV, WORKER_STORAGE_ENV

__all__ = ["Worker", "Heartbeat", "die_with_parent", "with_parent", "watch_parent"]


class Worker:
    """Pops or proposes trials and runs each as a `micmco train` subprocess until the budget is spent."""

    def __init__(self, sweep: Sweep, index: int, threads: int, heartbeat: float, stale_after: float, echo=print):
        self.sweep = sweep
        self.index = index
        self.threads = threads
        self.heartbeat = heartbeat
        self.stale_after = stale_after
        self.echo = echo
        self.stopping = threading.Event()
        self.child: subprocess.Popen | None = None
        self.signalled: subprocess.Popen | None = None  # the last child stop() passed a signal to
        self.random_next = False  # after a repeated proposal: sample the next point at random
        self.repeats = 0  # consecutive repeated proposals
        self.started = time.time()  # failures from here on may stop it (earlier ones are being retried)
        self.failure: FailureStop | None = None  # why it stopped, if failures stopped it

    def stop(self, signum=None, frame=None) -> None:
        """Stop after the running trial is checkpointed (each signal is passed on: a second one stops it at once)."""
        self.stopping.set()
        self._signal_child()

    def _signal_child(self) -> None:
        child = self.child
        if child is not None and child.poll() is None:
            self.signalled = child
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)  # checkpoints at the end of its current step

    def loop(self) -> int:
        sweep = self.sweep
        sweep.ensure_grid()
        while not self.stopping.is_set():
            sweep.recover(self.stale_after)
            retried = sweep.retry_failed()
            if retried:
                self.echo(f"[worker {self.index}] {retried} failed trial(s) queued for a retry")
            self.failure = failure_stop(sweep.trials(), self.started)
            if self.failure is not None:
                return self.failure.code
            census = Census.of(sweep.trials())
            budget_left = len(census.effective) < sweep.study.trials
            if not census.waiting and not budget_left:
                if not census.running:
                    return EXIT_OK
                self.stopping.wait(min(5.0, self.stale_after / 4))  # others' trials: take over if they are lost
                continue
            if self.repeats >= 20:
                self.echo(
                    f"[worker {self.index}] 20 proposals in a row repeated earlier points: the space is exhausted"
                )
                return EXIT_OK
            self._one_trial()
        return EXIT_INTERRUPTED

    def _one_trial(self) -> None:
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        sweep, study = self.sweep, self.sweep.study
        n_before = len(sweep.trials())
        config = replace(study.config, sampler="random") if self.random_next else study.config
        self.random_next = False
        sweep.optuna_study.sampler = make_sampler(config, seed_parts=(study.config.seed, n_before, self.index))
        trial = sweep.optuna_study.ask()
        try:
            trial.set_user_attr("heartbeat", heartbeat_stamp())  # at once: a worker killed from here on is noticed
        except UpdateFinishedTrialError:  # the sampler took longer than --stale-after: released meanwhile
            return
        census = Census.of(sweep.trials())
        if trial.number in census.redundant:
            self._drop(trial, "duplicate")
            return
        frozen = sweep.storage.get_trial(trial._trial_id)
        if not (slot(frozen) or "").startswith("retry:"):
            rank = census.rank(trial.number)
            if rank is not None and rank >= study.trials:
                self._drop(trial, "surplus")
                return
        params = {
            p.name: trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
            if p.integer
            else trial.suggest_float(p.name, p.low, p.high, log=p.log)
            for p in study.parameters
        }
        if slot(frozen) is None and self._repeats_a_point(trial.number, params):
            # Samplers ignore failed trials, so a GP can propose a failed corner again: same point,
            # same run directory, nothing new. Drop it; the next proposal is a random one.
            self._drop(trial, "duplicate")
            self.random_next = True
            self.repeats += 1
            return
        self.repeats = 0
        origin = frozen.user_attrs.get("origin", trial.number)
        label = " ".join(f"{k}={v:.4g}" for k, v in params.items())
        retry = f" (retry of trial {origin})" if origin != trial.number else ""
        self.echo(f"[worker {self.index}] trial {trial.number}{retry}: {label}")
        result = self._run(trial, params, origin)
        if result is None:  # interrupted: hand it back for a retry
            live = sweep.storage.get_trial(trial._trial_id)
            if live.state == TrialState.RUNNING:
                sweep.release(live, "interrupted")
            return
        status, row, values, code = result
        try:
            trial.set_user_attr("row", row)
            if status == "failed":
                trial.set_user_attr("exit_code", code)  # 2 (input refused) stops the sweep at once
            trial.set_user_attr("outcome", status)
            if values is not None:  # complete, or diverged with its penalty
                sweep.optuna_study.tell(trial, values)
            else:
                sweep.optuna_study.tell(trial, state=TrialState.FAIL)
        except Exception as error:  # noqa: BLE001 - e.g. released by another worker while we finished
            self.echo(
                f"[worker {self.index}] trial {trial.number}: could not record ({error}); its retry reuses the run"
            )
            return
        shown = f"NLL {row['nll']} MI {row['mi']}" if status == "complete" else row["reason"]
        self.echo(f"[worker {self.index}] trial {trial.number}: {status}: {shown} ({row['wall_s']} s)")
        sweep.export()

    def _repeats_a_point(self, number: int, params: dict[str, float]) -> bool:
        """The same point as an earlier trial, or (GP proposals have no notion of pending trials)
        nearly the point another worker is running now: within 2% of every range, on its scale."""
        from optuna.trial import TrialState

        for t in self.sweep.trials():
            if not t.params or t.number == number or outcome(t) in DROPPED:
                continue
            if t.params == params:
                return True
            if t.state == TrialState.RUNNING and near(self.sweep.study.parameters, t.params, params):
                return True
        return False

    def _drop(self, trial, why: str) -> None:
        from optuna.trial import TrialState

        with contextlib.suppress(Exception):
            trial.set_user_attr("outcome", why)
            self.sweep.optuna_study.tell(trial, state=TrialState.FAIL)

    def _run(self, trial, params: dict[str, float], origin: int):
        """Run the trial's `micmco train`; (status, row, values, exit code), or None if interrupted."""
        from ..config import to_dict
        from ..runconfig import load_config, run_directory
        from ..tasks import get_task

        sweep = self.sweep
        overrides = sweep.study.trial_overrides(params)
        try:
            config = load_config(sweep.study.base_path, overrides + [f"output_dir={sweep.runs_dir}"])
        except ConfigError as error:  # a proposed point the run config rejects: a failed trial, not a crash
            resolved = load_config(sweep.study.base_path, sweep.study.overrides)
            reason = f"invalid run config: {error}"
            row = result_row(to_dict(resolved), None, "failed", reason, 0.0, "", self.threads, git_commit())
            row.update({name: f"{value:.6g}" for name, value in params.items() if name in row})
            return "failed", row, None, EXIT_INPUT
        run_dir = run_directory(config)
        trial.set_user_attr("run", run_dir.name)
        command = [sys.executable, "-m", "micmco.cli", "train", str(sweep.study.base_path), "--quiet"]
        for item in overrides:
            command += ["--set", item]
        command += ["--output-dir", str(sweep.runs_dir), "--threads", str(self.threads)]
        env = {k: v for k, v in os.environ.items() if k not in (STORAGE_ENV, WORKER_STORAGE_ENV)}
        env.update(OMP_NUM_THREADS=str(self.threads), MKL_NUM_THREADS=str(self.threads))
        sweep.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = sweep.log_dir / f"trial-{origin:04d}.log"
        beat = Heartbeat(sweep.storage, trial._trial_id, self.heartbeat)
        started = time.time()
        beat.start()
        try:
            while True:
                if self.stopping.is_set():
                    return None
                with open(log_path, "a") as log:
                    log.write(f"--- trial {trial.number} (point {origin}), {dt.datetime.now():%Y-%m-%d %H:%M:%S}\n")
                    log.flush()
                    self.child = subprocess.Popen(
                        command, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=with_parent()
                    )
                    if self.stopping.is_set() and self.signalled is not self.child:  # stopped while it started
                        self._signal_child()
                    code = self.child.wait()
                    self.child = None
                if code == EXIT_RUNNING:  # another process trains this run directory (e.g. a killed worker's child)
                    _wait_for_holder(log_path, self.stopping)
                    continue
                break
        finally:
            beat.stop()
        wall = time.time() - started
        if code in (EXIT_INTERRUPTED, -signal.SIGTERM, -signal.SIGINT) or self.stopping.is_set():
            return None
        record = _read_json(run_dir / "result.json")
        if code == 0 and record is not None and record.get("status", "complete") == "complete":
            status, reason = "complete", "; ".join(record.get("warnings", []))
        elif code == EXIT_DIVERGED or (record is not None and record.get("status") == "diverged"):
            divergence = (record or {}).get("divergence") or {}
            status = "diverged"
            reason = divergence.get("reason") or _last_line(log_path) or "diverged"
            if "step" in divergence:
                reason += f" (step {divergence['step']})"
        else:
            status = "failed"
            tail = _last_line(log_path)
            exit_text = f"killed by {_signal_name(-code)}" if code < 0 else f"exit {code}"  # SIGKILL: out of memory?
            reason = f"{exit_text}: {tail}" if tail else exit_text
        commit = (record or {}).get("git_commit") or git_commit()
        row = result_row(to_dict(config), record, status, reason, wall, run_dir.name, self.threads, commit)
        values = None
        mode = sweep.optuna_study.user_attrs.get("sampler_values", "log-excess")
        task = get_task(config.task)
        if status == "complete":
            metrics = record["metrics"]
            values = sampler_values(metrics["nll"], metrics["mutual_information"], task.reference_nll(config), mode)
            if not all(math.isfinite(v) for v in values):  # the run's own breakdown: final, like a divergence
                status, reason = "diverged", "non-finite metrics in result.json"
                row = result_row(to_dict(config), record, status, reason, wall, run_dir.name, self.threads, commit)
        if status == "diverged":
            values = diverged_values(task.uniform_nll(config), task.reference_nll(config), mode)
        return status, row, values, code


class Heartbeat(threading.Thread):
    """Stamps a running trial with this process's heartbeat every `every` seconds until stopped (or until the
    trial is finished or released; a passing storage error skips one beat)."""

    def __init__(self, storage, trial_id: int, every: float):
        super().__init__(daemon=True)
        self.storage, self.trial_id, self.every = storage, trial_id, every
        self.done = threading.Event()

    def run(self) -> None:
        from optuna.exceptions import UpdateFinishedTrialError

        while not self.done.wait(self.every):
            try:
                self.storage.set_trial_user_attr(self.trial_id, "heartbeat", heartbeat_stamp())
            except UpdateFinishedTrialError:  # finished or released: nothing left to keep alive
                return
            except Exception:  # noqa: BLE001 - e.g. a busy database: the next beat may get through
                continue

    def stop(self) -> None:
        self.done.set()


def die_with_parent(parent: int | None = None) -> None:
    """In a child (as Popen's preexec_fn): get SIGTERM (checkpoint and stop) when its parent dies, even by
    kill -9 (Linux's PR_SET_PDEATHSIG). `parent`, the parent's pid taken before the fork: if it died
    before the request was made, the child exits at once (130, before exec: nothing ran)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if parent is not None and os.getppid() != parent:
        os._exit(EXIT_INTERRUPTED)


def with_parent() -> functools.partial:
    """A preexec_fn that ties the child to this process (see :func:`die_with_parent`)."""
    return functools.partial(die_with_parent, os.getpid())


def watch_parent(stop, every: float = 1.0) -> threading.Thread:
    """Call `stop()` once this process's parent is gone (it was reparented): the portable half of
    :func:`die_with_parent`, for worker processes, whose supervisor may die by kill -9."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        stop()

    thread = threading.Thread(target=watch, daemon=True, name="watch-parent")
    thread.start()
    return thread


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _last_line(path: Path) -> str:
    """The last line the trial's last attempt wrote to its log (an attempt that wrote nothing: "")."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    starts = [i for i, line in enumerate(lines) if line.startswith("--- trial ")]
    lines = lines[starts[-1] + 1 :] if starts else lines
    return lines[-1][:300] if lines else ""


def _wait_for_holder(log_path: Path, stopping: threading.Event) -> None:
    match = re.search(r"already running \(pid (\d+)\)", _last_line(log_path))
    deadline = time.time() + 3600
    while match and time.time() < deadline and not stopping.is_set():
        if process_start(int(match.group(1))) is None:
            return
        stopping.wait(1.0)
    stopping.wait(2.0)
