"""How a step is seeded and where its tensors live: the random streams, the device, the float32 arithmetic.

Reproducibility and resumption come from one rule: every random number is drawn from a generator seeded
by (seed, stream, t), never from the global state a caller left: the model's initialisation (stream
``init``), the training batch of step t (``data``), the loss's sampling noise at step t (``noise``), the
samples scoring evaluation batch t (``eval``). A number then depends only on the run's seed and where it
is drawn, so a run resumed at any step continues exactly. CPU and CUDA generators draw different numbers
from the same seed: a run belongs to its kind of device.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .config import check_choice

__all__ = [
    "derive_seed",
    "step_generator",
    "resolve_device",
    "to_device",
    "PRECISIONS",
    "numerics",
    "numerics_settings",
    "device_record",
]

PRECISIONS = ("float32", "tf32", "bfloat16")  # the float32 arithmetic a run may choose (TrainerConfig.precision)

_STREAMS = {"init": 0, "data": 1, "noise": 2, "eval": 3, "eval-repeat": 4}


def derive_seed(seed: int, stream: str, step: int = 0) -> int:
    """An independent 63-bit seed for (seed, stream, step)."""
    state = np.random.SeedSequence([seed, _STREAMS[stream], step]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def step_generator(seed: int, stream: str, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(derive_seed(seed, stream, step))


def to_device(batch: Any, device: torch.device) -> Any:
    """A batch (a tensor, or tuples, lists and dicts of them) on ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    return batch


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available here; use device: auto or cpu")
    return device


# cuBLAS is deterministic on one stream only with a fixed workspace: torch's deterministic mode checks this
# variable at each cuBLAS call and cuBLAS sizes its workspace from it when its first handle is made
CUBLAS_WORKSPACE = ("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def numerics_settings() -> dict[str, bool]:
    """The global float32 and determinism flags now in force (what a result records of its arithmetic)."""
    return {
        "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,  # cuBLAS: linear layers, the state-dropout LSTM
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,  # cuDNN: the fused LSTM
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
    }


@contextlib.contextmanager
def numerics(precision: str, device: torch.device | str = "cpu") -> Iterator[None]:
    """The float32 arithmetic of ``precision`` on both CUDA back ends, and deterministic kernels on CUDA,
    while the block runs; the previous global settings are restored afterwards.

    float32 and bfloat16 turn TF32 off in cuBLAS and in cuDNN (PyTorch's defaults differ: cuDNN in TF32,
    cuBLAS not, so the fused LSTM and the state-dropout recurrence would compute different numbers); tf32
    turns it on in both (bfloat16 is autocast, applied by the trainer around the forward pass). On CUDA,
    every run gets deterministic kernels, since every run promises bit-identical resumption: an op with no
    deterministic CUDA kernel warns rather than ending the run (``warn_only``), and uninitialised memory is
    not filled (a debugging aid that costs a kernel per allocation). CPU kernels are deterministic already
    and are left as they are, so CPU numbers do not depend on this.
    """
    check_choice(precision, PRECISIONS, "precision")
    tf32 = precision == "tf32"
    cuda = torch.device(device).type == "cuda"
    backends = torch.backends
    matmul_tf32, cudnn_tf32 = backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32
    deterministic = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    cudnn_flags = (backends.cudnn.deterministic, backends.cudnn.benchmark)
    fill = torch.utils.deterministic.fill_uninitialized_memory
    workspace = os.environ.get(CUBLAS_WORKSPACE[0])
    try:
        # set (and restore) only what differs, through one API (PyTorch refuses to read flags set through a
        # mix of allow_tf32 and its newer fp32_precision): an unchanged flag is then left exactly as it was
        if matmul_tf32 != tf32:
            backends.cuda.matmul.allow_tf32 = tf32
        if cudnn_tf32 != tf32:
            backends.cudnn.allow_tf32 = tf32
        if cuda:
            if workspace is None:
                os.environ[CUBLAS_WORKSPACE[0]] = CUBLAS_WORKSPACE[1]
            torch.use_deterministic_algorithms(True, warn_only=True)
            backends.cudnn.deterministic, backends.cudnn.benchmark = True, False
            torch.utils.deterministic.fill_uninitialized_memory = False
        yield
    finally:
        if backends.cuda.matmul.allow_tf32 != matmul_tf32:
            backends.cuda.matmul.allow_tf32 = matmul_tf32
        if backends.cudnn.allow_tf32 != cudnn_tf32:
            backends.cudnn.allow_tf32 = cudnn_tf32
        if cuda:
            torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
            backends.cudnn.deterministic, backends.cudnn.benchmark = cudnn_flags
            torch.utils.deterministic.fill_uninitialized_memory = fill
            if workspace is None:
                os.environ.pop(CUBLAS_WORKSPACE[0], None)


def cpu_model() -> str:
    """The host CPU's model name (Linux: /proc/cpuinfo), else what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_record(device: torch.device) -> dict[str, Any]:
    """What a result records of where it ran: the device kind and name, and the torch, CUDA and cuDNN versions
    (CUDA and cuDNN: those torch was built with; None for a build without them)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
    return {
        "device_kind": device.type,
        "device_name": name,
        # the host CPU and the kernels torch picked for it (AVX2, AVX512, ...): their last-bit rounding differs,
        # and a run whose training amplifies it (REINFORCE with one sample) reruns exactly on the same kind only
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    }
