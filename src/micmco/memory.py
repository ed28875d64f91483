"""Peak-memory estimates of a run, from its config alone, and the memory the machine has.

A run that cannot fit must be refused before it allocates anything: otherwise it dies deep
inside the allocator, or the operating system kills it (perhaps beside other sweep workers).
The estimate counts the tensors that dominate: the parameters with their gradients and Adam
moments, and the K·B × V decoder logits with the copies autograd keeps of them.
``tests/test_memory.py`` checks it against the measured peak of real runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "StepCopies",
    "MemoryEstimate",
    "LatentSizes",
    "latent_sizes",
    "step_memory",
    "logit_floats",
    "available_memory",
    "format_bytes",
]

FLOAT = 4  # bytes per float32
# Per parameter: the weights, their gradients, Adam's two moments and the temporaries of its
# multi-tensor update.
STATE_COPIES = 6
LOGIT_COPIES_EVAL = 3  # no_grad: the logits, the exp of the logsumexp and the gathered result
RUNTIME_OVERHEAD = 64 * 2**20  # allocator arenas, autograd engine and kernel workspaces (measured)
ALLOCATOR_SLACK = 1.25  # fragmentation and small tensors
# What a process needs besides its tensors (interpreter, torch, the allocator's arenas): only
# the tensor estimate is compared with the memory available; this is reported beside it.
PROCESS_BASE = 400 * 2**20


@dataclass(frozen=True)
class StepCopies:
    """The live tensors per decoder row at the peak of a training step: what its estimator sets
    (``gradients.EstimatorSpec.memory``); the defaults are a plain backward pass's (and the VQ-VAE's)."""

    # [rows, V] logits when materialised (small logits; on accelerators up to 16 GiB of them): the logits,
    # the softmax saved for backward, their gradient and a log-softmax temporary. Beyond that the fused head
    # (models/common.py) holds one chunk of logits at a time instead.
    logits: int = 4
    hidden: int = 8  # [rows, H] activations and their gradients through the decoder's layers
    baselines: int = 0  # [K, K, B] tensors per data point: leave-one-out objectives through the objective


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int  # number of model parameters
    train_bytes: int  # peak tensor bytes of one training step
    eval_bytes: int  # peak tensor bytes of one evaluation batch (plus the parameters)

    @property
    def peak_bytes(self) -> int:
        return max(self.train_bytes, self.eval_bytes)

    def describe(self) -> str:
        return (
            f"~{format_bytes(self.train_bytes)} per training step, ~{format_bytes(self.eval_bytes)} for evaluation "
            f"({self.parameters:,} parameters; plus ~{format_bytes(PROCESS_BASE)} for the process itself)"
        )


@dataclass(frozen=True)
class LatentSizes:
    proposal_size: int  # floats of q(z|x)'s parameters per data point
    decoder_input: int  # weights of the decoder's first layer, from z to the hidden size
    sample_floats: int  # floats per (sample, data point) while drawing z


def latent_sizes(latent, hidden_size: int, vqvae: bool = False) -> LatentSizes:
    """The sizes a latent space (:class:`micmco.latents.LatentConfig`) adds to a model of hidden size H."""
    H = hidden_size
    if latent.kind == "gaussian":
        D = latent.num_latents
        sizes = LatentSizes(2 * D, D * H, 2 * D)  # noise and z
    else:
        L, C = latent.num_latents, latent.num_categories
        sizes = LatentSizes(L * C, L * C * H, 4 * L * C)  # uniforms, Gumbel noise, perturbed logits, log q
    if vqvae:
        sizes = LatentSizes(latent.num_latents * H, sizes.decoder_input, sizes.sample_floats)
    return sizes


def step_memory(
    parameters: int,
    copies: StepCopies,
    draws: int,
    batch_size: int,
    vocab_size: int,
    hidden_size: int,
    sample_floats: int,
    eval_rows: int,
    device: torch.device | str = "cpu",
    head: str = "recompute",
) -> MemoryEstimate:
    """Peak tensor memory of a training step (``draws`` samples of ``batch_size`` decoder rows, keeping
    ``copies`` alive: its estimator's, ``gradients.estimator_spec(base).memory``, or ``StepCopies()`` for a
    model that trains its own loss) and of an evaluation batch of ``eval_rows`` decoder rows, for a model
    with ``parameters`` parameters and a softmax over ``vocab_size``; ``head``: the run's ``train.head``."""
    V, H, B = vocab_size, hidden_size, batch_size
    state = STATE_COPIES * parameters
    rows = draws * B
    if head == "cached":  # onehot - softmax for every row kept to backward, and a chunk's temporaries
        logits = cached_logit_floats(rows, V, device)
    else:
        logits = logit_floats(rows, V, copies.logits, device)
    activations = logits + copies.hidden * rows * H + rows * sample_floats
    activations += copies.baselines * draws * draws * B
    train_bytes = int(ALLOCATOR_SLACK * (state + activations) * FLOAT) + RUNTIME_OVERHEAD

    eval_activations = (
        logit_floats(eval_rows, V, LOGIT_COPIES_EVAL, device) + 4 * eval_rows * H + eval_rows * sample_floats
    )
    eval_bytes = int(ALLOCATOR_SLACK * (parameters + eval_activations) * FLOAT) + RUNTIME_OVERHEAD
    return MemoryEstimate(parameters, train_bytes, eval_bytes)


def logit_floats(rows: int, vocab: int, copies: int, device: torch.device | str) -> int:
    """Floats of the live logits: all of them, or one chunk of the fused head and per-row normalisers,
    as the head chooses (models.common.head_chunk_rows)."""
    from .models.common import head_chunk_rows

    chunk = head_chunk_rows(rows, vocab, torch.device(device).type)
    if not chunk:
        return copies * rows * vocab
    return copies * min(rows, chunk) * vocab + 2 * rows  # one chunk; per-row normalisers


def cached_logit_floats(rows: int, vocab: int, device: torch.device | str) -> int:
    """Floats of the cached head's live logits in a training step (models.cached_head): onehot - softmax of every
    row, kept from forward to backward, and the logsumexp's two temporaries of one chunk (of all rows where the
    recomputing head would not chunk)."""
    from .models.common import head_chunk_rows

    chunk = head_chunk_rows(rows, vocab, torch.device(device).type) or rows
    return rows * vocab + 2 * min(rows, chunk) * vocab


def available_memory(device: torch.device) -> int | None:
    """Bytes that a new allocation can use on ``device`` now (None if unknown)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return _available_host_memory()


def _available_host_memory() -> int | None:
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    # A container's memory limit (cgroup v2) can be far below the machine's free memory.
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return available


def format_bytes(count: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"
