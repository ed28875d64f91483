"""End to end: every smoke config trains, evaluates and writes a complete result record; two processes on one run
directory train it once (the run lock), and a run stopped during evaluation resumes."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from micmco.cli import main
from micmco.experiment import run
from micmco.runconfig import load_config, run_directory
from micmco.util import EXIT_RUNNING

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "params" / "synthetic" / "smoke"
SMOKE_CONFIGS = sorted(SMOKE.glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("path", SMOKE_CONFIGS, ids=lambda p: p.stem)
def test_smoke_config_runs_end_to_end(tmp_path, path):
    config = load_config(path, [f"output_dir={tmp_path}", "train.progress=false"])
    record = run(config, echo=lambda message: None)
    (result,) = tmp_path.glob("*/result.json")
    assert json.loads(result.read_text()) == record
    assert record["status"] == "complete" and record["threads"] == 1
    # the smoke VQ-VAE's 2 x 10 codes carry ln 100 > ln 50 = H(data) by construction: a warning, rightly
    assert (record["warnings"] == []) == (config.model.kind == "vae")
    for key in ("config", "metrics", "seed", "micmco_version", "git_commit", "device", "train_wall_time_s"):
        assert key in record
    assert record["config"]["objective"] == (None if config.model.kind == "vqvae" else vars(config.objective))
    metrics = record["metrics"]
    assert metrics["optimal_nll"] == pytest.approx(math.log(config.data.vocab_size))
    assert math.isfinite(metrics["nll"]) and math.isfinite(metrics["mutual_information"])
    # the NLL estimate is an upper bound in expectation; K = 100 keeps it close to one
    assert metrics["nll"] > metrics["optimal_nll"] - 0.05
    assert record["steps"] == config.train.steps
    assert len(record["train_history"]) == config.train.steps // config.train.log_every
    # a second run of the same config finds the result instead of training again
    messages = []
    assert run(config, echo=messages.append) == record
    assert "already finished (complete)" in messages[0]


@pytest.mark.slow
def test_cli_train_prints_the_result(tmp_path, capsys):
    path = REPO / "params" / "synthetic" / "smoke" / "elbo-kl.yaml"
    assert main(["train", str(path), "--quiet", "--output-dir", str(tmp_path), "--set", "objective.lam=0.2"]) == 0
    out = capsys.readouterr().out
    assert "NLL" in out and "mutual information" in out and "result.json" in out
    record = json.loads(next(tmp_path.glob("*/result.json")).read_text())
    assert record["config"]["objective"]["lam"] == 0.2


@pytest.mark.parametrize(
    ("task", "unit", "data_point"), [("synthetic", "symbol", "symbol"), ("ptb", "token", "sentence")]
)
def test_the_summary_and_the_progress_bar_name_their_units(task, unit, data_point):
    """The PTB bar shows loss per sentence, the summary metrics per token: each says which."""
    from micmco.experiment import summary
    from micmco.tasks import get_task

    metrics = {"nll": 4.2, "mutual_information": 0.042, "representational_kl": 0.05, "optimal_nll": 5.3}
    record = {"name": "r", "status": "complete", "metrics": metrics, "config": {"task": task}, "steps": 10,
              "train_wall_time_s": 1.0, "device": "cpu"}  # fmt: skip
    text = summary(record)
    assert f"mutual information 0.0420 nats per {unit}" in text and f"KL(q||p) 0.0500 nats per {unit}" in text
    assert get_task(task).data_point == data_point


# --- batches and tensors reach the run's device ------------------------------------------------------------


PTB_SMOKE = REPO / "params" / "ptb" / "smoke" / "ptb-dreg16-kl.yaml"


def _recording(module, monkeypatch):
    """Record what ``module`` hands to ``to_device`` (then move it as the trainer does)."""
    from micmco.runtime import to_device

    moved = []
    monkeypatch.setattr(
        module, "to_device", lambda batch, device: (moved.append((batch, device)), to_device(batch, device))[1]
    )
    return moved


def test_time_steps_moves_a_tuple_batch_to_the_device(shared_dir, monkeypatch):
    """A PTB batch is a tuple (tokens, lengths): moved only when a Tensor, it stayed on the host and every PTB
    config ended in a device mismatch on CUDA before training (micmco check, micmco train)."""
    from micmco import experiment

    moved = _recording(experiment, monkeypatch)
    config = load_config(PTB_SMOKE)
    device = torch.device("cpu")
    assert experiment.time_steps(config, device, steps=1) > 0
    ((batch, to),) = moved
    assert isinstance(batch, tuple) and all(isinstance(part, torch.Tensor) for part in batch[:2]) and to == device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the test above records the move on a CPU)")
def test_ptb_steps_are_timed_on_cuda(shared_dir):
    from micmco import experiment

    assert experiment.time_steps(load_config(PTB_SMOKE), torch.device("cuda"), steps=1) > 0


def test_evaluation_moves_a_tuple_batch_to_the_device(shared_dir, monkeypatch):
    from micmco import evaluation
    from micmco.tasks import get_task

    moved = _recording(evaluation, monkeypatch)
    config = load_config(PTB_SMOKE, ["eval.batch_size=8", "eval.num_samples=2"])
    task = get_task("ptb")
    batches = list(task.evaluation_batches(config, "valid"))[:2]
    metrics = evaluation.evaluate(task.build_model(config), batches, config.eval)
    assert math.isfinite(metrics["nll"]) and len(moved) == 2
    assert all(isinstance(batch, tuple) and to == torch.device("cpu") for batch, to in moved)


# --- what a result records of its arithmetic and its machine ------------------------------------------------


def test_the_result_records_precision_numerics_device_and_versions(tmp_path):
    path = REPO / "params" / "synthetic" / "smoke" / "elbo-kl.yaml"
    overrides = [f"output_dir={tmp_path}", "train.progress=false", "train.steps=4", "train.log_every=2",
                 "eval.num_samples=2", "train.precision=tf32"]  # fmt: skip
    record = run(load_config(path, overrides), echo=lambda message: None)
    assert json.loads(next(tmp_path.glob("*/result.json")).read_text()) == record
    assert record["precision"] == "tf32" and record["config"]["train"]["precision"] == "tf32"
    # the flags training and evaluation ran under: TF32 in both back ends; on a CPU, CPU kernels as they are
    cuda = record["device_kind"] == "cuda"
    assert record["numerics"] == {"matmul_tf32": True, "cudnn_tf32": True, "deterministic_algorithms": cuda,
                                  "cudnn_deterministic": cuda}  # fmt: skip
    assert record["device_kind"] == torch.device(record["device"].split()[0]).type
    assert isinstance(record["device_name"], str) and record["device_name"]
    assert record["torch_version"] == torch.__version__ and record["cuda_version"] == torch.version.cuda
    expected_cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    assert record["cudnn_version"] == expected_cudnn
    assert not torch.backends.cuda.matmul.allow_tf32  # the run left the global flags as they were


# --- two processes on one run directory ---------------------------------------------------------------------


def _micmco(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "micmco.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"},
    )


def _wait_for(path: Path, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and path.stat().st_size > 0:
            return
        time.sleep(0.02)
    raise TimeoutError(f"{path} never appeared")


@pytest.mark.slow
def test_the_same_command_twice_at_once_trains_once(tmp_path):
    args = ["train", str(SMOKE / "dreg16-renyi.yaml"), "--quiet", "--output-dir", str(tmp_path)]
    args += ["--set", "train.steps=2000", "--set", "train.checkpoint_every=100"]
    first = _micmco(*args)
    try:
        run_dir = run_directory(
            load_config(SMOKE / "dreg16-renyi.yaml", [f"output_dir={tmp_path}", "train.steps=2000"])
        )
        _wait_for(run_dir / "checkpoint.pt")
        second = _micmco(*args)
        assert second.wait(timeout=60) == EXIT_RUNNING
        err = second.stderr.read()
        assert f"already running (pid {first.pid})" in err and "Traceback" not in err
        first.kill()  # kill -9: the OS releases the lock; nothing is stuck
        first.wait(timeout=30)
        third = _micmco(*args)
        assert third.wait(timeout=300) == 0, third.stderr.read()
        record = json.loads((run_dir / "result.json").read_text())
        assert record["status"] == "complete" and len(record["resumed_from_steps"]) == 1
    finally:
        first.kill()


@pytest.mark.slow
def test_two_processes_started_together_one_trains_one_refuses(tmp_path):
    args = ["train", str(SMOKE / "elbo-kl.yaml"), "--quiet", "--output-dir", str(tmp_path)]
    args += ["--set", "train.steps=2000"]
    processes = [_micmco(*args) for _ in range(2)]
    codes = sorted(p.wait(timeout=300) for p in processes)
    # the second either finds the lock held or, if the first already finished, the finished record
    assert codes[0] == 0 and codes[1] in (0, EXIT_RUNNING)
    assert len(list(tmp_path.glob("*/result.json"))) == 1
    assert not list(tmp_path.glob("*/*.partial"))


@pytest.mark.slow
def test_sigterm_during_evaluation_is_resumable(tmp_path):
    """A signal after the last step (during evaluation) interrupts; the rerun evaluates without training."""
    args = ["train", str(SMOKE / "elbo-kl.yaml"), "--quiet", "--output-dir", str(tmp_path)]
    args += ["--set", "train.steps=50", "--set", "data.vocab_size=5000", "--set", "eval.batch_size=5"]
    process = _micmco(*args)
    config = load_config(
        SMOKE / "elbo-kl.yaml",
        [f"output_dir={tmp_path}", "train.steps=50", "data.vocab_size=5000", "eval.batch_size=5"],
    )
    run_dir = run_directory(config)
    deadline = time.time() + 120
    while time.time() < deadline:  # the final checkpoint marks the end of training
        if (run_dir / "checkpoint.pt").exists():
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 130
    assert "Rerun the same command to resume" in process.stderr.read()
    assert not (run_dir / "result.json").exists()
    again = _micmco(*args)
    assert again.wait(timeout=300) == 0
    record = json.loads((run_dir / "result.json").read_text())
    assert record["steps"] == 50 and record["resumed_from_steps"] == [50]
