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
from .batched import BatchedEmbeddingBag, BatchedLinear, TrialLatent, batched_log_likelihood, stack_modules
from .common import decoder_log_likelihood, summed_embedding, symbol_encoder
from .vqvae import VQConfig

__all__ = ["SyntheticModelConfig", "SingleSymbolVAE", "CategoricalEmbedding", "BatchedSingleSymbolVAE"]


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
        self.head = "recompute"  # the softmax head (train.head; the task sets it from the run config)

    def proposal(self, x: Tensor):
        """q(z|x) for a batch of symbols x [B]."""
        return self.latent.proposal(self.encoder(x))

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """ln p(x|z) [K, B] for symbols x [B] and latent samples z [K, B, ...]."""
        return decoder_log_likelihood(self.decoder, z, x, self.head)


class BatchedSingleSymbolVAE(nn.Module):
    """N single-symbol VAEs of one shape, trained as one batch (:mod:`micmco.batched`): trial n's parameters
    are ``model.<name>[n]`` for each parameter ``<name>`` of :class:`SingleSymbolVAE`.

    Rows are trial-major: q(z|x) for a batch x [B] covers [N·B] rows (trial n's at n·B .. n·B + B - 1),
    samples z are [K, N·B, ...] and ln p(x|z) is [K, N·B], the layout the estimators reduce over samples in.
    """

    def __init__(self, models: list[SingleSymbolVAE]):
        super().__init__()
        first = models[0]
        self.head = first.head  # every trial's (a batch shares its config but for λ, α and the learning rate)
        self.trials = len(models)
        self.latent = TrialLatent(first.latent, self.trials)
        self.encoder = stack_modules([m.encoder for m in models])
        *body, head = zip(*[m.decoder for m in models])
        if isinstance(body[0][0], CategoricalEmbedding):  # one table per latent variable, summed
            embeddings = BatchedEmbeddingBag([m.table for m in body[0]])
            embeddings.register_buffer("offsets", body[0][0].offsets, persistent=False)
            self.decoder = nn.Sequential(
                _CategoricalInput(embeddings), *[stack_modules(layers) for layers in body[1:]], BatchedLinear(head)
            )
        else:
            self.decoder = nn.Sequential(*[stack_modules(layers) for layers in body], BatchedLinear(head))

    def proposal(self, x: Tensor):
        """q(z|x) of every trial for one batch of symbols x [B] shared by the trials: [N·B] rows."""
        N, (B,) = self.trials, x.shape  # trials, batch
        params = self.encoder(x.expand(N, B))  # [N, B, P]
        return self.latent.proposal(params.reshape(N * B, -1))

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """ln p(x|z) [K, N·B] for symbols x [B] and samples z [K, N·B, ...]."""
        N, (B,) = self.trials, x.shape  # trials, batch
        K, *rest = z.shape[0], *z.shape[2:]  # samples, latent shape
        z = z.view(K, N, B, *rest).transpose(0, 1).reshape(N, K * B, *rest)  # [N, K·B, ...]: each trial's rows
        *body, head = self.decoder
        hidden = z
        for layer in body:
            hidden = layer(hidden)  # ends [N, K·B, H]
        log_lik = batched_log_likelihood(hidden.view(N, K, B, -1), head.weight, head.bias, x, self.head)  # [N, K, B]
        return log_lik.transpose(0, 1).reshape(K, N * B)


class _CategoricalInput(nn.Module):
    """The categorical decoder's input of N trials: Σ_l E_{n,l}[z_l], [N, R, L] -> [N, R, H]."""

    def __init__(self, embeddings: nn.Module):
        super().__init__()
        self.table = embeddings  # named as CategoricalEmbedding's, so state_dict names match the single model's

    def forward(self, z: Tensor) -> Tensor:
        return self.table(z + self.table.offsets)
