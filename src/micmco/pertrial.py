"""Per-trial scalars: λ and α of N trials trained as one batch (:mod:`micmco.batched`).

The estimators and objectives are written for Python floats (``lam * divergence``, ``(alpha - 1.0) * log_lik``,
``if t == 0.0``). A :class:`PerTrial` stands in for such a float: arithmetic with numbers stays per trial in
Python's double precision, exactly as the single-trial path computes it, and arithmetic with a tensor
expands the values along the tensor's last dimension, which holds the trials' rows (trial-major, ``rows``
per trial, tiled any number of times: [K, N·B], [N·B] and VIMCO's [M, M·N·B] alike). Each element then
meets the tensor as the float32 rounding of the same double that the single path's Python scalar rounds to,
so trial n of a batch computes bit for bit what it computes alone. No Python branch reads a tensor: a
comparison with a number is a bool when every trial agrees, and an error when they differ (the batch
refuses such trials up front, :func:`micmco.batched.batchable`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["PerTrial", "per_trial_values"]


class PerTrial:
    """One float per trial, acting as that float in the arithmetic of :mod:`micmco.objectives`."""

    def __init__(self, values: Sequence[float], rows: int):
        self.values = tuple(float(v) for v in values)
        self.rows = rows  # data points per trial in the batch's row dimension
        self._expanded: dict[tuple, Tensor] = {}

    def __repr__(self) -> str:
        return f"PerTrial({list(self.values)}, rows={self.rows})"

    def map(self, function: Callable[[float], float]) -> PerTrial:
        return PerTrial([function(v) for v in self.values], self.rows)

    def like(self, tensor: Tensor) -> Tensor:
        """The values expanded along ``tensor``'s last dimension, in its dtype and on its device."""
        width = tensor.shape[-1]
        key = (width, tensor.dtype, tensor.device)
        if key not in self._expanded:
            period = len(self.values) * self.rows
            if width % period:
                raise ValueError(f"a last dimension of {width} does not hold {len(self.values)} trials x {self.rows}")
            values = torch.tensor(self.values, dtype=torch.float64).to(tensor.dtype)  # each the float of its double
            self._expanded[key] = values.repeat_interleave(self.rows).repeat(width // period).to(tensor.device)
        return self._expanded[key]

    def _with(self, other, function: Callable[[float, float], float], on_tensor: Callable[[Tensor, Tensor], Tensor]):
        if isinstance(other, Tensor):
            return on_tensor(self.like(other), other)
        if isinstance(other, (int, float)):
            return self.map(lambda v: function(v, other))
        return NotImplemented

    def __add__(self, other):
        return self._with(other, lambda v, o: v + o, lambda s, t: s + t)

    def __radd__(self, other):
        return self._with(other, lambda v, o: o + v, lambda s, t: t + s)

    def __sub__(self, other):
        return self._with(other, lambda v, o: v - o, lambda s, t: s - t)

    def __rsub__(self, other):
        return self._with(other, lambda v, o: o - v, lambda s, t: t - s)

    def __mul__(self, other):
        return self._with(other, lambda v, o: v * o, lambda s, t: s * t)

    def __rmul__(self, other):
        return self._with(other, lambda v, o: o * v, lambda s, t: t * s)

    def __truediv__(self, other):
        return self._with(other, lambda v, o: v / o, lambda s, t: s / t)

    def __rtruediv__(self, other):
        return self._with(other, lambda v, o: o / v, lambda s, t: t / s)

    def __neg__(self):
        return self.map(lambda v: -v)

    def __eq__(self, other) -> bool:
        if not isinstance(other, (int, float)):
            return NotImplemented
        equal = {v == other for v in self.values}
        if len(equal) > 1:
            raise ValueError(f"the trials of this batch differ in whether the value is {other}: {list(self.values)}")
        return equal.pop()

    def __ne__(self, other) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = None


def per_trial_values(value: float | PerTrial) -> tuple[float, ...]:
    """The values of ``value``: its trials' for a PerTrial, itself alone for a float (for checks)."""
    return value.values if isinstance(value, PerTrial) else (value,)
