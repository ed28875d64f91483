"""The GPU check (benchmarks/gpu_check.py, ``make gpu-check``): every section's logic on the CPU (its hidden
``--device cpu`` dry run, tiny sizes), its time boxes and exit codes; on a machine with CUDA, the comparison of
GPU and CPU losses too."""

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
SECTIONS = ["versions", "sync_audit", "step_time", "anatomy", "gpu_vs_cpu", "evaluation", "resume", "batched"]
# A stock GPU image has no Optuna, psycopg, plotly, ipywidgets or IPython: the dry run imports none of them.
HOOK = """
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("optuna", "psycopg", "plotly", "ipywidgets", "IPython"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Absent())
"""


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_check = load_gpu_check()


def dry_run(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, dict]:
    """``PYTHONPATH=src python3 benchmarks/gpu_check.py --device cpu``, as on a stock image; (process, JSON)."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK)
    out = tmp_path / "gpu-check.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--out", str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**os.environ, "PYTHONPATH": f"{hook}{os.pathsep}{REPO / 'src'}", "OMP_NUM_THREADS": "1", **env},
    )  # fmt: skip
    return done, json.loads(out.read_text()) if out.exists() else {}


@pytest.mark.slow
def test_the_check_runs_every_section_on_the_cpu_and_prints_its_table_last(tmp_path, shared_dir):
    """The check had never run (no GPU lent): a dry run on the CPU exercises each section but those that need
    CUDA, which say so; the exit code says the check was incomplete."""
    done, figures = dry_run(tmp_path)
    assert done.returncode == gpu_check.EXIT_INCOMPLETE == 6, done.stderr
    assert "Traceback" not in done.stderr
    sections = figures["sections"]
    assert list(sections) == SECTIONS
    assert {name: section["status"] for name, section in sections.items()} == {
        "versions": "passed", "sync_audit": "skipped", "step_time": "passed", "anatomy": "passed",
        "gpu_vs_cpu": "passed", "evaluation": "passed", "resume": "passed", "batched": "passed",
    }  # fmt: skip
    anatomy = sections["anatomy"]
    assert anatomy["task"] == "ptb" and set(anatomy["ms_by_phase"]) == {"cached", "recompute"}
    assert all(ms > 0 for phases in anatomy["ms_by_phase"].values() for ms in phases.values())
    assert 0 < anatomy["host_ms_per_step"] <= anatomy["device_ms_per_step"] and len(anatomy["top_operations"]) == 30
    assert sections["batched"]["differences"]["max_relative"] <= 1e-6  # on a CPU: bit for bit on one thread
    assert sections["sync_audit"]["reason"].startswith("needs CUDA")
    assert sections["versions"]["torch"] == torch.__version__
    ms = sections["step_time"]["ms_per_step"]
    assert len(ms) == 2 * (3 + 4) and all(value > 0 for value in ms.values())  # float32 and TF32 of each setting
    assert "ptb K=16 state dropout tf32" in ms and "synthetic K=64 float32" in ms
    assert set(sections["step_time"]["paper_trial"]) == {"synthetic", "ptb"}
    assert sections["step_time"]["busy_fraction"].startswith("skipped: needs CUDA")
    compared = sections["gpu_vs_cpu"]["runs"]
    assert len(compared) == 2 * len(gpu_check.estimator_cases()) and "ptb vimco K=4 categorical" in compared
    assert sections["gpu_vs_cpu"]["largest_relative_difference"] == 0.0  # CPU against CPU: the very same numbers
    assert sections["evaluation"]["K"] == 100 and sections["evaluation"]["tokens"] > 0
    resumed = sections["resume"]
    assert resumed["task"] == "ptb" and resumed["resumed_from"] == [resumed["killed_after_step"]]
    assert 0 < resumed["killed_after_step"] < resumed["steps"] and resumed["resumed"] == resumed["uninterrupted"]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("gpu-check on torch ") and len(lines) == 1 + len(SECTIONS) + len(ms) + 1
    assert lines[-1] == f"exit 6: incomplete (skipped or cut); figures in {tmp_path / 'gpu-check.json'}"


@pytest.mark.slow
def test_without_the_ptb_files_the_ptb_parts_are_skipped_in_one_line_each(tmp_path):
    done, figures = dry_run(tmp_path, MICMCO_PTB=str(tmp_path))
    assert done.returncode == 6 and "Traceback" not in done.stderr + done.stdout, done.stderr
    sections = figures["sections"]
    assert sections["evaluation"]["status"] == "skipped"
    reason = sections["evaluation"]["reason"]
    assert reason.startswith("PTB skipped: data.path: $MICMCO_PTB is ") and "\n" not in reason
    for name in ("step_time", "anatomy", "gpu_vs_cpu", "resume"):  # their synthetic parts still ran
        assert sections[name]["status"] == "incomplete" and sections[name]["incomplete"] == reason
    assert not [key for key in sections["step_time"]["ms_per_step"] if key.startswith("ptb")]
    assert (
        sections["resume"]["task"] == "synthetic"
        and sections["resume"]["resumed"] == sections["resume"]["uninterrupted"]
    )
    assert f"(PTB skipped: data.path: $MICMCO_PTB is '{tmp_path}'" in done.stdout
    assert sections["anatomy"]["task"] == "synthetic"


def test_a_section_that_overruns_is_cut_and_the_exit_code_says_incomplete(tmp_path, monkeypatch):
    def forever(plan, out):
        out["partial"] = "kept"
        while True:
            time.sleep(0.01)

    monkeypatch.setattr(gpu_check, "versions", forever)
    plan = dataclasses.replace(gpu_check.CPU_DRY_RUN, budgets={**gpu_check.CPU_DRY_RUN.budgets, "versions": 0.2})
    started = time.perf_counter()
    section = gpu_check.run_section("versions", plan, tmp_path)
    assert time.perf_counter() - started < 5
    assert section["status"] == "cut" and section["reason"] == "overran its 0.2 s time box"
    assert section["partial"] == "kept"  # what it measured before the cut is reported
    passed, cut = {"status": "passed"}, {"status": "cut"}
    assert gpu_check.exit_code({"sections": {"a": passed, "b": cut}}) == 6
    assert gpu_check.exit_code({"sections": {"a": passed, "b": passed}}) == 0
    assert gpu_check.exit_code({"sections": {"a": {"status": "failed"}, "b": cut}}) == 1
    assert gpu_check.exit_code({"sections": {"a": {"status": "error"}}}) == 1


def test_a_section_that_raises_is_an_error_in_one_line_and_the_others_run(tmp_path, monkeypatch):
    def broken(plan, out):
        raise RuntimeError("Expected all tensors to be on the same device\nsecond line")

    monkeypatch.setattr(gpu_check, "versions", broken)
    section = gpu_check.run_section("versions", gpu_check.CPU_DRY_RUN, tmp_path)
    assert section["status"] == "error"
    assert section["reason"] == "RuntimeError: Expected all tensors to be on the same device"


def test_the_sync_audit_lists_each_synchronisation_with_its_step_and_source_line():
    current = {"step": 7}
    with gpu_check.capture_syncs(current) as found:  # (the test's frames stand for micmco's)
        warnings.warn(
            "called a synchronizing CUDA operation", UserWarning, stacklevel=1
        )  # what the sync debug mode warns
        warnings.warn(
            "called a synchronizing CUDA operation", UserWarning, stacklevel=1
        )  # every one, not once per line
        warnings.warn("something else", DeprecationWarning, stacklevel=1)
    assert [sync["step"] for sync in found] == [7, 7]
    assert found[0]["at"].startswith("tests/test_gpu.py:") and "warnings.warn(" in found[0]["at"]


def test_noise_is_the_same_inside_the_comparison_on_the_cpu():
    """The comparison's draws on a CPU generator are the generator's own (the CPU side is the real thing)."""
    draws = lambda g: (torch.randn(3, generator=g), torch.empty(4).bernoulli_(0.5, generator=g))  # noqa: E731
    plain = draws(torch.Generator().manual_seed(1))
    with gpu_check.same_noise_on_every_device():
        inside = draws(torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(plain, inside))
    assert torch.randn is not None and torch.Tensor.bernoulli_.__name__ == "bernoulli_"  # restored


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the GPU check runs it there)")
def test_gpu_losses_equal_cpu_losses_in_float32(tmp_path):
    plan = dataclasses.replace(gpu_check.GPU, compare_steps=3, compare=gpu_check.CPU_DRY_RUN.compare)
    section = gpu_check.run_section("gpu_vs_cpu", plan, tmp_path)
    assert section["status"] in ("passed", "incomplete"), section
    assert section["largest_relative_difference"] <= gpu_check.TOLERANCE


def test_the_tf32_comparison_refuses_a_cpu_and_its_dry_run_finds_no_difference_there(tmp_path):
    """TF32 does nothing on a CPU: both precisions train the same model, so the paired difference is exactly 0 and
    the verdict "small" (the script's own arithmetic, end to end); without --allow-cpu it refuses (exit 2)."""
    script = REPO / "benchmarks" / "tf32_comparison.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    refused = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode == 2 and "needs a CUDA GPU" in refused.stderr
    command = [
        sys.executable, str(script), "--allow-cpu", "--seeds", "2", "--out", str(tmp_path),
        "--config", str(REPO / "params/synthetic/smoke/elbo-kl.yaml"), "--set", "train.steps=20",
        "--set", "train.progress=false",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "comparison.json").read_text())
    assert result["nll"]["mean_difference"] == 0.0 and result["nll"]["verdict"] == "small"
    assert "2 of 2 seeds complete in both precisions" in done.stdout
