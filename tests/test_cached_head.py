"""The cached softmax head against the recomputing one (issue 31): the value bit for bit in float32 in both of the
recomputing head's regimes (the reference path for small logits, cache-sized chunks for large ones), gradients
within float rounding (and exactly right by gradcheck in float64), for the full backward and for DReG's path-only
pass, which must not touch the weight."""

import json
from pathlib import Path

import pytest
import torch

from micmco.models.cached_head import CachedLinearLogSoftmaxGather, cached_head_applies
from micmco.models.common import SMALL_LOGITS_BYTES, head_chunk_rows, linear_log_softmax_gather


def _inputs(K: int, B: int, H: int, V: int, dtype=torch.float32, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(K, B, H, generator=generator, dtype=dtype).requires_grad_()
    weight = (torch.randn(V, H, generator=generator, dtype=dtype) / H**0.5).requires_grad_()
    bias = torch.randn(V, generator=generator, dtype=dtype).requires_grad_()
    x = torch.randint(V, (B,), generator=generator)
    return hidden, weight, bias, x


def _cached(hidden, weight, bias, x):
    K, B, H = hidden.shape  # samples, batch, hidden size
    targets = x.expand(K, B).reshape(K * B)
    rows = hidden.reshape(K * B, H)
    chunk = head_chunk_rows(K * B, weight.shape[0], "cpu") or K * B
    return CachedLinearLogSoftmaxGather.apply(rows, weight.view_as(weight), bias.view_as(bias), targets, chunk).view(
        K, B
    )


@pytest.mark.parametrize("K, B, H, V", [(4, 16, 8, 50), (8, 64, 16, 2000)])  # reference path; chunked
def test_the_value_is_the_recomputing_heads_bit_for_bit_and_the_gradients_agree(K, B, H, V):
    chunked = head_chunk_rows(K * B, V, "cpu") > 0
    assert chunked == (K * B * V * 4 > SMALL_LOGITS_BYTES)
    inputs = _inputs(K, B, H, V)
    weights = torch.randn(K, B, generator=torch.Generator().manual_seed(1))  # an arbitrary upstream gradient
    results = {}
    for name, head in (("recompute", linear_log_softmax_gather), ("cached", _cached)):
        hidden, weight, bias, x = (t.detach().clone().requires_grad_(t.requires_grad) for t in inputs)
        value = head(hidden, weight, bias, x)
        (path,) = torch.autograd.grad((value * weights).sum(), hidden, retain_graph=True)  # DReG's path-only pass
        (value * weights).sum().backward()
        results[name] = (value.detach(), path, hidden.grad, weight.grad, bias.grad)
    value, *grads = results["cached"]
    reference_value, *reference_grads = results["recompute"]
    assert torch.equal(value, reference_value)
    for grad, reference in zip(grads, reference_grads):
        scale = reference.abs().max()
        assert (grad - reference).abs().max() <= 1e-5 * scale, (grad - reference).abs().max() / scale


def test_gradients_are_exact_in_float64():
    hidden, weight, bias, x = _inputs(2, 3, 4, 7, dtype=torch.float64)
    targets = x.expand(2, 3).reshape(6)
    rows = hidden.detach().reshape(6, 4).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda h, w, b: CachedLinearLogSoftmaxGather.apply(h, w, b, targets, 4), (rows, weight, bias)
    )


def test_the_cached_head_steps_aside_where_its_cache_would_not_serve():
    hidden, weight, bias, _ = _inputs(2, 3, 4, 7)
    assert cached_head_applies(hidden, weight)
    with torch.no_grad():
        assert not cached_head_applies(hidden, weight)  # evaluation: nothing to cache for
    assert not cached_head_applies(hidden.detach().bfloat16(), weight.detach())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not cached_head_applies(hidden, weight)


REPO = Path(__file__).resolve().parents[1]
SYNTHETIC = REPO / "params" / "synthetic" / "smoke"
PTB = REPO / "params" / "ptb" / "smoke" / "ptb-vimco16-renyi-shared.yaml"
GAUSSIAN, CATEGORICAL = "{kind: gaussian, num_latents: 4}", "{kind: categorical, num_latents: 2, num_categories: 3}"
CASES = [  # every estimator, both latent kinds where the estimator takes them, both tasks; PTB with its dropouts
    (SYNTHETIC / "elbo-kl.yaml", ["estimator.base=elbo", f"model.latent={GAUSSIAN}"]),
    (SYNTHETIC / "dreg16-renyi.yaml", ["estimator.base=iwae"]),
    (SYNTHETIC / "dreg16-renyi.yaml", ["estimator.base=dreg", "data.vocab_size=8000"]),  # the chunked regime
    (SYNTHETIC / "reinforce1-kl.yaml", []),
    (SYNTHETIC / "vimco16-renyi.yaml", [f"model.latent={CATEGORICAL}"]),
    (SYNTHETIC / "vqvae.yaml", []),
    (PTB, ["estimator.base=dreg", f"model.latent={GAUSSIAN}", "model.state_dropout=0.2", "model.masks=shared"]),
    (PTB, ["estimator.base=vimco", f"model.latent={CATEGORICAL}", "model.output_dropout=0.3"]),
]


def _step(path: Path, overrides: list[str], head: str):
    from micmco.runconfig import load_config
    from micmco.runtime import step_generator
    from micmco.tasks import get_task

    config = load_config(path, [*overrides, f"train.head={head}", "data.batch_size=8"])
    task = get_task(config.task)
    model, loss = task.build_model(config), task.build_loss(config)
    model.train()
    value, _ = loss(model, task.training_data(config)(0), step_generator(config.seed, "noise", 0))
    value.backward()
    return value.detach(), {name: p.grad for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("path, overrides", CASES, ids=lambda case: getattr(case, "stem", None) or " ".join(case))
def test_a_training_step_has_the_same_loss_with_either_head_and_gradients_within_rounding(
    path, overrides, shared_dir, monkeypatch
):
    monkeypatch.setenv("MICMCO_PTB", str(shared_dir / "data/ptb"))
    value, grads = _step(path, overrides, "cached")
    reference_value, reference_grads = _step(path, overrides, "recompute")
    assert torch.equal(value, reference_value)
    assert grads.keys() == reference_grads.keys()
    for name, grad in grads.items():
        scale = reference_grads[name].abs().max().clamp_min(1e-12)
        assert (grad - reference_grads[name]).abs().max() <= 1e-4 * scale, name


def test_a_run_records_its_head_and_resumes_with_its_checkpoints(tmp_path, capsys):
    """A run's head is in its record, config.yaml and checkpoint, not in its fingerprint; a run resumed from a
    checkpoint of the other head keeps that head (a checkpoint from before the record: the recomputing head)."""
    from micmco.cli import main
    from micmco.runconfig import load_config, run_directory

    args = [
        "train",
        str(SYNTHETIC / "elbo-kl.yaml"),
        "--quiet",
        "--output-dir",
        str(tmp_path),
        "--set",
        "train.steps=20",
    ]
    assert main([*args, "--set", "train.head=recompute"]) == 0
    (run_dir,) = tmp_path.iterdir()
    assert run_dir == run_directory(
        load_config(SYNTHETIC / "elbo-kl.yaml", [f"output_dir={tmp_path}", "train.steps=20"])
    )
    record = json.loads((run_dir / "result.json").read_text())
    assert (
        record["config"]["train"]["head"] == "recompute" and "head: recompute" in (run_dir / "config.yaml").read_text()
    )
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert checkpoint["head"] == "recompute"
    del checkpoint["head"]  # as written before the record existed
    torch.save(checkpoint, run_dir / "checkpoint.pt")
    (run_dir / "result.json").unlink()  # as if stopped at its last step
    capsys.readouterr()
    assert main(args) == 0  # the default head is the cached one
    assert "resuming with train.head=recompute" in capsys.readouterr().out
    again = json.loads((run_dir / "result.json").read_text())
    assert again["config"]["train"]["head"] == "recompute" and again["metrics"] == record["metrics"]


def test_a_committed_row_reruns_with_the_head_it_was_trained_with():
    from micmco.rerun import table_trials, trial_config

    table = REPO / "results" / "cpu" / "cpu-elbo-kl.tsv"
    (item,) = table_trials(table, [0])
    assert item.row.get("head", "") == ""  # recorded before train.head existed
    assert trial_config(item).train.head == "recompute"
