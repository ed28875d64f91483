"""The Optuna study of a sweep: created or loaded (checked against its definition), grid points
enqueued, lost and failed trials retried, and the results table exported."""

from __future__ import annotations

import fcntl
import time
import warnings
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..evaluation import halves_of
from ..results import format_table
from ..util import write_atomically
from .census import DROPPED, Census, is_failure, is_final, is_lost, is_result, origin_of, outcome, point_of, slot
from .rows import TableRowsMissing, refuse_new_study
from .storage import open_storage

__all__ = [
    "Sweep",
    "rows_of",
    "study_regulariser",
    "table_rows",
    "done_count",
    "FINAL_STATUSES",
    "recorded_evaluations",
    "record_evaluation",
]

FINAL_STATUSES = ("complete", "diverged")  # rows of points that are done; a failed row's point is retried


class Sweep:
    """A study bound to a storage, with the paths of its runs, logs and export."""

    def __init__(
        self,
        study,
        storage_url: str | None,
        results_dir: Path,
        runs_dir: Path,
        echo=print,
        must_exist: bool = False,
        study_file: str = "STUDY",
        recovering: bool = False,
    ):
        """``must_exist``: the study's journal must be there (an export reads, never creates, a study);
        ``study_file``: how its messages name the study file; ``recovering``: a new study may be made beside a
        table with rows (``--repair-journal`` enqueues them into it), else that is refused before anything is
        written (:func:`.journal.refuse_new_study`)."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        optuna.logging.get_logger("optuna").addFilter(lambda record: "greenlet" not in record.getMessage())
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        self.study = study
        self.study_file = study_file
        self.task = study.definition.get("base_config", {}).get("task", "synthetic")  # the task of every trial
        self.echo = echo
        self.results_dir = Path(results_dir) / study.config.profile
        self.export_path = self.results_dir / f"{study.name}.tsv"
        self.runs_dir = Path(runs_dir) / study.name
        self.log_dir = self.runs_dir / "logs"
        journal = self.results_dir / f"{study.name}.journal"
        if not recovering and (not storage_url or "://" not in storage_url):
            path = Path(storage_url) if storage_url else journal
            if not path.exists() or path.stat().st_size == 0:
                refuse_new_study(self.export_path, f"the journal file {path}", study_file)
        self.recovering = recovering
        self.storage, self.storage_label = open_storage(storage_url, journal, must_exist, study_file)
        self.optuna_study = self._create_or_load(create=not must_exist)

    def _create_or_load(self, create: bool = True):
        """Load the study without writing anything (a rerun of a finished study must leave its journal as it
        was: Optuna's create_study(load_if_exists=True) appends a creation record each time); create it only
        when missing (``create`` False: a missing study is a ConfigError), and store its definition only when
        absent."""
        import optuna

        directions = ["minimize", "maximize"]  # NLL, mutual information
        for attempt in range(8):
            try:
                try:
                    optuna_study = optuna.load_study(study_name=self.study.name, storage=self.storage)
                except KeyError:  # not in the storage yet
                    if not create:
                        raise ConfigError(
                            "--storage", f"{self.storage_label} holds no study {self.study.name!r}; nothing exported"
                        ) from None
                    if not self.recovering:
                        refuse_new_study(self.export_path, self.storage_label, self.study_file)
                    optuna_study = optuna.create_study(
                        storage=self.storage, study_name=self.study.name, directions=directions, load_if_exists=True
                    )
                break
            except (ConfigError, TableRowsMissing):
                raise
            except Exception as error:  # noqa: BLE001 - concurrent creation on a fresh database
                if attempt == 7:
                    raise
                self.echo(f"sweep: retrying study creation ({type(error).__name__})")
                time.sleep(0.3 * (attempt + 1))
        attrs = optuna_study.user_attrs
        digest = self.study.definition_hash()
        if "definition_hash" not in attrs:
            optuna_study.set_user_attr("definition_hash", digest)
            optuna_study.set_user_attr("definition", self.study.definition)
        elif attrs["definition_hash"] != digest:
            raise ConfigError(
                "name",
                f"the storage already holds a study {self.study.name!r} made from a different definition "
                "(base config, parameters, grid or set changed); give the changed study a new name",
            )
        return optuna_study

    def trials(self):
        return self.optuna_study.get_trials(deepcopy=False)

    def ensure_grid(self) -> None:
        """Enqueue the grid points that no trial holds yet (concurrent callers: duplicates are dropped on pop)."""
        held = {slot(t) for t in self.trials()}
        for index, point in enumerate(self.study.grid):
            name = f"grid:{index}"
            if name not in held:
                self.optuna_study.enqueue_trial(point, user_attrs={"slot": name}, skip_if_exists=False)

    def release(self, trial, reason: str, census: Census | None = None) -> bool:
        """Hand a lost or interrupted trial back: enqueue a retry of its point (the parameters it was enqueued
        with or suggested; the origin of the point), then mark it FAIL; False if it had already finished.

        A trial that never became a point gets no retry: a redundant or dropped one (its point is another
        trial's), or a proposal whose worker died before it had all its parameters (nothing was run; it is
        marked unstarted and no longer counts, so a new proposal takes its place)."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        census = census or Census.of(self.trials())
        point = point_of(trial, self.study.parameters)
        dropped = outcome(trial) in DROPPED or trial.number in census.redundant
        try:
            if dropped or point is None:
                if not dropped:
                    self.storage.set_trial_user_attr(trial._trial_id, "outcome", "unstarted")
                elif outcome(trial) is None:
                    self.storage.set_trial_user_attr(trial._trial_id, "outcome", "duplicate")
            else:
                origin = trial.user_attrs.get("origin", trial.number)
                user_attrs = {"slot": f"retry:{trial.number}", "origin": origin}
                self.optuna_study.enqueue_trial(point, user_attrs=user_attrs, skip_if_exists=False)
            self.storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except UpdateFinishedTrialError:
            return False  # finished meanwhile, or released by another worker: a retry is dropped on pop
        if dropped or point is None:
            self.echo(f"sweep: trial {trial.number} released ({reason}); it had not started, nothing to retry")
        else:
            self.echo(f"sweep: trial {trial.number} released ({reason}); a retry resumes its run directory")
        return True

    def recover(self, stale_after: float) -> None:
        from optuna.trial import TrialState

        now = time.time()
        trials = self.trials()
        lost = [t for t in trials if t.state == TrialState.RUNNING and is_lost(t, stale_after, now)]
        if lost:
            census = Census.of(trials)
            for trial in lost:
                self.release(trial, "its worker is gone", census)

    def retry_failed(self) -> int:
        """Enqueue a retry of each failed trial's point that has none yet (same parameters, hence the same run
        directory; same origin): a failure is not a result. Concurrent callers: duplicates are dropped on
        pop. Returns the number enqueued."""
        trials = self.trials()
        held = {slot(t) for t in trials}
        done = {origin_of(t) for t in trials if is_final(t)}  # e.g. by a retry made before this rule
        enqueued = 0
        for trial in trials:
            point = point_of(trial, self.study.parameters)
            if not is_failure(trial) or f"retry:{trial.number}" in held or point is None or origin_of(trial) in done:
                continue
            user_attrs = {"slot": f"retry:{trial.number}", "origin": origin_of(trial)}
            self.optuna_study.enqueue_trial(point, user_attrs=user_attrs, skip_if_exists=False)
            enqueued += 1
        return enqueued

    def export(self) -> Path:
        """Regenerate results/<profile>/<study>.tsv from the study (atomically, serialised by a lock). The table
        never shrinks: while finished rows of it are still to be recorded again (rows a repair enqueued), it is
        left as it is; rows the study lacks and does not hold pending raise :class:`.journal.TableRowsMissing`."""
        from ..tasks import get_task
        from .rows import check_table_kept

        task = get_task(self.task)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        with open(self.runs_dir / "export.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if check_table_kept(self, self.study_file):  # rows to be recorded again first: the table stays as it is
                return self.export_path
            # Rows recorded before the task and split columns existed are the study's task, default split.
            rows = [
                {"task": task.name, "split": task.splits[0], **row}
                for row in table_rows(self.trials(), self.study.definition, recorded_evaluations(self.optuna_study))
            ]
            text = format_table(rows, task.name)
            if not self.export_path.exists() or self.export_path.read_text() != text:  # unchanged: not rewritten
                write_atomically(self.export_path, text)
        return self.export_path


def table_rows(trials, definition: dict[str, Any] | None = None, evaluations=None) -> list[dict[str, Any]]:
    """The export's rows: one per result, and one (status failed, with its reason) per point that only
    failed so far."""
    return rows_of(Census.of(trials).results, definition, evaluations)


EVALUATION_ATTR = "evaluation:"  # a study attribute per run re-evaluated after its trial finished: "evaluation:<run>"


def recorded_evaluations(optuna_study) -> dict[str, dict[str, Any]]:
    """{run: its precise evaluation} recorded in the study after the trial finished (``micmco rerun --record``:
    a finished trial's own attributes cannot change)."""
    attrs = optuna_study.user_attrs
    return {key.removeprefix(EVALUATION_ATTR): value for key, value in attrs.items() if key.startswith(EVALUATION_ATTR)}


def record_evaluation(optuna_study, run: str, precise: dict[str, Any]) -> None:
    """Record a run's precise evaluation in its study (the journal): the export's precise columns read it."""
    keep = ("nll", "nll_se", "mutual_information", "mutual_information_se", "repeats", "samples", "seed", "split")
    halves = halves_of(precise)
    retrained = {"retrained": precise["retrained"]} if precise.get("retrained") else {}
    optuna_study.set_user_attr(EVALUATION_ATTR + run, {**{key: precise[key] for key in keep}, **halves, **retrained})


def done_count(rows) -> int:
    """Rows of points with a result (complete or diverged): a failed point is retried, it does not count."""
    return sum(r["status"] in FINAL_STATUSES for r in rows)


def rows_of(trials, definition: dict[str, Any] | None = None, evaluations=None) -> list[dict[str, Any]]:
    """One row per result, ordered by the trial number of the point it belongs to. With the study's
    ``definition``, a PTB row's regulariser is the study's (:func:`study_regulariser`), not its rates'.
    Tuned values are the trial's own at full precision (rows recorded before kept six digits); a complete
    row takes its precise columns from ``evaluations`` ({run: precise evaluation, recorded after the trial}) where
    it has one."""
    from ..results import full_precision, precise_values
    from ..tasks import get_task

    evaluations = evaluations or {}
    regulariser = study_regulariser(definition) if definition else None
    rows = []
    for t in trials:
        if is_result(t) and "row" in t.user_attrs:
            row = dict(t.user_attrs["row"])
            row["trial"] = t.user_attrs.get("origin", t.number)
            for name, value in getattr(t, "params", {}).items():
                if name in row and row[name] != "":
                    row[name] = full_precision(value)
            if row.get("status") == "complete" and row.get("run") in evaluations:  # recorded later: it wins
                row.update(precise_values(evaluations[row["run"]]))
            if regulariser and "regulariser" in row:
                row["regulariser"] = regulariser
                if row.get("setting_label"):  # the label names the regulariser: it follows
                    row["setting_label"] = get_task(row["task"]).setting_label(row)
            rows.append(row)
    rows.sort(key=lambda r: r["trial"])
    seen: set[str] = set()  # one row per run directory: a point proposed twice was run once
    unique = []
    for row in rows:
        if row.get("run") and row["run"] in seen:
            continue
        seen.add(row.get("run", ""))
        unique.append(row)
    return unique


def study_regulariser(definition: dict[str, Any]) -> str | None:
    """The regulariser of every trial of a PTB study that tunes one (what it tunes, and its masks:
    dropout-naive, dropout-shared or l2), None for a study that tunes none. A trial whose dropout rates all
    came out 0 is still its dropout study's: its run config alone would say ``none``."""
    from ..tasks.ptb import regulariser_of

    base = definition.get("base_config") or {}
    tuned = {parameter["key"] for parameter in definition.get("parameters", [])}
    rates = {f"model.{name}" for name in ("input_dropout", "state_dropout", "output_dropout", "l2")}
    if base.get("task") != "ptb" or not tuned & rates:
        return None
    return regulariser_of(base.get("model") or {}, tuned)
