"""One worker: pops or proposes trials and runs them until the study's budget is spent, each as a ``micmco train``
subprocess or, with ``--batch N``, up to N at a time as one ``micmco train-batch`` (:mod:`.batch`), every trial
with a heartbeat; each finished trial becomes a row and is told to Optuna, the same way whichever ran it
(:mod:`.trial`). Failed trials are retried (first), and failures that repeat stop the worker
(:func:`.census.failure_stop`)."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..util import EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNNING
from .batch import run_batch_of
from .census import DROPPED, Census, FailureStop, failure_stop, heartbeat_stamp, outcome, slot
from .optuna_study import Sweep
from .sampler import make_sampler, near
from .trial import (
    INTERRUPTED_CODES,
    Heartbeat,
    child_env,
    invalid_point,
    read_json,
    trial_config,
    trial_outcome,
    wait_for_holder,
)

__all__ = ["Worker", "Proposal", "die_with_parent", "with_parent", "watch_parent"]


@dataclass(frozen=True)
class Proposal:
    """A trial this worker holds (RUNNING, stamped with its heartbeat) and the point it runs."""

    trial: Any  # an optuna.Trial
    params: dict[str, float]
    origin: int  # the number of the point's first trial (a retry's is the trial it retries)


class Worker:
    """Pops or proposes trials and runs each as a `micmco train` subprocess (or `batch` of them as one
    `micmco train-batch`) until the budget is spent."""

    def __init__(
        self, sweep: Sweep, index: int, threads: int, heartbeat: float, stale_after: float, echo=print, batch: int = 1
    ):
        self.sweep = sweep
        self.index = index
        self.threads = threads
        self.heartbeat = heartbeat
        self.stale_after = stale_after
        self.echo = echo
        self.batch = batch  # trials run together in one subprocess
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
            if self.batch == 1:
                self._one_trial()
            else:  # the waiting points (grid, retries) and the new ones the budget has left, no more
                room = len(census.waiting) + max(0, sweep.study.trials - len(census.effective))
                run_batch_of(self, min(self.batch, room))
        return EXIT_INTERRUPTED

    def _one_trial(self) -> None:
        proposal = self.propose()
        if proposal is None:
            return
        result = self._run(proposal.trial, proposal.params, proposal.origin)
        if result is None:  # interrupted: hand it back for a retry
            self.hand_back(proposal.trial)
            return
        self.record(proposal.trial, result)

    def propose(self) -> Proposal | None:
        """Pop a waiting trial (grid point, retry; these come first) or ask the sampler for a new point, stamped
        with this worker's heartbeat at once; None if it was dropped (redundant, beyond the budget, a repeated
        point) or released while the sampler ran."""
        from optuna.exceptions import UpdateFinishedTrialError

        sweep, study = self.sweep, self.sweep.study
        n_before = len(sweep.trials())
        config = replace(study.config, sampler="random") if self.random_next else study.config
        self.random_next = False
        sweep.optuna_study.sampler = make_sampler(config, seed_parts=(study.config.seed, n_before, self.index))
        trial = sweep.optuna_study.ask()
        try:
            trial.set_user_attr("heartbeat", heartbeat_stamp())  # at once: a worker killed from here on is noticed
        except UpdateFinishedTrialError:  # the sampler took longer than --stale-after: released meanwhile
            return None
        census = Census.of(sweep.trials())
        if trial.number in census.redundant:
            self._drop(trial, "duplicate")
            return None
        frozen = sweep.storage.get_trial(trial._trial_id)
        if not (slot(frozen) or "").startswith("retry:"):
            rank = census.rank(trial.number)
            if rank is not None and rank >= study.trials:
                self._drop(trial, "surplus")
                return None
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
            return None
        self.repeats = 0
        origin = frozen.user_attrs.get("origin", trial.number)
        label = " ".join(f"{k}={v:.4g}" for k, v in params.items())
        retry = f" (retry of trial {origin})" if origin != trial.number else ""
        self.echo(f"[worker {self.index}] trial {trial.number}{retry}: {label}")
        return Proposal(trial, params, origin)

    def hand_back(self, trial) -> None:
        """Release an interrupted trial for a retry (its run directory keeps its checkpoint)."""
        from optuna.trial import TrialState

        live = self.sweep.storage.get_trial(trial._trial_id)
        if live.state == TrialState.RUNNING:
            self.sweep.release(live, "interrupted")

    def record(self, trial, result) -> None:
        """Record a finished trial: its row and outcome, the values told to the sampler (complete, diverged) or
        FAIL (failed); then the export. `result`: (status, row, values, exit code) of :mod:`.trial`."""
        from optuna.trial import TrialState

        sweep = self.sweep
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
        """The same point as an earlier trial, or nearly the point another trial is running now (another
        worker's, or one of this worker's batch): within 2% of every range, on its scale."""
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
        from ..runconfig import run_directory

        sweep = self.sweep
        try:
            config = trial_config(sweep, params)
        except ConfigError as error:  # a proposed point the run config rejects: a failed trial, not a crash
            return invalid_point(sweep, params, error, self.threads)
        run_dir = run_directory(config)
        trial.set_user_attr("run", run_dir.name)
        command = [sys.executable, "-m", "micmco.cli", "train", str(sweep.study.base_path), "--quiet"]
        for item in sweep.study.trial_overrides(params):
            command += ["--set", item]
        command += ["--output-dir", str(sweep.runs_dir), "--threads", str(self.threads)]
        log_path = sweep.log_dir / f"trial-{origin:04d}.log"
        beat = Heartbeat(sweep.storage, [trial._trial_id], self.heartbeat)
        started = time.time()
        beat.start()
        try:
            code = self.run_child(command, log_path, f"--- trial {trial.number} (point {origin})")
        finally:
            beat.stop()
        if code is None:
            return None
        record = read_json(run_dir / "result.json")
        return trial_outcome(sweep, config, record, code, time.time() - started, log_path, self.threads)

    def run_child(self, command: list[str], log_path: Path, header: str) -> int | None:
        """Run a training subprocess tied to this process, its output appended to `log_path` after `header`
        and the time: its exit code, or None if it was stopped (its steps are checkpointed). A run directory
        locked by another process (exit 4, e.g. a killed worker's child): wait for that one, then start again."""
        env = child_env(self.threads)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            if self.stopping.is_set():
                return None
            with open(log_path, "a") as log:
                log.write(f"{header}, {dt.datetime.now():%Y-%m-%d %H:%M:%S}\n")
                log.flush()
                self.child = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=with_parent()
                )
                if self.stopping.is_set() and self.signalled is not self.child:  # stopped while it started
                    self._signal_child()
                code = self.child.wait()
                self.child = None
            if code == EXIT_RUNNING:
                wait_for_holder(log_path, self.stopping)
                continue
            return None if code in INTERRUPTED_CODES or self.stopping.is_set() else code


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
