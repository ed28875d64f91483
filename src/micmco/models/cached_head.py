"""The cached softmax head (issue 31): ln softmax(h W^T + b)[t] whose forward pass keeps what every backward needs.

Forward forms each row's logits, its log-normaliser and the target logit exactly as the recomputing head
(:class:`micmco.models.common.LinearLogSoftmaxGather`, or the reference path where logits are small) does, so
the value is the same bit for bit; then, in the same buffer, P' = onehot(t) - softmax, and u = P' W. With g the
gradient of the output, every backward is then cheap:

- the hidden states' gradient is g · u: no pass over the logits at all, so the path-only pass of DReG
  (the gradient with respect to z alone) costs nothing in the head;
- the weight's and bias's gradients are one product P'^T [g h, g].

Against the recomputing head's four products and about thirty passes over the [N, V] logits (forward, and in
each backward the recomputed logits, the softmax and the gradient of the logits), it makes three products and
a dozen passes, at the price of keeping P' ([N, V]) from forward to backward: the memory a reference path
keeps for its logits anyway. Its gradients differ from the recomputing head's by float rounding only (the same
terms in another order), so a run records which head trained it (``train.head``).

Chunks of rows follow the recomputing head (on a CPU, cache-sized chunks where it chunks and one chunk where it
takes the reference path), so the value stays the same bit for bit. Under autocast, for reduced-precision
hidden states, and without gradients, the recomputing head runs instead (the same value; the cache would be
unused or in another precision).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["CachedLinearLogSoftmaxGather", "cached_head_applies", "needed_input_grad", "REDUCED"]

REDUCED = (torch.bfloat16, torch.float16)  # autocast's dtypes


def needed_input_grad(ctx, index: int) -> bool:
    """Whether the running backward pass needs the gradient of input ``index`` (of any custom Function)."""
    if not ctx.needs_input_grad[index]:
        return False
    node = ctx.next_functions[index][0]
    if node is None:
        return False
    try:
        return torch._C._will_engine_execute_node(node)
    except (RuntimeError, AttributeError):  # a leaf under autograd.grad (or a torch without it): assume needed
        return True


def cached_head_applies(hidden: Tensor, weight: Tensor) -> bool:
    """Whether the cached head runs for these inputs: gradients wanted, float32 or float64, no autocast."""
    device_type = hidden.device.type if hidden.device.type in ("cpu", "cuda", "xpu", "mps") else "cpu"
    return (
        torch.is_grad_enabled()
        and (hidden.requires_grad or weight.requires_grad)
        and hidden.dtype not in REDUCED
        and not torch.is_autocast_enabled(device_type)
    )


class CachedLinearLogSoftmaxGather(torch.autograd.Function):
    """h [N, H], W [V, H], b [V], t [N] -> ln softmax(h W^T + b)[t] [N], keeping P' [N, V] and u [N, H]; ``rows``
    per chunk (the recomputing head's, for the same value bit for bit)."""

    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, bias: Tensor, targets: Tensor, rows: int) -> Tensor:
        N, H = hidden.shape  # rows (samples x positions), hidden size
        V = weight.shape[0]  # vocabulary
        rows = max(1, rows)
        cache = torch.empty(N, V, dtype=hidden.dtype, device=hidden.device)  # [N, V]: logits, then P'
        u = torch.empty(N, H, dtype=hidden.dtype, device=hidden.device)  # [N, H]: P' W
        result = torch.empty(N, dtype=hidden.dtype, device=hidden.device)  # [N]
        transposed = weight.t()
        for start in range(0, N, rows):
            chunk = slice(start, start + rows)
            logits = torch.addmm(bias, hidden[chunk], transposed, out=cache[chunk])  # [rows, V]
            target = targets[chunk].unsqueeze(1)  # [rows, 1]
            target_logit = logits.gather(1, target).squeeze(1)
            log_normaliser = logits.logsumexp(-1)  # [rows]
            result[chunk] = target_logit - log_normaliser  # the recomputing head's arithmetic, bit for bit
            # P' = onehot - softmax, in place: exp(logit - log-normaliser), negated, one added at the target
            logits.sub_(log_normaliser.unsqueeze(1)).exp_().neg_()
            logits.scatter_(1, target, logits.gather(1, target) + 1)  # one target per row: no collisions
            torch.mm(logits, weight, out=u[chunk])
        ctx.save_for_backward(hidden, cache, u)
        return result

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor):
        hidden, cache, u = ctx.saved_tensors
        need_hidden, need_weight, need_bias = (needed_input_grad(ctx, i) for i in range(3))
        g = grad_output.to(hidden.dtype).unsqueeze(1)  # [N, 1]
        grad_hidden = u * g if need_hidden else None  # [N, H]
        grad_weight = grad_bias = None
        if need_weight or need_bias:
            both = torch.cat([hidden * g, g], 1)  # [N, H + 1]: one product gives the weight's and the bias's
            product = cache.t() @ both  # [V, H + 1]
            grad_weight = product[:, :-1] if need_weight else None
            grad_bias = product[:, -1] if need_bias else None
        return grad_hidden, grad_weight, grad_bias, None, None
