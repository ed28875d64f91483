"""A row of a results table, rerun: its trial's run config at full precision, retrained and checked.

A table row (``results/<profile>/<study>.tsv``) records its tuned values to six digits, too few to rerun the
trial exactly (a learning rate of 0.00114714 is another trial). The study's journal beside the table holds
the values Optuna proposed at full precision: :func:`trial_config` rebuilds the trial's run config from
them, and :func:`rerun` retrains it (runs are deterministic from their configs), checks that it is the same
run (its run directory name, i.e. its fingerprint) and that its recorded evaluation (K = 100, the trial's
seed) comes out as the row says. The retrained checkpoint can then be evaluated precisely
(:func:`micmco.evaluation.evaluate_repeated`, ``micmco evaluate``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ConfigError

__all__ = ["TableTrial", "table_trial", "table_trials", "trial_config", "study_of_table", "journal_params", "rerun"]


@dataclass(frozen=True)
class TableTrial:
    table: Path  # the results table the row is in
    trial: int  # the row's trial number
    row: dict[str, str]  # the row as written
    params: dict[str, float]  # the tuned values at full precision, from the study's journal


def study_of_table(table: Path, root: Path | None = None):
    """The study a table was exported from: ``results/<profile>/<profile>-<name>.tsv`` comes from
    ``params/studies/<profile>/<name>.yaml``."""
    from .study import load_study

    table = Path(table)
    profile = table.parent.name
    root = Path(root) if root else _repository_root(table)
    name = table.stem.removeprefix(f"{profile}-")
    path = root / "params" / "studies" / profile / f"{name}.yaml"
    if not path.exists():
        raise ConfigError("", f"{table}: no study file {path} (a table is rerun from the study it was exported from)")
    return load_study(path, root=root)


def _repository_root(table: Path) -> Path:
    for parent in table.resolve().parents:
        if (parent / "params" / "studies").is_dir():
            return parent
    raise ConfigError("", f"{table}: not inside a checkout (no params/studies/ above it)")


def read_rows(table: Path) -> list[dict[str, str]]:
    if not Path(table).exists():
        raise ConfigError("", f"no such table: {table}")
    with open(table, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def journal_params(journal: Path, study_name: str) -> dict[str, dict[str, float]]:
    """{run directory name: the tuned values at full precision} of every finished trial with a row."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if not journal.exists():
        raise ConfigError("", f"no journal {journal}: the full-precision values of a table's trials are in it")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name=study_name, storage=storage)
    found = {}
    for trial in study.get_trials(deepcopy=False):
        row = trial.user_attrs.get("row")
        if row and row.get("run") and trial.params:
            found.setdefault(row["run"], dict(trial.params))
    return found


def table_trials(table: Path, trials: list[int] | None = None) -> list[TableTrial]:
    """The rows of ``table`` (those numbered in ``trials``; all when None) with their full-precision values."""
    table = Path(table)
    rows = read_rows(table)
    numbers = {int(row["trial"]) for row in rows}
    missing = sorted(set(trials or ()) - numbers)
    if missing:
        raise ConfigError("trial", f"{table} has no trial {missing[0]}; its trials: {sorted(numbers)}")
    study = study_of_table(table)
    params = journal_params(table.with_suffix(".journal"), study.name)
    chosen = []
    for row in rows:
        if trials is not None and int(row["trial"]) not in trials:
            continue
        if row.get("run") not in params:
            raise ConfigError("trial", f"{table}: trial {row['trial']}'s run {row.get('run')!r} is not in its journal")
        chosen.append(TableTrial(table, int(row["trial"]), row, params[row["run"]]))
    return chosen


def table_trial(table: Path, trial: int) -> TableTrial:
    return table_trials(table, [trial])[0]


def trial_config(item: TableTrial, runs_dir: Path | str = "runs/sweeps", overrides: list[str] = ()):
    """The trial's run config, its output under ``runs_dir/<study>/`` as the sweep had it, with the softmax head
    it was trained with (the row's ``head``; rows from before it: the legacy head); ConfigError when it is not
    the run the row names (another fingerprint: the study or the code changed what it computes)."""
    from .runconfig import load_config, run_directory
    from .trainer import LEGACY_HEAD

    study = study_of_table(item.table)
    head = f"train.head={item.row.get('head') or LEGACY_HEAD}"  # the head it was trained with
    output = f"output_dir={Path(runs_dir) / study.name}"
    config = load_config(study.base_path, study.trial_overrides(item.params) + [output, head, *overrides])
    name = run_directory(config).name
    if name != item.row["run"]:
        raise ConfigError(
            "",
            f"{item.table} trial {item.trial}: its study now gives run {name}, the row names {item.row['run']} "
            "(the study or what the code computes changed since; the row cannot be rerun exactly)",
        )
    return config


def rerun(item: TableTrial, runs_dir: Path | str = "runs/sweeps", echo=print, progress: bool = True) -> dict[str, Any]:
    """Retrain (or resume, or find finished) the row's run and check its recorded numbers. Returns the result
    record with ``reproduced``: True when status, NLL and MI equal the row's (as written, six decimals)."""
    from .experiment import run

    config = trial_config(item, runs_dir, [] if progress else ["train.progress=false"])
    record = run(config, echo=echo)
    record["reproduced"] = reproduces(record, item.row)
    return record


def reproduces(record: dict[str, Any], row: dict[str, str]) -> bool:
    """Whether a result record gives the row's status and its NLL and MI to the six decimals written."""
    status = record.get("status", "complete")
    if status != row.get("status"):
        return False
    if status != "complete":
        return True
    metrics = record["metrics"]
    return f"{metrics['nll']:.6f}" == row["nll"] and f"{metrics['mutual_information']:.6f}" == row["mi"]


def evaluate_and_record(
    item: TableTrial, runs_dir: Path | str, record: bool, progress: bool = False, **settings
) -> dict:
    """The precise evaluation of a rerun row (``settings``: evaluate_run's samples, repeats, target_se, seed);
    with ``record``, written into its result.json, its study's journal and the re-exported table. A row whose
    retrain did not reproduce it (recorded on another machine) is evaluated as retrained here: the precise
    record then carries ``retrained`` (that model's own recorded numbers and this machine), the table's
    :data:`~micmco.results.RETRAIN_COLUMNS`."""
    import json

    from .experiment import evaluate_run
    from .runconfig import run_directory

    config = trial_config(item, runs_dir)
    directory = run_directory(config)
    result = json.loads((directory / "result.json").read_text())
    recorded = result.get("precise_evaluation")
    if recorded and all(value is None for value in settings.values()):  # its training evaluated it already
        from .tasks import get_task

        precise = {**recorded, "unit": get_task(config.task).unit, "run": directory.name, "recorded_reproduced": None}
    else:
        precise = evaluate_run(directory, record=record, progress=progress, **settings)
    if not reproduces(result, item.row):
        metrics = result["metrics"]
        machine = {key: result[key] for key in ("cpu_model", "cpu_capability") if key in result}
        precise["retrained"] = {"nll": metrics["nll"], "mutual_information": metrics["mutual_information"], **machine}
    if record:
        record_in_study(item, precise, runs_dir)
    return precise


def record_in_study(item: TableTrial, precise: dict[str, Any], runs_dir: Path | str) -> None:
    """Keep a row's precise evaluation in its study's journal and re-export the table with it."""
    from .sweep.optuna_study import Sweep, record_evaluation

    study = study_of_table(item.table)
    sweep = Sweep(study, None, item.table.parent.parent, Path(runs_dir), echo=lambda line: None)
    record_evaluation(sweep.optuna_study, item.row["run"], precise)
    sweep.export()


def cli_main(argv: list[str]) -> int:
    """``micmco rerun TABLE TRIAL [TRIAL ...] [--evaluate] [--record]``."""
    import argparse
    import sys

    from .experiment import RunLocked, precise_text
    from .trainer import CheckpointError
    from .util import EXIT_DIVERGED, EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNNING

    parser = argparse.ArgumentParser(
        prog="micmco rerun",
        description="Rerun rows of a results table from their study's journal (full-precision values): retrain "
        "(or find the finished run), check that it is the row's run with the row's numbers, and optionally "
        "evaluate it precisely.",
    )
    parser.add_argument("table", type=Path, help="a results table, e.g. results/cpu/cpu-vimco16-renyi.tsv")
    parser.add_argument("trials", type=int, nargs="*", help="the rows' trial numbers (none: --all)")
    parser.add_argument("--all", action="store_true", help="every complete row of the table")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/sweeps"), help="where the runs go (the sweep's)")
    parser.add_argument("--evaluate", action="store_true", help="then evaluate precisely (micmco evaluate)")
    parser.add_argument("--record", action="store_true", help="keep the precise numbers: result.json, journal, table")
    parser.add_argument("--repeats", type=int, help="most evaluations (default: the run config's eval.repeats)")
    parser.add_argument("--target-se", type=float, help="standard error to stop at (default: eval.target_se)")
    parser.add_argument(
        "--retrained-here",
        action="store_true",
        help="evaluate a row that does not reproduce here (recorded on another machine) as retrained here; the "
        "table's retrain_nll and retrain_mi then give the retrained model's own numbers",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    def fail(message: str, code: int) -> int:
        print(f"micmco rerun: {message}", file=sys.stderr)
        return code

    if bool(args.trials) == args.all:
        return fail("give trial numbers or --all (not both)", EXIT_INPUT)
    if args.retrained_here and not args.evaluate:
        return fail("--retrained-here evaluates a row that does not reproduce: give --evaluate too", EXIT_INPUT)
    try:
        items = table_trials(args.table, None if args.all else args.trials)
    except ConfigError as error:
        return fail(str(error), EXIT_INPUT)
    if args.all:
        items = [item for item in items if item.row["status"] == "complete"]
    code = EXIT_OK
    for item in items:
        label = f"{args.table.name} trial {item.trial} ({item.row['run']})"
        try:
            result = rerun(item, args.runs_dir, echo=lambda line: None, progress=not args.quiet)
            if not result["reproduced"]:
                nll = (result.get("metrics") or {}).get("nll")
                print(f"{label}: NOT reproduced: {result.get('status')} NLL {nll} against the row's "
                      f"{item.row['status']} {item.row['nll']}")  # fmt: skip
                if not (args.retrained_here and result.get("status") == item.row["status"]):
                    code = EXIT_FAILED
                    continue
                print("  evaluated as retrained here (--retrained-here)")
            else:
                print(f"{label}: reproduced ({item.row['status']}, NLL {item.row['nll']}, MI {item.row['mi']})")
            if args.evaluate and result.get("status") == "complete":
                precise = evaluate_and_record(item, args.runs_dir, args.record, progress=not args.quiet,
                                              repeats=args.repeats, target_se=args.target_se)  # fmt: skip
                print(f"  precisely: {precise_text(precise, precise['unit'])}" + (" (recorded)" if args.record else ""))
        except ConfigError as error:
            return fail(f"{label}: {error}", EXIT_INPUT)
        except CheckpointError as error:
            return fail(f"{label}: {error}", EXIT_INPUT)
        except RunLocked as error:
            return fail(str(error), EXIT_RUNNING)
        except KeyboardInterrupt:
            return fail(
                "interrupted; the completed steps are checkpointed. Rerun the same command to resume.", EXIT_INTERRUPTED
            )
        if result.get("status") == "diverged" and code == EXIT_OK:
            code = EXIT_DIVERGED if item.row["status"] != "diverged" else code
    return code
