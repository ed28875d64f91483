"""The synthetic task (§7.1): single symbols, uniform over a vocabulary of V symbols.

Data: training batches of uniform symbols; every split (``valid``, ``train``) is the whole
vocabulary once, so an average over it is the exact expectation under p_D (there is no held-out
data: p_D is known). Metrics are per symbol; the optimal NLL is the data entropy ln V.
Models: the single-symbol VAE (§7.1.1) trained by an estimator and objective, or the VQ-VAE
baseline (Appendix A), which trains its own loss.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..config import check, check_choice, check_types
from ..evaluation import EvalBatch, tensor_batches
from ..gradients import estimator_spec
from ..latents import make_latent
from ..memory import MemoryEstimate, StepCopies, latent_sizes, step_memory
from ..models import VQVAE, SingleSymbolVAE, SyntheticModelConfig
from ..models.synthetic import BatchedSingleSymbolVAE
from ..runtime import derive_seed, step_generator
from .base import RunConfig, Task, check_trained_by_estimator

__all__ = ["SyntheticDataConfig", "SyntheticRunConfig", "UniformSymbols", "SyntheticTask", "TASK", "PAPER_VOCABULARY"]

SPLITS = ("valid", "train")  # both are the whole vocabulary: p_D is known exactly
PAPER_VOCABULARY = 10000  # the paper's V (§7.1.1): its trial files in data/paper-frontiers/synthetic


@dataclass
class SyntheticDataConfig:
    vocab_size: int = 10000  # V: symbols, uniformly distributed, so the optimal NLL is ln V (paper: 10000)
    batch_size: int = 256  # symbols per training batch (paper: 256)

    def __post_init__(self) -> None:
        check_types(self)
        check(self.vocab_size >= 2, "vocab_size", f"must be >= 2, got {self.vocab_size}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")


@dataclass
class SyntheticRunConfig(RunConfig):
    data: SyntheticDataConfig = field(default_factory=SyntheticDataConfig)  # the symbols
    model: SyntheticModelConfig = field(default_factory=SyntheticModelConfig)  # single-symbol VAE or VQ-VAE

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.task == "synthetic", "task", f"a synthetic run config has task: synthetic, got {self.task!r}")
        if self.eval.split:
            check_choice(self.eval.split, SPLITS, "eval.split")
        check_trained_by_estimator(
            self,
            self.model.kind == "vae",
            self.model.latent.kind,
            "a vqvae trains its own loss (reconstruction + β commitment)",
        )


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


class SyntheticTask(Task):
    name = "synthetic"
    config_class = SyntheticRunConfig
    unit = "symbol"
    data_point = "symbol"
    splits = SPLITS
    distinct_splits = False  # every split is the whole vocabulary: labels and paper matches leave the split out
    paper_folder = "synthetic"
    result_columns = ("vocab_size", "optimal_nll")
    curve_columns = ("vocab_size",)
    memory_hint = (
        "reduce data.vocab_size, data.batch_size, estimator.num_samples or eval.batch_size, or set eval.sample_chunk"
    )

    def training_data(self, config: SyntheticRunConfig) -> UniformSymbols:
        return UniformSymbols(config.data, config.seed)

    def evaluation_batches(self, config: SyntheticRunConfig, split: str) -> Iterator[EvalBatch]:
        return tensor_batches(UniformSymbols(config.data, config.seed).evaluation_set(), config.eval.batch_size)

    def split_units(self, config: SyntheticRunConfig, split: str) -> int:
        return config.data.vocab_size  # one symbol per data point, every symbol once

    def build_model(self, config: SyntheticRunConfig) -> nn.Module:
        latent = make_latent(config.model.latent)
        vocab, hidden = config.data.vocab_size, config.model.hidden_size
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(config.seed, "init"))
            if config.model.kind == "vqvae":
                model = VQVAE(vocab, latent, config.model.vq, hidden)
            else:
                model = SingleSymbolVAE(vocab, latent, hidden)
        model.head = config.train.head
        return model

    def batches(self, config: SyntheticRunConfig) -> bool:
        return config.model.kind == "vae"  # the VQ-VAE baseline (its own loss, a codebook) trains alone

    def batched_model(self, models: list[nn.Module]) -> nn.Module:
        return BatchedSingleSymbolVAE(models)

    def build_loss(self, config: SyntheticRunConfig):
        if config.model.kind == "vqvae":
            return lambda model, x, generator: model.loss(x, generator)
        return super().build_loss(config)

    def reference_nll(self, config: SyntheticRunConfig) -> float:
        return math.log(config.data.vocab_size)

    def uniform_nll(self, config: SyntheticRunConfig) -> float:
        return math.log(config.data.vocab_size)

    def result_values(self, config: dict[str, Any]) -> dict[str, str]:
        vocab = config["data"]["vocab_size"]
        return {"vocab_size": vocab, "optimal_nll": f"{math.log(vocab):.6f}"}

    def setting_label(self, values: dict[str, str]) -> str:
        return f"V = {values['vocab_size']}"

    def describe_metrics(self, metrics: dict[str, float]) -> str:
        gap = metrics["nll"] - metrics["optimal_nll"]
        return f"NLL {metrics['nll']:.4f} (optimum ln V = {metrics['optimal_nll']:.4f}, gap {gap:+.4f})"

    def estimate_memory(self, config: SyntheticRunConfig, device: torch.device | str = "cpu") -> MemoryEstimate:
        """The single-symbol MLP: encoder embedding, two dense layers and the proposal head; the decoder's
        input layer, two dense layers and the softmax over V; the K·B decoder rows of a step."""
        V, H = config.data.vocab_size, config.model.hidden_size
        vqvae = config.model.kind == "vqvae"
        sizes = latent_sizes(config.model.latent, H, vqvae)
        encoder = V * H + 2 * (H * H + H) + H * sizes.proposal_size + sizes.proposal_size
        decoder = sizes.decoder_input + 2 * (H * H + H) + H * V + V
        copies = StepCopies() if vqvae else estimator_spec(config.estimator.base).memory  # the VQ-VAE: a plain step
        draws = 1 if vqvae else max(config.estimator.num_samples, config.estimator.mi_samples or 0)
        eval_rows = config.eval.samples_per_pass * min(config.eval.batch_size, V)
        batch = config.data.batch_size
        return step_memory(
            encoder + decoder, copies, draws, batch, V, H, sizes.sample_floats, eval_rows, device, config.train.head
        )

    def paper_curve(self, named: Any) -> dict[str, Any]:
        """The paper's synthetic trials: V = 10000 (§7.1.1), so the optimum and the uniform model are ln V."""
        values = {"vocab_size": str(PAPER_VOCABULARY)}
        ln_v = math.log(PAPER_VOCABULARY)
        return dict(
            split=self.splits[0], task_values=values, reference_nll=ln_v, uniform_nll=ln_v,
            setting_label=self.setting_label(values),
        )  # fmt: skip


TASK = SyntheticTask()
