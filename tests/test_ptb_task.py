"""The PTB task end to end: a run trains and evaluates per token through the shared hub, resumes bit for bit
with dropout, writes rows of the one results schema, and the frontier code reads our and the paper's PTB trials."""

import math
import os
from pathlib import Path

import pytest
import torch

from micmco.config import ConfigError
from micmco.experiment import build_loss, build_model, load_config, run, task_of
from micmco.pareto import ParetoError, read_curves, read_paper_trials
from micmco.results import format_table, read_rows, result_row
from micmco.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "params/ptb/smoke"
PTB = REPO.parent / "shared/data/ptb"


@pytest.fixture(autouse=True)
def ptb_files(monkeypatch):
    if not PTB.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{PTB} is missing, but CI always provides it")
        pytest.skip(f"needs the Penn Treebank files of the project's shared data at {PTB}")
    monkeypatch.setenv("MICMCO_PTB", str(PTB))


def test_a_smoke_run_trains_and_evaluates_per_token(tmp_path):
    config = load_config(SMOKE / "ptb-vimco16-renyi-shared.yaml", [f"output_dir={tmp_path}", "train.progress=false"])
    record = run(config, echo=lambda *_: None)
    assert record["status"] == "complete", record.get("divergence")
    evaluation = record["evaluation"]
    assert evaluation["split"] == "valid" and evaluation["unit"] == "token"
    assert evaluation["units"] == 71_633  # the valid split's tokens after truncation to 35, <eos> included
    metrics = record["metrics"]
    assert "optimal_nll" not in metrics  # text has no known optimum
    assert 0 <= metrics["mutual_information"] <= metrics["nll"] < math.log(500)
    row = result_row(record["config"], record, "complete", "", 1.0, "run", 1, "abc")
    assert (row["task"], row["split"], row["regulariser"]) == ("ptb", "valid", "dropout-shared")
    assert (row["input_dropout"], row["state_dropout"], row["output_dropout"], row["l2"]) == ("0.2", "0.1", "0.3", "0")
    table = tmp_path / "ptb.tsv"
    table.write_text(format_table([row | {"trial": 0}], "ptb"))
    (curve,) = read_curves([table])
    assert curve.task == "ptb" and curve.split == "valid" and curve.reference_nll is None
    assert curve.setting_label == "V = 500, H = 32, dropout, shared masks"
    assert read_rows(table)[0].nll == pytest.approx(metrics["nll"], abs=1e-6)
    with pytest.raises(ParetoError, match="no known optimal NLL"):
        curve.normalised()


def test_an_interrupted_run_with_dropout_resumes_bit_for_bit(tmp_path):
    config = load_config(SMOKE / "ptb-vimco16-renyi-shared.yaml", ["train.steps=12", "train.progress=false"])
    task = task_of(config)

    def trainer(steps, path):
        config.train.steps = steps
        return Trainer(build_model(config), build_loss(config), task.training_data(config), config.train, config.seed,
                       checkpoint_path=path, fingerprint="x")  # fmt: skip

    straight = trainer(12, tmp_path / "a.pt")
    straight.fit()
    trainer(6, tmp_path / "b.pt").fit()
    resumed = trainer(12, tmp_path / "b.pt")
    resumed.fit()
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    assert straight.state.history[-1] == resumed.state.history[-1]  # (the 6-step run logs its own last step)


@pytest.mark.parametrize(
    "override, key",
    [
        ("model.input_dropout=1.0", "model.input_dropout"),
        ("model.state_dropout=-0.1", "model.state_dropout"),
        ("model.l2=-1e-4", "model.l2"),
        ("data.max_length=0", "data.max_length"),
        ("model.masks=every", "model.masks"),
        ("eval.split=dev", "eval.split"),
        ("model.l2=1e-4", "model.l2"),  # beside dropout: one regulariser at a time
    ],
)
def test_bad_ptb_config_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as error:
        load_config(SMOKE / "ptb-vimco16-renyi-shared.yaml", [override])
    assert str(error.value).startswith(key)


def test_the_papers_ptb_trials_read_as_per_token_curves_of_their_split_and_regulariser():
    folder = REPO / "data/paper-frontiers/ptb"
    shared = read_paper_trials(folder / "l40x0-bs256-hs128-t40-dreg16-kl-valid-nsd.tsv")
    assert (shared.task, shared.split, shared.task_values["regulariser"]) == ("ptb", "valid", "dropout-shared")
    assert shared.hyperparameters["state_dropout"].size == len(shared.mi) and shared.reference_nll is None
    train = read_paper_trials(folder / "l8x10-bs256-hs128-t40-vimco1-kl.tsv")
    assert (train.estimator, train.split, train.task_values["regulariser"]) == ("reinforce", "train", "none")
    l2 = read_paper_trials(folder / "l40x0-bs256-hs128-t40-dreg1-kl-valid-l2.tsv")
    assert l2.task_values["regulariser"] == "l2" and "l2" in l2.hyperparameters
    assert 4.4 < float(shared.nll.min()) < 4.8  # the paper's validation NLL per token at hs128 (Table 1: ~4.6)


def test_a_model_that_cannot_fit_is_refused_before_any_work(tmp_path):
    from micmco.experiment import preflight

    huge = load_config(SMOKE / "ptb-dreg16-kl.yaml", ["model.hidden_size=200000", f"output_dir={tmp_path / 'runs'}"])
    with pytest.raises(ConfigError, match="reduce data.batch_size, .*model.hidden_size, estimator.num_samples"):
        preflight(huge)
    assert not (tmp_path / "runs").exists()
