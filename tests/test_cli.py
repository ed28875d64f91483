"""micmco.cli as a new user meets it: bad input is one line and exit 2 before any work, a checkpoint that cannot
be used names its file, threads are a setting, and every subcommand is reachable."""

import json
from pathlib import Path

import pytest
import torch

from micmco.cli import main
from micmco.runconfig import fingerprint, load_config, run_directory
from micmco.util import EXIT_INPUT

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "params" / "synthetic" / "smoke"

# --- bad input at the command line: one line, exit 2, no run directory ---------------------------------


def _run_cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_one_line_error(code, err, *needles):
    assert code == EXIT_INPUT
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("micmco: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


def _config_file(tmp_path, text, name="config.yaml"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize(
    "make_input, needles",
    [
        (lambda tmp: (SMOKE / "dreg16-renyi.yaml", ["--set", "objective.alpha=.inf"]), ["objective.alpha", "finite"]),
        (lambda tmp: (SMOKE / "dreg16-renyi.yaml", ["--set", "objective.lam=.nan"]), ["objective.lam", "finite"]),
        (lambda tmp: (SMOKE / "dreg16-renyi.yaml", ["--set", "seed=-1"]), ["seed", "[0, 2^63)"]),
        (lambda tmp: (SMOKE, []), ["is a directory"]),
        (lambda tmp: (tmp / "missing.yaml", []), ["no such file"]),
        (lambda tmp: (_config_file(tmp, "name: x\ndata: {vocab_size: 5\n"), []), ["YAML syntax error at line"]),
        (
            lambda tmp: (_config_file(tmp, (SMOKE / "elbo-kl.yaml").read_text() + "seed: 3\n"), []),
            ["seed: duplicate key (line", "keep one"],
        ),
        (lambda tmp: (SMOKE / "elbo-kl.yaml", ["--set", "x=[1,"]), ["--set 'x=[1,'", "YAML syntax error"]),
        (lambda tmp: (_config_file(tmp, b"\x00\x01\x02binary\xff"), []), ["is a binary file"]),
        (lambda tmp: (_config_file(tmp, "name: caf\xe9\n".encode("latin-1")), []), ["not UTF-8"]),
        (lambda tmp: (_config_file(tmp, ""), []), ["does not hold a mapping"]),
        (lambda tmp: (_config_file(tmp, "- a\n- b\n"), []), ["does not hold a mapping"]),
        (
            lambda tmp: (_config_file(tmp, "!!python/object/apply:os.system ['touch pwned']\n"), []),
            ["could not determine a constructor"],
        ),
        (
            lambda tmp: (SMOKE / "elbo-kl.yaml", ["--set", "data.vocab_size=100000000"]),
            ["this run needs", "is available", "reduce data.vocab_size"],
        ),
        (
            lambda tmp: (SMOKE / "vimco16-renyi.yaml", ["--set", "estimator.num_samples=100000"]),
            ["this run needs", "estimator.num_samples"],
        ),
        (
            lambda tmp: (SMOKE.parent / "paper" / "dreg1-kl.yaml", ["--set", "train.precision=bfloat16"]),
            ["train.precision", "refused for the paper profile", "not been measured on a GPU", "float32, tf32"],
        ),
        (
            lambda tmp: (SMOKE.parent / "paper" / "dreg1-kl.yaml", ["--set", "train.mixed_precision=true"]),
            ["train.precision", "refused for the paper profile"],
        ),
        (
            lambda tmp: (SMOKE / "elbo-kl.yaml", ["--set", "train.precision=fp16"]),
            ["train.precision", "valid choices: float32, tf32, bfloat16"],
        ),
    ],
    ids=[
        "alpha-inf",
        "lam-nan",
        "seed-negative",
        "directory",
        "missing",
        "yaml-syntax",
        "duplicate-key",
        "bad-override",
        "binary",
        "not-utf8",
        "empty",
        "not-a-mapping",
        "python-tag",
        "huge-vocabulary",
        "huge-K",
        "paper-bfloat16",
        "paper-mixed-precision",
        "unknown-precision",
    ],
)
@pytest.mark.parametrize("command", ["train", "check"])
def test_bad_input_is_one_line_before_any_work(tmp_path, capsys, monkeypatch, make_input, needles, command):
    monkeypatch.chdir(tmp_path)  # a python tag that ran would leave 'pwned' here
    path, extra = make_input(tmp_path)
    out = tmp_path / "runs"
    code, _, err = _run_cli(capsys, command, str(path), *extra, "--output-dir", str(out))
    _assert_one_line_error(code, err, *needles)
    assert not out.exists(), "no run directory may be left behind"
    assert not (tmp_path / "pwned").exists()


def test_an_output_directory_that_cannot_be_created(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for command in ("train", "check"):
        code, _, err = _run_cli(capsys, command, str(SMOKE / "elbo-kl.yaml"), "--output-dir", str(blocker / "runs"))
        _assert_one_line_error(code, err, "output_dir", str(blocker))


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc, where even root cannot write")
def test_an_output_directory_that_cannot_be_written(capsys):
    code, _, err = _run_cli(capsys, "train", str(SMOKE / "elbo-kl.yaml"), "--output-dir", "/proc")
    _assert_one_line_error(code, err, "output_dir", "cannot create or write /proc")
    code, _, err = _run_cli(capsys, "train", str(SMOKE / "elbo-kl.yaml"), "--output-dir", "/proc/micmco-runs")
    _assert_one_line_error(code, err, "output_dir", "/proc/micmco-runs")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", ["train", "check"])
def test_cuda_without_cuda_is_refused_by_check_and_train(tmp_path, capsys, command):
    out = tmp_path / "runs"
    code, _, err = _run_cli(
        capsys, command, str(SMOKE / "elbo-kl.yaml"), "--set", "train.device=cuda", "--output-dir", str(out)
    )
    _assert_one_line_error(code, err, "train.device", "CUDA is not available")
    assert not out.exists()


def test_check_shows_the_memory_estimate(capsys):
    code, out, _ = _run_cli(capsys, "check", str(SMOKE / "dreg16-renyi.yaml"))
    assert code == 0 and "per training step" in out and "for evaluation" in out and "available" in out


def test_a_broken_checkpoint_names_the_file_and_how_to_start_over(tmp_path, capsys):
    config = load_config(SMOKE / "elbo-kl.yaml", [f"output_dir={tmp_path}"])
    run_dir = run_directory(config)
    run_dir.mkdir(parents=True)
    (run_dir / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    code, _, err = _run_cli(capsys, "train", str(SMOKE / "elbo-kl.yaml"), "--quiet", "--output-dir", str(tmp_path))
    _assert_one_line_error(code, err, str(run_dir / "checkpoint.pt"), "to start the run over")


def test_a_checkpoint_from_another_kind_of_device_is_one_line_and_exit_2(tmp_path, capsys):
    args = ["train", str(SMOKE / "elbo-kl.yaml"), "--quiet", "--output-dir", str(tmp_path), "--set", "train.steps=4"]
    assert _run_cli(capsys, *args)[0] == 0
    (run_dir,) = tmp_path.iterdir()
    (run_dir / "result.json").unlink()  # as if stopped before the end
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    checkpoint["device"] = "cuda"  # written where train.device: auto picked a GPU
    torch.save(checkpoint, run_dir / "checkpoint.pt")
    code, _, err = _run_cli(capsys, *args)
    _assert_one_line_error(code, err, str(run_dir / "checkpoint.pt"), "written on cuda and this run is on cpu")
    assert not (run_dir / "result.json").exists()


# --- threads -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_threads_are_a_setting_recorded_in_the_result_and_not_in_the_fingerprint(tmp_path, capsys):
    base = load_config(SMOKE / "elbo-kl.yaml")
    assert fingerprint(base) == fingerprint(load_config(SMOKE / "elbo-kl.yaml", ["train.threads=2"]))
    before = torch.get_num_threads()
    code, _, _ = _run_cli(
        capsys, "train", str(SMOKE / "elbo-kl.yaml"), "--quiet", "--threads", "2", "--output-dir", str(tmp_path)
    )
    assert code == 0
    record = json.loads(next(tmp_path.glob("*/result.json")).read_text())
    assert record["threads"] == 2 and record["config"]["train"]["threads"] == 2 and "2 threads" in record["device"]
    assert torch.get_num_threads() == before  # restored for the caller (a notebook, say)
    with pytest.raises(SystemExit) as exit_:
        main(["train", str(SMOKE / "elbo-kl.yaml"), "--threads", "0"])
    assert exit_.value.code == 2 and "must be a positive integer, got '0'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["sweep", "pareto"])
def test_subcommands_with_their_own_parsers_are_reachable(capsys, command):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0 and f"usage: micmco {command}" in capsys.readouterr().out


# --- train-batch -----------------------------------------------------------------------------------------------


def test_train_batch_bad_trial_is_one_line_before_any_work(tmp_path, capsys):
    code, _, err = _run_cli(
        capsys, "train-batch", str(SMOKE / "elbo-kl.yaml"), "--trial", "objective.lam=0.2",
        "--trial", "objective.lam=abc", "--output-dir", str(tmp_path / "runs"), "--quiet",
    )  # fmt: skip
    _assert_one_line_error(code, err, "objective.lam")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_train_batch_trains_each_trial_into_its_run_directory(tmp_path, capsys):
    base = SMOKE / "elbo-kl.yaml"
    trials = ["objective.lam=0.2", "objective.lam=0.7 train.learning_rate=0.002"]
    args = ["train-batch", str(base), "--output-dir", str(tmp_path), "--quiet", "--set", "train.steps=20"]
    code, out, _ = _run_cli(capsys, *args, *[item for trial in trials for item in ("--trial", trial)])
    assert code == 0
    for trial in trials:
        config = load_config(base, [f"output_dir={tmp_path}", "train.steps=20", "train.progress=false", *trial.split()])
        record = json.loads((run_directory(config) / "result.json").read_text())
        assert record["status"] == "complete" and record["batch"]["trials"] == 2
        assert str(run_directory(config) / "result.json") in out
