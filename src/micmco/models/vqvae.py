"""The VQ-VAE baseline of Appendix A (van den Oord et al. 2017), for the synthetic task.

The encoder is the synthetic model's (embedding, two tanh layers) with a head giving one
vector z_e,l per latent variable l; each is quantised to the nearest of the C vectors of
that latent's codebook. The decoder is the categorical synthetic decoder with the
codebook vectors as its embeddings: Σ_l e_l[z_l] -> one tanh layer -> softmax.

Training loss: -ln p(x | z_q) + β ||z_e - sg(e)||², with straight-through gradients to the
encoder and codebooks updated by exponential moving averages with the given decay (no
codebook loss); codes start at encoder outputs of the first batch. Since q(z|x) is a
point mass, the mutual information measured with the paper's estimator is L ln C, fixed
by the latent space (Appendix A): its size controls the latent usage.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config import check, check_types
from ..latents import CategoricalLatent, CategoricalProposal
from .common import decoder_log_likelihood, symbol_encoder

__all__ = ["VQConfig", "VQVAE"]


@dataclass
class VQConfig:
    commitment_beta: float = 0.25  # β, weight of the commitment loss (paper's tuning range 0.01 to 20)
    decay: float = 0.99  # EMA decay of the codebook updates (paper's tuning range 0.9 to 0.99999)
    epsilon: float = 1e-5  # Laplace smoothing of the EMA cluster sizes, avoids empty-code division

    def __post_init__(self) -> None:
        check_types(self)
        check(self.commitment_beta >= 0, "commitment_beta", f"must be >= 0, got {self.commitment_beta}")
        check(0 <= self.decay < 1, "decay", f"must be in [0, 1), got {self.decay}")
        check(self.epsilon > 0, "epsilon", f"must be > 0, got {self.epsilon}")


class VQVAE(nn.Module):
    def __init__(self, vocab_size: int, latent: CategoricalLatent, config: VQConfig, hidden_size: int = 128):
        super().__init__()
        H, L, C = hidden_size, latent.num_latents, latent.num_categories
        self.latent = latent
        self.config = config
        self.encoder = symbol_encoder(vocab_size, H, L * H)
        self.decoder = nn.Sequential(nn.Linear(H, H), nn.Tanh(), nn.Linear(H, vocab_size))
        self.head = "recompute"  # the softmax head (train.head; the task sets it from the run config)
        self.register_buffer("codebook", torch.zeros(L, C, H))  # [L, C, H], updated by EMA, not by the optimiser
        self.register_buffer("ema_count", torch.ones(L, C))
        self.register_buffer("ema_sum", torch.zeros(L, C, H))
        self.register_buffer("initialized", torch.tensor(False))
        # The host's copy of ``initialized``: reading the buffer would make every step on a GPU wait for it.
        # Set with it, and from it when a state dict (a checkpoint) is loaded.
        self.initialized_on_host = False
        self.register_load_state_dict_post_hook(VQVAE._read_initialized)

    @staticmethod
    def _read_initialized(module: VQVAE, incompatible_keys) -> None:
        module.initialized_on_host = bool(module.initialized)

    def encode(self, x: Tensor) -> Tensor:
        """z_e [B, L, H]."""
        return self.encoder(x).unflatten(-1, (self.latent.num_latents, -1))

    def quantize(self, z_e: Tensor) -> Tensor:
        """Index of the nearest code per latent, [B, L]."""
        distances = (z_e.unsqueeze(-2) - self.codebook).square().sum(-1)  # [B, L, C]
        return distances.argmin(-1)

    def code_vectors(self, z: Tensor) -> Tensor:
        """e_l[z_l] for codes z [..., L] -> [..., L, H]."""
        L = self.latent.num_latents
        return self.codebook[torch.arange(L, device=z.device), z]

    def proposal(self, x: Tensor) -> CategoricalProposal:
        """The deterministic q(z|x): a point mass on the nearest codes."""
        z = self.quantize(self.encode(x))
        log_probs = torch.full((*z.shape, self.latent.num_categories), float("-inf"), device=z.device)
        return CategoricalProposal(log_probs.scatter(-1, z.unsqueeze(-1), 0.0))

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """ln p(x|z) [K, B] for codes z [K, B, L]."""
        return decoder_log_likelihood(self.decoder, self.code_vectors(z).sum(-2), x, self.head)

    def loss(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        z_e = self.encode(x)  # [B, L, H]
        if self.training and not self.initialized_on_host:
            self._initialize_codebook(z_e.detach(), generator)
        z = self.quantize(z_e)  # [B, L]
        e = self.code_vectors(z)
        if self.training:
            self._update_codebook(z_e.detach(), z)
        z_q = z_e + (e - z_e).detach()  # straight-through: decoder gradients flow to the encoder
        log_lik = decoder_log_likelihood(self.decoder, z_q.sum(-2).unsqueeze(0), x, self.head).squeeze(0)  # [B]
        commitment = (z_e - e.detach()).square().sum(-1).mean(-1)  # [B]
        loss = (-log_lik + self.config.commitment_beta * commitment).mean()
        return loss, {"log_lik": log_lik.detach().mean(), "commitment": commitment.detach().mean()}

    @torch.no_grad()
    def _initialize_codebook(self, z_e: Tensor, generator: torch.Generator | None) -> None:
        """Codes start at encoder outputs of the first batch, so that every code is reachable
        (codes far from all outputs are never chosen, hence never updated: "dead codes")."""
        B, L, H = z_e.shape  # batch, latents, code size
        C = self.latent.num_categories
        picks = torch.randint(B, (L, C), generator=generator, device=z_e.device)
        noise = 0.01 * z_e.std() * torch.randn(L, C, H, generator=generator, device=z_e.device)
        self.codebook.copy_(z_e.transpose(0, 1)[torch.arange(L, device=z_e.device).unsqueeze(-1), picks] + noise)
        self.ema_sum.copy_(self.codebook)
        self.initialized.fill_(True)
        self.initialized_on_host = True

    @torch.no_grad()
    def _update_codebook(self, z_e: Tensor, z: Tensor) -> None:
        L, C, H = self.codebook.shape  # latents, categories, code size
        # one-hot codes [B, L, C] (one_hot would check the codes' range on the host, on a CPU)
        onehot = z_e.new_zeros(*z.shape, C).scatter_(-1, z.unsqueeze(-1), 1.0)
        counts = onehot.sum(0)  # [L, C]
        sums = torch.einsum("blc,blh->lch", onehot, z_e)
        decay = self.config.decay
        self.ema_count.mul_(decay).add_(counts, alpha=1 - decay)
        self.ema_sum.mul_(decay).add_(sums, alpha=1 - decay)
        total = self.ema_count.sum(-1, keepdim=True)
        eps = self.config.epsilon
        smoothed = (self.ema_count + eps) / (total + C * eps) * total  # Laplace smoothing
        self.codebook.copy_(self.ema_sum / smoothed.unsqueeze(-1))
