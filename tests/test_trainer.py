"""The generic trainer: seeds, checkpoints, resumption after interruption, failures, divergence."""

import json
import math
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from micmco.cli import main
from micmco.config import ConfigError
from micmco.runconfig import load_config
from micmco.runtime import derive_seed, numerics, numerics_settings, resolve_device
from micmco.trainer import CheckpointError, Diverged, Trainer, TrainerConfig
from micmco.util import EXIT_DIVERGED

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "params" / "synthetic" / "smoke"


@pytest.fixture(autouse=True)
def default_signal_handlers():
    """Python's own handlers for the test, whatever pytest inherited (a background job of a script
    starts with SIGINT ignored, and the trainer rightly leaves an ignored signal ignored)."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)


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
    settings = {"steps": steps, "learning_rate": 0.01, "checkpoint_every": 20, "log_every": 10, "progress": False}
    config = TrainerConfig(**{**settings, **overrides})  # checked as a config file's would be
    return Trainer(model, regression_loss, regression_data, config, seed=3, checkpoint_path=checkpoint, fingerprint="f")


def assert_same_model(a: nn.Module, b: nn.Module):
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


class InterruptAt:
    """A callback that sends a real SIGINT to this process at a logged step."""

    def __init__(self, step, signum=signal.SIGINT):
        self.step, self.signum = step, signum

    def __call__(self, step, metrics):
        if step == self.step:
            os.kill(os.getpid(), self.signum)


def checkpoint_step(path):
    return torch.load(path, weights_only=True)["state"]["step"]


@pytest.mark.parametrize("interrupt_at", [10, 30, 50])
def test_resumed_training_equals_uninterrupted_training(tmp_path, interrupt_at):
    reference = make_trainer()
    reference_state = reference.fit()

    interrupted = make_trainer(tmp_path / "ckpt.pt")
    interrupted.callbacks.append(InterruptAt(interrupt_at))
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    assert checkpoint_step(tmp_path / "ckpt.pt") == interrupt_at

    resumed = make_trainer(tmp_path / "ckpt.pt")
    state = resumed.fit()
    assert state.step == 60 and state.resumed_from == [interrupt_at]
    assert_same_model(reference.model, resumed.model)
    assert state.history == reference_state.history
    assert reference_state.history[-1]["loss"] < reference_state.history[0]["loss"]  # it did learn


# Every place inside a step where a signal can land. The step under way must complete and the
# checkpoint must hold it with its step number: the bug was a signal between optimizer.step()
# and the step counter, which saved updated weights under the old step number.
SIGNAL_POINTS = ["data", "forward", "backward", "before_optimizer_step", "after_optimizer_step", "log", "checkpoint"]


def _arm(trainer, point, target, signum):
    """Make ``trainer`` send ``signum`` to this process once, at ``point`` of step ``target``."""
    fired = []

    def fire():
        if not fired:
            fired.append(trainer.state.step)
            os.kill(os.getpid(), signum)

    if point == "data":
        data = trainer.data
        trainer.data = lambda step: (fire() if step == target else None, data(step))[1]
    elif point in ("forward", "backward"):
        loss_fn = trainer.loss

        def loss(model, batch, generator):
            value, metrics = loss_fn(model, batch, generator)
            if trainer.state.step == target:
                if point == "forward":
                    fire()
                else:
                    value.register_hook(lambda grad: (fire(), grad)[1])
            return value, metrics

        trainer.loss = loss
    elif point == "before_optimizer_step":
        trainer.optimizer.register_step_pre_hook(lambda *a: fire() if trainer.state.step == target else None)
    elif point == "after_optimizer_step":
        trainer.optimizer.register_step_post_hook(lambda *a: fire() if trainer.state.step == target else None)
    elif point == "log":
        trainer.callbacks.append(lambda step, metrics: fire() if step == target + 1 else None)
    elif point == "checkpoint":
        save = trainer.save_checkpoint
        trainer.save_checkpoint = lambda: (fire() if trainer.state.step == target + 1 else None, save())[1]
    return fired


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("point", SIGNAL_POINTS)
def test_a_signal_anywhere_in_a_step_stops_at_the_step_boundary_and_resumes_exactly(tmp_path, point, signum):
    reference = make_trainer()
    reference_state = reference.fit()
    previous = signal.signal(signal.SIGTERM, lambda *a: pytest.fail("SIGTERM escaped the trainer"))
    try:
        target = 39  # step index 39 completes step 40: a log and a checkpoint step (log_every 10, every 20)
        interrupted = make_trainer(tmp_path / "ckpt.pt")
        fired = _arm(interrupted, point, target, signum)
        with pytest.raises(KeyboardInterrupt):
            interrupted.fit()
        assert fired, f"the signal was never sent at {point}"
        assert checkpoint_step(tmp_path / "ckpt.pt") == target + 1  # the step under way completed and was kept
        assert signal.getsignal(signal.SIGTERM) is not None and signal.getsignal(signal.SIGINT) is not None
        resumed = make_trainer(tmp_path / "ckpt.pt")
        state = resumed.fit()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert state.resumed_from == [target + 1]
    assert_same_model(reference.model, resumed.model)
    for a, b in zip(
        reference.optimizer.state_dict()["state"].values(), resumed.optimizer.state_dict()["state"].values()
    ):
        assert all(torch.equal(a[key], b[key]) for key in a)
    assert state.history == reference_state.history


def test_signal_in_a_step_that_is_not_a_log_or_checkpoint_step(tmp_path):
    reference = make_trainer()
    reference.fit()
    interrupted = make_trainer(tmp_path / "ckpt.pt")
    _arm(interrupted, "after_optimizer_step", 44, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    assert checkpoint_step(tmp_path / "ckpt.pt") == 45
    resumed = make_trainer(tmp_path / "ckpt.pt")
    resumed.fit()
    assert_same_model(reference.model, resumed.model)


def test_a_second_signal_stops_at_once_and_keeps_the_last_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path / "ckpt.pt")

    def slow_loss(model, batch, generator):
        if trainer.state.step == 25:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return regression_loss(model, batch, generator)

    trainer.loss = slow_loss
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert checkpoint_step(tmp_path / "ckpt.pt") == 20  # the periodic one: nothing half-done was saved
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


def test_a_signal_the_process_ignores_stays_ignored(tmp_path):
    """Started with SIGINT ignored (nohup, `cmd &` in a script), training ignores Ctrl-C too, as Python
    does; SIGTERM still stops it at a step boundary."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reference = make_trainer()
    reference.fit()
    trainer = make_trainer(tmp_path / "ckpt.pt")
    _arm(trainer, "after_optimizer_step", 25, signal.SIGINT)
    trainer.fit()  # runs to the end
    assert trainer.state.step == 60 and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert_same_model(reference.model, trainer.model)
    stopped = make_trainer(tmp_path / "other.pt")
    _arm(stopped, "after_optimizer_step", 25, signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        stopped.fit()
    assert checkpoint_step(tmp_path / "other.pt") == 26


def test_request_stop_from_a_callback(tmp_path):
    trainer = make_trainer(tmp_path / "ckpt.pt")
    trainer.callbacks.append(lambda step, metrics: trainer.request_stop() if step == 30 else None)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert checkpoint_step(tmp_path / "ckpt.pt") == 30


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
    with pytest.raises(CheckpointError, match="different configuration"):
        other.fit()
    assert (tmp_path / "ckpt.pt").read_bytes() == before


def test_different_seeds_give_different_runs():
    a, b = make_trainer(), make_trainer()
    b.seed = 4
    a.fit(), b.fit()
    assert not torch.equal(a.model[0].weight, b.model[0].weight)


def test_non_finite_loss_is_a_divergence_with_the_last_finite_metrics(tmp_path):
    trainer = make_trainer(tmp_path / "ckpt.pt")
    trainer.callbacks.append(lambda step, metrics: trainer.request_stop() if step == 20 else None)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    broken = make_trainer(tmp_path / "ckpt.pt")
    loss_fn = broken.loss
    broken.loss = lambda model, batch, g: (
        loss_fn(model, batch, g)[0] * (float("nan") if broken.state.step >= 25 else 1.0),
        {},
    )
    with pytest.raises(Diverged, match="non-finite loss in steps 21-30") as error:
        broken.fit()
    assert error.value.step == 30
    assert error.value.last_finite["step"] == 20 and math.isfinite(error.value.last_finite["loss"])
    assert checkpoint_step(tmp_path / "ckpt.pt") == 20  # nothing from the broken state was saved


def test_a_finite_blow_up_is_a_divergence():
    trainer = make_trainer(learning_rate=1e4)
    with pytest.raises(Diverged, match="training loss rose from"):
        trainer.fit()
    trainer = make_trainer()
    trainer.fit()  # a healthy run is not flagged


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"\x00garbage\xff" * 10, "truncated or not a checkpoint"),
        ("truncate", "truncated or not a checkpoint"),
        ("old-format", "not a micmco checkpoint"),
    ],
)
def test_unusable_checkpoints_name_the_file_and_how_to_start_over(tmp_path, content, message):
    path = tmp_path / "ckpt.pt"
    if content == "truncate":
        make_trainer(path, steps=20).fit()
        path.write_bytes(path.read_bytes()[:300])
    elif content == "old-format":
        torch.save({"fingerprint": "f", "state": {}}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as error:
        make_trainer(path).fit()
    assert str(path) in str(error.value) and "start" in str(error.value)


class _Payload:
    """Unpickling this runs code: it creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_crafted_pickle_checkpoint_is_refused_without_running_its_code(tmp_path):
    path, marker = tmp_path / "ckpt.pt", tmp_path / "pwned"
    torch.save({"format": 2, "fingerprint": "f", "state": _Payload(str(marker))}, path)
    with pytest.raises(CheckpointError, match="could run code"):
        make_trainer(path).fit()
    assert not marker.exists()
    with open(path, "wb") as handle:  # a raw pickle, not even a torch zip file (torch's own protocol, 2: no warning)
        pickle.dump(_Payload(str(marker)), handle, protocol=2)
    with pytest.raises(CheckpointError):
        make_trainer(path).fit()
    assert not marker.exists()


def test_optimizer_is_the_papers_adam():
    trainer = make_trainer()
    group = trainer.optimizer.param_groups[0]
    assert isinstance(trainer.optimizer, torch.optim.Adam)
    assert group["betas"] == (0.0, 0.999) and group["eps"] == 1e-8 and group["lr"] == 0.01


@pytest.mark.parametrize("setting", [{"mixed_precision": True}, {"precision": "bfloat16"}])
def test_bfloat16_runs_on_cpu_under_either_spelling(setting):
    trainer = make_trainer(steps=20, **setting)
    assert trainer.config.precision == "bfloat16" and trainer.config.mixed_precision  # the alias agrees
    seen = []
    loss = trainer.loss
    trainer.loss = lambda model, batch, g: (seen.append(torch.is_autocast_enabled("cpu")), loss(model, batch, g))[1]
    state = trainer.fit()
    assert all(seen) and len(seen) == 20  # every forward pass under autocast
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in state.history)


def test_precision_choices_and_the_deprecated_alias():
    assert TrainerConfig().precision == "float32" and not TrainerConfig().mixed_precision
    assert TrainerConfig(precision="tf32").mixed_precision is False
    with pytest.raises(ConfigError, match="precision: unknown value 'fp16'; valid choices: float32, tf32, bfloat16"):
        TrainerConfig(precision="fp16")
    with pytest.raises(ConfigError, match="mixed_precision: true means precision bfloat16, which contradicts"):
        TrainerConfig(precision="tf32", mixed_precision=True)


# (matmul TF32, cuDNN TF32) each precision sets on both back ends
TF32 = {"float32": (False, False), "tf32": (True, True), "bfloat16": (False, False)}


def _global_numerics():
    return (
        torch.get_float32_matmul_precision(),
        numerics_settings(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.utils.deterministic.fill_uninitialized_memory,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )


@pytest.mark.parametrize("device", ["cpu", "cuda"])  # the flags exist (and are read) without CUDA too
@pytest.mark.parametrize("precision", list(TF32))
@pytest.mark.parametrize("start", [(False, True), (True, False)], ids=["torch-defaults", "inverted"])
def test_numerics_sets_both_back_ends_and_restores_the_global_flags(monkeypatch, device, precision, start):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = start
    try:
        outside = _global_numerics()
        with numerics(precision, torch.device(device)):
            inside = numerics_settings()
            workspace = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
        assert (inside["matmul_tf32"], inside["cudnn_tf32"]) == TF32[precision]
        cuda = device == "cuda"  # deterministic kernels on CUDA; CPU kernels are left as they are
        assert inside["deterministic_algorithms"] == inside["cudnn_deterministic"] == cuda
        assert workspace == (":4096:8" if cuda else None)
        assert _global_numerics() == outside
        with pytest.raises(RuntimeError, match="inside"), numerics(precision, torch.device(device)):
            raise RuntimeError("inside")  # restored on the way out of a failure too
        assert _global_numerics() == outside
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_training_runs_under_the_configured_numerics():
    trainer = make_trainer(steps=2, precision="tf32")
    seen = []
    loss = trainer.loss
    trainer.loss = lambda model, batch, g: (seen.append(numerics_settings()), loss(model, batch, g))[1]
    outside = numerics_settings()
    trainer.fit()
    assert [(s["matmul_tf32"], s["cudnn_tf32"]) for s in seen] == [(True, True)] * 2
    assert numerics_settings() == outside


# --- resuming: where Adam's state goes, and on which kind of device -----------------------------------------


def _interrupted_checkpoint(tmp_path, at=20, **overrides):
    interrupted = make_trainer(tmp_path / "ckpt.pt", **overrides)
    interrupted.callbacks.append(InterruptAt(at))
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    return tmp_path / "ckpt.pt"


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")  # meta weights hold no values
def test_adam_step_counters_stay_on_the_cpu_when_resuming_onto_another_device(tmp_path):
    """As a fresh Adam keeps them (foreach, not capturable): counters on a GPU cost synchronisations every step.
    The 'meta' device stands in for a GPU: the moments must follow the parameters there, the counters not."""
    path = _interrupted_checkpoint(tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["device"] = "meta"
    torch.save(payload, path)
    trainer = make_trainer(path)
    trainer.model.to("meta")  # new parameters (meta and CPU tensors are not interchangeable): a new Adam for them
    trainer.optimizer = torch.optim.Adam(trainer.model.parameters(), **trainer.optimizer.defaults)
    trainer.device = torch.device("meta")
    assert trainer.load_checkpoint()
    states = list(trainer.optimizer.state.values())
    assert len(states) == len(list(trainer.model.parameters()))
    for state in states:
        assert state["step"].device.type == "cpu" and float(state["step"]) == 20
        assert state["exp_avg"].device.type == state["exp_avg_sq"].device.type == "meta"


def test_a_resumed_run_keeps_adams_state_where_a_fresh_one_does_and_ends_bit_identical(tmp_path):
    reference = make_trainer()
    reference.fit()
    resumed = make_trainer(_interrupted_checkpoint(tmp_path))
    resumed.fit()
    assert_same_model(reference.model, resumed.model)
    for fresh, state in zip(reference.optimizer.state.values(), resumed.optimizer.state.values()):
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert state[key].device == fresh[key].device and state[key].dtype == fresh[key].dtype, key
            assert torch.equal(state[key], fresh[key]), key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the CPU cases are the tests above)")
def test_on_cuda_a_resumed_run_keeps_adams_step_counters_on_the_cpu_and_ends_bit_identical(tmp_path):
    reference = make_trainer(device="cuda")
    reference.fit()
    path = _interrupted_checkpoint(tmp_path, device="cuda")
    assert torch.load(path, weights_only=True)["device"] == "cuda"
    loaded = make_trainer(path, device="cuda")
    assert loaded.load_checkpoint()
    for state in loaded.optimizer.state.values():
        assert state["step"].device.type == "cpu" and state["exp_avg"].device.type == "cuda"
    resumed = make_trainer(path, device="cuda")
    resumed.fit()
    assert_same_model(reference.model, resumed.model)


def test_a_checkpoint_from_another_kind_of_device_is_refused_and_kept(tmp_path):
    path = _interrupted_checkpoint(tmp_path)
    payload = torch.load(path, weights_only=True)
    assert payload["device"] == "cpu"
    payload["device"] = "cuda"
    torch.save(payload, path)
    before = path.read_bytes()
    with pytest.raises(CheckpointError) as error:
        make_trainer(path).fit()
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    assert "written on cuda and this run is on cpu" in message
    assert "resume it on a cuda device" in message and "delete the checkpoint to start over on cpu" in message
    assert path.read_bytes() == before


def test_a_checkpoint_from_before_the_device_field_resumes_as_a_cpu_one(tmp_path):
    reference = make_trainer()
    reference_state = reference.fit()
    path = _interrupted_checkpoint(tmp_path)
    payload = torch.load(path, weights_only=True)
    del payload["device"]
    torch.save(payload, path)
    resumed = make_trainer(path)
    state = resumed.fit()
    assert state.resumed_from == [20] and state.history == reference_state.history
    assert_same_model(reference.model, resumed.model)


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
                step = torch.load(checkpoint, weights_only=True)["state"]["step"]
            except Exception:  # noqa: BLE001 (racing the atomic replace is fine)
                step = 0
            if step >= at_least:
                return step
        time.sleep(0.05)
    raise TimeoutError(f"no checkpoint at step >= {at_least}")


@pytest.mark.slow
def test_cli_run_killed_twice_resumes_to_the_uninterrupted_result(tmp_path):
    config = str(SMOKE / "dreg16-renyi.yaml")
    args = ["train", config, "--quiet", "--set", "train.steps=500", "--set", "train.checkpoint_every=50"]

    reference = micmco(*args, "--output-dir", str(tmp_path / "a"))  # uninterrupted, alongside (its own directory)
    out = tmp_path / "b"
    first = micmco(*args, "--output-dir", str(out))
    (run_dir,) = _wait_for_run_dir(out)
    wait_for_checkpoint_step(run_dir / "checkpoint.pt", 100)
    first.send_signal(signal.SIGTERM)  # graceful: checkpoints the completed steps
    assert first.wait(timeout=60) == 130
    assert "Rerun the same command to resume" in first.stderr.read()
    stopped = torch.load(run_dir / "checkpoint.pt", weights_only=True)["state"]["step"]
    assert 100 <= stopped < 400

    second = micmco(*args, "--output-dir", str(out))
    wait_for_checkpoint_step(run_dir / "checkpoint.pt", stopped + 100)
    second.kill()  # SIGKILL: no chance to save; resumes from the last periodic checkpoint
    second.wait(timeout=60)
    assert not (run_dir / "result.json").exists()

    third = micmco(*args, "--output-dir", str(out))
    assert third.wait(timeout=300) == 0, third.stderr.read()
    assert reference.wait(timeout=300) == 0, reference.stderr.read()

    expected = json.loads(next((tmp_path / "a").glob("*/result.json")).read_text())
    result = json.loads((run_dir / "result.json").read_text())
    assert result["metrics"] == expected["metrics"]
    assert result["train_history"] == expected["train_history"]
    assert len(result["resumed_from_steps"]) == 2
    final = torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]
    reference_final = torch.load(next((tmp_path / "a").glob("*/checkpoint.pt")), weights_only=True)["model"]
    for name in reference_final:
        assert torch.equal(final[name], reference_final[name]), name


def _wait_for_run_dir(out: Path, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if out.exists() and any(out.iterdir()):
            return list(out.iterdir())
        time.sleep(0.05)
    raise TimeoutError("no run directory")


@pytest.mark.parametrize("unit", [None, "sentence"])
def test_the_progress_bar_names_the_units_of_the_loss(unit, capsys):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 1))
    config = TrainerConfig(steps=2, learning_rate=0.01, log_every=2, progress=True)
    kwargs = {} if unit is None else {"loss_unit": unit}
    Trainer(model, regression_loss, regression_data, config, seed=3, **kwargs).fit()
    bar = capsys.readouterr().err
    assert f"train (nats per {unit or 'data point'})" in bar and "loss=" in bar


def test_gpu_check_without_cuda_says_so_in_one_line_and_exits_5_before_importing_torch():
    """``make gpu-check`` on a machine without CUDA has checked nothing: a code of its own, not 0."""
    import importlib.util

    script = REPO / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", script)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    if gpu_check.nvidia_driver_present():
        pytest.skip("this machine has an NVIDIA driver: the no-CUDA exit is for machines without one")
    # run as `make gpu-check` does, and report (on stderr) whether torch was imported on the way
    wrapper = (
        "import runpy, sys\n"
        f"sys.argv = [{str(script)!r}]\n"
        "try:\n"
        f"    runpy.run_path({str(script)!r}, run_name='__main__')\n"
        "finally:\n"
        "    if 'torch' in sys.modules: print('torch was imported', file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=60)
    assert done.returncode == gpu_check.EXIT_NO_CUDA == 5
    assert (done.stdout + done.stderr).splitlines() == [gpu_check.NO_CUDA]
    assert "no CUDA device here; nothing was checked" in gpu_check.NO_CUDA


# --- divergence of a whole run --------------------------------------------------------------------------


def _run_cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


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


def test_a_runaway_objective_is_caught_by_the_loss_floor(tmp_path, monkeypatch):
    """The rule: for discrete data no objective averages above 0 nats, so a training loss averaging below
    -1 nat is a runaway. Eq. 12's grouping of DReG 16/1 (the code before K' ≠ K was fixed) ran away to
    a loss of -2.7e21 and ended `complete`; replayed here, it ends `diverged` at the first log."""
    from micmco import objectives
    from micmco.estimators import log_marginal_of_weights, snis_log_lik_of_weights

    def eq12_divergence(self, log_w, log_lik):  # Ŝ^K + λ D̂^K': the old, unbounded grouping
        w, ll = log_w[: self.mi_samples], log_lik[: self.mi_samples]
        return snis_log_lik_of_weights(w, ll) - log_marginal_of_weights(w)

    monkeypatch.setattr(objectives.Objective, "divergence", eq12_divergence)
    overrides = ["objective.lam=0.9", "train.steps=400", "train.log_every=50", "train.progress=false"]
    config = load_config(REPO / "params/synthetic/cpu/trial-dreg16-kl1.yaml", overrides + [f"output_dir={tmp_path}"])
    from micmco.experiment import run

    record = run(config, echo=lambda *_: None)
    assert record["status"] == "diverged", record.get("metrics")
    assert "ran away upwards" in record["divergence"]["reason"] and record["divergence"]["step"] <= 400
