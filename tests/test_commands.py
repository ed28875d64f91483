"""The commands a new user types first: versions, bad arguments to the book's and the Makefile's commands,
and Ctrl-C during a build: one line each, never a traceback."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from micmco import __version__
from micmco.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"micmco {__version__}"


def test_make_reproduce_with_a_figure_that_is_not_a_number_says_which_are():
    done = subprocess.run(
        [sys.executable, "-m", "micmco.book", "studies", "cpu", "two"], capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "FIGURE=two is not a figure number; choose one of [2, 3, 4, 5, 6, 7, 8, 9, 10" in done.stderr


def test_building_a_chapter_that_does_not_exist_lists_the_chapters(tmp_path):
    done = subprocess.run(
        [sys.executable, "book/build.py", "--chapter", "nonexistent", "--no-html", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "no chapter 'nonexistent'; the chapters are: 01_introduction," in done.stderr
    assert "vqvae.md has not been executed" not in done.stderr


@pytest.mark.parametrize("jobs", [[], ["--chapter", "06_beta_vae", "--jobs", "2"]], ids=["in-order", "two-at-once"])
def test_ctrl_c_during_a_book_build_is_one_line(tmp_path, jobs):
    process = subprocess.Popen(
        [sys.executable, "book/build.py", "--profile", "smoke", "--chapter", "02_posterior_collapse", "--no-html",
         "--out", str(tmp_path), *jobs],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True,
    )  # fmt: skip
    time.sleep(6)  # inside the chapter's execution (it trains for several seconds)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground group
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "book: interrupted; run the same command again to rebuild." in err


def test_a_chapter_failing_in_a_parallel_build_stops_it_with_that_chapters_message(tmp_path):
    done = subprocess.run(
        [sys.executable, "book/build.py", "--profile", "smoke", "--no-html", "--out", str(tmp_path), "--jobs", "2",
         "--chapter", "06_beta_vae", "--chapter", "04_mutual_information_objectives", "-p", "num_states", "0"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert re.search(r"chapter chapters/0[46]_\w+\.md failed in cell \d+", done.stderr), done.stderr
    assert re.search(r"chapter chapters/0[46]_\w+\.md failed \(exit 1\); the build stopped", done.stderr)
    bad = subprocess.run([sys.executable, "book/build.py", "--jobs", "0"], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and "--jobs is the number of chapters executed at once: >= 1, got 0" in bad.stderr


def test_make_cpu_runs_the_cpu_single_runs_not_the_sweep_bases(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "micmco").write_text('#!/bin/sh\necho "$@"\n')
    (fake / "micmco").chmod(0o755)
    done = subprocess.run(
        ["make", "-s", "cpu", f"BIN={fake}", "INSTALLED="], capture_output=True, text=True, cwd=REPO, check=True
    )
    configs = [line.split()[1] for line in done.stdout.splitlines()]
    assert configs and not [c for c in configs if "/trial-" in c]
    assert sorted(Path(c).name for c in configs) == sorted(
        p.name for p in (REPO / "params/synthetic/cpu").glob("*.yaml") if not p.name.startswith("trial-")
    )


def test_a_gpu_profile_on_a_cpu_is_projected_and_warned_about_before_work(tmp_path, capsys):
    """`micmco check`/`train` on a paper config on a CPU started a 13-hour run without a word."""
    paper = REPO / "params/synthetic/paper/dreg16-kl.yaml"
    assert main(["check", str(paper), "--set", "data.vocab_size=200", "--set", "data.batch_size=8"]) == 0
    captured = capsys.readouterr()
    assert "projected from 2 timed steps: " in captured.out and " s per step on cpu, 40000 steps to go" in captured.out
    assert "warning: the paper profile is sized for a GPU; on this CPU it takes ~" in captured.err
    small = ["--set", "data.vocab_size=50", "--set", "data.batch_size=8", "--set", "train.steps=3"]
    assert main(["train", str(paper), *small, "--set", "eval.num_samples=2", "--output-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "warning: the paper profile is sized for a GPU" in captured.err and "3 steps to go" in captured.err
    smoke = REPO / "params/synthetic/smoke/elbo-kl.yaml"
    assert main(["train", str(smoke), "--quiet", "--output-dir", str(tmp_path)]) == 0
    assert "warning" not in capsys.readouterr().err  # a cpu-sized profile, quiet: no word


def test_a_paper_sweep_on_a_cpu_warns_with_the_projected_time_before_any_work(tmp_path):
    """A paper sweep started 64 trials of ~13 h each without a word."""
    from micmco.study import load_study
    from micmco.sweep.cli import gpu_profile_warning
    from micmco.sweep.optuna_study import Sweep

    paper = Sweep(load_study(REPO / "params/studies/paper/dreg16-kl.yaml"), None, tmp_path / "r", tmp_path / "runs")
    warning = gpu_profile_warning(paper, trials_left=64)
    assert "the paper profile is sized for a GPU; on this CPU it takes ~" in warning and "64 trials to go" in warning
    cpu = Sweep(load_study(REPO / "params/studies/cpu/dreg16-kl.yaml"), None, tmp_path / "r", tmp_path / "runs")
    assert gpu_profile_warning(cpu, trials_left=8) is None
    assert not list((tmp_path / "runs").glob("*/*/result.json"))  # nothing trained


def test_check_says_what_it_does_and_that_a_finished_run_is_finished(tmp_path, capsys):
    """`micmco check` said "without running anything" but times two steps, and on a finished run it
    projected "40 steps to go"."""
    with pytest.raises(SystemExit):
        main(["--help"])
    usage = capsys.readouterr().out
    assert "without running anything" not in usage and "time two training steps (writes nothing)" in usage
    smoke = REPO / "params/synthetic/smoke/elbo-kl.yaml"
    check = ["check", str(smoke), "--output-dir", str(tmp_path)]
    assert main(check) == 0
    assert "projected from 2 timed steps: " in capsys.readouterr().out
    assert not tmp_path.exists() or not list(tmp_path.iterdir())  # check writes nothing
    assert main(["train", str(smoke), "--quiet", "--output-dir", str(tmp_path)]) == 0
    result = next(tmp_path.glob("*/result.json"))
    summary = capsys.readouterr().out.splitlines()[0]  # the run's summary line
    assert main(check) == 0
    out = capsys.readouterr().out
    assert "steps to go" not in out and "projected" not in out
    assert f"  already finished: {summary}; result: {result}" in out.splitlines()


def test_the_ptb_benchmark_without_the_files_is_one_line(tmp_path):
    """`make bench-ptb` without the PTB files ended in a traceback."""
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/ptb_step_time.py")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**os.environ, "MICMCO_PTB": str(tmp_path), "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and f"data.path: $MICMCO_PTB is '{tmp_path}'" in done.stderr


def test_a_file_where_the_run_directory_goes_is_one_line_not_a_traceback(tmp_path, capsys):
    from micmco.cli import main
    from micmco.runconfig import load_config, run_directory

    path = REPO / "params" / "synthetic" / "smoke" / "elbo-kl.yaml"
    run_dir = run_directory(load_config(path, [f"output_dir={tmp_path}"]))
    run_dir.write_text("not a directory")
    assert main(["train", str(path), "--quiet", "--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "FileExistsError" in err[0] and str(run_dir) in err[0], err
    assert run_dir.read_text() == "not a directory"  # nothing of the user's is lost


# What a stock GPU image lacks (it has torch, numpy, scipy, matplotlib, pyyaml, tqdm): importing any of these
# fails in the subprocesses below, as when they are not installed.
ABSENT = ("optuna", "psycopg", "plotly", "ipywidgets", "IPython")
BLOCKER = f"""
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {ABSENT!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Absent())
"""


def run_without_extras(tmp_path: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python -m micmco ARGS`` (or ``python SCRIPT ARGS`` when the first is a .py file) where importing
    Optuna, psycopg, plotly, ipywidgets or IPython fails (a sitecustomize on PYTHONPATH installs the hook)."""
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(BLOCKER)
    command = [sys.executable, *(args if args[0].endswith(".py") else ("-m", "micmco", *args))]
    env = {**os.environ, "PYTHONPATH": f"{hook}{os.pathsep}{REPO / 'src'}", "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)


def test_the_package_requires_a_torch_range_and_make_pins_it_in_a_constraints_file():
    """pyproject.toml pinned torch==2.13.0: installing micmco on a GPU box replaced its CUDA build of torch."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    torch_req = next(Requirement(r) for r in project["dependencies"] if Requirement(r).name == "torch")
    assert torch_req.specifier.contains("2.11.0") and torch_req.specifier.contains("2.13.0")  # the GPU box; CI
    assert not torch_req.specifier.contains("2.3.1")  # older than the APIs micmco calls
    required = {Requirement(r).name for r in project["dependencies"]}
    assert not required & {"optuna", "psycopg", "plotly"}  # only the sweep tool and the book need them
    assert {Requirement(r).name for r in project["optional-dependencies"]["sweep"]} >= {"optuna", "psycopg"}
    pins = [line for line in (REPO / "constraints.txt").read_text().splitlines() if not line.startswith("#")]
    assert "torch==2.13.0" in pins
    makefile = (REPO / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if line.strip().startswith("$(PIP) ")]
    assert installs and "PIP := $(BIN)/python -m pip install" in makefile and "-c $(CONSTRAINTS)" in makefile
    assert "CONSTRAINTS := constraints.txt" in makefile
    assert all("[test,sweep" in line for line in installs)  # make test and make reproduce need the sweep


@pytest.mark.slow
def test_train_and_check_run_with_python_dash_m_on_an_image_without_optuna_or_plotly(tmp_path):
    """`PYTHONPATH=src python3 -m micmco ...` (a GPU box with no package index) had no __main__, and nothing
    checked that training and `micmco check` stay clear of the sweep's and the book's packages."""
    smoke = "params/synthetic/smoke/elbo-kl.yaml"
    for args in (["check", smoke], ["train", smoke, "--quiet", "--output-dir", str(tmp_path / "runs")]):
        done = run_without_extras(tmp_path, *args)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (args, done.stderr)
    assert len(list((tmp_path / "runs").glob("*/result.json"))) == 1
    done = run_without_extras(tmp_path, "benchmarks/gpu_check.py", "--help")
    assert done.returncode == 0 and "--out" in done.stdout, done.stderr
    done = run_without_extras(tmp_path, "sweep", "params/studies/cpu/dreg16-kl.yaml", "--workers", "1")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert "micmco sweep needs optuna, which is not installed: pip install -e '.[sweep]'" in done.stderr


@pytest.mark.slow
def test_ptb_trains_and_checks_on_an_image_without_optuna_or_plotly(tmp_path, shared_dir):
    ptb = ["params/ptb/smoke/ptb-dreg16-kl.yaml", "--set", "train.steps=4", "--set", "eval.split=valid"]
    for args in (["check", *ptb], ["train", *ptb, "--quiet", "--output-dir", str(tmp_path / "runs")]):
        done = run_without_extras(tmp_path, *args)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (args, done.stderr)
    assert len(list((tmp_path / "runs").glob("*/result.json"))) == 1


def test_make_gpu_check_runs_the_boxs_own_python_without_a_venv(tmp_path):
    """`make gpu-check` built a venv first, installing torch 2.13.0 (a CPU build) over the GPU box's own."""
    fake = tmp_path / "python3"
    fake.write_text('#!/bin/sh\necho "PYTHONPATH=$PYTHONPATH $@"\n')
    fake.chmod(0o755)
    done = subprocess.run(
        ["make", "-s", "gpu-check", f"PYTHON={fake}", "VENV=/nonexistent"], capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "PYTHONPATH=src benchmarks/gpu_check.py --out runs/gpu-check.json"
