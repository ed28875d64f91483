"""The single-symbol model of the synthetic experiment (paper §7.1.1).

Encoder: embedding of the symbol -> two dense tanh layers -> an affine head giving the
parameters of q(z|x) (mean and log variance for Gaussian latents, logits for categorical
ones). Decoder: Gaussian z feeds two dense tanh layers; categorical z is embedded (one
table per latent variable, summed) and feeds one dense tanh layer, "to compensate for this
discrepancy"; then a softmax over the vocabulary. All embeddings and hidden layers have
the same size (128 in the paper).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..config import ConfigError, check, check_choice, check_types
from ..latents import CategoricalLatent, GaussianLatent, LatentConfig
from .common import decoder_log_likelihood, summed_embedding, symbol_encoder
from .vqvae import VQConfig

__all__ = ["SyntheticModelConfig", "SingleSymbolVAE", "CategoricalEmbedding"]


@dataclass
class SyntheticModelConfig:
    kind: str = "vae"  # vae (trained with an estimator and objective) or vqvae (the Appendix A baseline)
    hidden_size: int = 128  # size of the embeddings and of every hidden layer (paper: 128)
    latent: LatentConfig = field(default_factory=LatentConfig)  # the latent space (vqvae: categorical)
    vq: VQConfig | None = None  # VQ-VAE settings, vqvae only (default VQConfig())

    def __post_init__(self) -> None:
        check_types(self)
        check_choice(self.kind, ("vae", "vqvae"), "kind")
        check(self.hidden_size >= 1, "hidden_size", f"must be >= 1, got {self.hidden_size}")
        if self.kind == "vqvae":
            if self.latent.kind != "categorical":
                raise ConfigError("latent.kind", "a vqvae has categorical latents (codes); set kind: categorical")
            self.vq = VQConfig() if self.vq is None else self.vq
        else:
            check(self.vq is None, "vq", "applies to kind vqvae only; remove it")


class CategoricalEmbedding(nn.Module):
    """Σ_l E_l[z_l]: one embedding table per categorical latent, summed. z [..., L] -> [..., H]."""

    def __init__(self, num_latents: int, num_categories: int, size: int):
        super().__init__()
        self.num_categories = num_categories
        self.table = nn.Embedding(num_latents * num_categories, size)
        self.register_buffer("offsets", torch.arange(num_latents) * num_categories, persistent=False)

    def forward(self, z: Tensor) -> Tensor:
        return summed_embedding(self.table, z + self.offsets)


class SingleSymbolVAE(nn.Module):
    """p(x, z) = p(z) softmax(decoder(z))[x] with q(z|x) from an embedding encoder."""

    def __init__(self, vocab_size: int, latent: GaussianLatent | CategoricalLatent, hidden_size: int = 128):
        super().__init__()
        H = hidden_size
        self.latent = latent
        self.encoder = symbol_encoder(vocab_size, H, latent.proposal_size)
        if isinstance(latent, GaussianLatent):
            first = [nn.Linear(latent.dim, H), nn.Tanh(), nn.Linear(H, H), nn.Tanh()]
        else:
            first = [CategoricalEmbedding(latent.num_latents, latent.num_categories, H), nn.Linear(H, H), nn.Tanh()]
        self.decoder = nn.Sequential(*first, nn.Linear(H, vocab_size))

    def proposal(self, x: Tensor):
        """q(z|x) for a batch of symbols x [B]."""
        return self.latent.proposal(self.encoder(x))

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """ln p(x|z) [K, B] for symbols x [B] and latent samples z [K, B, ...]."""
        return decoder_log_likelihood(self.decoder, z, x)
