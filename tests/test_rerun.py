"""A row of a results table reruns as its trial: full-precision values from the study's journal, the same run
name (fingerprint), the same recorded numbers; and the tables' precise columns are written and read."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from micmco.config import ConfigError
from micmco.evaluation import HALF_KEYS
from micmco.rerun import cli_main, table_trial, table_trials, trial_config
from micmco.results import HALF_COLUMNS, PRECISE_COLUMNS, format_table, read_rows, result_row

REPO = Path(__file__).resolve().parents[1]
CPU = REPO / "results" / "cpu"
SYNTHETIC_TABLES = sorted(t for t in CPU.glob("cpu-*.tsv") if not t.name.startswith("cpu-ptb"))


@pytest.mark.parametrize("table", SYNTHETIC_TABLES[::6], ids=lambda t: t.stem)
def test_every_row_rebuilds_its_run_from_the_journal(table, tmp_path):
    """Without training: each row's full-precision values give back its run directory's name, and the
    table writes them at full precision (a six-digit learning rate would be another trial)."""
    for item in table_trials(table):
        config = trial_config(item, tmp_path)  # a ConfigError if the fingerprint differs
        assert config.train.learning_rate == item.params["learning_rate"]
        if item.row.get("eval_repeats"):  # re-exported since: the cell is the very float
            assert float(item.row["learning_rate"]) == item.params["learning_rate"]


def test_a_row_that_is_not_in_the_table_names_the_valid_trials():
    with pytest.raises(ConfigError, match=r"has no trial 999; its trials: \[0, 1"):
        table_trial(CPU / "cpu-elbo-renyi.tsv", 999)
    with pytest.raises(ConfigError, match="no such table"):
        table_trial(CPU / "cpu-nothing.tsv", 0)


def test_rerun_cli_bad_input(capsys):
    assert cli_main([str(CPU / "cpu-elbo-renyi.tsv")]) == 2
    assert "give trial numbers or --all" in capsys.readouterr().err
    assert cli_main([str(CPU / "cpu-elbo-renyi.tsv"), "999"]) == 2
    assert "has no trial 999" in capsys.readouterr().err
    assert cli_main([str(CPU / "cpu-elbo-renyi.tsv"), "0", "--retrained-here"]) == 2
    assert "--retrained-here evaluates a row that does not reproduce: give --evaluate too" in capsys.readouterr().err


@pytest.mark.slow
def test_a_committed_row_reruns_to_its_recorded_numbers(tmp_path):
    """Retrained from its journal's values, a committed row is its run again, with its recorded numbers to the
    table's six decimals (one precise repeat: what is checked is training and the recorded evaluation)."""
    from micmco.experiment import run
    from micmco.rerun import reproduces

    item = table_trial(CPU / "cpu-elbo-renyi.tsv", 0)
    config = trial_config(item, tmp_path, ["eval.repeats=1", "train.progress=false"])
    record = run(config, echo=lambda line: None)
    assert record["fingerprint"] == "1cafc4b008" and reproduces(record, item.row)
    assert f"{record['metrics']['nll']:.6f}" == item.row["nll"] == "5.430070"
    assert not reproduces({**record, "metrics": {**record["metrics"], "nll": 5.43008}}, item.row)


PRECISE = {
    "nll": 5.3166,
    "nll_se": 0.0012,
    "mutual_information": 4.55,
    "mutual_information_se": 0.002,
    "repeats": 64,
    "nll_select": 5.3161,
    "mutual_information_select": 4.551,
    "nll_report": 5.3171,
    "nll_report_se": 0.0017,
}


def _config() -> dict:
    from micmco.config import to_dict
    from micmco.runconfig import load_config

    return to_dict(
        load_config(REPO / "params" / "synthetic" / "smoke" / "elbo-kl.yaml", ["train.learning_rate=0.0011471437291"])
    )


def test_the_precise_columns_are_written_and_read(tmp_path):
    record = {"metrics": {"nll": 5.33, "mutual_information": 4.5}, "precise_evaluation": PRECISE}
    row = {"trial": 0, **result_row(_config(), record, "complete", "", 1.0, "run-abc", 1, "c0ffee")}
    assert row["learning_rate"] == "0.0011471437291"  # full precision, not 0.00114714
    old = {**row, "trial": 1, **dict.fromkeys(PRECISE_COLUMNS, "")}
    path = tmp_path / "t.tsv"
    path.write_text(format_table([row, old], "synthetic"))
    new_row, old_row = read_rows(path)
    assert (new_row.nll_precise, new_row.nll_se, new_row.mi_precise, new_row.mi_se, new_row.eval_repeats) == (
        5.3166,
        0.0012,
        4.55,
        0.002,
        64,
    )
    assert (new_row.nll_select, new_row.mi_select, new_row.nll_report, new_row.nll_report_se) == (
        5.3161,
        4.551,
        5.3171,
        0.0017,
    )
    assert math.isnan(old_row.nll_se) and math.isnan(old_row.nll_precise) and old_row.eval_repeats == 0
    assert math.isnan(old_row.nll_report) and math.isnan(old_row.mi_select)
    # a precise evaluation recorded before its halves were (no half columns filled) reads as having none
    halfless = {**row, "trial": 2, **dict.fromkeys(HALF_COLUMNS, "")}
    path.write_text(format_table([halfless], "synthetic"))
    (halfless_row,) = read_rows(path)
    assert halfless_row.nll_precise == 5.3166 and math.isnan(halfless_row.nll_report)
    path.write_text(format_table([row, old], "synthetic"))
    assert new_row.hyperparameters["learning_rate"] == 0.0011471437291
    # a table written before the columns existed reads as unknown
    header, *lines = path.read_text().splitlines()
    keep = [i for i, name in enumerate(header.split("\t")) if name not in PRECISE_COLUMNS]
    path.write_text("\n".join("\t".join(line.split("\t")[i] for i in keep) for line in [header, *lines]) + "\n")
    assert all(math.isnan(r.nll_se) and r.eval_repeats == 0 for r in read_rows(path))
    # a negative standard error is refused, naming the line and column
    path.write_text(format_table([{**row, "nll_se": "-0.1"}], "synthetic"))
    with pytest.raises(ValueError, match="line 2: column nll_se: a standard error is >= 0"):
        read_rows(path)


def test_the_export_keeps_full_precision_and_recorded_evaluations():
    import optuna
    from optuna.distributions import FloatDistribution

    from micmco.sweep.optuna_study import rows_of

    row = result_row(
        _config(), {"metrics": {"nll": 5.33, "mutual_information": 4.5}}, "complete", "", 1.0, "r1", 1, "c"
    )
    row["learning_rate"] = "0.00114714"  # as rows were recorded before: six digits
    distributions = {"learning_rate": FloatDistribution(1e-4, 1e-2, log=True)}
    trial = optuna.trial.create_trial(
        params={"learning_rate": 0.0011471437291}, distributions=distributions, values=[0.1, 0.2],
        user_attrs={"row": row, "outcome": "complete"},
    )  # fmt: skip
    (exported,) = rows_of([trial], None, {"r1": PRECISE})
    assert exported["learning_rate"] == "0.0011471437291"
    assert (exported["nll_precise"], exported["nll_se"], exported["eval_repeats"]) == ("5.316600", "0.001200", "64")
    assert (exported["nll_select"], exported["nll_report"], exported["nll_report_se"]) == (
        "5.316100", "5.317100", "0.001700"
    )  # fmt: skip
    (plain,) = rows_of([trial])
    assert plain["nll_se"] == ""


def test_recording_an_evaluation_kept_before_its_halves_computes_them_from_its_values(tmp_path):
    """A result.json's precise evaluation from before the halves existed has each repeat's values: recording it
    in the study (what scripts/record_halves.py does) writes the halves a frontier chooses and reports on."""
    import optuna

    from micmco.sweep.optuna_study import record_evaluation, recorded_evaluations

    values = {"nll": [5.30, 5.32, 5.31, 5.35], "mutual_information": [4.5, 4.4, 4.6, 4.3]}
    old = {key: value for key, value in PRECISE.items() if key not in HALF_KEYS} | {"samples": 100, "seed": 0}
    study = optuna.create_study(directions=["minimize", "minimize"])
    record_evaluation(study, "r1", {**old, "split": "valid", "values": values})
    kept = recorded_evaluations(study)["r1"]
    assert "values" not in kept  # the journal keeps the numbers, not every repeat
    assert kept["nll_select"] == pytest.approx(5.305) and kept["nll_report"] == pytest.approx(5.335)
    assert kept["mutual_information_select"] == pytest.approx(4.55)
    assert kept["nll_report_se"] == pytest.approx(0.015)


def test_a_row_that_does_not_rerun_here_is_evaluated_only_as_retrained_here(tmp_path, capsys):
    """A row recorded on another machine (here: its table's NLL changed, as another machine's floating point
    changes it) is refused by ``micmco rerun --evaluate --record``, its table untouched; with
    ``--retrained-here`` it is evaluated precisely as retrained here and the table says so: retrain_nll and
    retrain_mi are that model's own recorded numbers."""
    import csv

    from micmco.sweep import cli_main as sweep_main

    studies = tmp_path / "params" / "studies" / "smoke"
    studies.mkdir(parents=True)
    smoke = REPO / "params" / "synthetic" / "smoke" / "elbo-kl.yaml"
    (studies / "tiny.yaml").write_text(
        f"name: tiny\nbase: {smoke}\nprofile: smoke\ntrials: 1\nsampler: random\nseed: 1\n"
        'set: ["train.steps=20", "eval.num_samples=10", "train.progress=false"]\n'
        "parameters:\n  learning_rate: {low: 1.0e-3, high: 1.0e-2, scale: log}\n"
    )
    results, runs = tmp_path / "results", tmp_path / "runs"
    args = ["--results-dir", str(results), "--runs-dir", str(runs), "--threads", "1"]
    assert sweep_main([str(studies / "tiny.yaml"), *args]) == 0
    (table,) = (results / "smoke").glob("*.tsv")
    text = table.read_text()
    (row,) = csv.DictReader(text.splitlines(), delimiter="\t")
    recorded = row["nll"]
    elsewhere = text.replace(recorded, f"{float(recorded) + 0.01:.6f}")  # as recorded on another machine
    table.write_text(elsewhere)
    command = [str(table), "0", "--runs-dir", str(runs), "--evaluate", "--record", "--repeats", "8", "--quiet"]
    assert cli_main(command) == 1
    assert "NOT reproduced" in capsys.readouterr().out
    assert table.read_text() == elsewhere  # nothing recorded
    assert cli_main([*command, "--retrained-here"]) == 0
    assert "evaluated as retrained here" in capsys.readouterr().out
    (evaluated,) = read_rows(table)
    assert f"{evaluated.retrain_nll:.6f}" == recorded and evaluated.eval_repeats == 8
    assert evaluated.nll_report_se > 0 and not math.isnan(evaluated.retrain_mi)
