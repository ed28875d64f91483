"""Pieces shared by the models."""

from torch import Tensor


def symbol_log_likelihood(logits: Tensor, x: Tensor) -> Tensor:
    """ln softmax(logits)[x] without materialising the full log-softmax. logits [K, B, V], x [B] -> [K, B]."""
    K, B, V = logits.shape  # samples, batch, vocabulary
    target = logits.gather(-1, x.expand(K, B).unsqueeze(-1)).squeeze(-1)
    return target - logits.logsumexp(-1)
