"""A run's record and checkpoint as `micmco train` and `micmco check` meet them damaged, and a full disk while
writing them: one line naming the file and the remedy, exit 2 (1 for the disk), nothing partial left (issue 30)."""

import json
import shutil

import pytest
import torch
from test_cli import SMOKE, _assert_one_line_error, _run_cli

from micmco import trainer
from micmco.cli import main
from micmco.runconfig import load_config, run_directory
from micmco.util import EXIT_FAILED, EXIT_INPUT

CONFIG = str(SMOKE / "elbo-kl.yaml")
STEPS = ["--set", "train.steps=20", "--set", "train.checkpoint_every=10"]


@pytest.fixture
def finished_run(tmp_path, capsys):
    args = ["train", CONFIG, "--quiet", "--output-dir", str(tmp_path), *STEPS]
    assert _run_cli(capsys, *args)[0] == 0
    (run_dir,) = tmp_path.iterdir()
    return args, run_dir


@pytest.mark.parametrize(
    "damage, words",
    [
        (b'{"name": "smoke-elbo-kl", "fingerp', "cut short or not JSON"),
        (b"", "cut short or not JSON"),
        (b"{}", "not a result record"),
        (b'{"fingerprint": "0123456789", "status": "complete", "metrics": {}}', "another run's"),
    ],
)
def test_a_damaged_record_is_one_line_with_its_remedy_which_works(finished_run, capsys, damage, words):
    args, run_dir = finished_run
    record = json.loads((run_dir / "result.json").read_text())
    (run_dir / "result.json").write_bytes(damage)
    for command in (args, ["check", *args[1:2], *args[3:]]):
        code, _, err = _run_cli(capsys, *command)
        _assert_one_line_error(code, err, str(run_dir / "result.json"), words, "evaluated again, without training")
    shutil.move(run_dir / "result.json", run_dir / "result.json.damaged")  # the remedy the line gives
    model = torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]
    assert _run_cli(capsys, *args)[0] == 0
    again = json.loads((run_dir / "result.json").read_text())
    assert again["metrics"] == record["metrics"]
    after = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert after["state"]["step"] == 20 and all(torch.equal(after["model"][k], v) for k, v in model.items())


@pytest.mark.parametrize("kind", ["empty", "truncated", "another run's"])
def test_check_refuses_the_checkpoint_train_would_refuse(tmp_path, capsys, kind):
    args = ["--output-dir", str(tmp_path), *STEPS]
    overrides = [f"output_dir={tmp_path}", "train.steps=20", "train.checkpoint_every=10"]
    config = load_config(SMOKE / "elbo-kl.yaml", overrides)
    run_dir = run_directory(config)
    if kind == "another run's":  # a checkpoint copied from a run of another λ
        assert _run_cli(capsys, "train", CONFIG, "--quiet", *args, "--set", "objective.lam=0.3")[0] == 0
        (other,) = tmp_path.iterdir()
        run_dir.mkdir()
        shutil.copy(other / "checkpoint.pt", run_dir / "checkpoint.pt")
    else:
        run_dir.mkdir(parents=True)
        (run_dir / "checkpoint.pt").write_bytes(b"" if kind == "empty" else b"PK\x03\x04 cut")
    check = _run_cli(capsys, "check", CONFIG, *args, "--no-timing")
    train = _run_cli(capsys, "train", CONFIG, "--quiet", *args)
    for code, _, err in (check, train):
        _assert_one_line_error(code, err, str(run_dir / "checkpoint.pt"))
    assert check[2].split(":", 1)[1] == train[2].split(":", 1)[1]  # the same words


def test_check_no_timing_says_the_steps_to_go_without_timing(tmp_path, capsys):
    code, out, _ = _run_cli(capsys, "check", CONFIG, "--output-dir", str(tmp_path), *STEPS, "--no-timing")
    assert code == 0 and "20 of 20 steps to go (timing skipped" in out and "per step" not in out


def test_a_full_disk_while_checkpointing_is_one_line_and_leaves_no_partial_file(tmp_path, capsys, monkeypatch):
    """torch.save reports ENOSPC as a RuntimeError from its zip writer, after writing part of the file."""
    real_save = torch.save

    def full_disk(payload, path):
        with open(path, "wb") as partial:
            partial.write(b"PK\x03\x04 part of it")
        raise RuntimeError(
            "[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file data/0: file write "
            "failed"
        )

    args = ["train", CONFIG, "--quiet", "--output-dir", str(tmp_path), *STEPS]
    monkeypatch.setattr(trainer.torch, "save", full_disk)
    code, _, err = _run_cli(capsys, *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == EXIT_FAILED and len(lines) == 1 and "Traceback" not in err, err
    assert "the disk of" in err and "is full" in err and "MiB free" in err and "rerun the same command" in err
    (run_dir,) = tmp_path.iterdir()
    assert not list(run_dir.glob("*.partial")) and not (run_dir / "checkpoint.pt").exists()
    monkeypatch.setattr(trainer.torch, "save", real_save)
    assert _run_cli(capsys, *args)[0] == 0  # space freed: the same command runs


def test_exit_codes_are_the_documented_ones():
    assert (EXIT_INPUT, EXIT_FAILED) == (2, 1)
    with pytest.raises(SystemExit):
        main(["--help"])
