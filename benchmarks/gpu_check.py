"""The GPU check (``make gpu-check``): one command, at most 8 minutes on one GPU, that proves on a real device
what the CPU cannot: each section is time-boxed (one that overruns is cut and reported; the others still run),
its figures go to a JSON file (``--out``, default runs/gpu-check.json) and a short table is printed last.

    PYTHONPATH=src python3 benchmarks/gpu_check.py [--out runs/gpu-check.json] [--only SECTION ...]

Sections: ``versions`` (torch, CUDA, cuDNN, the device, the precision settings); ``sync_audit`` (20 training
steps of each task under ``torch.cuda.set_sync_debug_mode("warn")``, every host-device synchronisation listed
with its step and source line: none may fall in a step that does not log); ``step_time`` (ms per step from CUDA
events, median after warm-up, synthetic K = 1, 16, 64 and PTB K = 1, 16 with and without recurrent-state
dropout, in float32 and TF32; the projected time of one paper trial; the GPU's busy fraction from the
profiler); ``anatomy`` (a paper DReG 16 step split into loss, backward and optimiser by CUDA events for each
softmax head, the host's enqueue time per step against the device's, the 30 longest kernels); ``gpu_vs_cpu``
(the first five losses of the same steps on both, the same noise, for every base
estimator and both latent kinds, PTB with state dropout and shared masks: relative difference at most 1e-5 in
float32 with TF32 off); ``evaluation`` (a K = 100 evaluation of the PTB validation split: time, and peak memory
against the task's estimate); ``resume`` (a short run killed with SIGKILL after a checkpoint and rerun ends
with the result of an uninterrupted run); ``batched`` (many trials in one process: ms per trial-step at
N = 1, 8, 32, 64, trials per GPU-hour against the goals, a batch against its trials alone over 200 steps).

PTB data are found as micmco finds them ($MICMCO_PTB, data/ptb/, ../shared/data/ptb/); without them the PTB
parts are skipped with a one-line reason. Exit codes: 0 every section ran and passed; 1 a check failed (or a
section raised an error); 2 bad arguments; 5 no CUDA device here (one line, nothing checked, no JSON);
6 incomplete: nothing failed, but a section or part of one was skipped (no PTB data, --only) or cut (overran
its time box). It needs only torch, numpy, pyyaml and tqdm (no Optuna, plotly or package index).
"""

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("micmco") is None:  # a checkout without PYTHONPATH=src: use its sources
    sys.path.insert(0, str(REPO / "src"))

EXIT_PASSED, EXIT_FAILED, EXIT_INPUT, EXIT_NO_CUDA, EXIT_INCOMPLETE = 0, 1, 2, 5, 6
# What an NVIDIA driver shows on Linux (device nodes, the driver's proc entry) and under WSL2 (/dev/dxg).
DRIVER_PATHS = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/dxg")
NO_CUDA = "gpu-check: no CUDA device here; nothing was checked (run it on a GPU box)"
SYNTHETIC = REPO / "params/synthetic/paper/dreg16-kl.yaml"
PTB = REPO / "params/ptb/paper/ptb-base-dreg.yaml"
TOLERANCE = 1e-5  # largest relative difference of a GPU loss from the CPU's (float32, TF32 off)
GOALS_MS = {"synthetic": 1.5, "ptb": 8.0}  # issue 19's goals for a DReG 16 paper step
STATE_DROPOUT = ["model.state_dropout=0.3"]
COMPARED_K = 4  # the K of each estimator's GPU-CPU comparison, where the estimator takes it


def estimator_cases() -> list[tuple[str, int, str]]:
    """(base, K, latent kind) of every registered estimator on each latent kind it takes, at a K it accepts: a
    reparameterised one on Gaussian latents, a score-function one on both; K = 1 where it takes one sample
    (STL) or its divergence is analytic (the ELBO's K only averages single-sample ELBOs)."""
    from micmco.gradients import BASE_ESTIMATORS  # imports torch: not before the CUDA check

    cases = []
    for name, spec in BASE_ESTIMATORS.items():
        k = 1 if spec.max_samples == 1 or spec.analytic_divergence else COMPARED_K
        latents = ("gaussian",) if spec.reparameterised else ("gaussian", "categorical")
        cases += [(name, k, latent) for latent in latents]
    return sorted(cases, key=lambda case: case[2] == "categorical")  # the Gaussian cases first, as before


@dataclasses.dataclass(frozen=True)
class Plan:
    """How much each section does: the GPU's plan, or a tiny one for the CPU dry run (``--device cpu``)."""

    device: str  # cuda, or cpu for the dry run that tests every section's logic
    warmup: int  # untimed steps before timing
    timed: int  # timed steps per setting (the median is reported)
    audit_steps: int  # steps of the sync audit (the first and the last log; those between must not sync)
    compare_steps: int  # steps whose losses are compared between the GPU and the CPU
    eval_batches: int  # batches of the PTB validation split evaluated (0: all of it)
    resume_steps: int  # steps of the killed-and-resumed run
    resume_every: int  # its checkpoint interval
    resume_eval: tuple[str, ...]  # its evaluation (a short one: the run's result is compared, not its cost)
    synthetic: tuple[str, ...]  # size overrides of the synthetic paper config (none on the GPU)
    ptb: tuple[str, ...]  # size overrides of the PTB paper config
    compare: dict[str, tuple[str, ...]]  # sizes for the GPU/CPU comparison (the CPU computes them too)
    budgets: dict[str, float]  # seconds per section before it is cut


SMALL_PTB = ("data.vocab_size=1000", "data.batch_size=32", "data.train_sentences=2000", "model.hidden_size=64")
GPU = Plan(
    device="cuda",
    warmup=5,
    timed=30,
    audit_steps=20,
    compare_steps=5,
    eval_batches=0,
    resume_steps=200,
    resume_every=50,
    resume_eval=("eval.split=valid", "eval.num_samples=10"),
    synthetic=(),
    ptb=(),
    compare={"synthetic": ("data.vocab_size=1000", "data.batch_size=32"), "ptb": SMALL_PTB},
    budgets={
        "versions": 15,
        "sync_audit": 40,
        "step_time": 80,
        "anatomy": 60,
        "gpu_vs_cpu": 75,
        "evaluation": 50,
        "resume": 60,
        "batched": 100,
    },  # fmt: skip
)
TINY_SYNTHETIC = ("data.vocab_size=50", "data.batch_size=8", "model.hidden_size=16")
TINY_PTB = (
    "data.vocab_size=200",
    "data.batch_size=4",
    "data.train_sentences=100",
    "model.hidden_size=16",
    "model.embedding_size=16",
)
CPU_DRY_RUN = dataclasses.replace(
    GPU,
    device="cpu",
    warmup=1,
    timed=2,
    audit_steps=3,
    compare_steps=2,
    eval_batches=1,
    resume_steps=40,
    resume_every=10,
    resume_eval=("eval.split=train", "eval.num_samples=2"),
    synthetic=TINY_SYNTHETIC,
    ptb=TINY_PTB,
    compare={"synthetic": TINY_SYNTHETIC, "ptb": TINY_PTB},
)


class Overran(BaseException):
    """A section's time box ran out (BaseException: no ``except Exception`` in library code swallows it)."""


class Skip(Exception):
    """A section (or part) that cannot run here, with a one-line reason."""


def nvidia_driver_present() -> bool:
    """Whether this machine shows an NVIDIA driver, without importing torch (no driver: no CUDA device)."""
    return any(Path(path).exists() for path in DRIVER_PATHS)


# --- helpers every section uses -------------------------------------------------------------------------------


def ptb_missing() -> str | None:
    """None when the PTB files are found as micmco finds them, else the one-line reason."""
    from micmco.config import ConfigError
    from micmco.tasks.ptb_data import find_ptb

    try:
        find_ptb("")
    except ConfigError as error:
        return f"PTB skipped: {error}"
    return None


def has_precision_setting() -> bool:
    """Whether this micmco has the ``train.precision`` setting (float32 | tf32 | bfloat16)."""
    from micmco.trainer import TrainerConfig

    return "precision" in {field.name for field in dataclasses.fields(TrainerConfig)}


def set_precision(precision: str) -> list[str]:
    """Apply float32 or TF32 to both CUDA back ends (cuBLAS and cuDNN: PyTorch's defaults differ) and return
    the config overrides that say the same where micmco has the setting."""
    import torch

    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    return [f"train.precision={precision}"] if has_precision_setting() else []


def load(path: Path, *overrides: str):
    from micmco.runconfig import load_config

    return load_config(path, list(overrides))


class Timer:
    """Per-step times in ms: CUDA events on a GPU (no host synchronisation between steps), else the wall clock."""

    def __init__(self, device):
        import torch

        self.cuda = torch.device(device).type == "cuda"
        self.marks: list = []

    def mark(self) -> None:
        import torch

        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def milliseconds(self) -> list[float]:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            return [a.elapsed_time(b) for a, b in zip(self.marks, self.marks[1:])]
        return [(b - a) * 1000 for a, b in zip(self.marks, self.marks[1:])]


def train_steps(
    config,
    device: str,
    steps: int,
    on_step: Callable[[int], None] = lambda step: None,
    on_phase: Callable[[str], None] = lambda phase: None,
) -> list:
    """``steps`` Adam steps of ``config`` as the trainer takes them (its optimiser settings, batches and noise
    streams, its arithmetic: ``runtime.numerics`` of its precision, TF32 and deterministic kernels as configured;
    bfloat16 autocast if configured); ``on_step(step)`` before each step, ``on_phase(name)`` after its loss (the
    forward pass, DReG's path-only pass included), its backward pass and its optimiser step. Returns the detached
    losses (tensors on ``device``: reading them would synchronise)."""
    import torch

    from micmco.runtime import numerics, step_generator, to_device
    from micmco.tasks import get_task

    task, target = get_task(config.task), torch.device(device)
    model, loss = task.build_model(config).to(target), task.build_loss(config)
    train = config.train
    optimizer = torch.optim.Adam(
        model.parameters(), lr=train.learning_rate, betas=(train.adam_beta1, train.adam_beta2), eps=train.adam_eps
    )
    data, losses = task.training_data(config), []
    bfloat16 = getattr(train, "precision", "") == "bfloat16" or getattr(train, "mixed_precision", False)
    model.train()
    with numerics(getattr(train, "precision", "float32"), target):  # as `micmco train` runs its steps
        for step in range(steps):
            on_step(step)
            batch = to_device(data(step), target)
            with torch.autocast(target.type, dtype=torch.bfloat16, enabled=bfloat16):
                value, _ = loss(model, batch, step_generator(config.seed, "noise", step, target))
            on_phase("loss")
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            on_phase("backward")
            optimizer.step()
            on_phase("optimiser")
            losses.append(value.detach())
    return losses


# --- sections --------------------------------------------------------------------------------------------------


def versions(plan: Plan, out: dict) -> None:
    import torch

    from micmco import __version__
    from micmco.util import git_commit

    out.update(
        python=platform.python_version(),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version(),
        micmco=__version__,
        git_commit=git_commit(),
        device=plan.device,
        precision_setting=has_precision_setting(),
        syncaudit_module=importlib.util.find_spec("micmco.syncaudit") is not None,
        defaults={
            "matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "cudnn.deterministic": torch.backends.cudnn.deterministic,
            "cudnn.benchmark": torch.backends.cudnn.benchmark,
        },
    )
    if plan.device == "cuda":
        properties = torch.cuda.get_device_properties(0)
        out.update(
            device_name=properties.name,
            capability=f"{properties.major}.{properties.minor}",
            memory_gib=round(properties.total_memory / 2**30, 1),
            multiprocessors=properties.multi_processor_count,
        )
    out["summary"] = f"torch {torch.__version__}, CUDA {torch.version.cuda}, {out.get('device_name', plan.device)}"


def source_line(stack: list[traceback.FrameSummary]) -> str:
    """The innermost frame of micmco (or of this script) in a stack: where a synchronisation was asked for."""
    ours = [frame for frame in stack if "micmco" in frame.filename or frame.filename == __file__]
    callers = [frame for frame in stack if not frame.filename.endswith("warnings.py") and "torch" not in frame.filename]
    frame = (ours or callers or stack)[-1]
    path = Path(frame.filename)
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    return f"{shown}:{frame.lineno} {frame.name}: {(frame.line or '').strip()}"


@contextlib.contextmanager
def capture_syncs(current: dict):
    """Collect the synchronisation warnings of torch's sync debug mode ("warn"), each with ``current["step"]``
    and the source line that asked for it (the innermost frame of micmco)."""
    found: list[dict] = []

    def record(message, category, filename, lineno, file=None, line=None):
        if "synchroniz" in str(message):  # torch: "called a synchronizing CUDA operation"
            stack = traceback.extract_stack()[:-1]
            found.append({"step": current["step"], "at": source_line(stack), "what": str(message).splitlines()[0]})

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record
        yield found


def syncs_of_training(config, steps: int) -> list[dict]:
    """Every host-device synchronisation of ``steps`` trainer steps (logging only after the last) on the GPU,
    with the step and the source line that asked for it."""
    import torch

    from micmco.tasks import get_task
    from micmco.trainer import Trainer

    task, current = get_task(config.task), {"step": -1}
    stream = task.training_data(config)

    def data(step):
        current["step"] = step
        return stream(step)

    trainer = Trainer(task.build_model(config), task.build_loss(config), data, config.train, config.seed)
    torch.cuda.synchronize()
    with capture_syncs(current) as found:
        torch.cuda.set_sync_debug_mode("warn")
        try:
            trainer.fit()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return found


def sync_audit(plan: Plan, out: dict) -> None:
    if plan.device != "cuda":
        raise Skip("needs CUDA (torch.cuda.set_sync_debug_mode)")
    steps = plan.audit_steps
    quiet = [f"train.steps={steps}", f"train.log_every={steps}", "train.checkpoint_every=0", "train.progress=false"]
    settings = {"synthetic": load(SYNTHETIC, *plan.synthetic, *quiet)}
    if (reason := ptb_missing()) is None:
        settings["ptb"] = load(PTB, *plan.ptb, *STATE_DROPOUT, "model.masks=shared", *quiet)
    else:
        out["incomplete"] = reason
    bad = 0
    for task, config in settings.items():
        syncs = syncs_of_training(config, steps)
        inside = [s for s in syncs if 0 < s["step"] < steps - 1]  # step 0 reads the first loss; the last logs
        out[task] = {"steps": steps, "syncs": syncs, "in_non_logging_steps": len(inside)}
        bad += len(inside)
    out["failed"] = bad > 0
    counts = ", ".join(f"{task} {out[task]['in_non_logging_steps']}" for task in settings)
    out["summary"] = f"syncs in non-logging steps: {counts} (goal 0)"


def median_ms(config, plan: Plan) -> float:
    timer = Timer(plan.device)
    train_steps(config, plan.device, plan.warmup + plan.timed, lambda step: step >= plan.warmup and timer.mark())
    timer.mark()
    return statistics.median(timer.milliseconds())


def busy_fraction(config, plan: Plan) -> float:
    """The GPU's kernel time over wall time for ``plan.timed`` steps (torch.profiler, after the warm-up)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    train_steps(config, plan.device, plan.warmup)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
        started = time.perf_counter()
        train_steps(config, plan.device, plan.timed)
        torch.cuda.synchronize()
        wall_us = (time.perf_counter() - started) * 1e6
    kernels_us = 0.0
    for event in profiler.key_averages():
        if str(getattr(event, "device_type", "")).endswith("CUDA"):
            kernels_us += getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0)
    return kernels_us / wall_us


def step_time(plan: Plan, out: dict) -> None:
    settings = [(f"synthetic K={k}", SYNTHETIC, (*plan.synthetic, f"estimator.num_samples={k}")) for k in (1, 16, 64)]
    if (reason := ptb_missing()) is None:
        for k in (1, 16):
            for dropout in ((), tuple(STATE_DROPOUT)):
                label = f"ptb K={k}" + (" state dropout" if dropout else "")
                settings.append((label, PTB, (*plan.ptb, f"estimator.num_samples={k}", *dropout)))
    else:
        out["incomplete"] = reason
    rows = out.setdefault("ms_per_step", {})
    for label, path, overrides in settings:
        for precision in ("float32", "tf32"):
            config = load(path, *overrides, *set_precision(precision))
            rows[f"{label} {precision}"] = round(median_ms(config, plan), 4)
    set_precision("float32")
    paper = {}
    for task, path in (("synthetic", SYNTHETIC), ("ptb", PTB)):
        key = f"{task} K=16 float32"
        if key in rows:
            steps = load(path).train.steps
            paper[task] = {
                "ms_per_step": rows[key],
                "goal_ms": GOALS_MS[task],
                "meets_goal": rows[key] <= GOALS_MS[task],
                "trial_minutes": round(rows[key] * steps / 60000, 2),
                "steps": steps,
            }
    out["paper_trial"] = paper
    if plan.device == "cuda":
        sizes = {"synthetic": (SYNTHETIC, plan.synthetic), "ptb": (PTB, plan.ptb)}
        out["busy_fraction"] = {}
        for task, (path, size) in sizes.items():
            try:  # a figure, not a check: a profiler that fails here (no CUPTI) is reported, not fatal
                out["busy_fraction"][task] = round(busy_fraction(load(path, *size), plan), 3) if task in paper else None
            except Exception as error:  # noqa: BLE001
                out["busy_fraction"][task] = f"error: {type(error).__name__}: {error}".splitlines()[0]
    else:
        out["busy_fraction"] = "skipped: needs CUDA (the profiler's kernel times)"
    out["summary"] = "; ".join(
        f"{task} DReG 16 {v['ms_per_step']} ms, trial ~{v['trial_minutes']} min" for task, v in paper.items()
    )


@contextlib.contextmanager
def same_noise_on_every_device():
    """Every seeded draw (torch.randn, rand, randint; Tensor.bernoulli_, normal_, uniform_) comes from a CPU
    generator, the twin of the one passed (same seed, own stream), and is moved to the device: the GPU and the
    CPU then train on identical noise, whatever device the code's generators are on (their streams differ)."""
    import torch

    twins: dict[int, tuple] = {}  # id -> (generator, its CPU twin); holding the generator keeps the id unique

    def on_cpu(generator):
        if generator is None or generator.device.type == "cpu":
            return generator
        return twins.setdefault(id(generator), (generator, torch.Generator().manual_seed(generator.initial_seed())))[1]

    def drawing(real):
        def draw(*args, generator=None, device=None, **kwargs):
            if generator is None:
                return real(*args, device=device, **kwargs)
            value = real(*args, generator=on_cpu(generator), **kwargs)
            return value.to(device if device is not None else generator.device)

        return draw

    def filling(real):
        def fill(self, *args, generator=None, **kwargs):
            if generator is None or self.device.type == "cpu" and generator.device.type == "cpu":
                return real(self, *args, generator=generator, **kwargs)
            drawn = real(torch.empty(self.shape, dtype=self.dtype), *args, generator=on_cpu(generator), **kwargs)
            return self.copy_(drawn)

        return fill

    patched = [(torch, name, drawing) for name in ("randn", "rand", "randint")]
    patched += [(torch.Tensor, name, filling) for name in ("bernoulli_", "normal_", "uniform_")]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patched]
    for (owner, name, wrap), (_, _, real) in zip(patched, originals):
        setattr(owner, name, wrap(real))
    try:
        yield
    finally:
        for owner, name, real in originals:
            setattr(owner, name, real)


def first_losses(config, device: str, steps: int) -> list[float]:
    with same_noise_on_every_device():
        return [float(value) for value in train_steps(config, device, steps)]


def gpu_vs_cpu(plan: Plan, out: dict) -> None:
    set_precision("float32")  # TF32 off on both back ends
    tasks = {"synthetic": (SYNTHETIC, plan.compare["synthetic"], ())}
    if (reason := ptb_missing()) is None:
        tasks["ptb"] = (PTB, plan.compare["ptb"], (*STATE_DROPOUT, "model.masks=shared"))
    else:
        out["incomplete"] = reason
    worst, rows = 0.0, out.setdefault("runs", {})
    for task, (path, sizes, regularised) in tasks.items():
        for base, k, latent in estimator_cases():
            overrides = (
                *sizes,
                *regularised,
                f"estimator.base={base}",
                f"estimator.num_samples={k}",
                f"model.latent.kind={latent}",
                *set_precision("float32"),
            )
            config = load(path, *overrides)
            gpu = first_losses(config, plan.device, plan.compare_steps)
            cpu = first_losses(config, "cpu", plan.compare_steps)
            difference = max(abs(a - b) / max(abs(b), 1e-30) for a, b in zip(gpu, cpu))
            rows[f"{task} {base} K={k} {latent}"] = {"gpu": gpu, "cpu": cpu, "relative_difference": difference}
            worst = max(worst, difference)
    out.update(largest_relative_difference=worst, tolerance=TOLERANCE, failed=worst > TOLERANCE)
    out["summary"] = f"{len(rows)} settings, largest relative difference {worst:.1e} (at most {TOLERANCE:g})"


def evaluation(plan: Plan, out: dict) -> None:
    import itertools

    import torch

    from micmco.evaluation import evaluate
    from micmco.tasks import get_task

    if (reason := ptb_missing()) is not None:
        raise Skip(reason)
    config = load(PTB, *plan.ptb, "eval.split=valid", "eval.num_samples=100")
    task, device = get_task(config.task), torch.device(plan.device)
    model = task.build_model(config).to(device)
    batches = task.evaluation_batches(config, "valid")
    if plan.eval_batches:
        batches = itertools.islice(batches, plan.eval_batches)
    estimate = task.estimate_memory(config, device).eval_bytes
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    metrics = evaluate(model, batches, config.eval, seed=config.seed)
    seconds = time.perf_counter() - started
    out.update(seconds=round(seconds, 2), tokens=metrics["units"], nll=metrics["nll"], K=100, estimate_bytes=estimate)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated()
        out.update(peak_bytes=peak, peak_over_estimate=round(peak / estimate, 3), failed=peak > estimate)
        out["summary"] = f"{seconds:.1f} s, peak {peak / 2**30:.2f} GiB of an estimated {estimate / 2**30:.2f} GiB"
    else:
        out["peak_bytes"] = "skipped: needs CUDA (torch.cuda.max_memory_allocated)"
        out["summary"] = f"{seconds:.1f} s"


def resume(plan: Plan, out: dict, scratch: Path) -> None:
    """A run killed (SIGKILL) after its first checkpoint and rerun ends as the same run uninterrupted."""
    if (reason := ptb_missing()) is None:
        path, sizes = PTB, (*plan.compare["ptb"], *STATE_DROPOUT, "model.masks=shared", *plan.resume_eval)
    else:
        out["incomplete"] = reason
        path, sizes = SYNTHETIC, plan.compare["synthetic"]
    overrides = [*sizes, f"train.steps={plan.resume_steps}", f"train.checkpoint_every={plan.resume_every}",
                 f"train.device={plan.device}"]  # fmt: skip
    command = [sys.executable, "-m", "micmco", "train", str(path), "--quiet"]
    command += [arg for value in overrides for arg in ("--set", value)]
    source = str(REPO / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))}
    killed, whole = scratch / "killed", scratch / "whole"

    live: list[subprocess.Popen] = []  # killed in the end whatever happens (a cut included)

    def train(folder: Path) -> subprocess.Popen:
        process = subprocess.Popen(
            [*command, "--output-dir", str(folder)],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        live.append(process)
        return process

    def finish(process: subprocess.Popen) -> None:
        _, err = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"micmco train exited {process.returncode}: {err.strip().splitlines()[-1:]}")

    try:
        process = train(killed)
        while not list(killed.glob("*/checkpoint.pt")) and process.poll() is None:
            time.sleep(0.01)
        if process.poll() is not None:
            finish(process)
            raise Skip("the run finished before it could be killed; nothing was resumed")
        process.send_signal(signal.SIGKILL)
        process.wait()
        from micmco.trainer import read_checkpoint

        out["killed_after_step"] = int(read_checkpoint(next(killed.glob("*/checkpoint.pt")))["state"]["step"])
        for folder in (killed, whole):
            finish(train(folder))
    finally:
        for process in live:
            if process.poll() is None:
                process.kill()
                process.wait()
    first, second = (json.loads(next(f.glob("*/result.json")).read_text()) for f in (killed, whole))
    same = first["metrics"] == second["metrics"] and first["train_history"] == second["train_history"]
    out.update(
        task=first["config"]["task"],
        steps=plan.resume_steps,
        resumed_from=first["resumed_from_steps"],
        resumed=first["metrics"],
        uninterrupted=second["metrics"],
        # not 0 although resumption is exact: kernels that are not deterministic (CUDA's atomic adds) at work
        largest_relative_difference=max(
            abs(a - b) / max(abs(b), 1e-30)
            for a, b in zip(first["metrics"].values(), second["metrics"].values())
            if isinstance(b, float)
        ),
        failed=not same or not first["resumed_from_steps"],
    )
    out["summary"] = f"{out['task']}: resumed from step {first['resumed_from_steps']}: " + (
        "the same metrics and history" if same else "DIFFERENT from the uninterrupted run"
    )


BATCH_TOLERANCE = 1e-3  # batched against single losses over 200 GPU steps: other kernels' sums, compounded
BATCH_GOALS = {1: 600, 16: 300}  # issue 22's goals: paper-size synthetic trials per GPU-hour (40k steps), by K


def batched(plan: Plan, out: dict) -> None:
    """Many trials in one process: ms per trial-step at N = 1, 8, 32, 64 (paper-size synthetic, K = 1 and 16)
    against the single path, the trials per GPU-hour that gives, and trial n of a batch against it alone over
    200 steps (the largest relative difference of their losses: another kernel's sums, not bit for bit)."""
    import batch_throughput as bt  # benchmarks/, on the path when this script runs
    import torch

    device = torch.device(plan.device)
    vocab = 10000 if plan.device == "cuda" else 50
    trials = (1, 8, 32, 64) if plan.device == "cuda" else (1, 2)
    x = torch.randint(vocab, (256,), generator=torch.Generator().manual_seed(0)).to(device)
    rows = out.setdefault("ms_per_trial_step", {})
    per_hour = out.setdefault("trials_per_gpu_hour", {})
    for K in (1, 16):
        steps = bt.STEPS_PER_TRIAL["paper"]
        single = bt._time(bt._single(vocab, K, device), x, device, plan.timed)
        rows[f"K={K} single"] = round(single * 1000, 4)
        for N in trials:
            seconds = bt._time(bt._batched(vocab, K, N, device), x, device, plan.timed) / N
            rows[f"K={K} N={N}"] = round(seconds * 1000, 4)
            per_hour[f"K={K} N={N}"] = round(3600 / (seconds * steps), 1)
        best = max(v for k, v in per_hour.items() if k.startswith(f"K={K} "))
        out.setdefault("meets_goal", {})[f"K={K}"] = best >= BATCH_GOALS[K]
    out["differences"] = bt.batched_against_single(vocab, 4, 200 if plan.device == "cuda" else 5, device)
    out["failed"] = not out["differences"]["max_relative"] <= BATCH_TOLERANCE
    out["summary"] = (
        "; ".join(
            f"K={K}: best {max(v for k, v in per_hour.items() if k.startswith(f'K={K} '))} trials/GPU-hour "
            f"(goal {BATCH_GOALS[K]})"
            for K in (1, 16)
        )
        + f"; batched vs single over the steps: max rel. diff {out['differences']['max_relative']:.2g}"
    )


def anatomy(plan: Plan, out: dict) -> None:
    """One paper DReG 16 step taken apart (PTB where its files are, else synthetic), with each softmax head
    (``train.head``): ms of its loss (forward and DReG's path-only pass), backward pass and optimiser step from
    CUDA events; the host's time to enqueue a step (steps issued without waiting for the device) against the
    step's time; and the 30 kernels (CPU operators in the dry run) that took longest in one step."""
    import torch

    missing = ptb_missing()
    path, size = (SYNTHETIC, plan.synthetic) if missing else (PTB, plan.ptb)
    if missing:
        out["incomplete"] = missing
    out["task"] = "synthetic" if missing else "ptb"
    phases: dict = {}
    for head in ("cached", "recompute"):
        config = load(path, *size, f"train.head={head}", *set_precision("float32"))
        timer = Timer(plan.device)
        timing = {"on": False}

        def start(step: int) -> None:
            if step == plan.warmup:
                timing["on"] = True
                timer.mark()

        train_steps(config, plan.device, plan.warmup + plan.timed, start, lambda phase: timing["on"] and timer.mark())
        ms = timer.milliseconds()  # loss, backward, optimiser of each timed step, in turn
        phases[head] = {
            name: round(statistics.median(ms[i::3]), 4) for i, name in enumerate(("loss", "backward", "optimiser"))
        }
        phases[head]["step"] = round(sum(phases[head].values()), 4)
    out["ms_by_phase"] = phases
    out["cached_over_recompute"] = round(phases["cached"]["step"] / phases["recompute"]["step"], 3)
    config = load(path, *size, *set_precision("float32"))  # the default head
    train_steps(config, plan.device, plan.warmup)
    synchronize = torch.cuda.synchronize if plan.device == "cuda" else (lambda: None)
    synchronize()
    started = time.perf_counter()
    train_steps(config, plan.device, plan.timed)
    enqueued = time.perf_counter()
    synchronize()
    finished = time.perf_counter()
    out["host_ms_per_step"] = round((enqueued - started) * 1000 / plan.timed, 4)
    out["device_ms_per_step"] = round((finished - started) * 1000 / plan.timed, 4)
    out["top_operations"] = top_operations(config, plan)
    out["summary"] = (
        f"{out['task']} DReG 16: cached head {phases['cached']['step']} ms/step, recompute "
        f"{phases['recompute']['step']} ms ({out['cached_over_recompute']}x); host {out['host_ms_per_step']} ms of "
        f"{out['device_ms_per_step']} ms per step"
    )


def top_operations(config, plan: Plan, count: int = 30) -> list[dict]:
    """The ``count`` kernels (CUDA) or operators (CPU) with the most self time in one step after the warm-up."""
    from torch.profiler import ProfilerActivity, profile

    train_steps(config, plan.device, plan.warmup)
    cuda = plan.device == "cuda"
    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
    with profile(activities=activities) as profiler:
        train_steps(config, plan.device, 1)
        if cuda:
            import torch

            torch.cuda.synchronize()
    rows = []
    for event in profiler.key_averages():
        on_device = str(getattr(event, "device_type", "")).endswith("CUDA")
        if cuda:
            microseconds = getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0)
        else:
            microseconds = event.self_cpu_time_total
        if microseconds > 0 and (on_device or not cuda):
            rows.append({"name": event.key[:120], "calls": event.count, "self_us": round(float(microseconds), 1)})
    rows.sort(key=lambda row: -row["self_us"])
    return rows[:count]


SECTIONS = ("versions", "sync_audit", "step_time", "anatomy", "gpu_vs_cpu", "evaluation", "resume", "batched")


# --- running the sections, each in its time box ------------------------------------------------------------------


@contextlib.contextmanager
def time_box(seconds: float):
    """Raise Overran in the main thread once ``seconds`` have passed (between Python operations)."""

    def overran(signum, frame):
        raise Overran

    previous = signal.signal(signal.SIGALRM, overran)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_section(name: str, plan: Plan, scratch: Path) -> dict:
    """One section's figures and status: passed, failed, incomplete (a part skipped), skipped, cut or error."""
    function = globals()[name]
    out: dict = {}
    started = time.perf_counter()
    try:
        with time_box(plan.budgets[name]):
            function(plan, out, scratch) if name == "resume" else function(plan, out)
        status = "failed" if out.pop("failed", False) else "incomplete" if "incomplete" in out else "passed"
    except Overran:
        status, out["reason"] = "cut", f"overran its {plan.budgets[name]:g} s time box"
    except Skip as skip:
        status, out["reason"] = "skipped", str(skip)
    except Exception as error:  # noqa: BLE001 - a section's failure is reported; the other sections still run
        status = "error"
        out["reason"] = f"{type(error).__name__}: {error}".splitlines()[0]
        out["traceback"] = traceback.format_exc().splitlines()[-6:]
    finally:
        if plan.device == "cuda":
            import torch

            torch.cuda.set_sync_debug_mode(0)
    out["status"], out["seconds"] = status, round(time.perf_counter() - started, 1)
    return out


def exit_code(results: dict) -> int:
    statuses = {section["status"] for section in results["sections"].values()}
    if statuses & {"failed", "error"}:
        return EXIT_FAILED
    return EXIT_INCOMPLETE if statuses - {"passed"} else EXIT_PASSED


def table(results: dict) -> str:
    lines = [f"gpu-check on {results['sections'].get('versions', {}).get('summary', results['device'])}"]
    for name, section in results["sections"].items():
        detail = section.get("summary") or section.get("reason") or ""
        extra = f" ({section['incomplete']})" if "incomplete" in section else ""
        lines.append(f"  {name:<11} {section['status']:<10} {section['seconds']:>6.1f} s  {detail}{extra}")
    for label, ms in results["sections"].get("step_time", {}).get("ms_per_step", {}).items():
        lines.append(f"    {label:<34} {ms:9.3f} ms/step")
    lines.append(f"exit {results['exit_code']}: {MEANINGS[results['exit_code']]}; figures in {results['out']}")
    return "\n".join(lines)


MEANINGS = {EXIT_PASSED: "all passed", EXIT_FAILED: "a check failed", EXIT_INCOMPLETE: "incomplete (skipped or cut)"}


def write_results(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs/gpu-check.json", help="the JSON file of figures")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections (the rest: skipped)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help=argparse.SUPPRESS)  # cpu: tests
    args = parser.parse_args(argv)
    if args.device == "cuda" and not nvidia_driver_present():  # before importing torch: nothing to check here
        print(NO_CUDA, file=sys.stderr)
        return EXIT_NO_CUDA
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return EXIT_NO_CUDA
    plan = GPU if args.device == "cuda" else CPU_DRY_RUN
    torch.set_num_threads(min(8, os.cpu_count() or 1) if plan.device == "cuda" else 1)
    results: dict = {"device": plan.device, "out": str(args.out), "sections": {}}
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        for name in SECTIONS:
            if args.only and name not in args.only:
                results["sections"][name] = {"status": "skipped", "reason": "not in --only", "seconds": 0.0}
                continue
            print(f"gpu-check: {name} ...", file=sys.stderr, flush=True)
            results["sections"][name] = run_section(name, plan, Path(scratch) / name)
            write_results(args.out, results)  # after every section: a check killed from outside keeps its figures
    results["exit_code"] = exit_code(results)
    write_results(args.out, results)
    print(table(results))
    return results["exit_code"]


if __name__ == "__main__":
    raise SystemExit(main())
