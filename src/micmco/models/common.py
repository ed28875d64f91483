"""Pieces shared by the models."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .cached_head import REDUCED, CachedLinearLogSoftmaxGather, cached_head_applies, needed_input_grad

# The fused decoder head works on chunks of about CHUNK_BYTES of float32 logits, [rows, V],
# sized to stay in a core's L2 cache (1 MiB on the 2-core development machine; at V = 1000
# chunks of 128 to 1024 rows ran within a few percent of each other, 32 rows 35% slower).
# Logits up to SMALL_LOGITS_BYTES in all take the reference path: they fit in cache anyway,
# and there the fused head's recomputation costs more than it saves (the head alone, B = 256,
# V = 1000: fused/reference 1.30 at K = 1, 1.06 at K = 2, 0.95 at K = 4, 0.89 at K = 16).
# On accelerators memory is fast and plentiful, so the reference path is taken up to
# ACCELERATOR_LOGITS_BYTES of logits (the paper's PTB DReG 16 step: 5.7 GB, fast unchunked), and
# beyond it chunks of ACCELERATOR_CHUNK_BYTES, few and large, since each costs kernel launches (the
# PTB DReG 64 step's 23 GB of logits, six copies of them unchunked, would not fit a 139 GiB GPU).
CHUNK_BYTES = 2**19
ACCELERATOR_LOGITS_BYTES = 2**34
ACCELERATOR_CHUNK_BYTES = 2**30
MIN_CHUNK_ROWS = 64
SMALL_LOGITS_BYTES = 2**21


def symbol_log_likelihood(logits: Tensor, x: Tensor) -> Tensor:
    """ln softmax(logits)[x]. logits [K, B, V], x [B] -> [K, B].

    The reference: autograd keeps the logits and materialises the gradient of the
    log-softmax, [K, B, V] each; :func:`decoder_log_likelihood` computes the same values
    and gradients chunk by chunk.
    """
    K, B, V = logits.shape  # samples, batch, vocabulary
    logits = logits.to(_softmax_dtype(logits))  # autocast's bfloat16 logits: gather and normalise in float32
    target = logits.gather(-1, x.expand(K, B).unsqueeze(-1)).squeeze(-1)
    return target - logits.logsumexp(-1)


def target_logits(hidden: Tensor, weight: Tensor, bias: Tensor | None, x: Tensor) -> Tensor:
    """(hidden · weight[x] + bias[x]) in float32 (float64 for float64 hidden). hidden [..., B, H], x [B] -> [..., B].

    Under autocast the head's logits come out in bfloat16, rounded by up to 2^-9 of their size (0.03 nats
    at 16), the size of the gaps between the paper's curves. The log-normaliser averages the roundings of
    many logits; the target logit is one of them, so it is recomputed at full precision: a dot product per
    row, H multiplications against the head's H·V.
    """
    dtype = _softmax_dtype(hidden)
    logit = (hidden.to(dtype) * weight.index_select(0, x).to(dtype)).sum(-1)
    return logit if bias is None else logit + bias.index_select(0, x).to(dtype)


def decoder_log_likelihood(decoder: nn.Sequential, z: Tensor, x: Tensor, head: str = "recompute") -> Tensor:
    """ln softmax(decoder(z))[x] [K, B] for a decoder ending in an ``nn.Linear`` onto the vocabulary.

    Equal in value and gradient to ``symbol_log_likelihood(decoder(z), x)``, but the last
    layer, the log-softmax and the gather are fused (:class:`LinearLogSoftmaxGather`), so the
    [K, B, V] logits and their gradient are never held in memory at once: the cost per
    sample stays flat in K instead of growing once the logits fall out of cache. ``head``: the softmax head
    (:func:`linear_log_softmax_gather`).
    """
    *body, output = decoder
    if not isinstance(output, nn.Linear):
        raise TypeError(f"the decoder must end in an nn.Linear onto the vocabulary, not {type(output).__name__}")
    hidden = z
    for layer in body:
        hidden = layer(hidden)  # ends [K, B, H]
    return linear_log_softmax_gather(hidden, output.weight, output.bias, x, head)


def linear_log_softmax_gather(
    hidden: Tensor, weight: Tensor, bias: Tensor | None, x: Tensor, head: str = "recompute"
) -> Tensor:
    """ln softmax(hidden @ weight^T + bias)[x]. hidden [K, B, H], weight [V, H], bias [V], x [B] -> [K, B].

    ``head`` (a run's ``train.head``): ``recompute``, the reference path for small logits and
    :class:`LinearLogSoftmaxGather` (chunked; backward recomputes the logits) for large ones; or ``cached``,
    :class:`micmco.models.cached_head.CachedLinearLogSoftmaxGather` (the same value, a cheap backward) where it
    applies (gradients wanted, float32 or float64, no autocast), the recomputing head elsewhere."""
    K, B, H = hidden.shape  # samples, batch, hidden size
    V = weight.shape[0]  # vocabulary
    if head == "cached" and cached_head_applies(hidden, weight):
        bias = weight.new_zeros(V) if bias is None else bias
        targets = x.expand(K, B).reshape(K * B)  # [K·B]: the symbol each row scores
        rows = hidden.reshape(K * B, H)  # [K·B, H]
        chunk = head_chunk_rows(K * B, V, hidden.device.type) or K * B  # the recomputing head's chunks
        cached = CachedLinearLogSoftmaxGather.apply(rows, weight.view_as(weight), bias.view_as(bias), targets, chunk)
        return cached.view(K, B)
    if not head_chunk_rows(K * B, V, hidden.device.type):
        logits = nn.functional.linear(hidden, weight, bias)  # [K, B, V]
        if logits.dtype in REDUCED:  # autocast: the target logit at full precision
            return target_logits(hidden, weight, bias, x) - logits.float().logsumexp(-1)
        return symbol_log_likelihood(logits, x)
    if bias is None:
        bias = weight.new_zeros(V)
    targets = x.expand(K, B).reshape(K * B)  # [K·B]: the symbol each row scores
    # views give every input a non-leaf autograd node, of which backward can ask whether it will run
    rows = hidden.reshape(K * B, H)  # [K·B, H]
    return LinearLogSoftmaxGather.apply(rows, weight.view_as(weight), bias.view_as(bias), targets).view(K, B)


def chunk_rows(vocab_size: int) -> int:
    """Rows of logits per chunk on the CPU: about CHUNK_BYTES of float32."""
    return max(MIN_CHUNK_ROWS, CHUNK_BYTES // (4 * vocab_size))


def head_chunk_rows(rows: int, vocab_size: int, device_type: str) -> int:
    """Rows per chunk of the fused head for ``rows`` rows of logits on a device of ``device_type``, or 0 when
    the reference path (all logits at once) pays; micmco.memory estimates by the same rule."""
    logit_bytes = rows * vocab_size * 4
    if device_type == "cpu":
        return 0 if logit_bytes <= SMALL_LOGITS_BYTES else chunk_rows(vocab_size)
    return (
        0
        if logit_bytes <= ACCELERATOR_LOGITS_BYTES
        else max(MIN_CHUNK_ROWS, ACCELERATOR_CHUNK_BYTES // (4 * vocab_size))
    )


class LinearLogSoftmaxGather(torch.autograd.Function):
    """ln softmax(h W^T + b)[t] row by row, computed over chunks of rows. h [N, H], W [V, H], b [V], t [N] -> [N].

    Forward keeps h, W, b, t and the log-normaliser [N]; backward recomputes each chunk's
    softmax p and forms the gradient of the logits, g (onehot(t) - p), then h's, W's and b's
    gradients from it. Only the gradients the running backward pass asks for are computed
    (DReG first takes the gradient with respect to z alone, then the full one). Under
    autocast the matrix products follow it; the softmax and the result are float32 (float64
    for float64 h). Backward is not itself differentiable (no estimator differentiates twice).
    """

    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, bias: Tensor, targets: Tensor) -> Tensor:
        N, H = hidden.shape  # rows (samples x batch), hidden size
        ctx.autocast = _autocast_state(hidden.device)
        dtype = _softmax_dtype(hidden)
        log_normaliser = torch.empty(N, dtype=dtype, device=hidden.device)  # [N]
        target_logit = torch.empty(N, dtype=dtype, device=hidden.device)  # [N]
        # the rows per chunk of the device (also where the caller chose the fused head for small logits)
        rows = ctx.rows = head_chunk_rows(N, weight.shape[0], hidden.device.type) or chunk_rows(weight.shape[0])
        for start in range(0, N, rows):
            chunk = slice(start, start + rows)
            logits = torch.addmm(bias, hidden[chunk], weight.t()).to(dtype)  # [rows, V]
            log_normaliser[chunk] = logits.logsumexp(-1)
            if ctx.autocast[1]:  # the logits were rounded to autocast's dtype: the target's at full precision
                target_logit[chunk] = target_logits(hidden[chunk], weight, bias, targets[chunk])
            else:
                target_logit[chunk] = logits.gather(1, targets[chunk].unsqueeze(1)).squeeze(1)
        ctx.save_for_backward(hidden, weight, bias, targets, log_normaliser)
        return target_logit - log_normaliser

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor):
        hidden, weight, bias, targets, log_normaliser = ctx.saved_tensors
        need_hidden, need_weight, need_bias = (needed_input_grad(ctx, i) for i in range(3))
        N, H = hidden.shape  # rows, hidden size
        grad_hidden = torch.empty_like(hidden) if need_hidden else None  # [N, H]
        dtype = _softmax_dtype(hidden)
        grad_weight = torch.zeros_like(weight, dtype=dtype) if need_weight else None  # [V, H]
        grad_bias = torch.zeros_like(bias, dtype=dtype) if need_bias else None  # [V]
        rows = ctx.rows
        device_type, enabled, dtype = ctx.autocast
        with torch.autocast(device_type, dtype=dtype, enabled=enabled):
            for start in range(0, N, rows):
                chunk = slice(start, start + rows)
                logits = torch.addmm(bias, hidden[chunk], weight.t()).to(dtype)  # [rows, V]
                # gradient of the logits: g_n (onehot(t_n) - p_n), built in place as -g_n (p_n - onehot(t_n))
                grad_logits = logits.sub_(log_normaliser[chunk].unsqueeze(1)).exp_()
                grad_logits.scatter_add_(
                    1, targets[chunk].unsqueeze(1), grad_logits.new_full((len(grad_logits), 1), -1)
                )
                grad_logits.mul_(grad_output[chunk].to(dtype).neg().unsqueeze(1))
                if need_hidden:
                    grad_hidden[chunk] = (grad_logits @ weight.to(dtype)).to(hidden.dtype)
                if need_weight:
                    grad_weight.add_(grad_logits.t() @ hidden[chunk].to(dtype))
                if need_bias:
                    grad_bias.add_(grad_logits.sum(0))
        return (
            grad_hidden,
            None if grad_weight is None else grad_weight.to(weight.dtype),
            None if grad_bias is None else grad_bias.to(bias.dtype),
            None,
        )


def _softmax_dtype(hidden: Tensor) -> torch.dtype:
    """The softmax runs in float32, or float64 for float64 inputs."""
    return torch.float64 if hidden.dtype == torch.float64 else torch.float32


def _autocast_state(device: torch.device) -> tuple[str, bool, torch.dtype]:
    device_type = device.type if device.type in ("cpu", "cuda", "xpu", "mps") else "cpu"
    enabled = torch.is_autocast_enabled(device_type)
    dtype = torch.get_autocast_dtype(device_type) if enabled else torch.float32
    return device_type, enabled, dtype


def summed_embedding(table: nn.Embedding, indices: Tensor) -> Tensor:
    """Σ_l table[indices[..., l]], without materialising the [..., L, H] embeddings. indices [..., L] -> [..., H]."""
    *batch, L = indices.shape  # ..., latents
    summed = nn.functional.embedding_bag(indices.reshape(-1, L), table.weight, mode="sum")  # [prod(batch), H]
    return summed.view(*batch, table.embedding_dim)


def symbol_encoder(vocab_size: int, hidden_size: int, output_size: int) -> nn.Sequential:
    """The synthetic encoder (§7.1.1): symbol embedding, two dense tanh layers, an affine head."""
    H = hidden_size
    return nn.Sequential(
        nn.Embedding(vocab_size, H), nn.Linear(H, H), nn.Tanh(), nn.Linear(H, H), nn.Tanh(), nn.Linear(H, output_size)
    )
