"""micmco sweep: study validation, concurrent workers, kill -9 and resume, divergence, PostgreSQL.

Every trial here is a real `micmco train` subprocess on the smoke model (vocabulary 50, a
few hundred steps), so these tests check the real loss-free and resume behaviour: a
killed worker's trial is resumed from its checkpoint, no point is run twice or lost.
The PostgreSQL tests start a throwaway server (initdb + pg_ctl on loopback, in a temp
dir); without a PostgreSQL installation they skip, except under CI (CI=true).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from micmco.config import ConfigError
from micmco.results import columns_of
from micmco.study import load_study
from micmco.sweep import diverged_values, mask_url, near, sampler_values

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "params" / "synthetic" / "smoke" / "elbo-kl.yaml"
STATUSES = {"complete", "failed", "diverged"}


def write_study(path: Path, body: str) -> Path:
    path.write_text(body.replace("BASE", str(SMOKE)))
    return path


def study_text(name: str, trials: int, steps: int, grid: str = "", extra: str = "", lr_high: float = 1e-2) -> str:
    return f"""
name: {name}
base: BASE
profile: smoke
trials: {trials}
sampler: random
seed: 1
set: ["train.steps={steps}", "train.checkpoint_every=50", "train.log_every=50", "eval.num_samples=10"]
parameters:
  learning_rate: {{low: 1.0e-4, high: {lr_high}, scale: log}}
  lam: {{}}
{grid}
{extra}
"""


def sweep_command(study: Path, tmp: Path, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "micmco.sweep", str(study), "--results-dir", str(tmp / "results"),
        "--runs-dir", str(tmp / "runs"), "--threads", "1", "--progress-every", "2", *args,
    ]  # fmt: skip


def start(command: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    handle = open(log, "w")
    return subprocess.Popen(
        command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, env=full_env, start_new_session=True
    )


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path) as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def check_no_loss_no_repeat(rows, trials: int) -> None:
    """Every point exactly once: `trials` rows, distinct trial numbers and distinct run directories."""
    assert len(rows) == trials, rows
    assert len({r["trial"] for r in rows}) == trials
    assert len({r["run"] for r in rows}) == trials
    assert {r["status"] for r in rows} <= STATUSES


# --- study files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, key, words",
    [
        (study_text("s", 2, 20, extra="colour: blue"), "colour", "unknown key"),
        (study_text("s", 2, 20).replace("lam: {}", "lam: {low: 0.9, high: 0.1}"), "parameters.lam.low", "below high"),
        (study_text("s", 2, 20).replace("sampler: random", "sampler: annealing"), "sampler", "valid choices"),
        (study_text("s", 2, 20, grid="grid:\n  - {learning_rate: 0.003, lam: 1.5}"), "grid[0].lam", "outside"),
        (study_text("s", 2, 20, grid="grid:\n  - {learning_rate: 0.003, beta: 0.5}"), "grid[0].beta", "not a tuned"),
        (study_text("s", 2, 20).replace("lam: {}", "lam: {}\n  alpha: {}"), "parameters", "alpha has no effect"),
        (study_text("s", 2, 20).replace("profile: smoke", "profile: paper"), "profile", "has profile 'smoke'"),
        (study_text("s", 2, 20).replace("BASE", "params/nowhere.yaml"), "base", "no such run config"),
        (study_text("s", 2, 20).replace("trials: 2", "trials: two"), "trials", "must be an integer"),
        (study_text("s", 1, 20, grid="grid:\n  - {lam: 0.1}\n  - {lam: 0.2}"), "trials", "at least the 2 grid"),
        (study_text("s", 2, 20).replace("train.steps=20", "train.stepz=20"), "set", "unknown key"),
        (study_text("s", 2, 20) + "seed: 3\n", "seed", "duplicate key"),
    ],
)
def test_bad_study_rejected_naming_the_field(tmp_path, body, key, words):
    path = write_study(tmp_path / "bad.yaml", body)
    with pytest.raises(ConfigError) as caught:
        load_study(path)
    assert caught.value.key == key, str(caught.value)
    assert words in str(caught.value)


def test_bad_study_on_the_command_line_exits_2_before_any_work(tmp_path):
    path = write_study(tmp_path / "bad.yaml", study_text("s", 2, 20).replace("lam: {}", "lam: {high: 7}"))
    result = subprocess.run(sweep_command(path, tmp_path), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "parameters" in result.stderr and "lam" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "runs").exists()


def test_a_study_that_cannot_run_here_exits_2_before_any_trial_recording_nothing(tmp_path):
    """Checked before the study is created: a refused trial input (here the output directory) is one line,
    with no journal entry and no table, so that the budget is untouched once the cause is fixed."""
    path = write_study(tmp_path / "s.yaml", study_text("s", 2, 20))
    (tmp_path / "runs").write_text("a file where the runs go")
    result = subprocess.run(sweep_command(path, tmp_path), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "cannot run" in result.stderr and "output_dir" in result.stderr
    assert str(path) in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


def test_every_committed_study_is_valid():
    studies = sorted((REPO / "params" / "studies").rglob("*.yaml"))
    assert studies
    for path in studies:
        study = load_study(path, root=REPO)
        assert study.trials >= 1 and study.parameters
        assert path.parent.name == study.config.profile, f"{path}: keep studies under params/studies/<profile>/"


def test_table2_defaults_and_baselines(tmp_path):
    path = write_study(
        tmp_path / "s.yaml",
        study_text("s", 2, 20).replace("learning_rate: {low: 1.0e-4, high: 0.01, scale: log}", "learning_rate: {}"),
    )
    study = load_study(path)
    by_name = {p.name: p for p in study.parameters}
    assert (by_name["learning_rate"].low, by_name["learning_rate"].high, by_name["learning_rate"].log) == (
        1e-4,
        1e-2,
        True,
    )
    assert (by_name["lam"].low, by_name["lam"].high, by_name["lam"].log) == (-0.05, 0.9999, False)
    t16 = load_study(write_study(tmp_path / "t.yaml", study_text("t", 2, 20) + "baseline: t16\n"))
    assert t16.overrides[-1] == "train.steps=320"  # 16 x the steps after the study's set
    bs16 = load_study(write_study(tmp_path / "b.yaml", study_text("b", 2, 20) + "baseline: bs16\n"))
    assert bs16.overrides[-1] == "data.batch_size=1024"


def test_sampler_values_are_monotone_and_capped():
    ln_v = 5.2983
    assert sampler_values(ln_v + 0.1, 9.0, ln_v)[1] == ln_v  # MI above ln V counts as ln V
    assert sampler_values(ln_v + 0.1, 3.0, ln_v)[1] == 3.0
    nlls = [ln_v - 0.001, ln_v, ln_v + 0.01, ln_v + 0.5, ln_v + 500]
    seen = [sampler_values(nll, 1.0, ln_v)[0] for nll in nlls]
    assert seen[0] == seen[1] and seen[1] < seen[2] < seen[3] < seen[4]
    assert seen[4] - seen[3] < 10  # a blow-up stays within a few units of ordinary runs
    assert sampler_values(ln_v + 500, 9.0, ln_v, "capped") == [ln_v + 500, ln_v]  # the first studies' scale
    assert sampler_values(ln_v + 500, 9.0, None) == [ln_v + 500, 9.0]  # no reference NLL: measured, uncapped
    # A diverged synthetic trial: no usage and an NLL of 2 ln V, on the sampler's scale.
    assert diverged_values(ln_v, ln_v) == [math.log(ln_v + 1e-3), 0.0]
    assert diverged_values(ln_v, ln_v, "capped") == [2 * ln_v, 0.0]
    assert diverged_values(ln_v, None) == [2 * ln_v, 0.0]


# The REINFORCE 1, Rényi study of results/cpu/ (V = 200): its first seven complete trials
# (learning rate, λ, α, NLL, MI) and the corner its Gaussian process then proposed six times in a
# row, each time a run that diverged, while diverged trials were told to Optuna as failed.
REINFORCE1_COMPLETE = [
    (0.000682016, 0.648583, 2.36722, 5.350908, 1.537183),
    (0.00132688, 0.404891, 6.90148, 5.287789, 1.310692),
    (0.00374962, 0.518607, 1.1626, 6.404112, 4.898651),
    (0.00636776, 0.890208, 7.42179, 14.964551, 14.777444),
    (0.00377905, 0.643908, 0.871518, 7.187716, 6.076166),
    (0.000745897, 0.232193, 9.52769, 5.299915, 0.221234),
    (0.000307851, 0.241003, 14.2362, 5.300275, 0.047991),
]
REINFORCE1_DIVERGED = [(0.01, 0.0533724, 12.785), (0.01, 0.259568, 8.74786), (0.01, 0.361862, 9.14769)]


def _proposals_after_divergences(told_as: str, proposals: int = 4) -> list[dict[str, float]]:
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = {
        "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
        "lam": FloatDistribution(-0.05, 0.9999),
        "alpha": FloatDistribution(0.86, 16.0, log=True),
    }
    ln_v = math.log(200)
    study = optuna.create_study(directions=["minimize", "maximize"],
                                sampler=optuna.samplers.GPSampler(seed=0, n_startup_trials=5))  # fmt: skip
    names = list(space)
    for lr, lam, alpha, nll, mi in REINFORCE1_COMPLETE:
        params = dict(zip(names, (lr, lam, alpha)))
        study.add_trial(create_trial(params=params, distributions=space, values=sampler_values(nll, mi, ln_v)))
    for point in REINFORCE1_DIVERGED:
        params = dict(zip(names, point))
        if told_as == "failed":
            study.add_trial(create_trial(params=params, distributions=space, state=TrialState.FAIL))
        else:
            study.add_trial(create_trial(params=params, distributions=space, values=diverged_values(ln_v, ln_v)))
    asked = []
    for _ in range(proposals):  # one worker: each proposal runs, and diverges, before the next
        trial = study.ask(space)
        asked.append(trial.params)
        if told_as == "failed":
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, diverged_values(ln_v, ln_v))
    return asked


def test_a_diverged_corner_is_not_proposed_again_once_told_as_a_dominated_point():
    """Replays a real study: told as failed, the diverged corner (learning rate 0.01) comes back in
    every proposal; told as a dominated point (no latent usage, NLL twice ln V) it is left."""
    at_the_corner = lambda p: p["learning_rate"] > 0.0095  # noqa: E731 - the top 1% of the log range
    assert all(map(at_the_corner, _proposals_after_divergences("failed")))  # what the sweep used to do
    assert not any(map(at_the_corner, _proposals_after_divergences("dominated")))


def test_near_points_of_concurrent_proposals(tmp_path):
    study = load_study(write_study(tmp_path / "s.yaml", study_text("n", 2, 20)))
    base = {"learning_rate": 0.00154, "lam": 0.7338}
    assert near(study.parameters, base, {"learning_rate": 0.001544, "lam": 0.7335})  # two GP workers at once
    assert not near(study.parameters, base, {"learning_rate": 0.00154, "lam": 0.80})  # 6% of λ's range away
    assert not near(study.parameters, base, {"learning_rate": 0.002, "lam": 0.7338})  # 5.7% of the log range


def test_mask_url():
    assert mask_url("postgresql://me:s3cret@db.example:5432/x") == "postgresql://me:***@db.example:5432/x"
    assert mask_url("postgresql://me@db/x") == "postgresql://me@db/x"


def _finished_sweep(rows: list[dict[str, str]]):
    """A stand-in for a Sweep whose study holds one complete trial per row."""
    from types import SimpleNamespace

    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(directions=["minimize", "maximize"])
    for index, row in enumerate(rows):
        study.add_trial(
            create_trial(
                params={"lam": 0.1 * index},
                distributions={"lam": FloatDistribution(0.0, 1.0)},
                values=[float(row["nll"]), float(row["mi"])],
                user_attrs={
                    "row": {"status": "complete", "wall_s": "1.0", "run": f"r{index}", **row},
                    "outcome": "complete",
                },
            )
        )
    return SimpleNamespace(
        study=SimpleNamespace(name="s", trials=3), trials=study.get_trials, export_path=Path("s.tsv")
    )


def test_progress_and_summary_with_and_without_a_reference_nll():
    from micmco.sweep.progress import progress_line, summary_lines

    ln_v = "3.912023"
    synthetic = _finished_sweep(
        [{"mi": "2.0", "nll": "4.0", "optimal_nll": ln_v}, {"mi": "5.0", "nll": "4.5", "optimal_nll": ln_v}]
    )
    line = progress_line(synthetic, time.time() - 10, 0)
    assert "2/3 done (2 complete, 0 diverged), 0 failed, 0 running, 0 queued" in line
    assert line.endswith("frontier (MI, NLL): (2.0000, 4.0000) (3.9120, 4.5000)")  # MI capped at ln V
    assert summary_lines(synthetic)[0] == "s: 2 complete of 2 finished; export: s.tsv"  # the frontier: from the table
    other = _finished_sweep([{"mi": "2.0", "nll": "4.0"}, {"mi": "5.0", "nll": "4.5"}])  # a task without ln V
    assert progress_line(other, time.time() - 10, 0).endswith("frontier (MI, NLL): (2.0000, 4.0000) (5.0000, 4.5000)")


def test_progress_keeps_close_per_token_mi_values_apart():
    """PTB's MI is per token (~0.01-0.8): rounded to two decimals, 0.041 and 0.044 both read 0.04, and the
    frontier's second point looked dominated by the first."""
    from micmco.sweep.progress import progress_line

    sweep = _finished_sweep([{"mi": "0.041", "nll": "5.0"}, {"mi": "0.044", "nll": "5.1"}])
    front = re.findall(r"\(([0-9.]+), ([0-9.]+)\)", progress_line(sweep, time.time() - 10, 0))
    assert len(front) == 2 and front[0][0] != front[1][0], front


def _finished_trial(number: int, kind: str, error: str = "", exit_code: int = 1, run: str = "", origin=None, at=0.0):
    """A finished trial of `kind` (complete, diverged, failed) at time.time() + `at`, as a worker records it."""
    import datetime as dt

    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    attrs = {"outcome": kind, "row": {"status": kind, "reason": error, "run": run or f"r{number}", "wall_s": "1"}}
    if kind == "failed":
        attrs["exit_code"] = exit_code
    if origin is not None:
        attrs.update(origin=origin, slot=f"retry:{origin}")
    trial = create_trial(
        params={"lam": 0.1},
        distributions={"lam": FloatDistribution(0.0, 1.0)},
        values=None if kind == "failed" else [5.0, 1.0],
        state=TrialState.FAIL if kind == "failed" else TrialState.COMPLETE,
        user_attrs=attrs,
    )
    trial.number = number
    trial.datetime_complete = dt.datetime.now() + dt.timedelta(seconds=at)
    return trial


def test_failed_trials_do_not_count_against_the_budget_diverged_ones_do():
    from micmco.sweep.census import Census
    from micmco.sweep.optuna_study import done_count, rows_of

    trials = [
        _finished_trial(0, "diverged", "loss is nan"),
        _finished_trial(1, "failed", "exit 1: FileNotFoundError: ptb.train.txt"),
        _finished_trial(2, "failed", "exit 1: FileNotFoundError: ptb.train.txt", origin=1),  # a retry of point 1
        _finished_trial(3, "failed", "exit 1: MemoryError"),
        _finished_trial(4, "complete", origin=3),  # point 3, retried: now done
    ]
    census = Census.of(trials)
    rows = rows_of(census.results)
    assert [(r["trial"], r["status"]) for r in rows] == [(0, "diverged"), (1, "failed"), (3, "complete")]
    assert done_count(rows) == 2  # the diverged point counts, the failed one is retried
    assert [t.number for t in census.effective] == [0, 1, 3]  # three points: the failed one is pending


def test_failures_that_repeat_stop_the_sweep():
    """Three failures in a row with one error (a path in each run directory aside), three of one point, or
    one refused input (exit 2) stop it; a result in between, or failures of an earlier run, do not."""
    from micmco.sweep.census import failure_stop

    since = time.time()

    def missing(n, **kw):
        return _finished_trial(n, "failed", f"exit 1: FileNotFoundError: 'runs/s/r{n}/x'", **kw)

    three = [missing(0), missing(1), missing(2)]
    stop = failure_stop(three, since)
    assert stop is not None and stop.code == 1 and stop.failures == 3
    assert stop.error == "exit 1: FileNotFoundError: 'runs/s/<run>/x'"
    assert "rerun the same command" in stop.line("s") and stop.error in stop.line("s")
    assert failure_stop(three, since + 3600) is None  # an earlier run's failures: being retried
    assert failure_stop(three[:2], since) is None
    assert failure_stop([missing(0), _finished_trial(1, "complete", at=1), missing(2, at=2)], since) is None
    assert failure_stop([missing(0), _finished_trial(1, "diverged", at=1), missing(2, at=2)], since) is None
    oom = [_finished_trial(n, "failed", f"killed by SIGKILL: step {n}", origin=0 if n else None) for n in range(3)]
    assert failure_stop(oom, since).error == "killed by SIGKILL: step 2"  # one point, three times
    refused = _finished_trial(0, "failed", "exit 2: micmco: invalid config: no such file data/ptb", exit_code=2)
    stop = failure_stop([refused], since)
    assert stop is not None and stop.code == 2 and "input was refused" in stop.line("s")


def test_a_failed_trial_is_retried_once_under_its_own_number(tmp_path):
    from optuna.trial import TrialState

    from micmco.sweep.census import Census
    from micmco.sweep.optuna_study import Sweep

    study = load_study(write_study(tmp_path / "s.yaml", study_text("retry", 3, 20)))
    sweep = Sweep(study, None, tmp_path / "results", tmp_path / "runs", echo=lambda message: None)
    trial = sweep.optuna_study.ask()
    params = {p.name: trial.suggest_float(p.name, p.low, p.high, log=p.log) for p in study.parameters}
    trial.set_user_attr("row", {"status": "failed", "reason": "exit 1: disk full", "run": "r"})
    trial.set_user_attr("outcome", "failed")
    sweep.optuna_study.tell(trial, state=TrialState.FAIL)
    assert sweep.retry_failed() == 1 and sweep.retry_failed() == 0
    census = Census.of(sweep.trials())
    (waiting,) = census.waiting
    assert waiting.system_attrs["fixed_params"] == params and waiting.user_attrs["origin"] == trial.number
    assert len(census.effective) == 1  # one point, pending: two trials of the budget of three are left


def test_non_finite_metrics_are_the_runs_own_breakdown_not_a_failure(tmp_path, monkeypatch):
    """A run that ended complete with a NaN NLL was recorded failed; failures are now retried, and a retry
    finds the same result.json: it is diverged, final, and shown to the sampler as a dominated point."""
    from micmco.runconfig import load_config, run_directory
    from micmco.sweep.optuna_study import Sweep
    from micmco.sweep.worker import Worker

    study = load_study(write_study(tmp_path / "s.yaml", study_text("nan", 1, 20)))
    sweep = Sweep(study, None, tmp_path / "results", tmp_path / "runs", echo=lambda message: None)
    trial = sweep.optuna_study.ask()
    params = {p.name: trial.suggest_float(p.name, p.low, p.high, log=p.log) for p in study.parameters}
    run_dir = run_directory(
        load_config(study.base_path, study.trial_overrides(params) + [f"output_dir={sweep.runs_dir}"])
    )
    run_dir.mkdir(parents=True)
    metrics = {"nll": float("nan"), "mutual_information": 1.0}
    (run_dir / "result.json").write_text(json.dumps({"status": "complete", "metrics": metrics}))
    real_popen = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda command, **kwargs: real_popen(["true"], **kwargs))  # "finished"
    status, row, values, code = Worker(sweep, 0, 1, 20.0, 120.0, echo=lambda m: None)._run(trial, params, 0)
    assert (status, row["status"], code) == ("diverged", "diverged", 0) and "non-finite" in row["reason"]
    ln_v = math.log(int(row["vocab_size"]))
    assert values == diverged_values(ln_v, ln_v)


# --- concurrency, kill -9, divergence (journal storage) --------------------------------------


@pytest.mark.slow
def test_two_workers_start_at_once_on_a_fresh_journal_study(tmp_path):
    grid = "grid:\n  - {learning_rate: 0.003, lam: 0.5}\n  - {learning_rate: 0.001, lam: 0.2}"
    study = write_study(tmp_path / "s.yaml", study_text("fresh", 5, 60, grid=grid))
    processes = [start(sweep_command(study, tmp_path), tmp_path / f"w{i}.log") for i in range(2)]
    for process in processes:
        assert process.wait(timeout=300) == 0, (tmp_path / "w0.log").read_text() + (tmp_path / "w1.log").read_text()
    export = tmp_path / "results" / "smoke" / "fresh.tsv"
    rows = read_rows(export)
    check_no_loss_no_repeat(rows, 5)
    assert list(rows[0]) == columns_of("synthetic")
    assert all(r["task"] == "synthetic" and r["split"] for r in rows)
    assert all(r["status"] == "complete" and r["estimator"] == "elbo" and r["objective"] == "kl" for r in rows)
    points = [(float(r["learning_rate"]), float(r["lam"])) for r in rows]
    assert points.count((0.003, 0.5)) == 1 and points.count((0.001, 0.2)) == 1  # each grid point once
    both = (tmp_path / "w0.log").read_text() + (tmp_path / "w1.log").read_text()
    assert both.count(": complete:") == 5  # no trial ran twice
    # The export is regenerated from the study, not edited: delete it and get it back identical.
    before = export.read_text()
    export.unlink()
    result = subprocess.run(sweep_command(study, tmp_path, "--export"), cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and export.read_text() == before
    # Rerunning a finished study runs nothing.
    again = subprocess.run(sweep_command(study, tmp_path), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and ": complete:" not in again.stdout and export.read_text() == before


def wait_for(condition, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def checkpointed_unfinished_runs(runs: Path) -> list[Path]:
    return [d for d in runs.glob("*/*-*") if (d / "checkpoint.pt").exists() and not (d / "result.json").exists()]


def worker_of_a_training(runs: Path) -> int | None:
    """The pid of a worker whose `micmco train` child is training under `runs` (found in /proc)."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if b"micmco.cli" in argv and b"train" in argv and str(runs).encode() in b" ".join(argv):
                return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return None


@pytest.mark.slow
def test_kill_9_of_a_worker_and_of_the_sweep_then_resume(tmp_path):
    study = write_study(tmp_path / "s.yaml", study_text("killed", 4, 800))
    log = tmp_path / "sweep.log"
    sweep = start(sweep_command(study, tmp_path, "--workers", "2", "--heartbeat", "3", "--stale-after", "10"), log)
    runs = tmp_path / "runs"
    wait_for(lambda: checkpointed_unfinished_runs(runs), 240, "a trial with a checkpoint")
    worker_pid = wait_for(lambda: worker_of_a_training(runs), 60, "the worker of a running trial")
    os.kill(worker_pid, signal.SIGKILL)  # one worker dies; its trial must be resumed, not lost
    wait_for(lambda: "exited with code -9" in log.read_text(), 30, "the parent to notice")
    wait_for(lambda: "released" in log.read_text(), 120, "the lost trial to be released")
    wait_for(lambda: checkpointed_unfinished_runs(runs), 240, "another trial in progress")
    os.killpg(sweep.pid, signal.SIGKILL)  # now the whole sweep, workers and trials at once
    sweep.wait(timeout=30)
    rerun = start(sweep_command(study, tmp_path, "--workers", "2"), tmp_path / "rerun.log")
    assert rerun.wait(timeout=400) == 0, (tmp_path / "rerun.log").read_text()
    rows = read_rows(tmp_path / "results" / "smoke" / "killed.tsv")
    check_no_loss_no_repeat(rows, 4)
    assert all(r["status"] == "complete" for r in rows)
    records = [json.loads((d / "result.json").read_text()) for d in runs.glob("*/*-*") if (d / "result.json").exists()]
    assert len(records) == 4
    assert any(r.get("resumed_from_steps") for r in records), "no trial was resumed from a checkpoint"
    assert all(r["steps"] == 800 for r in records)


@pytest.mark.slow
def test_a_diverging_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    grid = "grid:\n  - {learning_rate: 1000.0, lam: 0.5}\n  - {learning_rate: 0.003, lam: 0.5}"
    study = write_study(tmp_path / "s.yaml", study_text("div", 2, 100, grid=grid, lr_high=1e4))
    result = subprocess.run(sweep_command(study, tmp_path), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {r["learning_rate"]: r for r in read_rows(tmp_path / "results" / "smoke" / "div.tsv")}
    assert rows["1000"]["status"] == "diverged" and rows["1000"]["reason"]
    assert rows["1000"]["nll"] == "" and rows["1000"]["mi"] == ""
    assert rows["0.003"]["status"] == "complete" and float(rows["0.003"]["nll"]) > 0
    # The sampler saw the diverged trial as a dominated point, not as a failure it would ignore.
    import optuna
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "results" / "smoke" / "div.journal")))
    told = {t.params["learning_rate"]: t for t in optuna.load_study(study_name="div", storage=storage).trials}
    assert told[1000.0].state.name == "COMPLETE" and told[1000.0].user_attrs["outcome"] == "diverged"
    ln_v = math.log(int(rows["1000"]["vocab_size"]))
    assert told[1000.0].values == diverged_values(ln_v, ln_v)
    assert told[0.003].state.name == "COMPLETE" and told[0.003].user_attrs["outcome"] == "complete"
    # A diverged trial is a result of its point, not a failure: a rerun has nothing left to retry or run.
    again = subprocess.run(sweep_command(study, tmp_path), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "[worker 0] trial" not in again.stdout, again.stdout + again.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "blocker, workers, code, error",
    [
        ("a file", "2", 1, "FileExistsError"),  # every trial fails the same way: stopped after three
        ("a bad checkpoint", "1", 2, "not a checkpoint"),  # `micmco train` refuses its input: stopped at once
    ],
)
def test_failing_trials_stop_the_sweep_and_its_rerun_retries_them(tmp_path, blocker, workers, code, error):
    """A sweep over unusable data ran its budget into failures, exited 0, and once the data were fixed its
    rerun ran nothing. Here something stands in each grid point's run directory (a file instead of it, or
    a checkpoint that is not one), so that its trials fail: the sweep stops with the error, exits non-zero,
    and the study holds no spent budget; with the cause removed, the same command runs the whole budget."""
    from micmco.runconfig import load_config, run_directory

    grid = "grid:\n  - {learning_rate: 0.003, lam: 0.5}\n  - {learning_rate: 0.001, lam: 0.2}"
    path = write_study(tmp_path / "s.yaml", study_text("fails", 3, 20, grid=grid))
    study = load_study(path)
    causes = []
    for point in study.grid:
        overrides = study.trial_overrides(point) + [f"output_dir={tmp_path / 'runs' / 'fails'}"]
        run_dir = run_directory(load_config(study.base_path, overrides))
        run_dir.mkdir(parents=True)
        if blocker == "a file":
            run_dir.rmdir()
            causes.append(run_dir)
        else:
            causes.append(run_dir / "checkpoint.pt")
        causes[-1].write_text("garbage")
    command = sweep_command(path, tmp_path, "--workers", workers)
    failing = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert failing.returncode == code, failing.stdout + failing.stderr
    stopped = [line for line in failing.stderr.splitlines() if "stopped:" in line]
    assert len(stopped) == 1 and error in stopped[0] and "rerun" in stopped[0], failing.stderr
    table = tmp_path / "results" / "smoke" / "fails.tsv"
    rows = read_rows(table)
    failed = [r for r in rows if r["status"] == "failed"]
    assert failed and all(error in r["reason"] for r in failed)  # shown, with the reason
    assert len(rows) - len(failed) < 3  # the budget is not spent on failures
    for cause in causes:
        cause.unlink()
    rerun = subprocess.run(sweep_command(path, tmp_path), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    rows = read_rows(table)
    check_no_loss_no_repeat(rows, 3)
    assert all(r["status"] == "complete" for r in rows), rows
    points = [(float(r["learning_rate"]), float(r["lam"])) for r in rows]
    assert points.count((0.003, 0.5)) == 1 and points.count((0.001, 0.2)) == 1  # the failed points, retried


# --- PostgreSQL ------------------------------------------------------------------------------


def _pg_bindir() -> Path | None:
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        candidates.append(Path(out))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    return None


def _skip_or_fail(message: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (under CI the PostgreSQL tests must run: .ci/run installs postgresql)")
    pytest.skip(f"{message}; to run these tests install PostgreSQL (Debian: apt-get install postgresql) or run .ci/run")


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server on 127.0.0.1 with password authentication; yields (url_without_db, password)."""
    try:
        import psycopg
    except ImportError:
        _skip_or_fail("the PostgreSQL driver psycopg is not installed (pip install 'psycopg[binary]')")
    bindir = _pg_bindir()
    if bindir is None:
        _skip_or_fail("no PostgreSQL server binaries (initdb, pg_ctl) found")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="micmco-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root: use the postgres account the package creates
        import pwd

        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            _skip_or_fail("running as root and there is no 'postgres' user to run the server as")
        os.chown(base, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    password = "pw-" + secrets.token_hex(12)
    pwfile = base / "pw"
    pwfile.write_text(password + "\n")
    if as_user:
        os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = base / "data"
    subprocess.run(
        as_user + [str(bindir / "initdb"), "-D", str(data), "-U", "micmco", f"--pwfile={pwfile}",
                   "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
    subprocess.run(
        as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-o", options, "-w", "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield f"postgresql://micmco:{password}@127.0.0.1:{port}", password, psycopg
    finally:
        subprocess.run(
            as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)


def fresh_database(postgres, name: str) -> str:
    server, _, psycopg = postgres
    with psycopg.connect(server + "/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name}")
        connection.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


@pytest.mark.slow
def test_two_workers_share_a_postgresql_study_and_the_password_never_leaks(tmp_path, postgres):
    url = fresh_database(postgres, "sweep_shared")
    password = postgres[1]
    grid = "grid:\n  - {learning_rate: 0.003, lam: 0.5}"
    study = write_study(tmp_path / "s.yaml", study_text("pg", 4, 60, grid=grid))
    # Two machines' worth of workers, started at the same moment on a fresh database:
    # one gets the URL on the command line, the other from MICMCO_STORAGE.
    processes = [
        start(sweep_command(study, tmp_path, "--storage", url), tmp_path / "a.log"),
        start(sweep_command(study, tmp_path), tmp_path / "b.log", env={"MICMCO_STORAGE": url}),
    ]
    for process in processes:
        assert process.wait(timeout=300) == 0, (tmp_path / "a.log").read_text() + (tmp_path / "b.log").read_text()
    rows = read_rows(tmp_path / "results" / "smoke" / "pg.tsv")
    check_no_loss_no_repeat(rows, 4)
    assert all(r["status"] == "complete" for r in rows)
    logs = (tmp_path / "a.log").read_text() + (tmp_path / "b.log").read_text()
    assert logs.count(": complete:") == 4
    assert "micmco:***@127.0.0.1" in logs  # shown, masked
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "s.yaml":
            assert password not in path.read_text(errors="replace"), f"password written to {path}"
    # Both processes worked on the one study (no private copies).
    server, _, psycopg = postgres
    with psycopg.connect(url) as connection:
        (count,) = connection.execute("SELECT count(*) FROM studies").fetchone()
    assert count == 1


def test_integer_parameter(tmp_path):
    text = study_text("i", 2, 20).replace(
        "lam: {}", "lam: {}\n  hidden: {key: model.hidden_size, low: 16, high: 64, integer: true}"
    )
    study = load_study(write_study(tmp_path / "i.yaml", text))
    assert study.trial_overrides({"hidden": 32})[-1] == "model.hidden_size=32"
    bad = text.replace("low: 16, high: 64", "low: 16.5, high: 64")
    with pytest.raises(ConfigError, match="integer"):
        load_study(write_study(tmp_path / "j.yaml", bad))


@pytest.mark.slow
def test_a_repeated_proposal_is_not_run_twice(tmp_path):
    # Two possible points and a budget of three: the third proposal must repeat one, and is dropped.
    text = study_text("rep", 3, 20).replace(
        "  learning_rate: {low: 1.0e-4, high: 0.01, scale: log}\n  lam: {}",
        "  hidden: {key: model.hidden_size, low: 16, high: 17, integer: true}",
    )
    study = write_study(tmp_path / "s.yaml", text)
    result = subprocess.run(sweep_command(study, tmp_path), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "exhausted" in result.stdout
    rows = read_rows(tmp_path / "results" / "smoke" / "rep.tsv")
    check_no_loss_no_repeat(rows, 2)


# --- worker count, crashes, signals, reruns -------------------------------------------------


def test_workers_are_capped_by_cores_trials_left_and_memory():
    from micmco.sweep.capacity import Capacity, cap_workers

    assert cap_workers(1000, Capacity(cores=2, trials_left=6, memory_for=150)) == (
        2,
        "sweep: --workers 1000 capped to 2 (2 cores; 6 trials left; memory for 150)",
    )
    assert cap_workers(2, Capacity(cores=8, trials_left=6, memory_for=150)) == (2, None)  # fits: no message
    assert cap_workers(8, Capacity(cores=16, trials_left=10, memory_for=3))[0] == 3
    assert cap_workers(8, Capacity(cores=16, trials_left=5, memory_for=None))[0] == 5
    workers, message = cap_workers(4, Capacity(cores=8, trials_left=0, memory_for=150))  # finished: one, to export
    assert workers == 1 and message.endswith("(8 cores; 0 trials left; memory for 150)")


def test_worker_capacity_of_a_study_and_refusal_when_one_worker_does_not_fit(tmp_path, monkeypatch):
    import micmco.memory
    from micmco.sweep.capacity import capacity_of, usable_cores
    from micmco.sweep.optuna_study import Sweep

    study = load_study(write_study(tmp_path / "s.yaml", study_text("cap", 6, 20)))
    sweep = Sweep(study, None, tmp_path / "results", tmp_path / "runs", echo=lambda message: None)
    capacity = capacity_of(sweep)
    assert capacity.cores == usable_cores() == len(os.sched_getaffinity(0))
    assert capacity.trials_left == 6 and capacity.memory_for >= 1
    monkeypatch.setattr(micmco.memory, "available_memory", lambda device: 100 * 2**20)
    with pytest.raises(ConfigError, match="one worker needs"):
        capacity_of(sweep)


def processes_under(path: Path) -> list[int]:
    """Pids of live processes whose command line names `path` (sweep workers, their `micmco train`)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if str(path).encode() in (proc / "cmdline").read_bytes() and int(proc.name) != os.getpid():
                found.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return found


def kill_all_under(path: Path) -> None:
    for pid in processes_under(path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.parametrize(
    "moment, signum",
    [
        ("starting", signal.SIGINT),
        ("starting", signal.SIGTERM),
        ("header", signal.SIGINT),
        ("first worker", signal.SIGTERM),
    ],
)
def test_a_signal_while_workers_are_started_stops_the_sweep_at_once(tmp_path, moment, signum):
    study = write_study(tmp_path / "s.yaml", study_text("sig", 4, 1500))
    log = tmp_path / "sweep.log"
    try:
        sweep = start(sweep_command(study, tmp_path, "--workers", "8"), log)
        if moment == "starting":  # importing, loading the study, estimating memory
            time.sleep(1.0)
        else:
            marker = "worker(s) x" if moment == "header" else "worker 0 started"
            deadline = time.time() + 120
            while marker not in log.read_text() and time.time() < deadline and sweep.poll() is None:
                time.sleep(0.02)
        os.kill(sweep.pid, signum)
        signalled = time.time()
        assert sweep.wait(timeout=60) == 130, log.read_text()
        assert time.time() - signalled < 20, log.read_text()
        assert processes_under(tmp_path) == [], log.read_text()  # no worker, no trial left behind
        assert "Traceback" not in log.read_text()
        started = log.read_text().count(" started (pid ")
        assert started <= min(8, len(os.sched_getaffinity(0)), 4), log.read_text()
        if moment != "starting" and len(os.sched_getaffinity(0)) < 8:
            assert "sweep: --workers 8 capped to " in log.read_text()  # by the cores (and 4 trials left)
    finally:
        kill_all_under(tmp_path)


@pytest.mark.slow
def test_kill_9_of_the_supervisor_leaves_no_worker_and_the_rerun_resumes(tmp_path):
    study = write_study(tmp_path / "s.yaml", study_text("orphan", 2, 600))
    log, runs = tmp_path / "sweep.log", tmp_path / "runs"
    try:
        sweep = start(sweep_command(study, tmp_path, "--workers", "2"), log)
        wait_for(lambda: checkpointed_unfinished_runs(runs), 240, "a trial with a checkpoint")
        assert processes_under(runs)  # a worker and its `micmco train` are running
        os.kill(sweep.pid, signal.SIGKILL)  # the supervisor alone: its workers must not train on
        sweep.wait(timeout=30)
        wait_for(lambda: not processes_under(tmp_path), 20, "the workers and their trials to stop")
    finally:
        kill_all_under(tmp_path)
    rerun = subprocess.run(sweep_command(study, tmp_path, "--workers", "2"), cwd=REPO, capture_output=True,
                           text=True, timeout=400)  # fmt: skip
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    rows = read_rows(tmp_path / "results" / "smoke" / "orphan.tsv")
    check_no_loss_no_repeat(rows, 2)
    assert all(r["status"] == "complete" for r in rows)
    records = [json.loads((d / "result.json").read_text()) for d in runs.glob("*/*-*") if (d / "result.json").exists()]
    assert any(r.get("resumed_from_steps") for r in records), "no trial was resumed from a checkpoint"


@pytest.mark.slow
def test_a_worker_stopped_while_its_trial_starts_stops_that_trial(tmp_path, monkeypatch):
    """The signal (e.g. SIGTERM when the supervisor dies) arrives while the worker starts `micmco train`,
    before the worker holds the child: the child must be stopped too, not train to the end."""
    from micmco.sweep.optuna_study import Sweep
    from micmco.sweep.worker import Worker

    study = load_study(write_study(tmp_path / "s.yaml", study_text("late", 1, 1500)))
    sweep = Sweep(study, None, tmp_path / "results", tmp_path / "runs", echo=lambda message: None)
    worker = Worker(sweep, 0, 1, 20.0, 120.0, echo=lambda message: None)
    trial = sweep.optuna_study.ask()
    params = {p.name: trial.suggest_float(p.name, p.low, p.high, log=p.log) for p in study.parameters}
    real_popen = subprocess.Popen

    def popen_then_signal(*args, **kwargs):
        child = real_popen(*args, **kwargs)
        worker.stop()  # as the signal handler would, before Popen has returned
        return child

    monkeypatch.setattr(subprocess, "Popen", popen_then_signal)
    started = time.time()
    assert worker._run(trial, params, trial.number) is None  # interrupted
    assert time.time() - started < 30
    assert not list((tmp_path / "runs").glob("*/*/result.json")), "the trial trained on to the end"
    assert processes_under(tmp_path) == []


def _craft_crash_leftovers(path: Path, tmp: Path) -> None:
    """What kill -9 of workers at every moment of a trial leaves in the journal of a study with two grid
    points and a budget of four (numbers are trial numbers):
    0: grid point 0, killed before it suggested its (enqueued) parameters; 1: grid point 1, killed mid-trial;
    2: a proposal killed mid-trial, released: 5 is its retry, waiting; 3: a proposal killed in the sampler
    (no parameters); 4: a proposal beyond the budget, killed while being dropped; 6: a second retry of 2
    (released twice), popped and killed before it was dropped. Every worker's pid is dead."""
    import optuna
    from optuna.trial import TrialState

    from micmco.sweep.census import HOST
    from micmco.sweep.optuna_study import Sweep

    sweep = Sweep(load_study(path), None, tmp / "results", tmp / "runs", echo=lambda message: None)
    study, storage = sweep.optuna_study, sweep.storage
    study.sampler = optuna.samplers.RandomSampler(seed=0)
    dead = subprocess.Popen(["true"])
    dead.wait()
    beat = {"host": HOST, "pid": dead.pid, "start": "", "t": time.time()}

    def lost(trial, suggest: bool = True, **attrs):
        for p in sweep.study.parameters if suggest else ():
            trial.suggest_float(p.name, p.low, p.high, log=p.log)
        for key, value in {"heartbeat": beat, **attrs}.items():
            trial.set_user_attr(key, value)
        return trial

    sweep.ensure_grid()
    lost(study.ask(), suggest=False)
    lost(study.ask())
    two = lost(study.ask())
    lost(study.ask(), suggest=False)
    lost(study.ask(), outcome="surplus")
    sweep.release(storage.get_trial(two._trial_id), "killed")
    study.enqueue_trial(two.params, user_attrs={"slot": "retry:2", "origin": 2}, skip_if_exists=False)
    six = study.get_trials()[-1]
    storage.set_trial_state_values(six._trial_id, state=TrialState.RUNNING)
    storage.set_trial_user_attr(six._trial_id, "heartbeat", beat)
    states = [t.state.name for t in study.get_trials()]
    assert states == ["RUNNING", "RUNNING", "FAIL", "RUNNING", "RUNNING", "WAITING", "RUNNING"], states


@pytest.mark.slow
def test_after_a_crash_the_study_resumes_to_exactly_its_budget_grid_points_first(tmp_path):
    grid = "grid:\n  - {learning_rate: 0.003, lam: 0.5}\n  - {learning_rate: 0.001, lam: 0.2}"
    study = write_study(tmp_path / "s.yaml", study_text("crash", 4, 20, grid=grid))
    _craft_crash_leftovers(study, tmp_path)
    result = subprocess.run(sweep_command(study, tmp_path), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = read_rows(tmp_path / "results" / "smoke" / "crash.tsv")
    check_no_loss_no_repeat(rows, 4)
    assert {"0", "1", "2"} <= {r["trial"] for r in rows}  # the lost points, under their own numbers
    points = [(float(r["learning_rate"]), float(r["lam"])) for r in rows]
    assert points.count((0.003, 0.5)) == 1 and points.count((0.001, 0.2)) == 1  # every grid point, once
    done = [int(n) for n in re.findall(r" (\d+)/4 done", result.stdout)]
    assert done and done[-1] == 4 and max(done) == 4, result.stdout  # never more than the budget
    assert result.stdout.count(": complete:") == 4
    # The grid points ran before the one new proposal (the trial without "retry of").
    started = [line for line in result.stdout.splitlines() if line.startswith("[worker 0] trial ") and "=" in line]
    assert len(started) == 4 and "retry of" not in started[-1] and all("retry of" in s for s in started[:3])
    # A retry runs the point of the trial it retries: the parameters of that trial's row.
    by_trial = {r["trial"]: (float(r["learning_rate"]), float(r["lam"])) for r in rows}
    for line in started[:3]:
        origin, lr, lam = re.search(r"retry of trial (\d+)\): learning_rate=(\S+) lam=(\S+)", line).groups()
        assert by_trial[origin] == pytest.approx((float(lr), float(lam)), rel=1e-3), line


@pytest.mark.slow
def test_rerunning_a_finished_study_changes_nothing(tmp_path):
    grid = "grid:\n  - {learning_rate: 0.003, lam: 0.5}"
    study = write_study(tmp_path / "s.yaml", study_text("again", 2, 20, grid=grid))
    first = subprocess.run(sweep_command(study, tmp_path), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    journal, table = (tmp_path / "results" / "smoke" / name for name in ("again.journal", "again.tsv"))
    before = journal.read_bytes(), table.read_bytes()
    for workers in ("1", "3"):
        command = sweep_command(study, tmp_path, "--workers", workers, "--threads", "4")
        again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stdout + again.stderr
        assert ": complete:" not in again.stdout and "started (pid" not in again.stdout
        assert (journal.read_bytes(), table.read_bytes()) == before, f"--workers {workers} wrote to the study"
    assert "--workers 3 capped to 1 (" in again.stdout and "0 trials left" in again.stdout  # nothing left to run
    assert "1 worker(s) x 4 thread(s)" in again.stdout  # the threads of the workers that were capped


def test_every_committed_study_still_matches_its_stored_definition():
    """A config field added with a default changes every study's definition hash unless it is a legacy
    default (micmco.runconfig.LEGACY_DEFAULTS): then rerunning a committed study is refused as "made from a
    different definition". Checked on the journals themselves: their last stored definition_hash."""
    journals = sorted((REPO / "results" / "cpu").glob("*.journal"))
    assert journals
    mismatched = []
    for journal in journals:
        stored = [json.loads(line)["user_attr"]["definition_hash"] for line in journal.read_text().splitlines()
                  if '"definition_hash"' in line]  # fmt: skip
        study = load_study(REPO / "params" / "studies" / "cpu" / f"{journal.stem.removeprefix('cpu-')}.yaml")
        if stored[-1] != study.definition_hash():
            mismatched.append(journal.name)
    assert mismatched == []
