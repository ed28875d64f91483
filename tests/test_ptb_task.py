"""The PTB task beyond the contract of every task (tests/test_tasks.py): its rows' regulariser columns and
label, a run resuming bit for bit with dropout, its config and data checks, and the paper's PTB trials."""

import hashlib
import json
from pathlib import Path

import pytest
import torch

from micmco.cli import main
from micmco.config import ConfigError, to_dict
from micmco.pareto import ParetoError, read_curves, read_paper_trials
from micmco.results import format_table, result_row
from micmco.runconfig import load_config
from micmco.tasks import get_task
from micmco.tasks.ptb_data import EXPECTED
from micmco.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "params/ptb/smoke"
PTB = REPO.parent / "shared/data/ptb"


@pytest.fixture(autouse=True)
def ptb_files(shared_dir, monkeypatch):
    """Mikolov's files in the project's shared data (conftest's shared_dir skips without them)."""
    monkeypatch.setenv("MICMCO_PTB", str(shared_dir / "data/ptb"))


def test_a_row_names_its_regulariser_and_rates_and_reads_as_a_curve_without_an_optimum(tmp_path):
    config = load_config(SMOKE / "ptb-vimco16-renyi-shared.yaml")
    record = {"metrics": {"nll": 5.1, "mutual_information": 0.2}, "evaluation": {"split": "valid"}}
    row = result_row(to_dict(config), record, "complete", "", 1.0, "run", 1, "abc")
    assert (row["task"], row["split"], row["regulariser"]) == ("ptb", "valid", "dropout-shared")
    assert (row["input_dropout"], row["state_dropout"], row["output_dropout"], row["l2"]) == ("0.2", "0.1", "0.3", "0")
    table = tmp_path / "ptb.tsv"
    table.write_text(format_table([row | {"trial": 0}], "ptb"))
    (curve,) = read_curves([table])
    assert curve.reference_nll is None  # text has no known optimum
    assert curve.setting_label == "V = 500, H = 32, dropout, shared masks"
    with pytest.raises(ParetoError, match="no known optimal NLL"):
        curve.normalised()


def test_an_interrupted_run_with_dropout_resumes_bit_for_bit(tmp_path):
    config = load_config(SMOKE / "ptb-vimco16-renyi-shared.yaml", ["train.steps=12", "train.progress=false"])
    task = get_task(config.task)

    def trainer(steps, path):
        config.train.steps = steps
        return Trainer(task.build_model(config), task.build_loss(config), task.training_data(config), config.train,
                       config.seed, checkpoint_path=path, fingerprint="x")  # fmt: skip

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


def copy_of_ptb(folder: Path, split: str = "", change=None) -> Path:
    """The PTB files copied into ``folder``, ``split``'s bytes changed (None: that file left out)."""
    folder.mkdir()
    for name in ("train", "valid", "test"):
        raw = (PTB / f"ptb.{name}.txt").read_bytes()
        if name != split:
            (folder / f"ptb.{name}.txt").write_bytes(raw)
        elif change is not None:
            (folder / f"ptb.{name}.txt").write_bytes(change(raw))
    return folder


def data_path(folder: Path) -> list[str]:
    return [f"data.path={folder}"]


BAD_DATA = {  # id -> (the overrides of a bad corpus made under a tmp folder, words of the one-line error)
    "no-folder": (lambda tmp: data_path(tmp / "nowhere"), ["no folder", "nowhere"]),
    "missing-file": (lambda tmp: data_path(copy_of_ptb(tmp / "d", "test")), ["lacks ptb.test.txt"]),
    "empty-train": (lambda tmp: data_path(copy_of_ptb(tmp / "d", "train", lambda raw: b"")), ["is empty"]),
    "crlf": (lambda tmp: data_path(copy_of_ptb(tmp / "d", "valid", lambda r: r.replace(b"\n", b"\r\n"))), ["\\r"]),
    "non-utf8": (lambda tmp: data_path(copy_of_ptb(tmp / "d", "test", lambda r: b"\xff" + r)), ["not UTF-8"]),
    "bom": (lambda tmp: data_path(copy_of_ptb(tmp / "d", "train", lambda r: b"\xef\xbb\xbf" + r)), ["byte-order"]),
    "checksum": (
        lambda tmp: data_path(copy_of_ptb(tmp / "d", "valid", lambda raw: raw.replace(b" the ", b" tha ", 1))),
        ["sha256", "data.unverified: true"],
    ),
    "truncated": (
        lambda tmp: data_path(copy_of_ptb(tmp / "d", "train", lambda raw: raw[: raw.index(b"\n", 10**6) + 1])),
        ["ptb.train.txt is 1000", "bytes, not the 5101618 of Mikolov's", "data.unverified: true"],
    ),
    "eos": (lambda tmp: data_path(copy_of_ptb(tmp / "d", "train", lambda r: b"a <eos> b\n" + r)), ["<eos>"]),
    "empty-line": (lambda tmp: data_path(copy_of_ptb(tmp / "d", "valid", lambda r: b"\n" + r)), ["line 1 is empty"]),
    "path-is-a-file": (lambda tmp: [f"data.path={PTB / 'ptb.train.txt'}"], ["is a file"]),
    "too-many-sentences": (lambda tmp: ["data.train_sentences=50000"], ["fewer than the 50000", "at most 42068"]),
}


def refused(tmp_path, capsys, argv: list[str], words: list[str]) -> None:
    """`micmco ARGV` ends with exit code 2 and one line holding ``words``, and makes no run directory."""
    assert main([*argv, "--output-dir", str(tmp_path / "runs")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("micmco: invalid config"), (out, err)
    assert "Traceback" not in err and all(word in err for word in words), err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_is_refused_in_one_line_before_any_run_directory(tmp_path, capsys, case):
    """The data were read after the run directory was made (config.yaml and lock were left behind), and
    outside the error handling when the projected time was timed (a traceback, exit 1)."""
    make, words = BAD_DATA[case]
    overrides = [item for override in make(tmp_path) for item in ("--set", override)]
    refused(tmp_path, capsys, ["train", str(SMOKE / "ptb-dreg16-kl.yaml"), "--quiet", *overrides], words)


@pytest.mark.parametrize("command", [["check"], ["train"]])
def test_check_and_a_projected_train_refuse_bad_data_before_saying_anything(tmp_path, capsys, monkeypatch, command):
    """`micmco check` printed "valid", then a traceback; `micmco train` without --quiet timed two steps on
    the missing data (a traceback). A mistyped $MICMCO_PTB was passed over for data/ptb or ../shared."""
    monkeypatch.setenv("MICMCO_PTB", str(tmp_path / "ptb-typo"))
    words = [f"$MICMCO_PTB is '{tmp_path / 'ptb-typo'}': no such folder", "or unset it"]
    refused(tmp_path, capsys, [*command, str(SMOKE / "ptb-dreg16-kl.yaml")], words)


def test_a_sweep_on_bad_data_starts_no_trial(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MICMCO_PTB", str(copy_of_ptb(tmp_path / "d", "valid", lambda raw: raw[:-100])))
    study = REPO / "params/studies/cpu/ptb-dreg16-kl.yaml"
    runs = tmp_path / "runs"
    assert main(["sweep", str(study), "--results-dir", str(tmp_path / "results"), "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "cannot run: data.path:" in err and "data.unverified: true" in err and "Traceback" not in err
    assert not runs.exists() or not [path for path in runs.rglob("*") if path.name != "logs"]


def test_unverified_data_need_the_opt_in_and_get_a_run_of_their_own(tmp_path):
    """A truncated ptb.train.txt trained, exited 0 with no warning in its record, and in the default runs/
    was answered "already finished" with the real data's result: its run directory was the real data's."""
    from micmco.runconfig import fingerprint

    half = copy_of_ptb(tmp_path / "half", "train", lambda raw: raw[: raw.index(b"\n", 10**6) + 1])
    other = copy_of_ptb(tmp_path / "other", "train", lambda raw: raw[: raw.index(b"\n", 2 * 10**6) + 1])
    same = copy_of_ptb(tmp_path / "same", "train", lambda raw: raw[: raw.index(b"\n", 10**6) + 1])
    path = SMOKE / "ptb-dreg16-kl.yaml"
    real = fingerprint(load_config(path))
    assert real == "6b05a936b0"  # the key's default leaves every run's identity as it was
    assert fingerprint(load_config(path, [f"data.path={PTB}"])) == real  # where the files are is not identity
    opted = {folder: fingerprint(load_config(path, [f"data.path={folder}", "data.unverified=true"])) for folder in
             (half, other, same)}  # fmt: skip
    assert real not in opted.values() and opted[half] != opted[other] and opted[half] == opted[same]


@pytest.mark.slow
def test_an_opted_in_run_says_its_data_are_unverified(tmp_path, capsys):
    half = copy_of_ptb(tmp_path / "half", "train", lambda raw: raw[: raw.index(b"\n", 10**6) + 1])
    path = SMOKE / "ptb-dreg16-kl.yaml"
    small = ["--set", "train.steps=2", "--set", "eval.num_samples=2", "--set", "data.train_sentences=64"]
    argv = ["train", str(path), "--quiet", *small, "--output-dir", str(tmp_path / "runs")]
    assert main([*argv, "--set", f"data.path={half}", "--set", "data.unverified=true"]) == 0
    out, err = capsys.readouterr()
    assert "note: data.unverified: ptb.train.txt in" in out and "not comparable with the paper's" in err
    assert main(argv) == 0  # the real files ($MICMCO_PTB): trained, not "already finished" with the other result
    assert "already finished" not in capsys.readouterr().out
    records = {
        r["data"]["files"]: r
        for r in map(lambda p: json.loads(p.read_text()), (tmp_path / "runs").glob("*/result.json"))
    }
    unverified, verified = records["unverified"], records["verified"]
    assert unverified["data"]["folder"] == str(half) and verified["data"]["folder"] == str(PTB.resolve())
    assert unverified["data"]["sha256"]["train"] == hashlib.sha256((half / "ptb.train.txt").read_bytes()).hexdigest()
    assert verified["data"]["sha256"]["valid"] == EXPECTED["valid"][1]
    assert any("data.unverified" in warning for warning in unverified["warnings"]) and verified["warnings"] == []


AUDITED = [
    (base, kind)
    for base in ("dreg", "vimco", "reinforce", "iwae")
    for kind in ("gaussian", "categorical")
    if not (kind == "categorical" and base in ("dreg", "iwae"))  # reparameterised estimators need Gaussian z
]


@pytest.mark.parametrize("base,kind", AUDITED)
def test_a_ptb_training_step_has_no_host_device_synchronisation(base, kind):
    """No operation of a step (forward and backward, state dropout, shared masks) reads a value on the host
    or has a value-dependent shape: on CUDA each would make host and GPU take turns."""
    from micmco.syncaudit import TrainingStep, audit_steps

    latent = (
        "{kind: gaussian, num_latents: 4}"
        if kind == "gaussian"
        else "{kind: categorical, num_latents: 2, num_categories: 3}"
    )
    config = load_config(
        SMOKE / "ptb-vimco16-renyi-shared.yaml",
        [f"estimator.base={base}", "estimator.num_samples=4", f"model.latent={latent}", "data.batch_size=4",
         "model.masks=shared", "model.state_dropout=0.2", "objective={kind: none}"],
    )  # fmt: skip
    assert audit_steps(TrainingStep(config, optimise=False), 2) == []


@pytest.mark.parametrize("seed", [0, 1, 2**32 - 1, 2**32, 2**62 + 12345, 2**63 - 1, 6_075_115_374_129_412_707])
def test_the_mask_seed_is_the_cpu_generators_first_draw_computed_on_the_host(seed):
    from micmco.tasks.ptb import first_cpu_draw

    expected = torch.randint(2**62, (1,), generator=torch.Generator().manual_seed(seed)).item()
    assert first_cpu_draw(seed) == expected


def test_the_sync_audit_names_host_reads_and_value_dependent_shapes_but_not_packed_batch_sizes():
    from micmco.syncaudit import SyncAudit

    x = torch.tensor([1.0, 0.0, 2.0])
    with SyncAudit() as audit:
        x.sum().item()
        x[x > 0]
        x.nonzero()
        lstm = torch.nn.LSTM(2, 3, batch_first=True)  # packed input: nn.LSTM reads batch_sizes, a host tensor
        lstm(torch.nn.utils.rnn.pack_padded_sequence(torch.randn(2, 4, 2), [4, 2], batch_first=True))
    assert audit.syncs == ["aten._local_scalar_dense", "aten.index (boolean mask)", "aten.nonzero"]
