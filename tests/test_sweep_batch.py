"""micmco sweep --batch N: N trials of a worker as one `micmco train-batch`, each recorded as a trial run alone.

The smoke study of tests/test_sweep.py (vocabulary 50, tens of steps); the runs are real `micmco train-batch`
subprocesses, except where a test stands in for one to interrupt it at a chosen moment."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from test_sweep import (
    REPO,
    check_no_loss_no_repeat,
    checkpointed_unfinished_runs,
    kill_all_under,
    read_rows,
    start,
    study_text,
    sweep_command,
    wait_for,
    write_study,
)

from micmco.config import ConfigError
from micmco.study import load_study
from micmco.sweep import near

GRID = "grid:\n  - {learning_rate: 0.003, lam: 0.5}\n  - {learning_rate: 0.001, lam: 0.2}"


def quiet(message: str) -> None:
    pass


def sweep_and_worker(path, tmp_path, batch: int):
    from micmco.sweep.optuna_study import Sweep
    from micmco.sweep.worker import Worker

    sweep = Sweep(load_study(path), None, tmp_path / "results", tmp_path / "runs", echo=quiet)
    return sweep, Worker(sweep, 0, 1, 20.0, 120.0, echo=quiet, batch=batch)


def space_of(sweep) -> dict:
    """The distributions of the study's parameters, as the worker suggests them."""
    from optuna.distributions import FloatDistribution

    return {p.name: FloatDistribution(p.low, p.high, log=p.log) for p in sweep.study.parameters}


def stand_in_for_train_batch(monkeypatch, code: int, commands: list) -> None:
    """`micmco train-batch` replaced by a process that exits with `code` (130: stopped by a signal, every
    trial checkpointed), its command kept in `commands`."""
    real_popen = subprocess.Popen

    def popen(command, **kwargs):
        commands.append(command)
        return real_popen(["sh", "-c", f"exit {code}"], **kwargs)

    monkeypatch.setattr(subprocess, "Popen", popen)


def trial_points(command: list[str]) -> list[dict[str, float]]:
    """The tuned values of each --trial of a train-batch command."""
    names = {"train.learning_rate": "learning_rate", "objective.lam": "lam"}
    points = []
    for flag, value in itertools.pairwise(command):
        if flag == "--trial":
            pairs = (item.split("=", 1) for item in value.split())
            points.append({names[k]: float(v) for k, v in pairs if k in names})
    return points


def test_a_batch_trains_as_one_train_batch_and_records_each_trial(tmp_path):
    """Grid points first, then proposals; one train-batch per batch (the last one only as large as the budget
    has left), one row per trial, every trial complete; a rerun runs nothing."""
    path = write_study(tmp_path / "s.yaml", study_text("batch", 5, 20, grid=GRID))
    result = subprocess.run(
        sweep_command(path, tmp_path, "--batch", "3"), cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "batches of 3 trials" in result.stdout
    rows = read_rows(tmp_path / "results" / "smoke" / "batch.tsv")
    check_no_loss_no_repeat(rows, 5)
    assert all(r["status"] == "complete" for r in rows), rows
    assert {(float(r["learning_rate"]), float(r["lam"])) for r in rows if r["trial"] in "01"} == {
        (0.003, 0.5),
        (0.001, 0.2),
    }  # the grid points are the first trials
    logs = tmp_path / "runs" / "batch" / "logs"
    assert sorted(p.name for p in logs.glob("batch-*.log")) == ["batch-0000.log", "batch-0003.log"]
    assert (logs / "batch-0000.log").read_text().count("result: ") == 3
    assert (logs / "batch-0003.log").read_text().count("result: ") == 2  # 5 - 3 left: never a surplus trial
    assert result.stdout.count(": complete:") == 5 and "surplus" not in result.stdout
    again = subprocess.run(sweep_command(path, tmp_path, "--batch", "auto"), cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 0 and "[worker 0] trial" not in again.stdout, again.stdout + again.stderr
    assert "1 worker(s) x 1 thread(s); storage" in again.stdout  # auto on a CPU: 1, no batches


def test_gp_proposals_of_one_batch_differ(tmp_path):
    """Optuna's GP sampler sees the batch's earlier proposals as pending (RUNNING, with their parameters):
    the N proposals of a batch are N different points. Told as finished instead, they are one point N times."""
    from optuna.trial import TrialState, create_trial

    from micmco.sweep.sampler import make_sampler

    text = study_text("gp", 12, 20).replace("sampler: random", "sampler: gp\nstartup_trials: 3")
    sweep, worker = sweep_and_worker(write_study(tmp_path / "s.yaml", text), tmp_path, batch=4)
    parameters, space = sweep.study.parameters, space_of(sweep)
    finished = [(3e-4, 0.1, 5.0, 0.2), (1e-3, 0.4, 5.1, 1.0), (3e-3, 0.7, 5.4, 2.5), (8e-3, 0.9, 7.0, 3.5)]
    for lr, lam, nll, mi in finished:
        values = [math.log(nll - 3.9 + 1e-3), mi]
        sweep.optuna_study.add_trial(create_trial(params={"learning_rate": lr, "lam": lam}, distributions=space,
                                                  values=values))  # fmt: skip
    proposals = [worker.propose() for _ in range(4)]
    assert all(p is not None for p in proposals)  # none dropped as a repeat of a running point
    for a, b in itertools.combinations([p.params for p in proposals], 2):
        assert not near(parameters, a, b), (a, b)
    # The control: each proposal finished before the next is asked, so that none is pending.
    for p in proposals:
        sweep.optuna_study.tell(p.trial, state=TrialState.FAIL)
    copies = []
    for k in range(4):
        sweep.optuna_study.sampler = make_sampler(sweep.study.config, seed_parts=(0, 100 + k, 0))
        trial = sweep.optuna_study.ask()
        copies.append({p.name: trial.suggest_float(p.name, p.low, p.high, log=p.log) for p in parameters})
        sweep.optuna_study.tell(trial, state=TrialState.FAIL)
    assert all(near(parameters, copies[0], c) for c in copies[1:]), copies


def test_grid_points_and_retries_fill_a_batch_first_and_a_stopped_batch_is_handed_back(tmp_path, monkeypatch):
    """A batch of 4 holds the two grid points and the retry of a failed trial before one new proposal; stopped
    (its train-batch exits 130), all four are released with retries of their points, and a rerun completes
    exactly the budget."""
    from optuna.trial import TrialState

    from micmco.sweep.batch import run_batch_of
    from micmco.sweep.census import Census

    path = write_study(tmp_path / "s.yaml", study_text("first", 5, 20, grid=GRID))
    sweep, worker = sweep_and_worker(path, tmp_path, batch=4)
    failed = sweep.optuna_study.ask(space_of(sweep))
    failed_point = dict(failed.params)
    failed.set_user_attr("row", {"status": "failed", "reason": "exit 1: disk full", "run": "r", "wall_s": "1"})
    failed.set_user_attr("outcome", "failed")
    sweep.optuna_study.tell(failed, state=TrialState.FAIL)
    sweep.ensure_grid()
    assert sweep.retry_failed() == 1
    commands: list = []
    stand_in_for_train_batch(monkeypatch, 130, commands)
    run_batch_of(worker, 4)
    (command,) = commands
    points = trial_points(command)
    assert points[:2] == [{"learning_rate": 0.003, "lam": 0.5}, {"learning_rate": 0.001, "lam": 0.2}]
    assert points[2] == pytest.approx(failed_point)
    assert len(points) == 4 and points[3] not in points[:3]
    assert command.count("--set") == len(sweep.study.overrides)  # the study's overrides once, not per trial
    trials = sweep.trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]  # every trial of the batch handed back
    census = Census.of(trials)
    assert len(census.waiting) == 4 and len(census.effective) == 4  # retries of the four points; 1 new left
    monkeypatch.undo()
    rerun = subprocess.run(
        sweep_command(path, tmp_path, "--batch", "4"), cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    rows = read_rows(tmp_path / "results" / "smoke" / "first.tsv")
    check_no_loss_no_repeat(rows, 5)
    assert all(r["status"] == "complete" for r in rows)
    done = [int(n) for n in re.findall(r" (\d+)/5 done", rerun.stdout)]
    assert done and max(done) == 5, rerun.stdout  # never more than the budget


def test_a_point_the_run_config_rejects_fails_alone_and_the_batch_runs_on(tmp_path, monkeypatch):
    import micmco.runconfig
    from micmco.sweep.batch import run_batch_of

    grid = GRID + "\n  - {learning_rate: 0.002, lam: 0.3}"
    sweep, worker = sweep_and_worker(write_study(tmp_path / "s.yaml", study_text("bad", 3, 20, grid=grid)), tmp_path, 3)
    real_load_config = micmco.runconfig.load_config

    def load_config(path, overrides=()):
        if "train.learning_rate=0.001" in overrides:
            raise ConfigError("train.learning_rate", "rejected here")
        return real_load_config(path, overrides)

    monkeypatch.setattr(micmco.runconfig, "load_config", load_config)
    sweep.ensure_grid()
    run_batch_of(worker, 3)
    by_lr = {t.params["learning_rate"]: t for t in sweep.trials()}
    rejected = by_lr[0.001]
    assert rejected.state.name == "FAIL" and rejected.user_attrs["outcome"] == "failed"
    assert rejected.user_attrs["exit_code"] == 2 and "invalid run config" in rejected.user_attrs["row"]["reason"]
    for lr in (0.003, 0.002):
        assert by_lr[lr].state.name == "COMPLETE" and by_lr[lr].user_attrs["outcome"] == "complete"
    (log,) = (tmp_path / "runs" / "bad" / "logs").glob("batch-*.log")
    assert log.read_text().count("result: ") == 2


def test_batch_auto_fills_80_percent_of_a_gpu_and_is_1_on_a_cpu_and_0_is_refused():
    from types import SimpleNamespace

    import torch

    from micmco.sweep.capacity import auto_batch

    def checks(device: str, available, peak: int):
        return SimpleNamespace(device=torch.device(device), available=available,
                               memory=SimpleNamespace(peak_bytes=peak))  # fmt: skip

    gib = 2**30
    assert auto_batch(checks("cuda", 80 * gib, 4 * gib)) == 16  # 0.8 x 80 / 4
    assert auto_batch(checks("cuda", 80 * gib, 3 * gib)) == 21  # floor(64 / 3)
    assert auto_batch(checks("cuda", 80 * gib, 2**20)) == 64  # at most 64
    assert auto_batch(checks("cuda", 4 * gib, 4 * gib)) == 1  # at least 1 (preflight refuses what does not fit)
    assert auto_batch(checks("cuda", None, gib)) == 1
    assert auto_batch(checks("cpu", 80 * gib, 2**20)) == 1
    refused = subprocess.run([sys.executable, "-m", "micmco.sweep", "s.yaml", "--batch", "0"], cwd=REPO,
                             capture_output=True, text=True)  # fmt: skip
    assert refused.returncode == 2 and "--batch: must be a positive integer or auto, got '0'" in refused.stderr


def test_the_trials_of_a_failed_batch_count_as_one_failure_in_a_row():
    """Three trials of one train-batch killed once do not stop the sweep; three batches failing do."""
    import datetime as dt

    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from micmco.sweep.census import failure_stop

    since = time.time()

    def failed(number: int, batch: int):
        row = {"status": "failed", "reason": "killed by SIGKILL: step 9", "run": f"r{number}", "wall_s": "1"}
        trial = create_trial(params={"lam": 0.1 * number}, distributions={"lam": FloatDistribution(0.0, 1.0)},
                             state=TrialState.FAIL, user_attrs={"outcome": "failed", "exit_code": -9, "row": row,
                                                                "batch": batch})  # fmt: skip
        trial.number = number
        trial.datetime_complete = dt.datetime.now()
        return trial

    assert failure_stop([failed(0, 0), failed(1, 0), failed(2, 0)], since) is None
    assert failure_stop([failed(0, 0), failed(1, 0), failed(2, 2), failed(3, 3)], since).error.startswith("killed")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_sweep_stopped_or_killed_mid_batch_resumes_to_exactly_its_budget(tmp_path, how):
    """Stopped by SIGTERM (exit 130, every trial of the batch released) or killed with its train-batch
    (kill -9 of the process group: the trials are left RUNNING with a dead worker's heartbeat), the rerun
    resumes the batch's trials from their checkpoints and ends with exactly the study's trials."""
    path = write_study(tmp_path / "s.yaml", study_text("mid", 3, 600))
    log, runs = tmp_path / "sweep.log", tmp_path / "runs"
    try:
        sweep = start(sweep_command(path, tmp_path, "--batch", "2"), log)
        wait_for(lambda: checkpointed_unfinished_runs(runs), 240, "a trial of the batch with a checkpoint")
        if how == "SIGTERM":
            os.kill(sweep.pid, signal.SIGTERM)
            assert sweep.wait(timeout=60) == 130, log.read_text()
            assert log.read_text().count("released (interrupted)") == 2, log.read_text()
        else:
            os.killpg(sweep.pid, signal.SIGKILL)
            sweep.wait(timeout=30)
            time.sleep(1.0)
    finally:
        kill_all_under(tmp_path)
    rerun = subprocess.run(
        sweep_command(path, tmp_path, "--batch", "2"), cwd=REPO, capture_output=True, text=True, timeout=400
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    if how == "SIGKILL":
        assert rerun.stdout.count("its worker is gone") == 2, rerun.stdout
    rows = read_rows(tmp_path / "results" / "smoke" / "mid.tsv")
    check_no_loss_no_repeat(rows, 3)
    assert all(r["status"] == "complete" for r in rows)
    assert {"0", "1"} <= {r["trial"] for r in rows}  # the batch's points, under their own numbers
    records = [json.loads(p.read_text()) for p in (runs / "mid").glob("*/result.json")]
    assert len(records) == 3 and any(r.get("resumed_from_steps") for r in records), "nothing was resumed"


def test_batch_auto_is_1_for_a_task_without_a_batched_model():
    """PTB (and the VQ-VAE) train one trial per process: auto must not queue N of them behind one process."""
    from micmco.study import load_study
    from micmco.sweep.cli import study_batches

    assert study_batches(load_study(REPO / "params/studies/cpu/dreg16-renyi.yaml"))
    assert not study_batches(load_study(REPO / "params/studies/cpu/ptb-dreg1-kl.yaml"))
