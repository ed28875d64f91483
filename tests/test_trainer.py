"""The generic trainer: seeds, checkpoints, resumption after interruption, failures."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from micmco.trainer import Trainer, TrainerConfig, derive_seed, resolve_device

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "params" / "synthetic" / "smoke"


def regression_loss(model, batch, generator):
    """A noisy least-squares loss: randomness from the step's generator, like a sampled objective."""
    x, y = batch
    noise = torch.randn(x.shape[0], 1, generator=generator, device=x.device)
    loss = ((model(x) + 0.1 * noise - y) ** 2).mean()
    return loss, {"noise": noise.mean()}


def regression_data(step):
    g = torch.Generator().manual_seed(derive_seed(7, "data", step))
    x = torch.randn(32, 4, generator=g)
    return x, x.sum(-1, keepdim=True)


def make_trainer(checkpoint=None, steps=60, **overrides):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    config = TrainerConfig(steps=steps, learning_rate=0.01, checkpoint_every=20, log_every=10, progress=False)
    for key, value in overrides.items():
        setattr(config, key, value)
    return Trainer(model, regression_loss, regression_data, config, seed=3, checkpoint_path=checkpoint, fingerprint="f")


def assert_same_model(a: nn.Module, b: nn.Module):
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


class InterruptAt:
    def __init__(self, step):
        self.step = step

    def __call__(self, step, metrics):
        if step == self.step:
            raise KeyboardInterrupt


@pytest.mark.parametrize("interrupt_at", [10, 30, 50])
def test_resumed_training_equals_uninterrupted_training(tmp_path, interrupt_at):
    reference = make_trainer()
    reference_state = reference.fit()

    interrupted = make_trainer(tmp_path / "ckpt.pt")
    interrupted.callbacks.append(InterruptAt(interrupt_at))
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    assert torch.load(tmp_path / "ckpt.pt", weights_only=False)["state"]["step"] == interrupt_at

    resumed = make_trainer(tmp_path / "ckpt.pt")
    state = resumed.fit()
    assert state.step == 60 and state.resumed_from == [interrupt_at]
    assert_same_model(reference.model, resumed.model)
    assert state.history == reference_state.history
    assert reference_state.history[-1]["loss"] < reference_state.history[0]["loss"]  # it did learn


def test_finished_run_is_not_trained_again(tmp_path):
    first = make_trainer(tmp_path / "ckpt.pt")
    first.fit()
    again = make_trainer(tmp_path / "ckpt.pt")
    again.loss = lambda *args: pytest.fail("a finished run must not take another step")
    assert again.fit().step == 60
    assert_same_model(first.model, again.model)


def test_checkpoint_of_another_configuration_is_refused_and_kept(tmp_path):
    make_trainer(tmp_path / "ckpt.pt").fit()
    before = (tmp_path / "ckpt.pt").read_bytes()
    other = make_trainer(tmp_path / "ckpt.pt")
    other.fingerprint = "g"
    with pytest.raises(RuntimeError, match="different configuration"):
        other.fit()
    assert (tmp_path / "ckpt.pt").read_bytes() == before


def test_different_seeds_give_different_runs():
    a, b = make_trainer(), make_trainer()
    b.seed = 4
    a.fit(), b.fit()
    assert not torch.equal(a.model[0].weight, b.model[0].weight)


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path / "ckpt.pt")
    trainer.callbacks.append(InterruptAt(20))
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    broken = make_trainer(tmp_path / "ckpt.pt")
    broken.loss = lambda model, batch, g: (model(batch[0]).sum() * float("nan"), {})
    with pytest.raises(FloatingPointError, match="non-finite loss before step 30"):
        broken.fit()
    assert torch.load(tmp_path / "ckpt.pt", weights_only=False)["state"]["step"] == 20


def test_optimizer_is_the_papers_adam():
    trainer = make_trainer()
    group = trainer.optimizer.param_groups[0]
    assert isinstance(trainer.optimizer, torch.optim.Adam)
    assert group["betas"] == (0.0, 0.999) and group["eps"] == 1e-8 and group["lr"] == 0.01


def test_mixed_precision_runs_on_cpu():
    trainer = make_trainer(steps=20, mixed_precision=True)
    state = trainer.fit()
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in state.history)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_requesting_cuda_without_it_is_a_clear_error():
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")


# --- the command line, killed for real -------------------------------------------------------------


def micmco(*args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "micmco.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        **kwargs,
    )


def wait_for_checkpoint_step(checkpoint: Path, at_least: int, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if checkpoint.exists():
            try:
                step = torch.load(checkpoint, weights_only=False)["state"]["step"]
            except Exception:  # noqa: BLE001 (racing the atomic replace is fine)
                step = 0
            if step >= at_least:
                return step
        time.sleep(0.05)
    raise TimeoutError(f"no checkpoint at step >= {at_least}")


@pytest.mark.slow
def test_cli_run_killed_twice_resumes_to_the_uninterrupted_result(tmp_path):
    config = str(SMOKE / "dreg16-renyi.yaml")
    args = ["train", config, "--quiet", "--set", "train.steps=600", "--set", "train.checkpoint_every=50"]

    reference = micmco(*args, "--output-dir", str(tmp_path / "a"))
    assert reference.wait(timeout=300) == 0, reference.stderr.read()

    out = tmp_path / "b"
    first = micmco(*args, "--output-dir", str(out))
    (run_dir,) = _wait_for_run_dir(out)
    wait_for_checkpoint_step(run_dir / "checkpoint.pt", 100)
    first.send_signal(signal.SIGTERM)  # graceful: checkpoints the completed steps
    assert first.wait(timeout=60) == 130
    assert "Rerun the same command to resume" in first.stderr.read()
    stopped = torch.load(run_dir / "checkpoint.pt", weights_only=False)["state"]["step"]
    assert 100 <= stopped < 600

    second = micmco(*args, "--output-dir", str(out))
    wait_for_checkpoint_step(run_dir / "checkpoint.pt", stopped + 100)
    second.kill()  # SIGKILL: no chance to save; resumes from the last periodic checkpoint
    second.wait(timeout=60)
    assert not (run_dir / "result.json").exists()

    third = micmco(*args, "--output-dir", str(out))
    assert third.wait(timeout=300) == 0, third.stderr.read()

    expected = json.loads(next((tmp_path / "a").glob("*/result.json")).read_text())
    result = json.loads((run_dir / "result.json").read_text())
    assert result["metrics"] == expected["metrics"]
    assert result["train_history"] == expected["train_history"]
    assert len(result["resumed_from_steps"]) == 2
    final = torch.load(run_dir / "checkpoint.pt", weights_only=False)["model"]
    reference_final = torch.load(next((tmp_path / "a").glob("*/checkpoint.pt")), weights_only=False)["model"]
    for name in reference_final:
        assert torch.equal(final[name], reference_final[name]), name


def _wait_for_run_dir(out: Path, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if out.exists() and any(out.iterdir()):
            return list(out.iterdir())
        time.sleep(0.05)
    raise TimeoutError("no run directory")
