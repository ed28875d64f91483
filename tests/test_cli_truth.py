"""The command line says what is true (issue 30): duplicate trials named, sections merged, one rule for numbers,
output directories refused before work, the sweep's threads and summary, the help, and a clean checkout."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_cli import SMOKE, _assert_one_line_error, _run_cli

from micmco.config import ConfigError
from micmco.objectives import ObjectiveConfig
from micmco.runconfig import load_config
from micmco.study import load_study

REPO = Path(__file__).resolve().parents[1]
CONFIG = str(SMOKE / "elbo-kl.yaml")
STUDY = REPO / "params" / "studies" / "smoke" / "elbo-kl.yaml"


def test_train_batch_names_a_duplicate_trial_before_any_work(tmp_path, capsys):
    code, _, err = _run_cli(
        capsys, "train-batch", CONFIG, "--trial", "objective.lam=0.5", "--trial", "objective.lam=0.2",
        "--trial", "objective.lam=0.5", "--output-dir", str(tmp_path / "runs"), "--quiet",
    )  # fmt: skip
    _assert_one_line_error(code, err, "trial 3 (objective.lam=0.5) is trial 1 (objective.lam=0.5) again")
    assert "already running" not in err and not (tmp_path / "runs").exists()


def test_train_batch_lines_name_their_trials_and_the_elapsed_time(tmp_path, capsys):
    shared = ["--output-dir", str(tmp_path), "--quiet", "--set", "train.steps=20"]
    first = ["--trial", "objective.lam=0.2", "--trial", "objective.lam=0.7"]
    code, out, _ = _run_cli(capsys, "train-batch", CONFIG, *shared, *first)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("trial 1 (objective.lam=0.2): smoke-elbo-kl: NLL")
    assert lines[2].startswith("trial 2 (objective.lam=0.7): smoke-elbo-kl: NLL")
    assert "20 steps, " in lines[0] and "s as its 1/2 share of a batch" in lines[0]
    assert lines[-1].startswith("2 trials in ") and lines[-1].endswith(" s elapsed")
    code, out, err = _run_cli(capsys, "train-batch", CONFIG, *shared, *first, "--trial", "objective.lam=0.4")
    assert code == 0
    assert "trial 1 (objective.lam=0.2): already finished" in err and "trial 2 (objective.lam=0.7): already" in err
    assert [line.split(" (")[0] for line in out.splitlines() if line.startswith("trial ")] == [
        "trial 1",
        "trial 2",
        "trial 3",
    ]


def test_a_section_given_as_a_mapping_is_merged_not_replaced():
    base = load_config(CONFIG)
    merged = load_config(CONFIG, ["train={steps: 5}"])
    assert merged.train.steps == 5
    assert (merged.train.learning_rate, merged.train.checkpoint_every) == (
        base.train.learning_rate, base.train.checkpoint_every,
    )  # fmt: skip
    assert merged.train == load_config(CONFIG, ["train.steps=5"]).train
    assert load_config(CONFIG, ["objective={kind: none}"]).objective.lam is None  # another kind: replaced whole


@pytest.mark.parametrize("text", ['objective: {kind: kl, lam: "0.5"}', "objective: {kind: kl, lam: '0.5'}"])
def test_one_rule_for_numbers_in_yaml_and_python(tmp_path, text):
    """A quoted number is a string in YAML as in Python, and refused alike; 1e-3 without a dot is a number."""
    with pytest.raises(ConfigError, match="lam: must be .*quoted string"):
        ObjectiveConfig(kind="kl", lam="0.5")
    config = yaml.safe_load(Path(CONFIG).read_text())
    config["objective"] = yaml.safe_load(text.split(": ", 1)[1])
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    with pytest.raises(ConfigError, match="objective.lam: must be a number, got str '0.5' \\(a quoted string"):
        load_config(path)
    assert load_config(CONFIG, ["train.learning_rate=1e-3"]).train.learning_rate == 0.001


def test_a_study_or_run_config_given_to_the_other_command_says_so(capsys):
    code, _, err = _run_cli(capsys, "check", str(STUDY))
    _assert_one_line_error(code, err, "is a study file", f"micmco sweep {STUDY}")
    with pytest.raises(ConfigError, match=f"is a run config .*micmco train {CONFIG}"):
        load_study(CONFIG)


def test_trials_zero_is_refused_and_omitted_means_the_grid(tmp_path):
    text = STUDY.read_text().replace("params/synthetic", str(REPO / "params/synthetic"))
    (tmp_path / "zero.yaml").write_text(text.replace("trials: 6", "trials: 0"))
    with pytest.raises(ConfigError, match="trials: must be >= 1, got 0 \\(omit it to run the grid points only\\)"):
        load_study(tmp_path / "zero.yaml")
    (tmp_path / "grid.yaml").write_text(text.replace("trials: 6", ""))
    assert load_study(tmp_path / "grid.yaml").trials == 1


def _sweep(*args, env=None):
    environment = {**os.environ, **(env or {})}
    command = [sys.executable, "-m", "micmco.sweep", str(STUDY), *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env=environment)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc, where even root cannot write")
def test_an_unwritable_results_dir_is_exit_2_before_any_work(tmp_path):
    (tmp_path / "a-file").write_text("")
    for results in ("/proc", str(tmp_path / "a-file")):
        done = _sweep("--results-dir", results, "--runs-dir", str(tmp_path / "runs"))
        assert done.returncode == 2 and "--results-dir: cannot create" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and not (tmp_path / "runs").exists()


def test_the_sweep_takes_omp_num_threads_per_worker(tmp_path):
    """One trial of the smoke study, then the same with nothing left to do and --threads given."""
    args = ["--results-dir", str(tmp_path / "r"), "--runs-dir", str(tmp_path / "runs"), "--trials", "1"]
    first = _sweep(*args, env={"OMP_NUM_THREADS": "1"})
    assert first.returncode == 0, first.stderr
    assert "1 worker(s) x 1 thread(s)" in first.stdout
    assert "1 worker(s) x 3 thread(s)" in _sweep(*args, "--threads", "3", env={"OMP_NUM_THREADS": "1"}).stdout


def test_help_lists_every_command_in_plain_text(capsys):
    with pytest.raises(SystemExit):
        _run_cli(capsys, "--help")
    out = capsys.readouterr().out
    listed = out.split("positional arguments:")[1]
    for command in ("train", "check", "train-batch", "evaluate", "sweep", "rerun", "pareto", "table1"):
        assert f"\n    {command} " in listed, command
    assert "``" not in out and ":func:" not in out and "exit codes: 0 complete; 1 failed" in out


def test_a_run_records_its_config_in_utf8(tmp_path, capsys):
    args = ["train", str(SMOKE / "dreg16-renyi.yaml"), "--quiet", "--output-dir", str(tmp_path)]
    assert _run_cli(capsys, *args, "--set", "train.steps=2", "--set", "eval.num_samples=2")[0] == 0
    (run_dir,) = tmp_path.iterdir()
    text = (run_dir / "config.yaml").read_text(encoding="utf-8")
    assert "Rényi" in text and "\\x" not in text
    assert load_config(run_dir / "config.yaml") == load_config(
        SMOKE / "dreg16-renyi.yaml",
        [f"output_dir={tmp_path}", "train.steps=2", "eval.num_samples=2", "train.progress=false"],
    )


@pytest.mark.parametrize("path", ["results/smoke/smoke-elbo-kl.tsv", "book/chapters/01_introduction.ipynb"])
def test_what_the_readme_makes_is_ignored(path):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    assert subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0


def test_every_committed_table_is_its_journals_export(tmp_path):
    """`micmco sweep STUDY --export` of a committed study leaves the checkout clean (byte for byte)."""
    from micmco.rerun import study_of_table
    from micmco.sweep.optuna_study import Sweep

    tables = sorted((REPO / "results" / "cpu").glob("*.tsv"))
    assert tables
    differ = []
    for table in tables:
        results = tmp_path / table.stem / "results"
        (results / "cpu").mkdir(parents=True)
        for suffix in (".tsv", ".journal"):
            (results / "cpu" / (table.stem + suffix)).write_bytes(table.with_suffix(suffix).read_bytes())
        sweep = Sweep(study_of_table(table), None, results, tmp_path / "runs", echo=lambda line: None, must_exist=True)
        if sweep.export().read_bytes() != table.read_bytes():
            differ.append(table.name)
    assert differ == []


def test_a_dry_run_says_what_a_sweep_would_run_and_cost_and_writes_nothing(tmp_path):
    fresh = _sweep("--dry-run", "--results-dir", str(tmp_path / "r"), "--runs-dir", str(tmp_path / "runs"))
    assert fresh.returncode == 0, fresh.stderr
    assert "smoke-elbo-kl: 0 trials done of a budget of 6, 6 to run; ~" in fresh.stdout
    assert "per trial (two timed steps of its base config on cpu, training only)" in fresh.stdout
    assert not (tmp_path / "r").exists() and not (tmp_path / "runs").exists()
    committed = REPO / "results" / "cpu"
    study = REPO / "params" / "studies" / "cpu" / "elbo-kl.yaml"
    before = {path.name: path.read_bytes() for path in committed.glob("cpu-elbo-kl.*")}
    command = [sys.executable, "-m", "micmco.sweep", str(study), "--dry-run", "--runs-dir", str(tmp_path / "runs")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert (
        done.returncode == 0
        and "cpu-elbo-kl: 36 trials done of a budget of 24, 0 to run; nothing to run" in done.stdout
    )
    assert {path.name: path.read_bytes() for path in committed.glob("cpu-elbo-kl.*")} == before
