"""The batched Adam's masked update against its in-place one, side by side in one process (issue 31).

On a GPU the trainer passes the finite-loss mask on every step (reading it on the host would synchronise), so
the masked update is the one that runs there; on a CPU it runs only when a loss is not finite. Prints the median
over rounds of (masked / in place) for N trials of a paper-size synthetic VAE's parameters (V = 10,000,
H = 128), on the CPU, or on CUDA where there is one.

    python benchmarks/adam_masked.py [--trials 16] [--rounds 5]
"""

import argparse
import statistics
import time

import torch

from micmco.batched.adam import BatchedAdam


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    N, V, H = args.trials, 10_000, 128  # trials, vocabulary, hidden size
    shapes = {"embedding": (V, H), "encoder": (H, H), "latent": (H, H), "head": (V, H), "head_bias": (V,)}
    torch.manual_seed(0)
    parameters = {k: torch.nn.Parameter(torch.randn(N, *s, device=device)) for k, s in shapes.items()}
    for p in parameters.values():
        p.grad = torch.randn_like(p)
    optimizer = BatchedAdam(parameters, [1e-3] * N, (0.9, 0.999), 1e-8)
    finite = torch.ones(N, dtype=torch.bool, device=device)
    active = [True] * N

    def timed(mask) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(5):
            optimizer.step(active, mask)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - started) / 5

    timed(None), timed(finite)  # warm up
    ratios, masked_times = [], []
    for _ in range(args.rounds):
        in_place, masked = timed(None), timed(finite)
        ratios.append(masked / in_place)
        masked_times.append(masked)
    print(
        f"batched Adam, {N} trials x {sum(p[0].numel() for p in parameters.values()):,} parameters on {device}: "
        f"masked update {statistics.median(masked_times) * 1e3:.1f} ms, masked / in place "
        f"{statistics.median(ratios):.2f} (median of {args.rounds} rounds)"
    )


if __name__ == "__main__":
    main()
