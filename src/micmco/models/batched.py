"""Layers with an explicit trial dimension: N copies of a layer, one per trial, in one module.

Each batched layer keeps its single counterpart's parameter names with a leading trial dimension
(``weight`` [N, out, in] for ``nn.Linear``'s [out, in]), so that :func:`stack_modules` builds a batched
module from N single ones and :func:`trial_state` gives trial n's ``state_dict`` back in the single
module's format: a batched trial checkpoints exactly as the same run alone, and resumes either way.
Inputs are shaped [N, rows, ...]. On one CPU thread, in float32, each trial's values and gradients equal its
single layer's bit for bit (tests/test_batched.py checks whole runs), given the care taken below:
:class:`BatchedAffine`'s backward and one ``embedding_bag`` call per trial.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .cached_head import REDUCED, cached_head_applies
from .common import head_chunk_rows, linear_log_softmax_gather, symbol_log_likelihood

__all__ = [
    "BatchedLinear",
    "BatchedEmbedding",
    "BatchedEmbeddingBag",
    "stack_modules",
    "trial_state",
    "TrialLatent",
    "batched_log_likelihood",
]


def _stacked(tensors: Sequence[Tensor]) -> nn.Parameter:
    return nn.Parameter(torch.stack([t.detach() for t in tensors]).clone())


class BatchedLinear(nn.Module):
    """N affine maps: x [N, R, in] -> x W_n^T + b_n, [N, R, out]."""

    def __init__(self, layers: Sequence[nn.Linear]):
        super().__init__()
        self.weight = _stacked([layer.weight for layer in layers])  # [N, out, in]
        self.bias = _stacked([layer.bias for layer in layers]) if layers[0].bias is not None else None  # [N, out]

    def forward(self, x: Tensor) -> Tensor:
        bias = self.bias if self.bias is not None else self.weight.new_zeros(self.weight.shape[:2])
        return BatchedAffine.apply(x, self.weight, bias)


class BatchedAffine(torch.autograd.Function):
    """x W_n^T + b_n with the gradients in the single layer's form: ``F.linear``'s backward computes the weight's
    gradient as g^T x (autograd of ``baddbmm`` with a transposed weight would compute (x^T g)^T: the same sums
    in another order, which differ in the last bit at small sizes). x [N, R, in], W [N, out, in], b [N, out]."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight)
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad_x = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        grad_weight = torch.bmm(grad.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        grad_bias = grad.sum(1) if ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


class BatchedEmbedding(nn.Module):
    """N embedding tables: indices [N, R] -> [N, R, H] (one lookup in the tables laid end to end)."""

    def __init__(self, tables: Sequence[nn.Embedding]):
        super().__init__()
        self.weight = _stacked([table.weight for table in tables])  # [N, V, H]

    def forward(self, indices: Tensor) -> Tensor:
        N, V, H = self.weight.shape  # trials, rows per table, embedding size
        offsets = torch.arange(N, device=indices.device).view(N, *([1] * (indices.dim() - 1))) * V
        return nn.functional.embedding(indices + offsets, self.weight.view(N * V, H))


class BatchedEmbeddingBag(nn.Module):
    """Σ_l table_n[indices[n, ..., l]] for N tables: indices [N, R, L] -> [N, R, H] (see summed_embedding).

    On a CPU each trial's sum is its own ``embedding_bag`` call: its backward sorts the indices, and the
    order in which it then adds up a repeated index's gradients is not the single call's when N trials'
    indices are sorted together (1 ulp apart). On an accelerator one call serves all trials.
    """

    def __init__(self, tables: Sequence[nn.Embedding]):
        super().__init__()
        self.weight = _stacked([table.weight for table in tables])  # [N, V, H]

    def forward(self, indices: Tensor) -> Tensor:
        N, V, H = self.weight.shape  # trials, rows per table, embedding size
        *rows, L = indices.shape  # [N, R], indices summed
        if indices.device.type == "cpu":
            sums = [nn.functional.embedding_bag(i.reshape(-1, L), w, mode="sum") for i, w in zip(indices, self.weight)]
            return torch.stack(sums).view(*rows, H)
        offsets = torch.arange(N, device=indices.device).view(N, *([1] * (indices.dim() - 1))) * V
        summed = nn.functional.embedding_bag((indices + offsets).reshape(-1, L), self.weight.view(N * V, H), mode="sum")
        return summed.view(*rows, H)


STATELESS = (nn.Tanh, nn.ReLU, nn.Identity)


def stack_modules(modules: Sequence[nn.Module]) -> nn.Module:
    """The batched module of N single ones of the same structure (Sequential, Linear, Embedding, activations)."""
    first = modules[0]
    if isinstance(first, nn.Sequential):
        return nn.Sequential(*[stack_modules(layers) for layers in zip(*modules)])
    if isinstance(first, nn.Linear):
        return BatchedLinear(modules)
    if isinstance(first, nn.Embedding):
        return BatchedEmbedding(modules)
    if isinstance(first, STATELESS):
        return first
    raise TypeError(f"no batched form of {type(first).__name__}; this model trains one trial per process")


def trial_state(module: nn.Module, trial: int) -> dict[str, Tensor]:
    """Trial ``trial``'s state_dict, in the single module's format (copies, on the CPU)."""
    return {name: value[trial].detach().cpu().clone() for name, value in module.state_dict().items()}


class TrialLatent:
    """A latent space for N trials' rows (trial-major [N·B]): the trials share one draw of noise, so each
    sees the noise its run alone draws; densities are row by row, as for the single latent."""

    def __init__(self, latent, trials: int):
        self.base, self.trials = latent, trials
        self.reparameterized = latent.reparameterized
        self.proposal_size = latent.proposal_size

    def __getattr__(self, name: str):  # proposal, log_q, log_prior, kl_to_prior, entropy, ...: row by row
        return getattr(self.base, name)

    def sample(self, proposal, num_samples: int, generator: torch.Generator | None = None, **options) -> Tensor:
        return self.base.sample(proposal, num_samples, generator, trials=self.trials, **options)


def batched_log_likelihood(
    hidden: Tensor, weight: Tensor, bias: Tensor | None, x: Tensor, head: str = "recompute"
) -> Tensor:
    """ln softmax(hidden_n W_n^T + b_n)[x] for N trials: hidden [N, K, B, H], weight [N, V, H], x [B] -> [N, K, B].

    Each trial's head is :func:`micmco.models.common.linear_log_softmax_gather` where that would chunk its
    logits (large heads on a CPU: the same values bit for bit, at no cost that matters, the head being
    compute-bound there) or where N trials' logits would not fit the accelerator's budget; otherwise one
    batched product gives all logits at once (an accelerator, or small heads: the single path's reference).
    With the cached head (``head``), where it applies, each trial's is the single path's cached head.
    """
    N, K, B, H = hidden.shape  # trials, samples, batch, hidden size
    V = weight.shape[1]  # vocabulary
    device = hidden.device.type
    single_chunks = head_chunk_rows(K * B, V, device) > 0
    too_large = device != "cpu" and head_chunk_rows(N * K * B, V, device) > 0
    reduced = torch.is_autocast_enabled(device) or hidden.dtype in REDUCED  # the single path's own target logits
    cached = head == "cached" and cached_head_applies(hidden, weight)
    if single_chunks or too_large or reduced or cached:
        return torch.stack([linear_log_softmax_gather(hidden[n], weight[n], bias[n], x, head) for n in range(N)])
    logits = torch.baddbmm(bias.unsqueeze(1), hidden.view(N, K * B, H), weight.transpose(1, 2))  # [N, K·B, V]
    return symbol_log_likelihood(logits.view(N * K, B, V), x).view(N, K, B)
