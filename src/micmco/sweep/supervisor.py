"""Running workers: one in this process (with progress lines), or several local worker processes
(``python -m micmco.sweep ... --worker-index i``) restarted when they crash and stopped together.

A signal stops the sweep at any moment: the supervisor's handler is installed before its first
worker is started, no worker is started once it has run, and a worker started while it ran is
stopped too. Workers die with the supervisor, even by kill -9: each gets SIGTERM when it dies
(PR_SET_PDEATHSIG) and also watches for it (its parent pid changes), then checkpoints its trial
and stops, as its ``micmco train`` child does when the worker dies."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

from ..util import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, install_handlers
from .census import failure_stop
from .optuna_study import Sweep, done_count, table_rows
from .progress import progress_line, summary_lines
from .storage import WORKER_STORAGE_ENV
from .worker import Worker, watch_parent, with_parent

__all__ = ["run_worker", "run_workers"]


def run_worker(
    sweep: Sweep, index: int, threads: int, args, echo, show_progress: bool = False, supervised: bool = False
) -> int:
    """Run worker `index` in this process until the budget is spent; export and, with progress, summarise.
    `supervised`: a supervisor's worker process, which stops when the supervisor is gone."""
    worker = Worker(sweep, index, threads, args.heartbeat, args.stale_after, echo=echo, batch=args.batch)
    install_handlers(worker.stop)  # ignored stays ignored, as in micmco train
    if supervised:
        watch_parent(worker.stop)
    import torch

    torch.set_num_threads(1)  # the worker only samples; its trial has its own threads
    started = time.time()
    done_at_start = done_count(table_rows(sweep.trials()))
    if show_progress:
        original = worker.echo

        def echo_with_progress(message: str) -> None:
            original(message)
            if ": complete:" in message or ": failed:" in message or ": diverged:" in message:
                original(progress_line(sweep, started, done_at_start))

        worker.echo = echo_with_progress
    code = worker.loop()
    sweep.export()
    if show_progress:
        for line in summary_lines(sweep):
            echo(line)
    if worker.failure is not None and not supervised:  # a supervisor says it once for all its workers
        print(worker.failure.line(sweep.study.name), file=sys.stderr, flush=True)
    if code == EXIT_INTERRUPTED:
        echo("sweep: interrupted; the running trial is checkpointed. Rerun the same command to continue.")
    return code


def run_workers(sweep: Sweep, args, count: int, threads: int, url: str | None, echo) -> int:
    """Start `count` worker processes, restart a crashed one (3 times), print progress; export at the end.
    Failures that stop a worker (:func:`.census.failure_stop`) stop them all: its running trials are
    checkpointed, the error is printed once and the sweep exits with the failure's code."""
    workers: dict[int, subprocess.Popen] = {}
    stopping = threading.Event()
    since = time.time()  # failures from here on may stop the sweep (earlier ones are being retried)
    failure = None

    def halt() -> None:
        for process in list(workers.values()):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)

    def stop(signum=None, frame=None):
        stopping.set()
        halt()

    install_handlers(stop)  # first: a signal while workers are being started stops them; ignored stays ignored
    env = dict(os.environ)
    if url:
        env[WORKER_STORAGE_ENV] = url
    command = [sys.executable, "-m", "micmco.sweep", str(args.study), "--threads", str(threads * count)]
    command += ["--workers", str(count), "--results-dir", str(args.results_dir), "--runs-dir", str(args.runs_dir)]
    command += ["--heartbeat", str(args.heartbeat), "--stale-after", str(args.stale_after), "--batch", str(args.batch)]
    if args.trials:
        command += ["--trials", str(args.trials)]
    restarts = {i: 0 for i in range(count)}

    def spawn(index: int) -> None:
        if stopping.is_set():
            return
        process = subprocess.Popen(command + ["--worker-index", str(index)], env=env, preexec_fn=with_parent())
        workers[index] = process
        if stopping.is_set():  # the signal came while it was starting: stop() did not see it
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        echo(f"sweep: worker {index} started (pid {process.pid})")

    for index in range(count):
        spawn(index)
    started = time.time()
    done_at_start = done_count(table_rows(sweep.trials()))
    next_progress = started + min(args.progress_every, 10.0)
    failed = False
    while workers:
        time.sleep(0.5)
        for index, process in list(workers.items()):
            code = process.poll()
            if code is None:
                continue
            del workers[index]
            if code not in (EXIT_OK, EXIT_INTERRUPTED) and not stopping.is_set() and failure is None:
                failure = failure_stop(sweep.trials(), since)
                if failure is not None:  # the worker stopped on failures: so do the others
                    halt()
                    continue
                echo(f"sweep: worker {index} exited with code {code}")
                if restarts[index] < 3:
                    restarts[index] += 1
                    spawn(index)
                else:
                    failed = True
        if time.time() >= next_progress and not stopping.is_set():
            with contextlib.suppress(Exception):
                echo(progress_line(sweep, started, done_at_start))
            next_progress = time.time() + args.progress_every
    sweep.export()
    for line in summary_lines(sweep):
        echo(line)
    if stopping.is_set():
        echo("sweep: interrupted; running trials are checkpointed. Rerun the same command to continue.")
        return EXIT_INTERRUPTED
    if failure is not None:
        print(failure.line(sweep.study.name), file=sys.stderr, flush=True)
        return failure.code
    return EXIT_FAILED if failed else EXIT_OK
