"""Command line: ``micmco train|check CONFIG.yaml [--set key=value ...]``, ``micmco train-batch``, ``micmco evaluate
RUN_DIR``, and the subcommands with parsers of their own (``sweep``, ``rerun``, ``pareto``, ``table1``); exit codes in
:data:`DESCRIPTION`.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import __version__
from .config import ConfigError, positive_int
from .util import (
    EXIT_DIVERGED,
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUNNING,
    import_deferring_signals,
)

DESCRIPTION = """\
The estimators, objectives and experiments of "Mutual Information Constraints for Monte-Carlo Objectives"
(Melis, Gyorgy, Blunsom). `micmco COMMAND --help` describes each command.

exit codes: 0 complete; 1 failed (trials or workers of a sweep; rerun to continue); 2 invalid input (config,
data, device, memory, output directory, checkpoint, record: nothing was run); 3 the run diverged (its result
record says why); 4 the run is being trained by another process; 130 interrupted (rerun the same command to
resume)."""

# Subcommands with parsers of their own, in their modules (imported only when used).
DELEGATED = {
    "sweep": ("micmco.sweep", "run a study: a grid or a tuned set of trials (Optuna), resumable; exports results/"),
    "pareto": ("micmco.pareto_cli", "Pareto frontiers of results tables and of the paper's trials; summaries, plots"),
    "table1": ("micmco.best_trials", "the paper's Table 1: the best validation results on Penn Treebank"),
    "rerun": ("micmco.rerun", "rerun a row of a results table from its journal, check it, evaluate it precisely"),
}

# Packages of the optional extras (pyproject.toml) -> the extra: train, check and evaluation never import them.
OPTIONAL = {"optuna": "sweep", "scipy": "sweep", "psycopg": "sweep", "plotly": "book", "ipywidgets": "book"}


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(sys.argv[1:] if argv is None else list(argv))
    except KeyboardInterrupt:  # before any run started (imports, parsing): nothing to save
        return _fail("interrupted before any work; nothing was changed.", EXIT_INTERRUPTED)


def _main(argv: list[str]) -> int:
    if argv and argv[0] in DELEGATED:
        return _delegate(argv[0], argv[1:])
    args = _parser().parse_args(argv)
    if import_deferring_signals(("torch", "micmco.experiment")):  # torch: after arg errors
        return _fail("interrupted before any work; nothing was changed.", EXIT_INTERRUPTED)
    return COMMANDS[args.command](args)


def _delegate(command: str, argv: list[str]) -> int:
    """``micmco sweep|pareto|table1``: the module's own command line."""
    import importlib

    try:
        return importlib.import_module(DELEGATED[command][0]).cli_main(argv)
    except ModuleNotFoundError as error:  # an extra's package (the sweep's Optuna) on a stock image
        extra = OPTIONAL.get((error.name or "").partition(".")[0])
        if extra is None:
            raise
        return _fail(
            f"micmco {command} needs {error.name}, which is not installed: pip install -e '.[{extra}]'", EXIT_FAILED
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="micmco", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"micmco {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("train", "train one run and write its result record (resumes an interrupted run)"),
        ("check", "validate a config and its data, estimate its memory and time two training steps (writes nothing)"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("config", type=Path, help="YAML run config, e.g. params/synthetic/smoke/elbo-kl.yaml")
        command.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config value, e.g. --set objective.lam=0.5 (repeatable)",
        )
        command.add_argument("--output-dir", help="directory for run directories (overrides output_dir)")
        command.add_argument(
            "--threads", type=positive_int, help="CPU threads for torch (overrides train.threads; default 1)"
        )
    commands.choices["train"].add_argument("--quiet", action="store_true", help="no progress bar")
    commands.choices["check"].add_argument(
        "--no-timing", action="store_true", help="skip timing two training steps (minutes on a CPU for a paper config)"
    )
    evaluation = commands.add_parser(
        "evaluate", help="re-score a finished run from its checkpoint (no training): mean ± standard error"
    )
    evaluation.add_argument("run_dir", type=Path, help="a finished run's directory (micmco train prints it)")
    evaluation.add_argument("--samples", type=positive_int, help="K per evaluation (default: the run's, 100)")
    evaluation.add_argument(
        "--repeats", type=positive_int, help="most independent evaluations (default: the run's eval.repeats)"
    )
    evaluation.add_argument(
        "--target-se", type=float, help="stop once both standard errors are <= this (nats; 0: all repeats)"
    )
    evaluation.add_argument(
        "--seed",
        type=int,
        help="seeds the evaluations (default: the run's seed; never the recorded evaluation's samples)",
    )
    evaluation.add_argument("--split", help="the split to evaluate on (default: the run's)")
    evaluation.add_argument(
        "--record", action="store_true", help="write the result into the run's result.json (its own split and K only)"
    )
    evaluation.add_argument("--threads", type=positive_int, help="CPU threads for torch (default 1)")
    evaluation.add_argument("--quiet", action="store_true", help="no progress bar")
    batch = commands.add_parser(
        "train-batch", help="train N trials of one config as one batched computation (each its own run directory)"
    )
    batch.add_argument("config", type=Path, help="YAML run config shared by the trials")
    batch.add_argument(
        "--trial",
        dest="trials",
        action="append",
        required=True,
        metavar="'KEY=VALUE ...'",
        help="one trial: its overrides, separated by spaces, e.g. --trial 'objective.lam=0.5 train.learning_rate=1e-3'"
        " (repeat once per trial)",
    )
    batch.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="an override shared by every trial (repeatable)")  # fmt: skip
    batch.add_argument("--output-dir", help="directory for run directories (overrides output_dir)")
    batch.add_argument("--threads", type=positive_int, help="CPU threads for torch (default 1)")
    batch.add_argument("--quiet", action="store_true", help="no progress bar")
    for name, (_, help_text) in DELEGATED.items():
        commands.add_parser(name, help=help_text, add_help=False)  # listed here; parsed by its module
    return parser


def _prepare(args: argparse.Namespace, create_output_dir: bool):
    """The run config of the command line, checked before work (:func:`micmco.experiment.preflight`): (config,
    preflight, run directory, whether the run has finished). Raises ConfigError."""
    from .experiment import preflight
    from .runconfig import load_config, run_directory

    overrides = list(args.overrides)
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    if args.threads:
        overrides.append(f"train.threads={args.threads}")
    if getattr(args, "quiet", False):
        overrides.append("train.progress=false")
    config = load_config(args.config, overrides)
    checks = preflight(config, create_output_dir=create_output_dir)
    run_dir = run_directory(config)
    return config, checks, run_dir, (run_dir / "result.json").exists()


def check(args: argparse.Namespace) -> int:
    """``micmco check``: the config and its data checked, the memory estimated and two steps timed (unless
    ``--no-timing``); a finished run's record and an unfinished run's checkpoint are checked as ``train`` would
    check them. Writes nothing."""
    from .experiment import DamagedRecord, projection, read_record
    from .runconfig import fingerprint
    from .trainer import CheckpointError, usable_checkpoint

    try:  # everything before work, the data included, so that "valid" is said of checked data only
        config, checks, run_dir, finished = _prepare(args, create_output_dir=False)
        record = read_record(run_dir) if finished else None
        checkpoint = (
            None if finished else usable_checkpoint(run_dir / "checkpoint.pt", fingerprint(config), checks.device)
        )
        print(f"{args.config}: valid ({config.profile} profile, fingerprint {fingerprint(config)})")
        print(f"  {checks.describe()}")
        for note in checks.notes:
            print(f"micmco: note: {note}", file=sys.stderr)
        if record is not None:
            print(f"  already finished: {_outcome(record)}; result: {run_dir / 'result.json'}")
            return EXIT_OK
        done = int(checkpoint["state"]["step"]) if checkpoint is not None else 0
        if args.no_timing:
            print(f"  {config.train.steps - done} of {config.train.steps} steps to go (timing skipped: --no-timing)")
            return EXIT_OK
        line, warning = projection(config, checks.device, done)
        print(f"  {line}")
        if warning:
            print(f"micmco: warning: {warning}", file=sys.stderr)
        return EXIT_OK
    except ConfigError as error:
        return _fail(f"invalid config {args.config}: {error}", EXIT_INPUT)
    except (CheckpointError, DamagedRecord) as error:
        return _fail(str(error), EXIT_INPUT)
    except KeyboardInterrupt:
        return _fail("interrupted before any work; nothing was changed.", EXIT_INTERRUPTED)


def train(args: argparse.Namespace) -> int:
    """``micmco train``: the run trained (or resumed) and evaluated, its result record written."""
    from .experiment import GPU_PROFILES, projection, run

    try:  # everything before work, as for check
        config, checks, run_dir, finished = _prepare(args, create_output_dir=True)  # train: it is made next anyway
        gpu_profile_on_cpu = config.profile in GPU_PROFILES and checks.device.type == "cpu"
        quiet = getattr(args, "quiet", False)
        if not finished and (gpu_profile_on_cpu or not quiet):
            # before work: how long it will take, and a word when a GPU profile runs on a CPU
            line, warning = projection(config, checks.device, _steps_done(run_dir))
            if warning:
                print(f"micmco: warning: {warning}", file=sys.stderr)
            if not quiet or warning:
                print(line, file=sys.stderr)
    except ConfigError as error:
        return _fail(f"invalid config {args.config}: {error}", EXIT_INPUT)
    except KeyboardInterrupt:
        return _fail("interrupted before any work; nothing was changed.", EXIT_INTERRUPTED)

    record, code = _train_guarded(args.config, lambda: run(config), "the completed steps are checkpointed")
    if code is not None:
        return code
    result = run_dir / "result.json"
    for warning in record.get("warnings", []):
        print(f"micmco: warning: {warning}", file=sys.stderr)
    if record.get("status") == "diverged":
        print(f"micmco: {_outcome(record)}", file=sys.stderr)
        print(f"result: {result}")
        return EXIT_DIVERGED
    print(_outcome(record))
    print(f"result: {result}")
    return EXIT_OK


def train_batch(args: argparse.Namespace) -> int:
    """``micmco train-batch``: N trials trained together (:func:`micmco.batched.run_batch`); exit 0 when every
    trial completed, 3 when some diverged (each result record says which and why), as ``train`` otherwise. Every
    line about a trial names it (``trial 2 (objective.lam=0.5)``), in the order of the ``--trial`` options."""
    import time

    from .batched.run import run_batch
    from .experiment import preflight
    from .runconfig import load_config, run_directory

    labels = [f"trial {n} ({trial.strip() or 'the shared config'})" for n, trial in enumerate(args.trials, start=1)]
    try:
        shared = list(args.overrides)
        if args.output_dir:
            shared.append(f"output_dir={args.output_dir}")
        if args.threads:
            shared.append(f"train.threads={args.threads}")
        if args.quiet:
            shared.append("train.progress=false")
        configs = [load_config(args.config, shared + trial.split()) for trial in args.trials]
        runs = [run_directory(config) for config in configs]
        for n, run_dir in enumerate(runs):
            first = runs.index(run_dir)
            if first < n:
                raise ConfigError(
                    "--trial", f"{labels[n]} is {labels[first]} again (both are run {run_dir.name}); give each once"
                )
        for config in configs:
            preflight(config, create_output_dir=True)
    except ConfigError as error:
        return _fail(f"invalid config {args.config}: {error}", EXIT_INPUT)
    except KeyboardInterrupt:
        return _fail("interrupted before any work; nothing was changed.", EXIT_INTERRUPTED)

    def echo(line: str) -> None:  # a line about one trial's run directory names the trial
        for label, run_dir in zip(labels, runs):
            if str(run_dir) in line:
                line = f"{label}: {line.replace(f'{run_dir}: ', '')}"
                break
        print(line, file=sys.stderr, flush=True)

    started = time.perf_counter()
    records, code = _train_guarded(
        args.config, lambda: run_batch(configs, echo), "every trial's completed steps are checkpointed"
    )
    if code is not None:
        return code
    for label, run_dir, record in zip(labels, runs, records):
        print(f"{label}: {_outcome(record)}")
        print(f"  result: {run_dir / 'result.json'}")
    print(f"{len(configs)} trials in {time.perf_counter() - started:.1f} s elapsed")
    return EXIT_DIVERGED if any(r.get("status") == "diverged" for r in records) else EXIT_OK


def evaluate(args: argparse.Namespace) -> int:
    """``micmco evaluate RUN_DIR``: a finished run evaluated precisely (:func:`micmco.experiment.evaluate_run`)."""
    from .experiment import evaluate_run, precise_text, torch_threads

    try:
        with torch_threads(args.threads or 1):
            result = evaluate_run(
                args.run_dir, samples=args.samples, repeats=args.repeats, target_se=args.target_se, seed=args.seed,
                split=args.split, record=args.record, progress=not args.quiet,
            )  # fmt: skip
    except ConfigError as error:
        return _fail(f"cannot evaluate {args.run_dir}: {error}", EXIT_INPUT)
    except KeyboardInterrupt:
        return _fail("interrupted; nothing was changed (rerun the same command).", EXIT_INTERRUPTED)
    print(f"{result['run']}: {precise_text(result, result['unit'])}")
    if "nll_report" in result:
        print(
            f"  its halves: a frontier chooses on NLL {result['nll_select']:.4f}, MI "
            f"{result['mutual_information_select']:.4f} (even-numbered evaluations) and reports NLL "
            f"{result['nll_report']:.4f} ± {result['nll_report_se']:.4f} (odd-numbered)"
        )
    reproduced = result["recorded_reproduced"]
    if reproduced is not None:
        answer = "yes" if reproduced else "NO"
        print(f"  the run's recorded evaluation (K = {result['samples']}) reproduced exactly: {answer}")
    print(
        f"  recorded in {args.run_dir / 'result.json'}"
        if args.record
        else "  result.json unchanged (--record writes it)"
    )
    return EXIT_OK if reproduced is not False else EXIT_FAILED


# the commands parsed here; DELEGATED's parse their own
COMMANDS = {"train": train, "check": check, "train-batch": train_batch, "evaluate": evaluate}


def _steps_done(run_dir: Path) -> int:
    """Steps a resumed run has done already (0 for a new run or an unreadable checkpoint)."""
    checkpoint = run_dir / "checkpoint.pt"
    if not checkpoint.exists():
        return 0
    try:
        from .trainer import read_checkpoint

        return int(read_checkpoint(checkpoint)["state"]["step"])
    except Exception:  # noqa: BLE001 - the run itself reports a bad checkpoint
        return 0


def _outcome(record) -> str:
    """A result record in one line: its summary, or why it diverged."""
    from .experiment import summary

    if record.get("status") == "diverged" and record.get("metrics") is not None:
        return f"{record['name']}: diverged: {record['divergence']['reason']}"
    return summary(record)


def _train_guarded(config_path: str, work: Callable[[], Any], saved: str) -> tuple[Any, int | None]:
    """(what ``work()`` returns, None) for train and train-batch, or (None, the exit code) after one line on stderr
    for each failure a run can end in. SIGTERM is a Ctrl-C meanwhile (training defers it to a step end); ``saved``
    says what an interruption kept."""
    from .experiment import DamagedRecord, RunLocked
    from .trainer import CheckpointError
    from .util import DiskFull

    previous_sigterm = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        return work(), None
    except ConfigError as error:
        return None, _fail(f"cannot run {config_path}: {error}", EXIT_INPUT)
    except (CheckpointError, DamagedRecord) as error:
        return None, _fail(str(error), EXIT_INPUT)
    except RunLocked as error:
        return None, _fail(str(error), EXIT_RUNNING)
    except DiskFull as error:
        return None, _fail(f"cannot run {config_path}: {error.strerror}", EXIT_FAILED)
    except OSError as error:  # the machine's, not the run's: a file where the run directory goes, a full disk
        return None, _fail(f"cannot run {config_path}: {type(error).__name__}: {error}", EXIT_FAILED)
    except KeyboardInterrupt:
        return None, _fail(f"interrupted; {saved}. Rerun the same command to resume.", EXIT_INTERRUPTED)
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)


def _fail(message: str, code: int) -> int:
    print(f"\nmicmco: {message}" if code == EXIT_INTERRUPTED else f"micmco: {message}", file=sys.stderr)
    return code


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
