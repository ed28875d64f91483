"""Many trials in one process (micmco.batched): trial n of a batch equals the same trial run alone.

Compared, bit for bit on one CPU thread in float32: the logged training losses and metrics, the final
parameters, Adam's moments and step counts (the checkpoints), and the evaluation metrics in result.json,
for every base estimator x objective x latent kind of the synthetic task, with K' != K too. Then: a trial
that diverges leaves the others exactly as in a batch where it stayed sane; a batch killed mid-run and
resumed at another N, or alone, ends equal to the uninterrupted runs.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from conftest import REPO

from micmco.batched.run import batchable, run_batch
from micmco.experiment import run
from micmco.gradients import BASE_ESTIMATORS, check_estimator
from micmco.runconfig import load_config, run_directory
from micmco.tasks.synthetic import UniformSymbols

BASE = REPO / "params/synthetic/smoke/elbo-kl.yaml"
KINDS = ("none", "kl", "renyi", "power")
LAMS, ALPHAS, RATES = (0.2, 0.7, -0.03), (0.5, 2.0, 3.7), (1e-3, 3e-3, 1e-2)


def _samples(base: str) -> tuple[int, int | None]:
    spec = BASE_ESTIMATORS[base]
    return (1, None) if spec.max_samples == 1 or base == "elbo" else (4, None)


def _combinations():
    for base in BASE_ESTIMATORS:
        for latent in ("gaussian", "categorical"):
            for kind in KINDS:
                K, K_mi = _samples(base)
                try:
                    check_estimator(base, kind, K, K, latent == "gaussian", latent)
                except ValueError:
                    continue
                yield base, latent, kind, K, K_mi
    yield "dreg", "gaussian", "kl", 4, 1  # K' != K: the divergence term from the first K' samples
    yield "vimco", "categorical", "renyi", 4, 2


def _configs(tmp_path, base, latent, kind, K, K_mi, trials=3, steps=8, extra=None):
    latent_keys = (
        ["model.latent={kind: gaussian, num_latents: 4}"]
        if latent == "gaussian"
        else ["model.latent={kind: categorical, num_latents: 2, num_categories: 3}"]
    )
    common = [
        f"output_dir={tmp_path}", "data.vocab_size=40", "data.batch_size=16", "model.hidden_size=32",
        f"estimator.base={base}", f"estimator.num_samples={K}", f"objective.kind={kind}",
        f"train.steps={steps}", "train.log_every=4", "train.checkpoint_every=2", "train.progress=false",
        "eval.num_samples=4", "eval.batch_size=40", *latent_keys,
    ]  # fmt: skip
    if K_mi is not None:
        common.append(f"estimator.mi_samples={K_mi}")
    configs = []
    for n in range(trials):
        overrides = [f"train.learning_rate={RATES[n]}"]
        overrides.append(f"objective.lam={LAMS[n]}" if kind in ("kl", "renyi") else "objective.lam=null")
        overrides.append(f"objective.alpha={ALPHAS[n]}" if kind in ("renyi", "power") else "objective.alpha=null")
        overrides += [f"{key}={value}" for key, value in (extra or {}).get(n, {}).items()]
        configs.append(load_config(BASE, common + overrides))
    return configs


def _outcome(config) -> tuple[dict, dict]:
    run_dir = run_directory(config)
    record = json.loads((run_dir / "result.json").read_text())
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    return record, checkpoint


def _assert_same_run(batched, alone) -> None:
    (record_b, checkpoint_b), (record_a, checkpoint_a) = batched, alone
    assert record_b["status"] == record_a["status"]
    assert record_b["metrics"] == record_a["metrics"]
    assert record_b["train_history"] == record_a["train_history"]
    assert record_b["divergence"] == record_a["divergence"] if "divergence" in record_a else True
    for name, value in checkpoint_a["model"].items():
        assert torch.equal(checkpoint_b["model"][name], value), name
    opt_a, opt_b = checkpoint_a["optimizer"], checkpoint_b["optimizer"]
    assert opt_b["param_groups"] == opt_a["param_groups"]
    assert opt_b["state"].keys() == opt_a["state"].keys()
    for index, state in opt_a["state"].items():
        for key, value in state.items():
            assert torch.equal(opt_b["state"][index][key], value), (index, key)
    for key in ("step", "initial_loss", "partial_sums", "partial_count", "history", "resumed_from"):
        assert checkpoint_b["state"][key] == checkpoint_a["state"][key], key


@pytest.mark.parametrize("base,latent,kind,K,K_mi", list(_combinations()))
def test_trial_of_a_batch_equals_it_alone(tmp_path, base, latent, kind, K, K_mi):
    configs = _configs(tmp_path / "batch", base, latent, kind, K, K_mi)
    assert batchable(configs) is None
    records = run_batch(configs, echo=lambda line: None)
    assert [r["batch"]["trials"] for r in records] == [3, 3, 3]
    for config in configs:
        alone = config.__class__(**{**config.__dict__, "output_dir": str(tmp_path / "alone")})
        run(alone, echo=lambda line: None)
        _assert_same_run(_outcome(config), _outcome(alone))


def test_a_diverging_trial_leaves_the_others_as_they_would_be(tmp_path):
    """Trial 1's learning rate blows it up; trials 0 and 2 end exactly as in a batch where trial 1 stayed sane
    (and as alone), and trial 1 is recorded diverged with the reason its run alone gives."""
    sane = _configs(tmp_path / "sane", "dreg", "gaussian", "renyi", 4, None, steps=12)
    broken = _configs(tmp_path / "broken", "dreg", "gaussian", "renyi", 4, None, steps=12,
                      extra={1: {"train.learning_rate": 1e4}})  # fmt: skip
    run_batch(sane, echo=lambda line: None)
    records = run_batch(broken, echo=lambda line: None)
    assert records[1]["status"] == "diverged" and records[1]["divergence"]["reason"]
    for n in (0, 2):
        _assert_same_run(_outcome(broken[n]), _outcome(sane[n]))
    alone = broken[1].__class__(**{**broken[1].__dict__, "output_dir": str(tmp_path / "alone")})
    record = run(alone, echo=lambda line: None)
    assert record["status"] == "diverged"
    assert records[1]["divergence"] == record["divergence"]


def _interrupt_at(monkeypatch, step: int) -> None:
    """SIGINT to this process when the training data of ``step`` is drawn: the trainer finishes that step,
    checkpoints and raises KeyboardInterrupt, as a Ctrl-C there would."""
    draw = UniformSymbols.__call__

    def drawing(self, t):
        if t == step:
            os.kill(os.getpid(), signal.SIGINT)
        return draw(self, t)

    monkeypatch.setattr(UniformSymbols, "__call__", drawing)


def test_killed_batches_resume_at_another_size_or_alone(tmp_path, monkeypatch):
    """Trials 0 and 1 interrupted in a batch after step 3, trial 2 alone after step 6; then all three resume
    as one batch (trial 2 waits for the others' step) and trial 0's twin resumes alone: every one ends equal
    to its uninterrupted single run."""
    configs = _configs(tmp_path / "runs", "vimco", "categorical", "kl", 4, None, steps=10)
    _interrupt_at(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        run_batch(configs[:2], echo=lambda line: None)
    monkeypatch.undo()
    _interrupt_at(monkeypatch, 6)
    with pytest.raises(KeyboardInterrupt):
        run(configs[2], echo=lambda line: None)
    steps = [torch.load(run_directory(c) / "checkpoint.pt", weights_only=True)["state"]["step"] for c in configs]
    assert steps == [4, 4, 7]
    monkeypatch.undo()
    run_batch(configs, echo=lambda line: None)
    for config in configs:
        alone = config.__class__(**{**config.__dict__, "output_dir": str(tmp_path / "alone")})
        run(alone, echo=lambda line: None)
        batched, single = _outcome(config), _outcome(alone)
        assert batched[0]["resumed_from_steps"] and not single[0]["resumed_from_steps"]
        single[1]["state"]["resumed_from"] = batched[1]["state"]["resumed_from"]
        _assert_same_run(batched, single)


def test_a_batch_resumed_alone_equals_the_uninterrupted_run(tmp_path, monkeypatch):
    configs = _configs(tmp_path / "runs", "iwae", "gaussian", "power", 4, None, steps=10)
    _interrupt_at(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        run_batch(configs, echo=lambda line: None)
    monkeypatch.undo()
    run(configs[1], echo=lambda line: None)  # alone, from the batch's checkpoint
    alone = configs[1].__class__(**{**configs[1].__dict__, "output_dir": str(tmp_path / "alone")})
    run(alone, echo=lambda line: None)
    batched, single = _outcome(configs[1]), _outcome(alone)
    single[1]["state"]["resumed_from"] = batched[1]["state"]["resumed_from"]
    _assert_same_run(batched, single)


def test_batchable_names_what_differs(tmp_path):
    configs = _configs(tmp_path, "dreg", "gaussian", "renyi", 4, None, extra={2: {"estimator.num_samples": 8}})
    assert "estimator.num_samples" in batchable(configs)
    configs = _configs(tmp_path, "dreg", "gaussian", "renyi", 4, None, extra={0: {"objective.alpha": 1.0}})
    assert "α = 1" in batchable(configs)
    vqvae = load_config(REPO / "params/synthetic/smoke/vqvae.yaml", [f"output_dir={tmp_path}"])
    assert "one trial per process" in batchable([vqvae, vqvae])
    records = run_batch(configs[1:], echo=lambda line: None)  # α = 1 nowhere: batched
    assert all(r["batch"]["trials"] == 2 for r in records)
