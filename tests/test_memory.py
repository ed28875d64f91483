"""The peak-memory estimate against the measured peak of real training steps and evaluations."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from micmco.gradients import BASE_ESTIMATORS
from micmco.memory import StepCopies
from micmco.runconfig import load_config
from micmco.tasks import get_task

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "params" / "synthetic" / "smoke"

# Runs a few training steps (or one evaluation) in a fresh process and prints the growth of
# its peak resident memory over the moment the model was built, next to the estimate. The
# kernel's high-water mark is reset first (clear_refs 5), so nothing before counts.
PROBE = r"""
import json, sys
import torch
from micmco.tasks.synthetic import UniformSymbols
from micmco.evaluation import evaluate
from micmco.runconfig import load_config
from micmco.tasks import get_task
from micmco.trainer import Trainer

torch.set_num_threads(1)
phase, path, overrides = sys.argv[1], sys.argv[2], sys.argv[3:]
config = load_config(path, overrides + ["train.progress=false", "train.steps=3"])
task = get_task(config.task)
model, data = task.build_model(config), UniformSymbols(config.data, 0)
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
before = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # resets VmHWM to the current RSS
if phase == "train":
    Trainer(model, task.build_loss(config), data, config.train, 0).fit()
else:
    evaluate(model, data.evaluation_set()[: 2 * config.eval.batch_size], config.eval)
peak = status("VmHWM:")
estimate = task.estimate_memory(config, "cpu")
estimated = estimate.train_bytes if phase == "train" else estimate.eval_bytes
print(json.dumps({"measured": peak - before, "estimate": estimated}))
"""

CASES = [
    ("train", "dreg16-renyi.yaml", ["data.vocab_size=20000"]),
    ("train", "dreg16-renyi.yaml", ["data.vocab_size=1000", "estimator.num_samples=512"]),
    ("train", "vimco16-renyi.yaml", ["data.vocab_size=1000", "estimator.num_samples=512"]),
    ("train", "elbo-kl.yaml", ["data.vocab_size=50000", "data.batch_size=1024"]),
    ("train", "vqvae.yaml", ["data.vocab_size=20000"]),
    ("eval", "vimco16-renyi.yaml", ["data.vocab_size=20000"]),
]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to measure peak memory")
@pytest.mark.parametrize("phase, name, overrides", CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_the_estimate_covers_the_measured_peak_without_wild_overestimates(phase, name, overrides):
    output = subprocess.run(
        [sys.executable, "-c", PROBE, phase, str(SMOKE / name), *overrides],
        capture_output=True,
        text=True,
        timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout
    numbers = json.loads(output.strip().splitlines()[-1])
    measured, estimate = numbers["measured"], numbers["estimate"]
    assert measured <= 1.1 * estimate, f"underestimate: measured {measured / 2**20:.0f} MiB"
    assert estimate <= 2.5 * measured + 64 * 2**20, f"overestimate: {estimate / 2**20:.0f} MiB"


def test_impossible_configs_are_estimated_far_beyond_any_machine():
    task = get_task("synthetic")
    huge_vocab = load_config(SMOKE / "elbo-kl.yaml", ["data.vocab_size=100000000"])
    assert task.estimate_memory(huge_vocab).train_bytes > 100 * 2**30  # 25.6 GB per table, several copies
    many_samples = load_config(SMOKE / "vimco16-renyi.yaml", ["estimator.num_samples=100000"])
    assert task.estimate_memory(many_samples).train_bytes > 100 * 2**30


@pytest.mark.parametrize("head, copies", [("recompute", 6), ("cached", 2)])
def test_on_an_accelerator_the_full_logits_count(head, copies):
    """The recomputing head keeps DReG's six [K·B, V] copies where it does not chunk (an accelerator) and one
    chunk on a CPU; the cached head keeps one copy of every row on both, and a chunk's temporaries (two copies
    where it does not chunk)."""
    overrides = ["data.vocab_size=10000", "data.batch_size=256", f"train.head={head}"]
    config = load_config(SMOKE / "dreg16-renyi.yaml", overrides)
    task = get_task(config.task)
    cpu, cuda = task.estimate_memory(config, "cpu"), task.estimate_memory(config, "cuda")
    logits = 16 * 256 * 10000 * 4  # bytes of one [K·B, V] copy
    assert copies * logits * 0.9 < cuda.train_bytes - cpu.train_bytes < (copies + 2) * logits  # the allocator slack


PTB_PAPER = REPO / "params" / "ptb" / "paper" / "ptb-base-dreg.yaml"
H200 = 139 * 2**30  # an H200's memory, as torch.cuda.mem_get_info gives it


def test_the_paper_ptb_dreg_64_step_fits_a_139_gib_gpu(shared_dir, monkeypatch):
    """Its 23 GB of logits, six copies held at once unchunked (177 GiB), go through the chunked head."""
    monkeypatch.setenv("MICMCO_PTB", str(shared_dir / "data" / "ptb"))
    config = load_config(PTB_PAPER, ["estimator.num_samples=64", "eval.split=test"])
    task = get_task(config.task)
    assert task.estimate_memory(config, "cuda").peak_bytes <= H200
    assert task.estimate_memory(config, "cpu").peak_bytes <= H200


def test_ptb_evaluation_rows_count_the_evaluated_splits_longest_sentence(shared_dir, monkeypatch):
    """The test split is not truncated to max_length (35): its longest sentence has 78 tokens."""
    monkeypatch.setenv("MICMCO_PTB", str(shared_dir / "data" / "ptb"))
    memory = {
        split: get_task("ptb").estimate_memory(load_config(PTB_PAPER, [f"eval.split={split}"]), "cpu").eval_bytes
        for split in ("valid", "test")
    }
    assert memory["test"] > 1.8 * memory["valid"]  # rows: 78 against 35 positions per sentence


def test_the_head_chunks_on_an_accelerator_only_where_the_logits_are_huge():
    from micmco.models.common import head_chunk_rows

    V = 10000
    assert head_chunk_rows(16 * 256 * 35, V, "cuda") == 0  # 5.7 GB: the fast reference head
    assert 0 < head_chunk_rows(64 * 256 * 35, V, "cuda") < 64 * 256 * 35  # 23 GB: chunked
    assert head_chunk_rows(64 * 256 * 35, V, "cpu") == head_chunk_rows(1000, V, "cpu") == 64  # the CPU's, as ever


@pytest.mark.parametrize("base", BASE_ESTIMATORS)
def test_each_estimator_is_estimated_by_what_its_registry_entry_keeps_alive(base):
    """The per-estimator part of the estimate is its EstimatorSpec.memory: more copies, more bytes."""
    spec = BASE_ESTIMATORS[base]
    K = spec.max_samples or max(spec.min_samples, 16)
    config = load_config(SMOKE / "dreg16-renyi.yaml", [f"estimator.base={base}", f"estimator.num_samples={K}"])
    plain = next(name for name, other in BASE_ESTIMATORS.items() if other.memory == StepCopies())  # elbo
    baseline = load_config(SMOKE / "dreg16-renyi.yaml", [f"estimator.base={plain}", f"estimator.num_samples={K}"])
    task = get_task("synthetic")
    estimate, plain_estimate = task.estimate_memory(config).train_bytes, task.estimate_memory(baseline).train_bytes
    assert (estimate > plain_estimate) == (spec.memory != StepCopies())
    assert estimate >= plain_estimate
