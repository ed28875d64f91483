"""The contract every task keeps (micmco.tasks.TASKS), checked on one smoke config of each: training data
deterministic per step, the model seeded, evaluation units adding up to what the task says, result values
matching result columns, and a run round-tripping through a results row, the reader and the frontier code.
tests/test_third_task.py holds a task defined in a test to the same checks (CONTRACT)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from micmco import pareto
from micmco.config import to_dict
from micmco.experiment import run
from micmco.results import READER_COLUMNS, format_table, read_rows, read_table, result_row
from micmco.runconfig import load_config
from micmco.tasks import TASKS, Task, get_task, task_of_paper_folder
from micmco.tasks.base import plausibility

REPO = Path(__file__).resolve().parents[1]
# task -> (its smoke config, whether its data are the project's shared data): the picks of these tasks; any
# other task's is the first of params/<task>/smoke/ (smoke_config), so a new task adds nothing here
SMOKE = {
    "synthetic": (REPO / "params/synthetic/smoke/elbo-kl.yaml", False),
    "ptb": (REPO / "params/ptb/smoke/ptb-vimco16-renyi-shared.yaml", True),
}
QUICK = ["train.steps=4", "train.log_every=2", "train.checkpoint_every=2", "eval.num_samples=2", "train.progress=false"]


def smoke_config(name: str) -> tuple[Path, bool]:
    """(the smoke config of task ``name``, whether its data are the shared data): SMOKE's, or by convention."""
    if name in SMOKE:
        return SMOKE[name]
    found = sorted((REPO / "params" / name / "smoke").glob("*.yaml"))
    assert found, f"task {name} has no smoke config in params/{name}/smoke/"
    return found[0], False


def same(a, b) -> bool:
    """Equal batches: tensors, or tuples and lists of them (a PTB batch is (tokens, lengths, ...))."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def check_training_data_is_deterministic_per_step(task: Task, config, tmp_path: Path) -> None:
    data = task.training_data(config)
    assert same(data(3), data(3)) and same(data(3), task.training_data(config)(3))  # a resumed run's batches
    assert not same(data(3), data(4))


def check_the_model_is_seeded(task: Task, config, tmp_path: Path) -> None:
    rng = torch.get_rng_state()
    first, second = task.build_model(config).state_dict(), task.build_model(config).state_dict()
    assert torch.equal(rng, torch.get_rng_state())  # the global RNG is left alone
    assert list(first) == list(second) and all(torch.equal(first[name], second[name]) for name in first)


def check_evaluation_units_add_up(task: Task, config, tmp_path: Path) -> None:
    assert task.splits and task.split(config) in task.splits
    for split in task.splits:
        batches = list(task.evaluation_batches(config, split))
        assert all(len(batch.units) == len(batch.units.flatten()) for batch in batches)
        assert sum(float(batch.units.double().sum()) for batch in batches) == task.split_units(config, split), split


def check_result_values_match_result_columns(task: Task, config, tmp_path: Path) -> None:
    values = task.result_values(to_dict(config))
    assert list(values) == list(task.result_columns)
    assert set(task.curve_columns) <= set(task.result_columns)
    assert not set(task.result_columns) & set(READER_COLUMNS)  # the common columns are the results schema's


def check_a_run_round_trips_through_a_results_row(task: Task, config, tmp_path: Path) -> None:
    config.output_dir = str(tmp_path / "runs")
    record = run(config, echo=lambda *_: None)
    assert record["status"] == "complete", record.get("divergence")
    metrics, split = record["metrics"], task.split(config)
    assert record["evaluation"] == {"split": split, "unit": task.unit, "units": task.split_units(config, split)}
    row = result_row(record["config"], record, "complete", "", 1.0, "run", 1, "abc") | {"trial": 0}
    table = tmp_path / f"{task.name}.tsv"
    table.write_text(format_table([row], task.name))
    header, _ = read_table(table)
    assert set(READER_COLUMNS) <= set(header)
    (read,) = read_rows(table)
    assert (read.task, read.split, read.status) == (task.name, split, "complete")
    for curve in (*pareto.curves_of([read], table), *pareto.read_curves([table])):
        assert (curve.task, curve.split, curve.source) == (task.name, split, "ours")
        assert curve.mi.tolist() == [pytest.approx(metrics["mutual_information"], abs=1e-6)]
        assert curve.nll.tolist() == [pytest.approx(metrics["nll"], abs=1e-6)]
        assert curve.reference_nll == task.reference_nll(config) and curve.uniform_nll == task.uniform_nll(config)
        assert curve.task_values == {column: str(row[column]) for column in task.curve_columns}
        assert curve.setting_label and curve.setting_label == task.setting_label(curve.task_values)
        assert curve.setting_label in pareto.distinct_labels([curve])[0]


CONTRACT = [
    check_training_data_is_deterministic_per_step,
    check_the_model_is_seeded,
    check_evaluation_units_add_up,
    check_result_values_match_result_columns,
    check_a_run_round_trips_through_a_results_row,
]


@pytest.fixture(params=sorted(TASKS))
def task_config(request):
    """(task, its smoke config, quick) for every registered task; PTB's need the shared data."""
    path, shared = smoke_config(request.param)
    if shared:
        request.getfixturevalue("shared_dir")
    return get_task(request.param), load_config(path, QUICK)


def test_every_task_has_a_smoke_config():
    for name in TASKS:
        path, _ = smoke_config(name)
        assert path.is_file() and load_config(path).task == name
        assert get_task(name).name == name and get_task(name).config_class.__name__ != "RunConfig"


@pytest.mark.parametrize("check", CONTRACT, ids=lambda check: check.__name__.removeprefix("check_"))
def test_the_task_contract(task_config, check, tmp_path):
    task, config = task_config
    check(task, config, tmp_path)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_the_studies_default_parameters_have_ranges_that_make_valid_configs(name):
    task = get_task(name)
    path, _ = smoke_config(name)
    config = load_config(path)
    for parameter in task.default_parameters(config):
        key, low, high, scale = task.tuned_ranges[parameter]
        assert low < high and scale in ("linear", "log")
        for value in (low, high):
            load_config(path, [f"{key}={value}"])


@pytest.mark.parametrize("name", sorted(TASKS))
def test_the_plausibility_rule_is_every_tasks(name, request):
    """MI above the NLL and an NLL 10 times the uniform model's end a run as diverged, whatever the task."""
    path, shared = smoke_config(name)
    if shared:
        request.getfixturevalue("shared_dir")
    task, config = get_task(name), load_config(path)
    uniform = task.uniform_nll(config)
    reason, _ = task.plausibility({"nll": uniform, "mutual_information": uniform + 0.01}, config)
    assert "exceeds the NLL" in reason
    reason, _ = task.plausibility({"nll": 11 * uniform, "mutual_information": 0.1}, config)
    assert "more than 10 times the uniform model's" in reason
    assert task.plausibility({"nll": uniform, "mutual_information": float("nan")}, config)[0].startswith("non-finite")


@pytest.mark.parametrize("name", [name for name in sorted(TASKS) if get_task(name).paper_folder])
def test_the_papers_trial_files_read_as_curves_of_their_task(name):
    task = get_task(name)
    folder = REPO / "data/paper-frontiers" / task.paper_folder
    assert task_of_paper_folder(folder) is task
    curves = pareto.read_paper_folder(folder)
    assert curves and all(curve.task == name and curve.source == "paper" for curve in curves)
    assert all(curve.setting_label and curve.uniform_nll is not None for curve in curves)
    assert all(curve.split in task.splits for curve in curves)


def test_plausibility_of_evaluation_metrics():
    H = 6.9  # the data entropy of uniform symbols: also the uniform model's NLL
    assert plausibility({"nll": 7.0, "mutual_information": 5.0}, H, H) == (None, [])
    reason, _ = plausibility({"nll": float("nan"), "mutual_information": 5.0}, H, H)
    assert "non-finite" in reason
    reason, _ = plausibility({"nll": 6.0, "mutual_information": 1.0}, H, H)
    assert "below the data entropy" in reason
    reason, _ = plausibility({"nll": 7.0, "mutual_information": 7.5}, H, H, "symbol")
    assert "exceeds the NLL 7.0000 per symbol" in reason
    reason, warnings = plausibility({"nll": 9.0, "mutual_information": 8.0}, H, H)
    assert reason is None and "exceeds the data entropy" in warnings[0]
    assert plausibility({"nll": 6.0, "mutual_information": 1.0}, H) == (None, [])  # no known entropy: no floor
