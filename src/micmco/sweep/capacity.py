"""How many local workers a sweep may start: ``--workers`` capped by the trials left, the CPU cores
and the memory one worker needs.

Capping, not refusing, is the rule: a worker beyond any of the three limits has nothing to do or
slows every other one down (more torch threads than cores is catastrophic, see NOTES.md), or
gets the whole sweep OOM-killed, so the sweep runs with what fits and says so in one line, e.g.
``sweep: --workers 1000 capped to 2 (2 cores; 6 trials left; memory for 150)``. The user loses
nothing by that: the same budget is spent by fewer workers. Only when not even one worker fits
in memory is the sweep refused, before any work, since no count of workers could run it.

One worker is two processes: the worker (Python, torch, Optuna and its Gaussian-process sampler:
236-349 MB resident measured on a PTB study, growing as the sampler fits; ~155 MB before it) and its
trial's ``micmco train`` (:data:`micmco.memory.PROCESS_BASE` plus the peak tensor memory that
:func:`micmco.experiment.preflight` estimates; on an accelerator the tensors are counted
against its own free memory). With ``--batch N`` a worker's trial process trains N trials: N times the tensors.

``--batch auto`` (:func:`auto_batch`) fills 80% of an accelerator's free memory with trials, at most 64 (the
estimate is of the largest trial of the study; the rest is headroom for what it leaves out, e.g. the
allocator's fragmentation); on a CPU it is 1, since there a batch saves no time over separate workers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import ConfigError

if TYPE_CHECKING:
    from ..experiment import Preflight

__all__ = [
    "WORKER_PROCESS_BYTES",
    "MAX_BATCH",
    "Capacity",
    "usable_cores",
    "check_study",
    "capacity_of",
    "cap_workers",
    "auto_batch",
]

WORKER_PROCESS_BYTES = 360 * 2**20  # a worker process without its trial (measured up to 349 MB, see above)
MAX_BATCH = 64  # trials of one batch at most (--batch auto)
BATCH_MEMORY_SHARE = 0.8  # of an accelerator's free memory that --batch auto fills with trials


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. under taskset or a container)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Capacity:
    cores: int  # usable CPU cores
    trials_left: int  # the budget minus the finished points
    memory_for: int | None  # workers whose processes and tensors fit in the memory available (None: unknown)


def check_study(study, runs_dir: Path) -> Preflight:
    """Everything checkable before the first trial (:func:`micmco.experiment.preflight`: device, memory,
    data, output directory), on the trials at both ends of the tuned ranges: ConfigError (nothing run,
    nothing recorded) if one would be refused. Returns the checks of the largest trial (integer parameters,
    e.g. latent sizes, at the top of their ranges)."""
    from ..experiment import preflight
    from ..runconfig import load_config

    output = [f"output_dir={Path(runs_dir) / study.name}"]
    low = {p.name: p.low for p in study.parameters}
    high = {p.name: p.high for p in study.parameters}
    preflight(load_config(study.base_path, study.trial_overrides(low) + output))
    return preflight(load_config(study.base_path, study.trial_overrides(high) + output))


def capacity_of(sweep, checks: Preflight | None = None, batch: int = 1) -> Capacity:
    """The limits of `sweep` on this machine, each worker running `batch` trials at once; ConfigError (one line,
    nothing run) if one worker does not fit. `checks`: those of :func:`check_study`, made now if not given."""
    import torch

    from ..memory import PROCESS_BASE, available_memory, format_bytes
    from .optuna_study import done_count, table_rows

    study = sweep.study
    trials_left = max(0, study.trials - done_count(table_rows(sweep.trials())))
    checks = checks or check_study(study, sweep.runs_dir.parent)
    on_host = checks.device.type == "cpu"
    tensors = checks.memory.peak_bytes * batch
    per_worker = WORKER_PROCESS_BYTES + PROCESS_BASE + (tensors if on_host else 0)
    host = available_memory(torch.device("cpu"))
    limits = [] if host is None else [host // per_worker]
    if not on_host and checks.available is not None:
        limits.append(checks.available // max(1, tensors))
    memory_for = min(limits) if limits else None
    if memory_for is not None and memory_for < 1:
        free = "unknown" if host is None else format_bytes(host)
        trials = f"{batch} trials of " if batch > 1 else ""
        raise ConfigError(
            "",
            f"one worker needs ~{format_bytes(per_worker)} ({trials}{checks.memory.describe()}; plus "
            f"~{format_bytes(WORKER_PROCESS_BYTES)} for the worker), but only {free} is available",
        )
    return Capacity(usable_cores(), trials_left, memory_for)


def cap_workers(requested: int, capacity: Capacity) -> tuple[int, str | None]:
    """(workers to start, the one-line message if that is fewer than `requested`); at least 1, so that a
    finished study is exported and a trial another machine lost can be taken over."""
    limits = [capacity.cores, capacity.trials_left]
    if capacity.memory_for is not None:
        limits.append(capacity.memory_for)
    workers = max(1, min([requested, *limits]))
    if workers >= requested:
        return requested, None
    memory = "memory unknown" if capacity.memory_for is None else f"memory for {capacity.memory_for}"
    cores, left = capacity.cores, capacity.trials_left
    reasons = f"{cores} core{'s' * (cores != 1)}; {left} trial{'s' * (left != 1)} left; {memory}"
    return workers, f"sweep: --workers {requested} capped to {workers} ({reasons})"


def auto_batch(checks: Preflight) -> int:
    """``--batch auto``: on an accelerator, the trials whose estimated peak memory (that of the study's largest
    trial, :func:`check_study`) fits in 80% of its free memory, 1 to 64; on a CPU (or free memory unknown), 1."""
    if checks.device.type == "cpu" or checks.available is None:
        return 1
    fits = int(BATCH_MEMORY_SHARE * checks.available) // max(1, checks.memory.peak_bytes)
    return max(1, min(MAX_BATCH, fits))
