"""``micmco sweep``'s command line: the argument parser and :func:`main`, which loads the study,
opens its storage, caps ``--workers`` (:mod:`.capacity`) and runs one worker, several local worker
processes, or only the export."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..config import ConfigError, positive_int
from ..util import EXIT_FAILED, EXIT_INPUT, EXIT_OK
from .capacity import MAX_BATCH, auto_batch, cap_workers, capacity_of, check_study
from .journal import DamagedJournal
from .optuna_study import Sweep
from .progress import summary_lines
from .repair import repair
from .rows import TableRowsMissing, check_table_kept, describe_rows, missing_rows
from .storage import STORAGE_ENV, WORKER_STORAGE_ENV, Scrubber, password_of
from .supervisor import run_worker, run_workers

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="micmco sweep",
        description="Run a study's trials (each a `micmco train` run) with Optuna; rerun the same command to continue.",
    )
    parser.add_argument("study", type=Path, help="study file, e.g. params/studies/cpu/vimco16-renyi.yaml")
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="local worker processes (default 1; capped by the cores, the trials left and the memory)",
    )
    parser.add_argument(
        "--storage",
        help=f"postgresql://user:password@host/db to share the study between machines (default: ${STORAGE_ENV}, "
        "else the journal file results/<profile>/<study>.journal); a path without :// is a journal file",
    )
    parser.add_argument(
        "--batch",
        type=_batch,
        default=1,
        help="trials each worker trains at once, as one `micmco train-batch` (one batched computation; default 1: "
        f"each trial its own `micmco train`); auto: as many as fit in 80%% of the GPU's free memory, at most "
        f"{MAX_BATCH} (1 on a CPU)",
    )
    parser.add_argument("--trials", type=positive_int, help="override the study's number of trials")
    parser.add_argument(
        "--threads",
        type=positive_int,
        help="CPU threads in all, split between the workers (default: $OMP_NUM_THREADS per worker where it is set, "
        "else all cores)",
    )
    parser.add_argument("--results-dir", type=Path, default=Path("results"), help="where results/<profile>/ lives")
    parser.add_argument(
        "--runs-dir", type=Path, default=Path("runs/sweeps"), help="where the trials' run directories go"
    )
    parser.add_argument(
        "--export", action="store_true", help="only regenerate the exported table and print the summary"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="only say how many trials are done and left and what the rest would cost; writes nothing",
    )
    parser.add_argument(
        "--repair-journal",
        action="store_true",
        help="keep a damaged journal's intact prefix (the damaged file saved beside it) and enqueue again the "
        "table's finished rows the study lacks; runs nothing (the next sweep records them)",
    )
    parser.add_argument("--progress-every", type=float, default=60.0, help="seconds between progress lines")
    parser.add_argument("--heartbeat", type=float, default=20.0, help="seconds between a running trial's heartbeats")
    parser.add_argument(
        "--stale-after",
        type=float,
        default=120.0,
        help="seconds without a heartbeat after which a trial of a worker on another machine is taken over",
    )
    parser.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)  # internal: one worker process
    return parser


def _batch(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a positive integer or auto, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """``micmco sweep``; a signal before the sweep's handlers are installed raises KeyboardInterrupt (the
    package's :func:`micmco.sweep.cli_main` ends it with 130)."""
    args = _parser().parse_args(argv)
    url = os.environ.get(WORKER_STORAGE_ENV) if args.worker_index is not None else None
    url = url or args.storage or os.environ.get(STORAGE_ENV) or None
    scrub = Scrubber(password_of(url) if url else None)

    def echo(message: str) -> None:
        print(scrub(message), flush=True)

    try:
        from ..study import load_study

        study = load_study(args.study)
        if args.trials:
            study.config.trials = args.trials
    except ConfigError as error:
        print(scrub(f"micmco sweep: invalid study {args.study}: {error}"), file=sys.stderr)
        return EXIT_INPUT
    checks = None
    if not args.export and not args.dry_run and args.worker_index is None:  # a supervisor's workers: it checked
        try:  # before the study is created or changed: a refused input records nothing
            checks = check_study(study, args.runs_dir)
        except ConfigError as error:
            print(scrub(f"micmco sweep: {args.study}: cannot run: {error}"), file=sys.stderr)
            return EXIT_INPUT
    if args.batch == "auto":  # a supervisor's workers get the number it chose
        args.batch = auto_batch(checks) if checks is not None and study_batches(study) else 1
    try:  # the results directory as the runs directory is checked: before anything is read or written
        from ..experiment import check_output_dir

        results = args.results_dir / study.config.profile
        check_output_dir(results, create=False, key="--results-dir")
        if not args.export and not args.dry_run and args.worker_index is None:
            check_output_dir(results, create=True, key="--results-dir")
    except ConfigError as error:
        print(scrub(f"micmco sweep: {args.study}: cannot run: {error}"), file=sys.stderr)
        return EXIT_INPUT
    if args.dry_run:
        try:
            return dry_run(study, url, args, echo)
        except (ConfigError, DamagedJournal, TableRowsMissing) as error:
            print(scrub(f"micmco sweep: {args.study}: {error}"), file=sys.stderr)
            return EXIT_INPUT
    if args.repair_journal:
        try:
            repair(study, url, args.results_dir, args.runs_dir, str(args.study), echo)
        except (ConfigError, OSError) as error:
            print(scrub(f"micmco sweep: {args.study}: cannot repair: {error}"), file=sys.stderr)
            return EXIT_INPUT
        return EXIT_OK
    try:
        sweep = Sweep(
            study, url, args.results_dir, args.runs_dir, echo=echo, must_exist=args.export, study_file=str(args.study)
        )
        if args.worker_index is None:  # before any work: a study that lacks rows of its table is refused
            check_table_kept(sweep, str(args.study))
    except (DamagedJournal, TableRowsMissing) as error:
        print(scrub(f"micmco sweep: {error}"), file=sys.stderr)
        return EXIT_INPUT
    except ConfigError as error:
        if error.key == "--storage":
            print(scrub(f"micmco sweep: {args.study}: {error}"), file=sys.stderr)
        else:
            print(scrub(f"micmco sweep: invalid study {args.study}: {error}"), file=sys.stderr)
        return EXIT_INPUT
    except Exception as error:  # noqa: BLE001 - storage errors: one line, password masked
        print(scrub(f"micmco sweep: {type(error).__name__}: {error}"), file=sys.stderr)
        return EXIT_FAILED

    if args.export:
        try:
            sweep.export()
        except TableRowsMissing as error:
            print(scrub(f"micmco sweep: {error}"), file=sys.stderr)
            return EXIT_INPUT
        pending = missing_rows(sweep)[1]
        if pending:
            echo(
                f"{sweep.export_path} left as it is: {len(pending)} of its rows are enqueued again and not recorded "
                f"yet ({describe_rows(pending)}); `micmco sweep {args.study}` records them"
            )
            return EXIT_OK
        for line in summary_lines(sweep):
            echo(line)
        return EXIT_OK

    if args.worker_index is not None:  # one of a supervisor's workers: --threads is the total it was given
        threads = max(1, (args.threads or 1) // args.workers)
        return run_worker(sweep, args.worker_index, threads, args, echo, supervised=True)

    try:
        capacity = capacity_of(sweep, checks, args.batch)
    except ConfigError as error:
        print(scrub(f"micmco sweep: {args.study}: cannot run: {error}"), file=sys.stderr)
        return EXIT_INPUT
    workers, capped = cap_workers(args.workers, capacity)
    if capped:
        echo(capped)
    warning = gpu_profile_warning(sweep, capacity.trials_left)
    if warning:
        print(scrub(f"micmco sweep: warning: {warning}"), file=sys.stderr)
    omp = _omp_threads()
    threads = max(1, args.threads // workers) if args.threads else omp or max(1, capacity.cores // workers)
    batches = f", batches of {args.batch} trials" if args.batch > 1 else ""
    echo(
        f"sweep {study.name}: {study.trials} trials of {study.base_path} ({study.config.sampler} sampler), "
        f"{workers} worker(s) x {threads} thread(s){batches}; storage: {sweep.storage_label}"
    )
    if workers == 1:
        return run_worker(sweep, 0, threads, args, echo, show_progress=True)
    return run_workers(sweep, args, workers, threads, url, echo)


def _omp_threads() -> int | None:
    """$OMP_NUM_THREADS as threads per worker, None where unset or not a positive integer."""
    try:
        value = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return None
    return value if value >= 1 else None


def gpu_profile_warning(sweep, trials_left: int) -> str | None:
    """Before any work: a study whose profile is sized for a GPU, on a CPU, with the projected time of its
    trials from two timed steps of its base config (None otherwise)."""
    from ..experiment import GPU_PROFILES, projection
    from ..runconfig import load_config
    from ..runtime import resolve_device

    study = sweep.study
    if study.config.profile not in GPU_PROFILES or trials_left == 0:
        return None
    config = load_config(study.base_path, study.overrides + [f"output_dir={sweep.runs_dir}"])
    device = resolve_device(config.train.device)
    if device.type != "cpu":
        return None
    line, warning = projection(config, device)
    return f"{warning}; {trials_left} trials to go ({line})" if warning else None


def study_batches(study) -> bool:
    """Whether the study's trials train as batches (a task without a batched model trains them one at a time:
    a batch of them would only queue N trials behind one process)."""
    from ..runconfig import load_config
    from ..tasks import get_task

    base = load_config(study.base_path, study.overrides)
    return get_task(base.task).batches(base)


def dry_run(study, url: str | None, args, echo) -> int:
    """``--dry-run``: the study's trials done and left, and what the rest would cost, writing nothing: the time
    per trial is the median of its finished trials' ``wall_s``, else two timed steps of its base config (on a
    CPU, a config sized for a GPU is not timed: its ``cost`` line is quoted)."""
    import statistics

    from ..experiment import GPU_PROFILES, duration_text, time_steps
    from ..runconfig import load_config
    from ..runtime import resolve_device
    from .optuna_study import done_count, table_rows

    journal = (
        Path(url) if url and "://" not in url else args.results_dir / study.config.profile / f"{study.name}.journal"
    )
    rows = []
    if (url and "://" in url) or journal.is_file():
        sweep = Sweep(
            study, url, args.results_dir, args.runs_dir, echo=echo, must_exist=True, study_file=str(args.study)
        )
        rows = table_rows(sweep.trials())
    done = done_count(rows)
    left = max(0, study.trials - done)
    walls = [float(r["wall_s"]) for r in rows if r["status"] == "complete" and r.get("wall_s")]
    head = f"{study.name}: {done} trials done of a budget of {study.trials}, {left} to run"
    if left == 0:
        echo(f"{head}; nothing to run")
        return EXIT_OK
    config = load_config(study.base_path, study.overrides + [f"output_dir={args.runs_dir / study.name}"])
    device = resolve_device(config.train.device)
    if walls:
        per_trial, how = statistics.median(walls), f"the median of its {len(walls)} finished trials"
    elif config.profile in GPU_PROFILES and device.type == "cpu":
        cost = config.cost or "no cost given"
        echo(f"{head}; no trial finished yet, and its trials are sized for a GPU (its config: {cost})")
        return EXIT_OK
    else:
        per_trial = time_steps(config, device) * config.train.steps
        how = f"two timed steps of its base config on {device}, training only"
    workers = max(1, args.workers)
    echo(
        f"{head}; ~{duration_text(per_trial)} per trial ({how}): ~{duration_text(per_trial * left / workers)} "
        f"with {workers} worker(s)"
    )
    return EXIT_OK
