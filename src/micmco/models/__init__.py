"""Models: the synthetic single-symbol VAE (§7.1.1) and the VQ-VAE baseline (Appendix A)."""

from .sentence import SentenceModelConfig, SentenceVAE
from .synthetic import SingleSymbolVAE, SyntheticModelConfig
from .vqvae import VQVAE, VQConfig

__all__ = ["SentenceModelConfig", "SentenceVAE", "SingleSymbolVAE", "SyntheticModelConfig", "VQVAE", "VQConfig"]
