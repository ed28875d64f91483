"""micmco as a new user meets it: strings for enums, bad input, two processes at once, divergence."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from micmco import gradients
from micmco.cli import main
from micmco.config import ConfigError
from micmco.gradients import BaseEstimator, VariationalLoss, surrogate_objective
from micmco.latents import CategoricalLatent, GaussianLatent
from micmco.models import SingleSymbolVAE
from micmco.objectives import Objective, ObjectiveKind, objective_value
from micmco.runconfig import fingerprint, load_config, run_directory
from micmco.tasks.base import plausibility
from micmco.util import EXIT_DIVERGED, EXIT_INPUT, EXIT_RUNNING

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "params" / "synthetic" / "smoke"

# --- enums and their strings -------------------------------------------------------------------------

KINDS = {
    ObjectiveKind.NONE: {},
    ObjectiveKind.KL: {"lam": 0.5},
    ObjectiveKind.RENYI: {"lam": 0.3, "alpha": 2.0},  # not 0.5: with λ = (α - 1)/α Rényi is the power objective
    ObjectiveKind.POWER: {"alpha": 2.0},
}


def _terms(seed=0):
    g = torch.Generator().manual_seed(seed)
    return -torch.rand(8, 5, generator=g) * 4, torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)


@pytest.mark.parametrize("kind", list(ObjectiveKind), ids=lambda k: k.value)
def test_every_objective_kind_behaves_the_same_as_enum_and_string(kind):
    log_lik, log_prior, log_q = _terms()
    by_enum = objective_value(kind, log_lik, log_prior, log_q, **KINDS[kind])
    by_string = objective_value(kind.value, log_lik, log_prior, log_q, **KINDS[kind])
    assert torch.equal(by_enum, by_string)
    assert Objective(kind.value, **KINDS[kind]) == Objective(kind, **KINDS[kind])
    assert Objective(kind.value, **KINDS[kind]).kind is kind
    # and the four kinds really differ (the bug: every string fell through to kl or none)
    others = [objective_value(k.value, log_lik, log_prior, log_q, **KINDS[k]) for k in ObjectiveKind if k is not kind]
    assert all(not torch.allclose(by_string, other) for other in others)


def test_the_renyi_objective_from_a_string_is_not_the_kl_objective():
    log_lik, log_prior, log_q = _terms()
    log_w = log_lik + log_prior - log_q
    renyi = Objective("renyi", lam=0.5, alpha=2.0, num_samples=8, mi_samples=8)(log_w, log_lik)
    kl = Objective("kl", lam=0.5, num_samples=8, mi_samples=8)(log_w, log_lik)
    assert (renyi > kl).all()  # sample by sample, the Rényi estimate is above the KL one for α > 1


@pytest.mark.parametrize("bad", ["renyii", "KL", 3, None])
def test_unknown_kinds_and_bases_name_the_valid_choices(bad):
    with pytest.raises(ValueError, match="valid choices: none, kl, renyi, power"):
        Objective(bad)
    with pytest.raises(ValueError, match="valid choices: none, kl, renyi, power"):
        objective_value(bad, *_terms())
    with pytest.raises(ValueError, match="valid choices: elbo, iwae, stl, dreg, reinforce, vimco"):
        VariationalLoss(bad, Objective("kl", 0.5))


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("inf"), float("nan")])
def test_objective_rejects_unusable_alpha(alpha):
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        Objective("renyi", lam=0.5, alpha=alpha)


def _gaussian_model():
    torch.manual_seed(0)
    return SingleSymbolVAE(20, GaussianLatent(3), hidden_size=8)


def _categorical_model():
    torch.manual_seed(0)
    return SingleSymbolVAE(20, CategoricalLatent(2, 3), hidden_size=8)


@pytest.mark.parametrize(
    "base, kind, K, model",
    [
        ("iwae", "kl", 4, _gaussian_model),
        ("dreg", "renyi", 4, _gaussian_model),
        ("elbo", "power", 1, _gaussian_model),
        ("vimco", "renyi", 4, _categorical_model),
        ("reinforce", "none", 1, _categorical_model),
    ],
)
def test_variational_loss_is_the_same_for_enums_and_strings(base, kind, K, model):
    x = torch.arange(6)
    params = {k: v for k, v in KINDS[ObjectiveKind(kind)].items()}
    by_string = VariationalLoss(base, Objective(kind, num_samples=K, mi_samples=K, **params))
    by_enum = VariationalLoss(
        BaseEstimator(base), Objective(ObjectiveKind(kind), num_samples=K, mi_samples=K, **params)
    )
    m = model()
    a = by_string(m, x, torch.Generator().manual_seed(1))[0]
    b = by_enum(m, x, torch.Generator().manual_seed(1))[0]
    assert torch.equal(a, b)


def test_the_python_api_runs_the_same_combination_checks_as_configs():
    with pytest.raises(ConfigError, match="stl is unbiased only with one sample"):
        VariationalLoss("stl", Objective("kl", 0.5, num_samples=16, mi_samples=16))
    with pytest.raises(ConfigError, match="vimco needs at least 2 samples"):
        VariationalLoss("vimco", Objective("kl", 0.5))
    with pytest.raises(ConfigError, match="elbo uses the analytic KL"):
        VariationalLoss("elbo", Objective("kl", 0.5, num_samples=1, mi_samples=4))
    loss = VariationalLoss("dreg", Objective("kl", 0.5, num_samples=4, mi_samples=4))
    with pytest.raises(ConfigError, match="dreg needs reparameterised samples, which categorical latents do not have"):
        loss(_categorical_model(), torch.arange(4))
    model = _categorical_model()
    with pytest.raises(ConfigError, match="iwae needs reparameterised samples"):
        surrogate_objective(
            "iwae",
            Objective("kl", 0.5, num_samples=2, mi_samples=2),
            model.latent,
            model.posterior(torch.arange(3)),
            lambda z: model.log_likelihood(torch.arange(3), z),
        )
    with pytest.raises(ConfigError, match="stl is unbiased only"):
        model = _gaussian_model()
        surrogate_objective(
            gradients.BaseEstimator.STL,
            Objective("kl", 0.5, num_samples=3, mi_samples=3),
            model.latent,
            model.posterior(torch.arange(3)),
            lambda z: model.log_likelihood(torch.arange(3), z),
        )


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


def test_yaml_is_read_with_a_safe_loader_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _config_file(tmp_path, "name: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="could not determine a constructor"):
        load_config(path)
    assert not (tmp_path / "pwned").exists()


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


# --- divergence -------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, reason",
    [
        ("vimco16-renyi.yaml", "training loss rose"),
        ("reinforce1-kl.yaml", "training loss rose"),
        ("vqvae.yaml", "training loss rose"),
        ("elbo-kl.yaml", "non-finite loss"),
    ],
)
def test_a_diverging_run_ends_with_a_diverged_record_and_its_own_exit_code(tmp_path, capsys, name, reason):
    args = ["train", str(SMOKE / name), "--quiet", "--set", "train.learning_rate=100", "--output-dir", str(tmp_path)]
    code, out, err = _run_cli(capsys, *args)
    assert code == EXIT_DIVERGED
    assert "Traceback" not in err and reason in err and len(err.strip().splitlines()) == 1
    record = json.loads(next(tmp_path.glob("*/result.json")).read_text())
    assert record["status"] == "diverged"
    divergence = record["divergence"]
    assert reason in divergence["reason"] and divergence["step"] >= 1
    assert divergence["last_finite_metrics"] is None or "loss" in divergence["last_finite_metrics"]
    code, _, err = _run_cli(capsys, *args)  # rerunning finds the record, trains nothing
    assert code == EXIT_DIVERGED


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


# --- two processes on one run directory ---------------------------------------------------------------------


def _micmco(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "micmco.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"},
    )


def _wait_for(path: Path, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and path.stat().st_size > 0:
            return
        time.sleep(0.02)
    raise TimeoutError(f"{path} never appeared")


@pytest.mark.slow
def test_the_same_command_twice_at_once_trains_once(tmp_path):
    args = ["train", str(SMOKE / "dreg16-renyi.yaml"), "--quiet", "--output-dir", str(tmp_path)]
    args += ["--set", "train.steps=3000", "--set", "train.checkpoint_every=100"]
    first = _micmco(*args)
    try:
        run_dir = run_directory(
            load_config(SMOKE / "dreg16-renyi.yaml", [f"output_dir={tmp_path}", "train.steps=3000"])
        )
        _wait_for(run_dir / "checkpoint.pt")
        second = _micmco(*args)
        assert second.wait(timeout=60) == EXIT_RUNNING
        err = second.stderr.read()
        assert f"already running (pid {first.pid})" in err and "Traceback" not in err
        first.kill()  # kill -9: the OS releases the lock; nothing is stuck
        first.wait(timeout=30)
        third = _micmco(*args)
        assert third.wait(timeout=300) == 0, third.stderr.read()
        record = json.loads((run_dir / "result.json").read_text())
        assert record["status"] == "complete" and len(record["resumed_from_steps"]) == 1
    finally:
        first.kill()


@pytest.mark.slow
def test_two_processes_started_together_one_trains_one_refuses(tmp_path):
    args = ["train", str(SMOKE / "elbo-kl.yaml"), "--quiet", "--output-dir", str(tmp_path)]
    args += ["--set", "train.steps=2000"]
    processes = [_micmco(*args) for _ in range(2)]
    codes = sorted(p.wait(timeout=300) for p in processes)
    # the second either finds the lock held or, if the first already finished, the finished record
    assert codes[0] == 0 and codes[1] in (0, EXIT_RUNNING)
    assert len(list(tmp_path.glob("*/result.json"))) == 1
    assert not list(tmp_path.glob("*/*.partial"))


@pytest.mark.slow
def test_sigterm_during_evaluation_is_resumable(tmp_path):
    """A signal after the last step (during evaluation) interrupts; the rerun evaluates without training."""
    args = ["train", str(SMOKE / "elbo-kl.yaml"), "--quiet", "--output-dir", str(tmp_path)]
    args += ["--set", "train.steps=50", "--set", "data.vocab_size=5000", "--set", "eval.batch_size=5"]
    process = _micmco(*args)
    config = load_config(
        SMOKE / "elbo-kl.yaml",
        [f"output_dir={tmp_path}", "train.steps=50", "data.vocab_size=5000", "eval.batch_size=5"],
    )
    run_dir = run_directory(config)
    deadline = time.time() + 120
    while time.time() < deadline:  # the final checkpoint marks the end of training
        if (run_dir / "checkpoint.pt").exists():
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 130
    assert "Rerun the same command to resume" in process.stderr.read()
    assert not (run_dir / "result.json").exists()
    again = _micmco(*args)
    assert again.wait(timeout=300) == 0
    record = json.loads((run_dir / "result.json").read_text())
    assert record["steps"] == 50 and record["resumed_from_steps"] == [50]


@pytest.mark.parametrize("command", ["sweep", "pareto"])
def test_subcommands_with_their_own_parsers_are_reachable(capsys, command):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0 and f"usage: micmco {command}" in capsys.readouterr().out


def test_a_runaway_objective_is_caught_by_the_loss_floor(tmp_path, monkeypatch):
    """The rule: for discrete data no objective averages above 0 nats, so a training loss averaging below
    -1 nat is a runaway. Eq. 12's grouping of DReG 16/1 (the code before K' ≠ K was fixed) ran away to
    a loss of -2.7e21 and ended `complete`; replayed here, it ends `diverged` at the first log."""
    from micmco import objectives
    from micmco.estimators import logmeanexp, snis

    def eq12_divergence(self, log_w, log_lik):  # Ŝ^K + λ D̂^K': the old, unbounded grouping
        w, ll = log_w[: self.mi_samples], log_lik[: self.mi_samples]
        return snis(w, ll) - logmeanexp(w)

    monkeypatch.setattr(objectives.Objective, "divergence", eq12_divergence)
    overrides = ["objective.lam=0.9", "train.steps=400", "train.log_every=50", "train.progress=false"]
    config = load_config(REPO / "params/synthetic/cpu/trial-dreg16-kl1.yaml", overrides + [f"output_dir={tmp_path}"])
    from micmco.experiment import run

    record = run(config, echo=lambda *_: None)
    assert record["status"] == "diverged", record.get("metrics")
    assert "ran away upwards" in record["divergence"]["reason"] and record["divergence"]["step"] <= 400


def test_an_nll_ten_times_the_uniform_models_is_diverged():
    from micmco.tasks.synthetic import TASK

    config = load_config(SMOKE / "elbo-kl.yaml", ["data.vocab_size=200"])
    ln_v = math.log(200)
    reason, _ = TASK.plausibility({"nll": 164.0, "mutual_information": 5.0, "optimal_nll": ln_v}, config)
    assert reason and "more than 10 times the uniform model's ln V = 5.2983" in reason
    assert TASK.plausibility({"nll": 9 * ln_v, "mutual_information": 5.0, "optimal_nll": ln_v}, config)[0] is None


def test_a_signal_during_the_heavy_imports_is_deferred_not_swallowed(tmp_path, monkeypatch):
    from micmco.util import import_deferring_signals

    # A package probing an optional dependency catches what an interrupted import raises (torch and
    # Optuna do: Ctrl-C 0.7 s into importing them was lost, and a sweep started anyway).
    (tmp_path / "probing_package.py").write_text(
        "import os, signal, time\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.2)\n"
        "except BaseException:\n"
        "    pass\n"
    )
    (tmp_path / "quiet_package.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = signal.getsignal(signal.SIGINT)
    assert import_deferring_signals(["quiet_package"]) is False
    assert import_deferring_signals(["probing_package"]) is True  # the caller stops: exit 130
    assert signal.getsignal(signal.SIGINT) is before  # the handlers are back
