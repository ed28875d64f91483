"""micmco.evaluation's precise evaluation and ``micmco evaluate``: independent K-sample evaluations averaged
with a calibrated standard error, and a finished run re-scored without training or touching its record."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from micmco.cli import main
from micmco.evaluation import MIN_REPEATS, EvalConfig, evaluate, evaluate_repeated, halves_of, split_halves
from micmco.experiment import run
from micmco.latents import GaussianLatent
from micmco.models import SingleSymbolVAE
from micmco.runconfig import load_config, run_directory
from micmco.util import EXIT_INPUT, EXIT_OK

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "params" / "synthetic" / "smoke" / "elbo-kl.yaml"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SingleSymbolVAE(20, GaussianLatent(3), hidden_size=8)


def test_repeats_are_independent_of_the_recorded_evaluation_and_reproducible(model):
    data = torch.arange(20)
    config = EvalConfig(num_samples=10, repeats=8, target_se=0.0)
    once = evaluate(model, data, config, seed=3)
    precise = evaluate_repeated(model, data, config, seed=3)
    assert precise == evaluate_repeated(model, data, config, seed=3)  # seeded
    assert precise["repeats"] == 8 and len(set(precise["values"]["nll"])) == 8
    assert once["nll"] not in precise["values"]["nll"]  # its own samples: never the recorded evaluation's
    assert precise["nll"] == pytest.approx(np.mean(precise["values"]["nll"]))
    assert precise["nll_se"] == pytest.approx(np.std(precise["values"]["nll"], ddof=1) / math.sqrt(8))
    assert precise["representational_kl"] == pytest.approx(once["representational_kl"])  # exact: no sampling
    # its halves: the even repeats choose, the odd ones report (independent of each other)
    nll, mi = np.array(precise["values"]["nll"]), np.array(precise["values"]["mutual_information"])
    assert precise["nll_select"] == pytest.approx(nll[0::2].mean())
    assert precise["mutual_information_select"] == pytest.approx(mi[0::2].mean())
    assert precise["nll_report"] == pytest.approx(nll[1::2].mean())
    assert precise["nll_report_se"] == pytest.approx(nll[1::2].std(ddof=1) / 2)


def test_halves_are_computed_from_a_records_values_and_need_four_repeats():
    values = {"nll": [1.0, 2.0, 3.0, 5.0], "mutual_information": [0.1, 0.2, 0.3, 0.4]}
    halves = split_halves(values["nll"], values["mutual_information"])
    assert halves == pytest.approx(
        {"nll_select": 2.0, "mutual_information_select": 0.2, "nll_report": 3.5, "nll_report_se": 1.5}
    )
    assert halves_of({"values": values}) == halves  # a record kept before the halves were
    assert halves_of({**halves, "values": None}) == halves
    assert halves_of({"nll": 1.0}) == {} and split_halves([1.0, 2.0, 3.0], [0.1, 0.2, 0.3]) == {}


def test_the_standard_error_is_calibrated(model):
    """Over 40 seeds, the spread of the precise means matches the standard errors they report."""
    data = torch.arange(20)
    config = EvalConfig(num_samples=10, repeats=16, target_se=0.0)
    results = [evaluate_repeated(model, data, config, seed=seed) for seed in range(40)]
    for key in ("nll", "mutual_information"):
        spread = np.std([r[key] for r in results], ddof=1)
        reported = np.sqrt(np.mean([r[f"{key}_se"] ** 2 for r in results]))
        assert 0.7 < spread / reported < 1.4, (key, spread, reported)


def test_repeats_stop_at_the_target_standard_error(model):
    data = torch.arange(20)
    loose = evaluate_repeated(model, data, EvalConfig(num_samples=10, repeats=500, target_se=1.0), seed=0)
    assert loose["repeats"] == MIN_REPEATS  # reached at once: the fewest a standard error comes from
    tight = evaluate_repeated(model, data, EvalConfig(num_samples=10, repeats=500, target_se=0.01), seed=0)
    assert MIN_REPEATS < tight["repeats"] <= 500
    assert tight["repeats"] == 500 or max(tight["nll_se"], tight["mutual_information_se"]) <= 0.01
    with pytest.raises(ValueError, match="repeats"):
        evaluate_repeated(model, data, EvalConfig(repeats=0), seed=0)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    config = load_config(SMOKE, [f"output_dir={out}", "train.progress=false", "train.steps=100", "eval.repeats=8"])
    record = run(config, echo=lambda message: None)
    assert record["precise_evaluation"]["repeats"] >= MIN_REPEATS
    return run_directory(config)


def test_evaluate_rescores_a_run_without_training_or_changing_its_record(finished_run, capsys):
    files = {name: (finished_run / name).read_bytes() for name in ("result.json", "checkpoint.pt", "config.yaml")}
    assert main(["evaluate", str(finished_run), "--repeats", "12", "--target-se", "0", "--quiet"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "±" in out and "mean ± standard error of 12 evaluations" in out
    assert re.search(r"its halves: a frontier chooses on NLL \d+\.\d{4}, MI .* reports NLL \d+\.\d{4} ± ", out)
    assert "recorded evaluation (K = 100) reproduced exactly: yes" in out and "result.json unchanged" in out
    assert {name: (finished_run / name).read_bytes() for name in files} == files  # nothing trained or written
    # another seed, another K: other numbers, and the recorded evaluation is not compared
    assert main(["evaluate", str(finished_run), "--samples", "20", "--repeats", "8", "--seed", "5", "--quiet"]) == 0
    assert "reproduced" not in capsys.readouterr().out


def test_evaluate_record_replaces_only_the_precise_evaluation(finished_run, capsys):
    before = json.loads((finished_run / "result.json").read_text())
    assert main(["evaluate", str(finished_run), "--repeats", "9", "--target-se", "0", "--record", "--quiet"]) == 0
    after = json.loads((finished_run / "result.json").read_text())
    assert after["precise_evaluation"]["repeats"] == 9
    assert {k: v for k, v in after.items() if k != "precise_evaluation"} == {
        k: v for k, v in before.items() if k != "precise_evaluation"
    }
    # --record keeps only the run's own split and K
    assert main(["evaluate", str(finished_run), "--samples", "20", "--record", "--quiet"]) == EXIT_INPUT
    assert "--record keeps only the run's own split and K" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda d: d / "missing", [], "no such run directory"),
        (lambda d: d, [], "not a run directory (no config.yaml)"),
        (None, ["--split", "test2"], "eval.split"),
        (None, ["--target-se", "-1"], "target_se: must be >= 0"),
    ],
    ids=["missing", "not-a-run", "bad-split", "bad-target"],
)
def test_evaluate_bad_input_is_one_line_and_exit_2(finished_run, tmp_path, capsys, make, args, message):
    target = finished_run if make is None else make(tmp_path)
    assert main(["evaluate", str(target), *args, "--quiet"]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_evaluate_refuses_an_unfinished_run(tmp_path, capsys):
    config = load_config(SMOKE, [f"output_dir={tmp_path}", "train.progress=false"])
    directory = run_directory(config)
    directory.mkdir(parents=True)
    (directory / "config.yaml").write_text(SMOKE.read_text())
    assert main(["evaluate", str(directory)]) == EXIT_INPUT
    assert "has not finished" in capsys.readouterr().err


def test_ctrl_c_during_evaluate_record_leaves_the_record_as_it_was(finished_run):
    """SIGINT while `micmco evaluate --record` evaluates: exit 130 with one line, result.json untouched."""
    import os
    import signal
    import subprocess
    import sys
    import time

    before = (finished_run / "result.json").read_bytes()
    command = [sys.executable, "-m", "micmco", "evaluate", str(finished_run), "--repeats", "100000", "--target-se",
               "0", "--record", "--quiet"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)  # fmt: skip
    time.sleep(6)  # imports done, evaluating
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted; nothing was changed" in err and "Traceback" not in err
    assert (finished_run / "result.json").read_bytes() == before


def test_a_run_without_repeats_records_no_precise_evaluation(tmp_path):
    config = load_config(SMOKE, [f"output_dir={tmp_path}", "train.progress=false", "train.steps=20", "eval.repeats=0"])
    record = run(config, echo=lambda message: None)
    assert "precise_evaluation" not in record and record["metrics"]["nll"] > 0
    # micmco evaluate adds one, with the default number of repeats at most
    assert main(["evaluate", str(run_directory(config)), "--target-se", "1", "--quiet"]) == EXIT_OK
