"""Trials per hour of batched training (micmco.batched) against one trial per process, side by side.

For the synthetic task at the cpu trial size (V = 1000) and the paper's size (V = 10000), batch 256,
hidden 128, Gaussian latents, K = 1 (DReG 1, launch-bound on small models) and K = 16 (DReG 16 with the
Rényi objective, compute-bound), each N in --trials trains N trials (their own λ, α and learning rates) as
one batch, and N = 1 also on the single path (micmco.trainer's model, loss and torch.optim.Adam). A step is
the loss, its backward pass and the Adam update. Each round times every cell once, so slow phases of a
shared machine hit all alike; the table gives the median over rounds of ms per trial-step, trials per hour
(a trial being --steps steps, evaluation excluded) and the ratio to the single path measured in the same
rounds: its throughput gain.

    python benchmarks/batch_throughput.py [--trials 1,4,16,64] [--rounds 3] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from micmco.batched.adam import BatchedAdam
from micmco.batched.loss import BatchedVariationalLoss
from micmco.gradients import VariationalLoss
from micmco.latents import GaussianLatent
from micmco.models.synthetic import BatchedSingleSymbolVAE, SingleSymbolVAE
from micmco.objectives import Objective
from micmco.runtime import step_generator

SIZES = {"cpu": 1000, "paper": 10000}
SETTINGS = {1: ("dreg", "kl"), 16: ("dreg", "renyi")}
STEPS_PER_TRIAL = {"cpu": 6000, "paper": 40000}  # the cpu profile's steps, the paper's


def _single(vocab: int, K: int, device):
    base, kind = SETTINGS[K]
    model = SingleSymbolVAE(vocab, GaussianLatent(40), 128).to(device)
    loss = VariationalLoss(base, Objective(kind, lam=0.5, alpha=2.0, num_samples=K))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.0, 0.999), eps=1e-8)

    def step(t: int, x):
        value, _ = loss(model, x, step_generator(0, "noise", t, device))
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()

    return step


def _batched(vocab: int, K: int, N: int, device):
    base, kind = SETTINGS[K]
    models = [SingleSymbolVAE(vocab, GaussianLatent(40), 128) for _ in range(N)]
    model = BatchedSingleSymbolVAE(models).to(device)
    lams = [0.1 + 0.8 * n / max(1, N - 1) for n in range(N)]
    loss = BatchedVariationalLoss(base, kind, lams, [1.5 + n / N for n in range(N)], K)
    params = dict(model.named_parameters())
    names = [name for name, _ in models[0].named_parameters()]
    optimizer = BatchedAdam({n: params[n] for n in names}, [1e-3] * N, (0.0, 0.999), 1e-8)
    active = [True] * N

    def step(t: int, x):
        values, _ = loss(model, x, step_generator(0, "noise", t, device))
        optimizer.zero_grad()
        values.sum().backward()
        finite = torch.isfinite(values.detach())  # as the batch trainer steps: masked on a GPU (no host read)
        if device.type == "cpu" and bool(finite.all()):
            finite = None  # in place where reading the mask costs nothing
        optimizer.step(active, finite)

    return step


def batched_against_single(vocab: int, N: int, steps: int, device) -> dict:
    """N trials (DReG 16, Rényi, their own λ, α, learning rates) trained ``steps`` steps as one batch and each
    alone, on ``device``: the largest relative difference of their training losses and final parameters."""
    lams, alphas = [0.2 + 0.2 * n for n in range(N)], [1.5 + n for n in range(N)]
    rates = [1e-3 * (n + 1) for n in range(N)]
    singles = []
    for n in range(N):
        torch.manual_seed(n)
        singles.append(SingleSymbolVAE(vocab, GaussianLatent(40), 128))
    model = BatchedSingleSymbolVAE(singles).to(device)
    singles = [m.to(device) for m in singles]
    loss = BatchedVariationalLoss("dreg", "renyi", lams, alphas, 16)
    params = dict(model.named_parameters())
    names = [name for name, _ in singles[0].named_parameters()]
    optimizer = BatchedAdam({name: params[name] for name in names}, rates, (0.0, 0.999), 1e-8)
    losses = []
    for t in range(steps):
        x = torch.randint(vocab, (256,), generator=torch.Generator().manual_seed(t)).to(device)
        values, _ = loss(model, x, step_generator(0, "noise", t, device))
        optimizer.zero_grad()
        values.sum().backward()
        optimizer.step([True] * N)
        losses.append(values.detach())
    worst_loss = worst_param = 0.0
    for n, single in enumerate(singles):
        single_loss = VariationalLoss("dreg", Objective("renyi", lam=lams[n], alpha=alphas[n], num_samples=16))
        adam = torch.optim.Adam(single.parameters(), lr=rates[n], betas=(0.0, 0.999), eps=1e-8)
        for t in range(steps):
            x = torch.randint(vocab, (256,), generator=torch.Generator().manual_seed(t)).to(device)
            value, _ = single_loss(single, x, step_generator(0, "noise", t, device))
            adam.zero_grad(set_to_none=True)
            value.backward()
            adam.step()
            worst_loss = max(worst_loss, (abs(value.item() - losses[t][n].item()) / abs(value.item())))
        for name, p in single.named_parameters():
            scale = p.detach().abs().max().item() or 1.0
            worst_param = max(worst_param, (p.detach() - params[name][n].detach()).abs().max().item() / scale)
    return {"trials": N, "steps": steps, "max_relative": worst_loss, "max_relative_parameters": worst_param}


def _time(step, x, device, steps: int) -> float:
    step(0, x)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for t in range(1, steps + 1):
        step(t, x)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", default="1,4,16,64", help="batch sizes N, comma-separated")
    parser.add_argument("--sizes", default="cpu,paper", help="model sizes: cpu (V = 1000), paper (V = 10000)")
    parser.add_argument("--samples", default="1,16", help="K values: 1 (DReG 1), 16 (DReG 16, Rényi)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per cell per round (at least one step)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    trials = [int(n) for n in args.trials.split(",")]
    print(f"device {device}, {args.threads} thread(s), torch {torch.__version__}, {args.rounds} rounds")
    print(f"{'size':6} {'K':>3} {'N':>4} {'ms/trial-step':>14} {'trials/hour':>12} {'x single':>9}")
    for size in args.sizes.split(","):
        vocab = SIZES[size]
        x = torch.randint(vocab, (256,), generator=torch.Generator().manual_seed(0)).to(device)
        for K in (int(k) for k in args.samples.split(",")):
            cells = {"single": _single(vocab, K, device), **{N: _batched(vocab, K, N, device) for N in trials}}
            per_step = {name: _time(step, x, device, 1) for name, step in cells.items()}  # sizes the rounds
            timings: dict = {name: [] for name in cells}
            ratios: dict = {name: [] for name in cells}
            for _ in range(args.rounds):
                measured = {}
                for name, step in cells.items():
                    steps = max(1, int(args.budget / per_step[name]))
                    measured[name] = _time(step, x, device, steps) / (1 if name == "single" else name)
                for name, seconds in measured.items():
                    timings[name].append(seconds)
                    ratios[name].append(measured["single"] / seconds)
            for name in cells:
                ms = statistics.median(timings[name]) * 1000
                per_hour = 3600 / (statistics.median(timings[name]) * STEPS_PER_TRIAL[size])
                label = "1*" if name == "single" else str(name)
                gain = statistics.median(ratios[name])
                print(f"{size:6} {K:>3} {label:>4} {ms:>14.3f} {per_hour:>12.1f} {gain:>9.2f}")
    print("1* = one trial per process (the single path); trials/hour at", STEPS_PER_TRIAL, "steps per trial")


if __name__ == "__main__":
    main()
