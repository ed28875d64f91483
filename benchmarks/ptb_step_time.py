"""PTB training-step cost of the sentence VAE, measured side by side in one process (``make bench-ptb``).

Prints, each a median over rounds of ratios measured within one round (a shared machine slows both sides):

1. sentence-tokens per second of a DReG step at K = 16 relative to K = 1 (target: a K = 16 step costs at
   most 16 K = 1 steps, i.e. no more per sample) and relative to the K samples run one after another
   (K steps of K = 1 on the same sentences: the batched K·B decoder rows must beat the loop);
2. the same with recurrent-state dropout (the per-step LSTM path) against the fused LSTM, and the cached
   softmax head (``train.head: cached``, the default) against the recomputing one every run before it used;
3. the peak memory of a training step at K = 1, 16, 64 (growth of the process's VmHWM, in a fresh
   process) against the preflight estimate for this model.

    python benchmarks/ptb_step_time.py [--vocab 2000] [--hidden 64] [--batch 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "params/ptb/cpu/ptb-trial-dreg16-kl.yaml"


def config_for(args, samples: int, state_dropout: float = 0.0, head: str = "cached"):
    from micmco.runconfig import load_config

    overrides = [
        f"data.vocab_size={args.vocab}", f"data.batch_size={args.batch}", f"model.hidden_size={args.hidden}",
        f"model.embedding_size={args.hidden}", f"estimator.num_samples={samples}",
        f"model.state_dropout={state_dropout}", "train.progress=false", f"train.head={head}",
    ]  # fmt: skip
    return load_config(BASE, overrides)


def step_timer(config):
    """A function running one training step (loss, backward, Adam) on a fixed batch; returns its seconds."""
    from micmco.runtime import step_generator
    from micmco.tasks import get_task

    task = get_task(config.task)
    model, loss = task.build_model(config), task.build_loss(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = task.training_data(config)(0)

    def step(index: int = 0, rows=None) -> float:
        x = batch if rows is None else (batch[0][rows], batch[1][rows])
        started = time.perf_counter()
        value, _ = loss(model, x, step_generator(0, "noise", index))
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        return time.perf_counter() - started

    return step, int(batch[1].sum())


def ratios(args) -> None:
    torch.set_num_threads(1)
    one, tokens = step_timer(config_for(args, 1))
    many, _ = step_timer(config_for(args, 16))
    many_sd, _ = step_timer(config_for(args, 16, 0.3))
    one_sd, _ = step_timer(config_for(args, 1, 0.3))
    many_old, _ = step_timer(config_for(args, 16, head="recompute"))
    one_old, _ = step_timer(config_for(args, 1, head="recompute"))
    for timer in (one, many, many_sd, one_sd, many_old, one_old):
        timer()  # warm up
    rows = {"K=16 / K=1": [], "K=16 / 16 x K=1 (loop)": [], "state dropout / fused, K=16": [],
            "state dropout / fused, K=1": [], "cached / recompute head, K=16": [],
            "cached / recompute head, K=1": []}  # fmt: skip
    times = {"K=1": [], "K=16": []}
    for round_ in range(args.rounds):
        t1, t16 = one(round_), many(round_)
        loop = sum(one(round_ * 16 + i) for i in range(16))
        rows["K=16 / K=1"].append(t16 / t1)
        rows["K=16 / 16 x K=1 (loop)"].append(t16 / loop)
        rows["state dropout / fused, K=16"].append(many_sd(round_) / t16)
        rows["state dropout / fused, K=1"].append(one_sd(round_) / t1)
        rows["cached / recompute head, K=16"].append(t16 / many_old(round_))
        rows["cached / recompute head, K=1"].append(t1 / one_old(round_))
        times["K=1"].append(t1)
        times["K=16"].append(t16)
    print(
        f"PTB sentence VAE, DReG, V = {args.vocab}, H = {args.hidden}, batch {args.batch} ({tokens} tokens), 1 thread"
    )
    for name, values in times.items():
        seconds = statistics.median(values)
        samples = int(name.split("=")[1])
        print(f"  {name}: {seconds * 1000:7.1f} ms per step, {tokens * samples / seconds:9.0f} sample-tokens/s")
    print("ratios (median over rounds; target K=16 / K=1 <= 16, loop ratio < 1, cached / recompute <= 0.5 at K=16):")
    for name, values in rows.items():
        print(f"  {name:32s} {statistics.median(values):6.2f}")


PROBE = r"""
import json, sys, torch
sys.path.insert(0, sys.argv[1])
from ptb_step_time import config_for, step_timer
import argparse
args = argparse.Namespace(vocab=int(sys.argv[2]), batch=int(sys.argv[3]), hidden=int(sys.argv[4]))
torch.set_num_threads(1)
config = config_for(args, int(sys.argv[5]))
step, _ = step_timer(config)
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
before = status("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")
step(); step()
from micmco.tasks import get_task
estimate = get_task(config.task).estimate_memory(config).train_bytes
print(json.dumps({"measured": status("VmHWM:") - before, "estimate": estimate}))
"""


def memory(args) -> None:
    print("peak memory of a training step (MiB): measured (VmHWM growth) / preflight estimate")
    for samples in (1, 16, 64):
        command = [sys.executable, "-c", PROBE, str(Path(__file__).parent), str(args.vocab), str(args.batch),
                   str(args.hidden), str(samples)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            print(f"  K = {samples}: failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  K = {samples:2d}: {result['measured'] / 2**20:7.1f} / {result['estimate'] / 2**20:7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=2000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from micmco.config import ConfigError
    from micmco.tasks import get_task
    from micmco.util import EXIT_INPUT

    try:  # the PTB files (and the sizes asked for) before any timing: one line, not a traceback
        config = config_for(args, 1)
        get_task(config.task).check_data(config)
    except ConfigError as error:
        print(f"ptb_step_time: {error}", file=sys.stderr)
        sys.exit(EXIT_INPUT)
    ratios(args)
    memory(args)


if __name__ == "__main__":
    main()
