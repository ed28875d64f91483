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
the same parameters (hence the same run directory and checkpoint) is enqueued, then the
lost trial is marked FAIL. Marking FAIL is atomic in both storages, so only one worker
releases a trial; enqueued trials carry a ``slot`` and a trial whose slot already belongs
to an earlier trial is dropped when popped, so concurrent starts and races never run a
point twice. The budget counts a trial and its retries once. Every finished trial is one
row of ``results/<profile>/<study>.tsv``, regenerated from the study after each trial.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import fcntl
import io
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .config import ConfigError, positive_int

__all__ = ["cli_main", "mask_url", "COLUMNS", "pareto_front", "sampler_values", "diverged_values", "near"]

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
STORAGE_ENV = "MICMCO_STORAGE"  # the user's variable for the storage URL
_WORKER_STORAGE_ENV = "MICMCO_SWEEP_STORAGE_URL"  # passes the URL to local workers (never on a command line)

# The exported table: one row per finished trial.
COLUMNS = [
    "trial", "estimator", "k", "k_mi", "objective", "learning_rate", "lam", "alpha", "vocab_size", "steps",
    "batch_size", "mi", "nll", "optimal_nll", "seed", "status", "reason", "wall_s", "threads", "device",
    "commit", "run",
]  # fmt: skip
STATUSES = ("complete", "failed", "diverged")
_DROPPED = ("duplicate", "surplus")  # outcomes of trials that never ran: not results


# --- storage ---------------------------------------------------------------------------------


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***."""
    return re.sub(r"(://[^/:@]*:)([^@/]*)(@)", r"\1***\3", url)


def _password(url: str) -> str | None:
    match = re.search(r"://[^/:@]*:([^@/]*)@", url)
    return match.group(1) if match and match.group(1) else None


class _Scrubber:
    """Removes a secret from everything this process prints."""

    def __init__(self, secret: str | None):
        self.secret = secret

    def __call__(self, text: str) -> str:
        if self.secret:
            text = text.replace(self.secret, "***")
        return text


def open_storage(url: str | None, journal_path: Path, echo):
    """An Optuna storage: the journal file (default) or an RDB URL; retried on a busy fresh database."""
    import optuna

    if not url or "://" not in url:
        path = Path(url) if url else journal_path
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
        return optuna.storages.JournalStorage(backend), f"journal file {path}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        try:
            import psycopg2  # noqa: F401
        except ImportError:  # SQLAlchemy's default driver is psycopg2; use psycopg 3
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
    last = None
    for attempt in range(8):  # concurrent first connections race on creating the tables
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
            return storage, mask_url(url)
        except Exception as error:  # noqa: BLE001 - retried, then reported
            last = error
            time.sleep(0.5 + attempt * 0.5 + (os.getpid() % 7) * 0.1)
    raise ConfigError("--storage", f"cannot open {mask_url(url)}: {type(last).__name__}: {last}")


# --- trial bookkeeping -----------------------------------------------------------------------


def _slot(trial) -> str | None:
    return trial.user_attrs.get("slot")


def _outcome(trial) -> str | None:
    return trial.user_attrs.get("outcome")


def _is_result(trial) -> bool:
    """A finished trial whose outcome is a result: complete (state COMPLETE), diverged (COMPLETE with
    penalty values, or FAIL in studies from before those) or failed (FAIL)."""
    from optuna.trial import TrialState

    outcome = _outcome(trial)
    if outcome == "complete":
        return trial.state == TrialState.COMPLETE
    if outcome == "diverged":
        return trial.state in (TrialState.COMPLETE, TrialState.FAIL)
    return outcome == "failed" and trial.state == TrialState.FAIL


@dataclass
class Census:
    """What the study holds, classified by rules that depend only on earlier trials (so every worker agrees)."""

    effective: list  # trials that count against the budget (a lost trial and its retries count once)
    redundant: set  # numbers of enqueued trials whose slot an earlier trial holds, or whose lost trial finished
    results: list  # finished trials with an outcome: the rows of the export
    running: list
    waiting: list

    @classmethod
    def of(cls, trials: Sequence) -> Census:
        from optuna.trial import TrialState

        by_number = {t.number: t for t in trials}
        first_with_slot: dict[str, int] = {}
        redundant = set()
        for t in sorted(trials, key=lambda t: t.number):
            slot = _slot(t)
            if slot is None:
                continue
            if slot in first_with_slot:
                redundant.add(t.number)
                continue
            first_with_slot[slot] = t.number
            if slot.startswith("retry:"):
                lost = by_number.get(int(slot.split(":")[1]))
                if lost is not None and _is_result(lost):  # it finished after all
                    redundant.add(t.number)
        effective = [
            t
            for t in sorted(trials, key=lambda t: t.number)
            if t.number not in redundant
            and not (_slot(t) or "").startswith("retry:")
            and _outcome(t) != "duplicate"  # a repeated proposal, dropped by its worker
        ]
        results = [t for t in trials if _is_result(t)]
        running = [t for t in trials if t.state == TrialState.RUNNING]
        waiting = [t for t in trials if t.state == TrialState.WAITING and t.number not in redundant]
        return cls(effective, redundant, results, running, waiting)

    def rank(self, number: int) -> int | None:
        for index, t in enumerate(self.effective):
            if t.number == number:
                return index
        return None


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str | None:
    """The kernel's start time of a process (defeats pid reuse); None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return ""
        return ""


HOST = f"{socket.gethostname()}/{_boot_id()}"


def _my_stamp() -> dict[str, Any]:
    return {"host": HOST, "pid": os.getpid(), "start": _process_start(os.getpid()) or "", "t": time.time()}


def _is_lost(trial, stale_after: float, now: float) -> bool:
    """A running trial whose worker is gone."""
    beat = trial.user_attrs.get("heartbeat")
    if not beat:
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        return now - started > stale_after
    if beat.get("host") == HOST:
        start = _process_start(int(beat["pid"]))
        if start is None or (beat.get("start") and start and start != beat["start"]):
            return True
    return now - float(beat["t"]) > stale_after


# --- the study -------------------------------------------------------------------------------


class Sweep:
    """A study bound to a storage, with the paths of its runs, logs and export."""

    def __init__(self, study, storage_url: str | None, results_dir: Path, runs_dir: Path, echo=print):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        optuna.logging.get_logger("optuna").addFilter(lambda record: "greenlet" not in record.getMessage())
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        self.study = study
        self.echo = echo
        self.results_dir = Path(results_dir) / study.config.profile
        self.export_path = self.results_dir / f"{study.name}.tsv"
        self.runs_dir = Path(runs_dir) / study.name
        self.log_dir = self.runs_dir / "logs"
        self.storage, self.storage_label = open_storage(storage_url, self.results_dir / f"{study.name}.journal", echo)
        self.optuna_study = self._create_or_load()

    def _create_or_load(self):
        import optuna

        directions = ["minimize", "maximize"]  # NLL, mutual information
        for attempt in range(8):
            try:
                optuna_study = optuna.create_study(
                    storage=self.storage, study_name=self.study.name, directions=directions, load_if_exists=True
                )
                break
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
        held = {_slot(t) for t in self.trials()}
        for index, point in enumerate(self.study.grid):
            slot = f"grid:{index}"
            if slot not in held:
                self.optuna_study.enqueue_trial(point, user_attrs={"slot": slot}, skip_if_exists=False)

    def release(self, trial, reason: str) -> bool:
        """Enqueue a retry of a lost or interrupted trial, then mark it FAIL; False if it had already finished."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        origin = trial.user_attrs.get("origin", trial.number)
        self.optuna_study.enqueue_trial(
            dict(trial.params), user_attrs={"slot": f"retry:{trial.number}", "origin": origin}, skip_if_exists=False
        )
        try:
            self.storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except UpdateFinishedTrialError:
            return False  # finished meanwhile, or released by another worker: the retry is dropped on pop
        self.echo(f"sweep: trial {trial.number} released ({reason}); a retry resumes its run directory")
        return True

    def recover(self, stale_after: float) -> None:
        now = time.time()
        for trial in self.trials():
            from optuna.trial import TrialState

            if trial.state == TrialState.RUNNING and _is_lost(trial, stale_after, now):
                self.release(trial, "its worker is gone")

    # --- export ----------------------------------------------------------------------------

    def export(self) -> Path:
        """Regenerate results/<profile>/<study>.tsv from the study (atomically, serialised by a lock)."""
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        with open(self.runs_dir / "export.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            rows = rows_of(self.trials())
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, COLUMNS, delimiter="\t", lineterminator="\n", extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow(row)
            partial = self.export_path.with_suffix(".tsv.partial")
            partial.write_text(buffer.getvalue())
            os.replace(partial, self.export_path)
        return self.export_path


def rows_of(trials) -> list[dict[str, Any]]:
    """One row per result, ordered by the trial number of the point it belongs to."""
    rows = []
    for t in trials:
        if _is_result(t) and "row" in t.user_attrs:
            row = dict(t.user_attrs["row"])
            row["trial"] = t.user_attrs.get("origin", t.number)
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


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Non-dominated (mi, nll) points, by increasing mi: lowest NLL for at least that much MI."""
    front: list[tuple[float, float]] = []
    best = math.inf
    for mi, nll in sorted(points, key=lambda p: (-p[0], p[1])):
        if nll < best:
            front.append((mi, nll))
            best = nll
    return front[::-1]


# --- one worker ------------------------------------------------------------------------------


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
        self.threads_flag = _train_supports("--threads")
        self.random_next = False  # after a repeated proposal: sample the next point at random
        self.repeats = 0  # consecutive repeated proposals

    def stop(self, signum=None, frame=None) -> None:
        self.stopping.set()
        child = self.child
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)  # checkpoints at the end of its current step

    def loop(self) -> int:
        sweep = self.sweep
        sweep.ensure_grid()
        while not self.stopping.is_set():
            sweep.recover(self.stale_after)
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
        from optuna.trial import TrialState

        sweep, study = self.sweep, self.sweep.study
        n_before = len(sweep.trials())
        config = replace(study.config, sampler="random") if self.random_next else study.config
        self.random_next = False
        sweep.optuna_study.sampler = make_sampler(config, seed_parts=(study.config.seed, n_before, self.index))
        trial = sweep.optuna_study.ask()
        trial.set_user_attr("heartbeat", _my_stamp())  # at once: a worker killed from here on is noticed at once
        census = Census.of(sweep.trials())
        if trial.number in census.redundant:
            self._drop(trial, "duplicate")
            return
        frozen = sweep.storage.get_trial(trial._trial_id)
        if not (_slot(frozen) or "").startswith("retry:"):
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
        if _slot(frozen) is None and self._repeats_a_point(trial.number, params):
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
        outcome = self._run(trial, params, origin)
        if outcome is None:  # interrupted: hand it back for a retry
            live = sweep.storage.get_trial(trial._trial_id)
            if live.state == TrialState.RUNNING:
                sweep.release(live, "interrupted")
            return
        status, row, values = outcome
        try:
            trial.set_user_attr("row", row)
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
            if not t.params or t.number == number or _outcome(t) in _DROPPED:
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
        """Run the trial's `micmco train`; (status, row, values), or None if interrupted."""
        from .config import to_dict
        from .experiment import load_config

        sweep = self.sweep
        overrides = sweep.study.trial_overrides(params)
        try:
            config = load_config(sweep.study.base_path, overrides + [f"output_dir={sweep.runs_dir}"])
        except ConfigError as error:  # a proposed point the run config rejects: a failed trial, not a crash
            resolved = load_config(sweep.study.base_path, sweep.study.overrides)
            row = _row(to_dict(resolved), None, "failed", f"invalid run config: {error}", 0.0, "", self.threads)
            row.update({name: f"{value:.6g}" for name, value in params.items() if name in row})
            return "failed", row, None
        run_dir = _run_directory(config)
        trial.set_user_attr("run", run_dir.name)
        command = [sys.executable, "-m", "micmco.cli", "train", str(sweep.study.base_path), "--quiet"]
        for item in overrides:
            command += ["--set", item]
        command += ["--output-dir", str(sweep.runs_dir)]
        if self.threads_flag:
            command += ["--threads", str(self.threads)]
        env = {k: v for k, v in os.environ.items() if k not in (STORAGE_ENV, _WORKER_STORAGE_ENV)}
        env.update(OMP_NUM_THREADS=str(self.threads), MKL_NUM_THREADS=str(self.threads))
        sweep.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = sweep.log_dir / f"trial-{origin:04d}.log"
        beat = _Heartbeat(sweep.storage, trial._trial_id, self.heartbeat)
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
                        command, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent
                    )
                    code = self.child.wait()
                    self.child = None
                if code == 4:  # another process trains this run directory (e.g. a killed worker's child)
                    _wait_for_holder(log_path, self.stopping)
                    continue
                break
        finally:
            beat.stop()
        wall = time.time() - started
        if code in (130, -signal.SIGTERM, -signal.SIGINT) or self.stopping.is_set():
            return None
        record = _read_json(run_dir / "result.json")
        resolved = to_dict(config)
        if code == 0 and record is not None and record.get("status", "complete") == "complete":
            status, reason = "complete", "; ".join(record.get("warnings", []))
        elif code == 3 or (record is not None and record.get("status") == "diverged"):
            divergence = (record or {}).get("divergence") or {}
            status = "diverged"
            reason = divergence.get("reason") or _last_line(log_path) or "diverged"
            if "step" in divergence:
                reason += f" (step {divergence['step']})"
        else:
            status = "failed"
            tail = _last_line(log_path)
            reason = f"exit {code}: {tail}" if tail else f"exit {code}"
        row = _row(resolved, record, status, reason, wall, run_dir.name, self.threads)
        values = None
        mode = sweep.optuna_study.user_attrs.get("sampler_values", "log-excess")
        optimal_nll = lambda: math.log(resolved["data"]["vocab_size"])  # noqa: E731 - the synthetic data's ln V
        if status == "complete":
            values = sampler_values(
                record["metrics"]["nll"],
                record["metrics"]["mutual_information"],
                record["metrics"].get("optimal_nll") or optimal_nll(),
                mode,
            )
            if not all(math.isfinite(v) for v in values):
                status, values = "failed", None
                row["status"], row["reason"] = "failed", "non-finite metrics in result.json"
        elif status == "diverged":
            values = diverged_values(optimal_nll(), mode)
        return status, row, values


class _Heartbeat(threading.Thread):
    def __init__(self, storage, trial_id: int, every: float):
        super().__init__(daemon=True)
        self.storage, self.trial_id, self.every = storage, trial_id, every
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            try:
                self.storage.set_trial_user_attr(self.trial_id, "heartbeat", _my_stamp())
            except Exception:  # noqa: BLE001 - finished or released: nothing left to keep alive
                return

    def stop(self) -> None:
        self.done.set()


def near(parameters, a: dict[str, float], b: dict[str, float], tolerance: float = 0.02) -> bool:
    """Whether two points differ by less than `tolerance` of every parameter's range (log ranges in log)."""
    for p in parameters:
        if p.name not in a or p.name not in b:
            return False
        scale = (lambda v: math.log(v)) if p.log else (lambda v: v)
        if abs(scale(a[p.name]) - scale(b[p.name])) > tolerance * (scale(p.high) - scale(p.low)):
            return False
    return True


def sampler_values(nll: float, mi: float, optimal_nll: float, mode: str = "log-excess") -> list[float]:
    """The two objectives the sampler sees (the export keeps the measured NLL and MI).

    Latent usage cannot exceed the data entropy ln V: a larger estimate (a model far from the
    data, flagged in the row's `reason`) counts as ln V, so such runs compete on NLL alone.
    The NLL is seen as ln(excess NLL + 0.001): blown-up runs (excess in the hundreds at λ near
    1) would otherwise set the Gaussian process's scale and hide differences of 0.01 nats. Both
    maps are monotone, so the study's Pareto set is the same as on the measured values.
    A study whose user attribute `sampler_values` is "capped" (the first cpu studies, made
    before this map) keeps the measured NLL, so that all its trials stay on one scale.
    """
    if mode == "capped":
        return [nll, min(mi, optimal_nll)]
    return [math.log(max(nll - optimal_nll, 0.0) + 1e-3), min(mi, optimal_nll)]


def diverged_values(optimal_nll: float, mode: str = "log-excess") -> list[float]:
    """What the sampler sees of a diverged trial: no latent usage, and an NLL of twice the optimum.

    Samplers ignore failed trials, so a Gaussian process that liked a corner proposed it again and
    again, each time a run that diverged (REINFORCE 1, Rényi: learning rate 0.01, λ 0.36, α 9.1,
    six times in a row). Told as a dominated point, the corner looks bad and the proposals move
    away. The export still shows the trial as diverged, without metrics.
    """
    return sampler_values(2 * optimal_nll, 0.0, optimal_nll, mode)


def make_sampler(config, seed_parts: tuple[int, ...]):
    """The study's sampler, seeded from (study seed, trials so far, worker): reproducible with one worker,
    and a restarted sweep never replays the proposals it already made."""
    import optuna

    seed = zlib.crc32(json.dumps(list(seed_parts)).encode()) & 0x7FFFFFFF
    if config.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=config.startup_trials)
    if config.sampler == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=config.startup_trials, multivariate=True, constant_liar=True
        )
    return optuna.samplers.RandomSampler(seed=seed)


def _row(config: dict, record: dict | None, status: str, reason: str, wall: float, run: str, threads: int):
    estimator = config.get("estimator") or {}
    objective = config.get("objective") or {}
    model = config.get("model") or {}
    metrics = (record or {}).get("metrics") or {}
    if status == "diverged":
        metrics = {}
    k = estimator.get("num_samples", "")
    k_mi = estimator.get("mi_samples") or k

    def number(value, digits=6):
        return "" if value is None or value == "" else f"{float(value):.{digits}g}"

    train_wall = (record or {}).get("train_wall_time_s")
    eval_wall = (record or {}).get("eval_wall_time_s") or 0.0
    return {
        "estimator": estimator.get("base", "vqvae" if model.get("kind") == "vqvae" else ""),
        "k": k,
        "k_mi": k_mi,
        "objective": objective.get("kind", "none"),
        "learning_rate": number(config["train"]["learning_rate"]),
        "lam": number(objective.get("lam")),
        "alpha": number(objective.get("alpha")),
        "vocab_size": config["data"]["vocab_size"],
        "steps": config["train"]["steps"],
        "batch_size": config["data"]["batch_size"],
        "mi": "" if "mutual_information" not in metrics else f"{metrics['mutual_information']:.6f}",
        "nll": "" if "nll" not in metrics else f"{metrics['nll']:.6f}",
        "optimal_nll": f"{math.log(config['data']['vocab_size']):.6f}",
        "seed": config["seed"],
        "status": status,
        "reason": reason.replace("\t", " ").replace("\n", " ")[:300],
        "wall_s": f"{(train_wall + eval_wall) if train_wall is not None else wall:.1f}",
        "threads": (record or {}).get("threads", threads),
        "device": (record or {}).get("device", ""),
        "commit": (record or {}).get("git_commit") or _git_commit() or "",
        "run": run,
    }


def _run_directory(config) -> Path:
    from . import experiment

    if hasattr(experiment, "run_directory"):
        return Path(experiment.run_directory(config))
    return Path(config.output_dir) / f"{config.name}-{experiment.fingerprint(config)}"


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    lines = [line for line in lines if not line.startswith("--- trial ")]
    return lines[-1][:300] if lines else ""


def _wait_for_holder(log_path: Path, stopping: threading.Event) -> None:
    match = re.search(r"already running \(pid (\d+)\)", _last_line(log_path))
    deadline = time.time() + 3600
    while match and time.time() < deadline and not stopping.is_set():
        if _process_start(int(match.group(1))) is None:
            return
        stopping.wait(1.0)
    stopping.wait(2.0)


def _die_with_parent() -> None:
    """In the child: get SIGTERM (checkpoint and stop) when the worker dies, even by kill -9 (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


_TRAIN_HELP: dict[str, str] = {}


def _train_supports(flag: str) -> bool:
    if "text" not in _TRAIN_HELP:
        try:
            _TRAIN_HELP["text"] = subprocess.run(
                [sys.executable, "-m", "micmco.cli", "train", "--help"], capture_output=True, text=True, timeout=120
            ).stdout
        except (OSError, subprocess.SubprocessError):
            _TRAIN_HELP["text"] = ""
    return flag in _TRAIN_HELP["text"]


def _git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


# --- progress --------------------------------------------------------------------------------


def progress_line(sweep: Sweep, started: float, done_at_start: int) -> str:
    census = Census.of(sweep.trials())
    rows = rows_of(census.results)
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    walls = [float(r["wall_s"]) for r in rows if r["wall_s"]]
    per_trial = sum(walls) / len(walls) if walls else float("nan")
    elapsed = time.time() - started
    new = len(rows) - done_at_start
    rate = new / elapsed * 3600 if elapsed > 0 and new > 0 else float("nan")
    remaining = max(0, sweep.study.trials - len(rows))
    eta = f", ETA {remaining / rate * 60:.0f} min" if rate == rate and rate > 0 else ""
    timing = f"{per_trial:.0f} s/trial, {rate:.0f} trials/h{eta}" if rate == rate else "no trial finished yet"
    complete = [r for r in rows if r["status"] == "complete"]
    front = pareto_front([(min(float(r["mi"]), float(r["optimal_nll"])), float(r["nll"])) for r in complete])
    front_text = " ".join(f"({mi:.2f}, {nll:.4f})" for mi, nll in front[-8:]) or "-"  # MI capped at ln V
    return (
        f"[{time.strftime('%H:%M:%S')}] {sweep.study.name}: {len(rows)}/{sweep.study.trials} done "
        f"({counts['complete']} complete, {counts['diverged']} diverged, {counts['failed']} failed), "
        f"{len(census.running)} running, {len(census.waiting)} queued; {timing}; frontier (MI, NLL): {front_text}"
    )


def summary_lines(sweep: Sweep) -> list[str]:
    rows = rows_of(sweep.trials())
    complete = [r for r in rows if r["status"] == "complete"]
    lines = [f"{sweep.study.name}: {len(complete)} complete of {len(rows)} finished; export: {sweep.export_path}"]
    if complete:
        ln_v = float(complete[0]["optimal_nll"])
        for fraction in (0.5, 0.9):
            eligible = [r for r in complete if float(r["mi"]) >= fraction * ln_v]
            if eligible:
                best = min(eligible, key=lambda r: float(r["nll"]))
                lines.append(
                    f"  lowest NLL with MI >= {fraction} ln V: {float(best['nll']):.4f} "
                    f"(excess {float(best['nll']) - ln_v:+.4f}, MI {float(best['mi']):.3f}, trial {best['trial']})"
                )
            else:
                lines.append(f"  no complete trial with MI >= {fraction} ln V yet")
    return lines


# --- command line ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="micmco sweep",
        description="Run a study's trials (each a `micmco train` run) with Optuna; rerun the same command to continue.",
    )
    parser.add_argument("study", type=Path, help="study file, e.g. params/studies/cpu/vimco16-renyi.yaml")
    parser.add_argument("--workers", type=positive_int, default=1, help="local worker processes (default 1)")
    parser.add_argument(
        "--storage",
        help=f"postgresql://user:password@host/db to share the study between machines (default: ${STORAGE_ENV}, "
        "else the journal file results/<profile>/<study>.journal); a path without :// is a journal file",
    )
    parser.add_argument("--trials", type=positive_int, help="override the study's number of trials")
    parser.add_argument(
        "--threads", type=positive_int, help="CPU threads in all, split between the workers (default: all cores)"
    )
    parser.add_argument("--results-dir", type=Path, default=Path("results"), help="where results/<profile>/ lives")
    parser.add_argument(
        "--runs-dir", type=Path, default=Path("runs/sweeps"), help="where the trials' run directories go"
    )
    parser.add_argument(
        "--export", action="store_true", help="only regenerate the exported table and print the summary"
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


def cli_main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    url = os.environ.get(_WORKER_STORAGE_ENV) if args.worker_index is not None else None
    url = url or args.storage or os.environ.get(STORAGE_ENV) or None
    scrub = _Scrubber(_password(url) if url else None)

    def echo(message: str) -> None:
        print(scrub(message), flush=True)

    try:
        from .study import load_study

        study = load_study(args.study)
        if args.trials:
            study.config.trials = args.trials
        sweep = Sweep(study, url, args.results_dir, args.runs_dir, echo=echo)
    except ConfigError as error:
        print(scrub(f"micmco sweep: invalid study {args.study}: {error}"), file=sys.stderr)
        return EXIT_INPUT
    except Exception as error:  # noqa: BLE001 - storage errors: one line, password masked
        print(scrub(f"micmco sweep: {type(error).__name__}: {error}"), file=sys.stderr)
        return EXIT_FAILED

    if args.export:
        sweep.export()
        for line in summary_lines(sweep):
            echo(line)
        return EXIT_OK

    total_threads = args.threads or os.cpu_count() or 1
    threads = max(1, total_threads // args.workers)
    if args.worker_index is not None:
        return _run_worker(sweep, args.worker_index, threads, args, echo)

    echo(
        f"sweep {study.name}: {study.trials} trials of {study.base_path} ({study.config.sampler} sampler), "
        f"{args.workers} worker(s) x {threads} thread(s); storage: {sweep.storage_label}"
    )
    if args.workers == 1:
        return _run_worker(sweep, 0, threads, args, echo, show_progress=True)
    return _run_workers(sweep, args, threads, url, echo)


def _run_worker(sweep: Sweep, index: int, threads: int, args, echo, show_progress: bool = False) -> int:
    import torch

    torch.set_num_threads(1)  # the worker only samples; its trial has its own threads
    worker = Worker(sweep, index, threads, args.heartbeat, args.stale_after, echo=echo)
    for signum in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(signum) is not signal.SIG_IGN:  # ignored stays ignored, as in micmco train
            signal.signal(signum, worker.stop)
    started = time.time()
    done_at_start = len(rows_of(sweep.trials()))
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
    if code == EXIT_INTERRUPTED:
        echo("sweep: interrupted; the running trial is checkpointed. Rerun the same command to continue.")
    return code


def _run_workers(sweep: Sweep, args, threads: int, url: str | None, echo) -> int:
    env = dict(os.environ)
    if url:
        env[_WORKER_STORAGE_ENV] = url
    command = [sys.executable, "-m", "micmco.sweep", str(args.study), "--threads", str(threads * args.workers)]
    command += [
        "--workers",
        str(args.workers),
        "--results-dir",
        str(args.results_dir),
        "--runs-dir",
        str(args.runs_dir),
    ]
    command += ["--heartbeat", str(args.heartbeat), "--stale-after", str(args.stale_after)]
    if args.trials:
        command += ["--trials", str(args.trials)]
    workers: dict[int, subprocess.Popen] = {}
    restarts = {i: 0 for i in range(args.workers)}
    stopping = threading.Event()

    def stop(signum, frame):
        stopping.set()
        for process in workers.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(signum) is not signal.SIG_IGN:  # ignored stays ignored, as in micmco train
            signal.signal(signum, stop)

    def spawn(index: int) -> None:
        workers[index] = subprocess.Popen(
            command + ["--worker-index", str(index)], env=env, preexec_fn=_die_with_parent
        )
        echo(f"sweep: worker {index} started (pid {workers[index].pid})")

    for index in range(args.workers):
        spawn(index)
    started = time.time()
    done_at_start = len(rows_of(sweep.trials()))
    next_progress = started + min(args.progress_every, 10.0)
    failed = False
    while workers:
        time.sleep(0.5)
        for index, process in list(workers.items()):
            code = process.poll()
            if code is None:
                continue
            del workers[index]
            if code not in (EXIT_OK, EXIT_INTERRUPTED) and not stopping.is_set():
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
    return EXIT_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(cli_main())
