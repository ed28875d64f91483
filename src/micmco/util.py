"""Helpers that several modules need, in one place (as Pyro keeps them in ``infer/util.py``).

- the exit codes every command shares (``micmco train``, ``sweep``, ``pareto``, ``make reproduce``),
- the commit of the source tree, recorded in every result,
- installing signal handlers without overriding a signal the process was started ignoring,
- atomic file writes (a kill never leaves a torn result or table).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = [
    "full_precision",
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_INPUT",
    "EXIT_DIVERGED",
    "EXIT_RUNNING",
    "EXIT_INTERRUPTED",
    "git_commit",
    "install_handlers",
    "restore_handlers",
    "import_deferring_signals",
    "write_atomically",
    "DiskFull",
    "written_or_cleaned",
]

EXIT_OK = 0  # finished: complete (train), every trial done (sweep)
EXIT_FAILED = 1  # sweep: some trials or workers failed; rerun to continue
EXIT_INPUT = 2  # invalid input (config, device, memory, output directory, checkpoint): nothing was run
EXIT_DIVERGED = 3  # the run diverged; its result record says why
EXIT_RUNNING = 4  # the run is being trained by another process now
EXIT_INTERRUPTED = 130  # interrupted (SIGINT/SIGTERM); rerun the same command to resume


def git_commit() -> str | None:
    """The commit of the source tree micmco runs from, with '-dirty' for uncommitted changes to that source
    (None outside git). Only the package's own files count: a sweep's journals and tables, committed files
    that the run itself rewrites, do not make its code dirty."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = ["git", "status", "--porcelain", "--untracked-files=no", "--", "."]
        dirty = subprocess.run(status, cwd=here, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def install_handlers(handler: Callable, signums: Iterable[int] = (signal.SIGINT, signal.SIGTERM)) -> dict[int, object]:
    """Install ``handler`` for each signal, except one the process was started ignoring (``nohup``, or
    ``cmd &`` in a script, ignore SIGINT): ignored stays ignored, as Python itself does. Returns the
    previous handlers, for :func:`restore_handlers`."""
    return {
        signum: signal.signal(signum, handler) for signum in signums if signal.getsignal(signum) is not signal.SIG_IGN
    }


def restore_handlers(previous: dict[int, object]) -> None:
    for signum, old in previous.items():
        signal.signal(signum, old)


def import_deferring_signals(names: Iterable[str]) -> bool:
    """Import modules (torch, Optuna, ...) with SIGINT and SIGTERM deferred; True if one arrived meanwhile,
    and the caller should stop. A KeyboardInterrupt raised inside an import is not reliable: a package
    probing an optional dependency catches it as an ImportError (Ctrl-C 0.7 s into ``import torch, optuna``
    was swallowed here), and a C extension interrupted mid-load fails every later import of it."""
    import importlib

    received: list[int] = []
    previous = install_handlers(lambda signum, frame: received.append(signum))
    try:
        for name in names:
            importlib.import_module(name)
    finally:
        restore_handlers(previous)
    return bool(received)


class DiskFull(OSError):
    """A write that failed for want of space: the message names the file, its disk's free space, and that the
    file it would have replaced is intact."""


WRITE_FAILURES = ("write failed", "No space left", "Disk quota")  # torch.save reports ENOSPC as a RuntimeError


def written_or_cleaned(partial: Path, target: Path, write: Callable[[Path], None]) -> None:
    """``write(partial)`` then rename it over ``target``; on any failure the partial file is removed, and a full
    disk (an OSError ENOSPC/EDQUOT, or torch.save's "file write failed") is raised as one :class:`DiskFull`."""
    import errno
    import shutil

    try:
        write(partial)
        os.replace(partial, target)
    except BaseException as error:
        partial.unlink(missing_ok=True)
        full = isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
        full = full or (isinstance(error, (OSError, RuntimeError)) and any(w in str(error) for w in WRITE_FAILURES))
        if not full:
            raise
        try:
            free = f"{shutil.disk_usage(target.parent).free / 2**20:.0f} MiB free"
        except OSError:
            free = "free space unknown"
        kept = f"{target.name} as it was is intact" if target.exists() else f"no {target.name} was written"
        raise DiskFull(
            errno.ENOSPC,
            f"the disk of {target.parent} is full ({free}) while writing {target.name}; {kept}, and no partial file is "
            "left. Free some space and rerun the same command",
        ) from None


def write_atomically(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers see the old or the new file, and
    a failed write leaves no partial file (a full disk raises :class:`DiskFull`)."""
    path = Path(path)
    written_or_cleaned(path.with_name(path.name + ".partial"), path, lambda partial: partial.write_text(text))


def full_precision(value) -> str:
    """A tuned value as text that reads back as the very number (a row reruns as its trial)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = repr(float(value))  # the shortest text that reads back as the same float
    return text.removesuffix(".0")
