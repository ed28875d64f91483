"""A CPU-side audit of the operations that make a CUDA device wait for the host or the host for the device.

On CUDA, ``torch.cuda.set_sync_debug_mode("error")`` names every synchronisation; on the CPU nothing
synchronises, so :class:`SyncAudit` records the aten operations that *would*: reading a tensor's value
on the host (``item``, ``int``, ``bool``: ``_local_scalar_dense``), operations whose output shape
depends on values (``nonzero``, ``masked_select``, indexing with a boolean mask) and copies to the CPU.
A training step with none of them runs on a GPU without waiting (tests/test_ptb_task.py, test_models.py).

On a GPU (``benchmarks/gpu_check.py``): ``step = TrainingStep(config, "cuda")``, one warm-up step
``step(0, step.data(0))`` (lazy initialisation may synchronise once), then the steps under
``torch.cuda.set_sync_debug_mode("error")``, and ``audit_steps(step, 20, "cuda", first=1)`` to name the
operations.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .runtime import step_generator, to_device

__all__ = ["SyncAudit", "TrainingStep", "audit_steps"]

_VALUE_READS = {"aten._local_scalar_dense", "aten.nonzero", "aten.masked_select"}


def _is_bool_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.dtype == torch.bool


class SyncAudit(TorchDispatchMode):
    """Records, in ``self.syncs``, the name of every operation run inside it that synchronises on CUDA.

    ``device_type``: only operations on a tensor of that kind count (``cuda`` on a GPU: reading a CPU
    tensor, such as a CPU optimiser's step counter, waits for nothing); ``cpu`` stands in for it in tests.
    """

    def __init__(self, device_type: str = "cpu") -> None:
        super().__init__()
        self.device_type = device_type
        self.syncs: list[str] = []
        self.host_storages: set[int] = set()  # packed sequences' batch sizes: on the host on every device

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [a for a in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        op = func.name().split(".")[0].replace("::", ".")  # aten.index, without the overload
        if op == "aten._pack_padded_sequence":  # its batch sizes are a CPU tensor, whatever the device
            result = func(*args, **kwargs)
            self.host_storages.add(result[1].untyped_storage().data_ptr())
            return result
        watched = [
            t
            for t in tensors
            if t.device.type == self.device_type and t.untyped_storage().data_ptr() not in self.host_storages
        ]
        if not watched:
            return func(*args, **kwargs)
        if op in _VALUE_READS:
            self.syncs.append(op)
        elif op == "aten.index" and any(_is_bool_tensor(i) for i in (args[1] if len(args) > 1 else [])):
            self.syncs.append("aten.index (boolean mask)")
        elif op in ("aten._to_copy", "aten.copy_") and _to_cpu(op, args, kwargs):
            self.syncs.append(f"{op} (to the CPU)")
        return func(*args, **kwargs)


def _to_cpu(op: str, args, kwargs) -> bool:
    """Whether a copy goes from another device to the CPU."""
    if op == "aten._to_copy":
        device = kwargs.get("device")
        return device is not None and torch.device(device).type == "cpu" and args[0].device.type != "cpu"
    destination, source = args[0], args[1]
    return destination.device.type == "cpu" and source.device.type != "cpu"


def audit_steps(step: TrainingStep, steps: int, device_type: str = "cpu", first: int = 0) -> list[str]:
    """The synchronising operations of ``steps`` steps from step ``first``, in order (on CPU tensors: those that would
    synchronise on CUDA); the host's data loading is not audited. On a GPU, pass ``device_type="cuda"`` and
    also run the steps under ``torch.cuda.set_sync_debug_mode("warn")``: it sees the synchronisations inside
    kernels' host code too (a blocking copy, cuDNN's)."""
    audit = SyncAudit(device_type)
    for t in range(first, first + steps):
        batch = step.data(t)  # the loader's work, on the host
        with audit:
            step(t, batch)
    return audit.syncs


class TrainingStep:
    """The trainer's step t of a run config on ``device`` without logging: ``step(t, step.data(t))`` moves
    batch t with ``to_device`` as the trainer does, gives the loss step t's noise generator, runs backward and, if
    ``optimise``, Adam."""

    def __init__(self, config, device: torch.device | str = "cpu", optimise: bool = True):
        from .tasks import get_task  # here: the audit itself needs no task

        task = get_task(config.task)
        self.device = torch.device(device)
        self.seed, self.optimise = config.seed, optimise
        self.data = task.training_data(config)
        self.model = task.build_model(config).to(self.device).train()
        self.loss = task.build_loss(config)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.train.learning_rate)

    def __call__(self, t: int, batch: Any) -> None:
        batch = to_device(batch, self.device)
        value, _ = self.loss(self.model, batch, step_generator(self.seed, "noise", t, self.device))
        self.optimizer.zero_grad(set_to_none=True)
        value.backward()
        if self.optimise:
            self.optimizer.step()
