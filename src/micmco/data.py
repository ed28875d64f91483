"""Data for the experiments. The synthetic task (§7.1): single symbols, uniform over a vocabulary."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .config import check
from .trainer import step_generator

__all__ = ["SyntheticDataConfig", "UniformSymbols"]


@dataclass
class SyntheticDataConfig:
    vocab_size: int = 10000  # V: symbols, uniformly distributed, so the optimal NLL is ln V (paper: 10000)
    batch_size: int = 256  # symbols per training batch (paper: 256)

    def __post_init__(self) -> None:
        check(self.vocab_size >= 2, "vocab_size", f"must be >= 2, got {self.vocab_size}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")


class UniformSymbols:
    """Training batches of uniform symbols; batch t depends only on (seed, t)."""

    def __init__(self, config: SyntheticDataConfig, seed: int):
        self.config = config
        self.seed = seed

    def __call__(self, step: int) -> Tensor:
        generator = step_generator(self.seed, "data", step)
        return torch.randint(self.config.vocab_size, (self.config.batch_size,), generator=generator)

    def evaluation_set(self) -> Tensor:
        """Every symbol once: under the uniform p_D, averages over it are exact expectations."""
        return torch.arange(self.config.vocab_size)

    @property
    def optimal_nll(self) -> float:
        """The entropy of p_D, ln V: the NLL of any optimal model."""
        return math.log(self.config.vocab_size)
