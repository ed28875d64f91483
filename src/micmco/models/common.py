"""Pieces shared by the models."""

from torch import Tensor, nn


def symbol_log_likelihood(logits: Tensor, x: Tensor) -> Tensor:
    """ln softmax(logits)[x] without materialising the full log-softmax. logits [K, B, V], x [B] -> [K, B]."""
    K, B, V = logits.shape  # samples, batch, vocabulary
    target = logits.gather(-1, x.expand(K, B).unsqueeze(-1)).squeeze(-1)
    return target - logits.logsumexp(-1)


def symbol_encoder(vocab_size: int, hidden_size: int, output_size: int) -> nn.Sequential:
    """The synthetic encoder (§7.1.1): symbol embedding, two dense tanh layers, an affine head."""
    H = hidden_size
    return nn.Sequential(
        nn.Embedding(vocab_size, H), nn.Linear(H, H), nn.Tanh(), nn.Linear(H, H), nn.Tanh(), nn.Linear(H, output_size)
    )
