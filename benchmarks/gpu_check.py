"""One command for a GPU box (``make gpu-check``, at most a few minutes): for the synthetic and the PTB task
at the paper's settings, steps/s and (sample-)tokens/s on the GPU, the projected time of one paper trial,
and the loss of a few training steps on the GPU against the same steps on the CPU (float tolerance).

    python benchmarks/gpu_check.py [--steps 20] [--compare-steps 3]

Without a CUDA device it says so in one line and exits with EXIT_NO_CUDA = 5 having run nothing (not 0:
a check that checked nothing has not passed). Where the machine shows no NVIDIA driver it exits before
even importing torch, in well under a second. Exit codes: 0 the GPU and CPU losses agree, 1 they differ,
2 bad arguments, 5 no CUDA device. It has not yet run on a GPU: no device has been lent to this project's
sessions (see NOTES.md).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXIT_NO_CUDA = 5  # no CUDA device here: nothing was checked
# What an NVIDIA driver shows on Linux (device nodes, the driver's proc entry) and under WSL2 (/dev/dxg).
DRIVER_PATHS = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/dxg")
NO_CUDA = "gpu-check: no CUDA device here; nothing was checked (run it on a GPU box)"
CONFIGS = {
    "synthetic": REPO / "params/synthetic/paper/dreg16-kl.yaml",
    "ptb": REPO / "params/ptb/paper/ptb-base-dreg.yaml",
}


def nvidia_driver_present() -> bool:
    """Whether this machine shows an NVIDIA driver, without importing torch (no driver: no CUDA device)."""
    return any(Path(path).exists() for path in DRIVER_PATHS)


@contextlib.contextmanager
def noise_on_the_cpu():
    """torch.randn/rand draw from a CPU generator and move the result: the same noise on every device,
    so that the GPU and the CPU train on identical samples (their own generators' streams differ)."""
    import torch

    randn, rand = torch.randn, torch.rand

    def on_cpu(real):
        def draw(*size, generator=None, device=None, dtype=None, **kwargs):
            return real(*size, generator=generator, dtype=dtype, **kwargs).to(device or "cpu")

        return draw

    torch.randn, torch.rand = on_cpu(randn), on_cpu(rand)
    try:
        yield
    finally:
        torch.randn, torch.rand = randn, rand


def losses(config, device: str, steps: int) -> list[float]:
    """The training losses of the first ``steps`` Adam steps of ``config`` on ``device``, from the same
    initialisation, batches and noise on every device."""
    import torch

    from micmco.experiment import build_loss, build_model, task_of
    from micmco.trainer import step_generator, to_device

    model, loss = build_model(config).to(device), build_loss(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.learning_rate, betas=(0.0, 0.999), eps=1e-8)
    data, values = task_of(config).training_data(config), []
    with noise_on_the_cpu():
        for step in range(steps):
            value, _ = loss(
                model, to_device(data(step), torch.device(device)), step_generator(config.seed, "noise", step)
            )
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            values.append(value.item())
    return values


def throughput(config, steps: int) -> tuple[float, float]:
    """(steps per second, sample-tokens per second) of training on the GPU, after two warm-up steps."""
    import torch

    from micmco.experiment import build_loss, build_model, task_of
    from micmco.trainer import step_generator, to_device

    task = task_of(config)
    device = torch.device("cuda")
    model, loss = build_model(config).to(device), build_loss(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.learning_rate)
    data = task.training_data(config)
    draws = max(config.estimator.num_samples, config.estimator.mi_samples or 0)
    tokens = 0
    for step in range(steps + 2):
        if step == 2:
            torch.cuda.synchronize()
            started, tokens = time.perf_counter(), 0
        batch = to_device(data(step), device)
        value, _ = loss(model, batch, step_generator(config.seed, "noise", step, device))
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        tokens += draws * (int(batch[1].sum()) if isinstance(batch, tuple) else len(batch))
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return steps / seconds, tokens / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per task")
    parser.add_argument("--compare-steps", type=int, default=3, help="steps compared between the GPU and the CPU")
    args = parser.parse_args()
    if not nvidia_driver_present():  # before importing torch: seconds saved where there is nothing to check
        print(NO_CUDA, file=sys.stderr)
        return EXIT_NO_CUDA
    import torch

    if not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return EXIT_NO_CUDA
    from micmco.experiment import load_config

    print(f"gpu-check on {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    failed = False
    for task, path in CONFIGS.items():
        config = load_config(path)
        steps_per_s, tokens_per_s = throughput(load_config(path), args.steps)
        hours = config.train.steps / steps_per_s / 3600
        print(f"{task}: {steps_per_s:.2f} steps/s, {tokens_per_s:,.0f} sample-tokens/s; "
              f"one paper trial ({config.train.steps} steps) ~{hours:.2f} h of training")  # fmt: skip
        small = ["data.batch_size=32"] + (["data.train_sentences=2000"] if task == "ptb" else [])
        gpu = losses(load_config(path, small), "cuda", args.compare_steps)
        cpu = losses(load_config(path, small), "cpu", args.compare_steps)
        worst = max(abs(a - b) / max(1.0, abs(b)) for a, b in zip(gpu, cpu))
        same = worst < 1e-3  # the same seeds; float32 on both, different kernels and summation orders
        failed |= not same
        shown = f"GPU {[round(v, 4) for v in gpu]} vs CPU {[round(v, 4) for v in cpu]}"
        verdict = "same within tolerance" if same else "DIFFERENT"
        print(f"  first {args.compare_steps} losses, {shown}: largest relative difference {worst:.1e} ({verdict})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
