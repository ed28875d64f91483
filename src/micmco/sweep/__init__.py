"""``micmco sweep STUDY.yaml``: run a study's trials with Optuna, on one machine or many.

Each trial is an ordinary ``micmco train`` run in a subprocess, with its own run directory
(``runs/sweeps/<study>/<name>-<fingerprint>/``), lock and checkpoints: the directory is
determined by the trial's parameters, so a trial that is retried resumes from its
checkpoint. Grid points are enqueued trials; the rest are proposed by a multi-objective
sampler (minimise NLL, maximise mutual information): Optuna's ``GPSampler`` (log-EHVI) by
default, or TPE.

Storage: an Optuna journal file ``results/<profile>/<study>.journal`` by default (no
server; safe for several processes on one machine), or ``--storage postgresql://...``
(or the MICMCO_STORAGE environment variable) for workers on many machines. A password in
the URL is printed masked and never written to results, logs or run records.

Loss-free resumption (our equivalent of Optuna's heartbeat and retry of stale trials,
identical on every storage): a worker stamps its running trial with a heartbeat (host,
process, time). A trial whose worker is gone (on this host: the process no longer exists;
elsewhere: no heartbeat for ``--stale-after`` seconds) is *released*: a retry trial with
the same parameters (those it was enqueued with or had suggested; hence the same run
directory and checkpoint) and the same origin (the point's first trial) is enqueued, then
the lost trial is marked FAIL. Marking FAIL is atomic in both storages, so only one worker
releases a trial; enqueued trials carry a ``slot`` and a trial whose slot already belongs
to an earlier trial is dropped when popped, so concurrent starts and races never run a
point twice. A lost trial that never became a point gets no retry: a redundant or dropped
one, or a proposal whose worker died in the sampler (it no longer counts; a new proposal
takes its place). A failed trial (its ``micmco train`` exited with an error) is not a
result either: its point is retried the same way, and failures that repeat stop the sweep
with their error and a non-zero exit (:func:`.census.failure_stop`); a study is checked
before it is created or run (:func:`.capacity.check_study`). The budget counts a point once,
whatever its retries; grid points and retries are popped before the sampler proposes. Every
point with a result (or, until then, its last failure) is one row of
``results/<profile>/<study>.tsv`` (:mod:`micmco.results`), regenerated from the study after
each trial. A rerun with nothing left to run writes nothing: the study is loaded, not
recreated, and the table is rewritten only when it changed.

``--workers`` is capped by the trials left, the cores and the memory one worker needs
(:mod:`.capacity`); a signal stops the sweep at any moment, and workers die with their
supervisor (:mod:`.supervisor`). ``--batch N`` (or ``auto``: what fits in 80% of the GPU's memory) has each
worker train up to N trials at once as one ``micmco train-batch``, each trial with its own heartbeat, run
directory and row, recorded as a trial run alone is (:mod:`.batch`).

Modules:

- :mod:`.cli`: the argument parser and :func:`.cli.main` (``micmco sweep`` delegates to it).
- :mod:`.capacity`: the checks before the first trial; how many local workers fit (cores, trials left, memory).
- :mod:`.supervisor`: one worker in this process, or several worker processes, restarted and stopped together.
- :mod:`.worker`: a worker's loop; taking a trial (popped or proposed), one trial's ``micmco train``, recording it.
- :mod:`.batch`: ``--batch N``: N trials taken at once and run as one ``micmco train-batch``.
- :mod:`.trial`: a trial's run config, heartbeat, and what its subprocess's exit and result.json make of it.
- :mod:`.sampler`: the sampler's construction, the values it is told, when two proposals are one point.
- :mod:`.optuna_study`: the :class:`Sweep` (create or load, grid, release, recover, export).
- :mod:`.census`: trial slots and outcomes, the :class:`Census`, failures that stop a sweep, heartbeats, lost trials.
- :mod:`.storage`: journal file or RDB URL, password masking and scrubbing.
- :mod:`.journal`: a journal file checked before it is read (damage named by line) and cut to its intact prefix.
- :mod:`.rows`: the exported table kept whole: rows the study lacks refused, or enqueued again.
- :mod:`.repair`: ``--repair-journal``.
- :mod:`.progress`: the progress line and the final summary.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

from ..util import EXIT_INTERRUPTED, import_deferring_signals, install_handlers
from .sampler import diverged_values, near, sampler_values
from .storage import mask_url

__all__ = ["cli_main", "mask_url", "sampler_values", "diverged_values", "near"]


def _interrupt(signum, frame):
    raise KeyboardInterrupt


HEAVY_IMPORTS = ("torch", "optuna", "micmco.experiment", "micmco.sweep.cli")  # seconds on a busy machine


def cli_main(argv: Sequence[str] | None = None) -> int:
    """``micmco sweep`` (:func:`.cli.main`). Importing this package is light (no torch, no Optuna): the heavy
    imports run with signals deferred, and SIGINT or SIGTERM during them, or before the sweep's own handlers
    are installed (loading the study, estimating memory), ends it with 130 and one line."""
    message = "micmco sweep: interrupted before any trial started; rerun the same command to start."
    if import_deferring_signals(HEAVY_IMPORTS):
        print(message, file=sys.stderr)
        return EXIT_INTERRUPTED
    install_handlers(_interrupt, (signal.SIGTERM,))  # SIGINT raises KeyboardInterrupt already
    try:
        from .cli import main

        return main(argv)
    except KeyboardInterrupt:
        print(message, file=sys.stderr)
        return EXIT_INTERRUPTED
