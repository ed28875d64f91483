"""Evaluation as in §7.1.2 and §7.2.3: NLL by IWAE and latent usage as the average of Û - Ŝ.

Both come from the same K = 100 samples per data point, drawn at once and scored by the decoder
``sample_chunk`` samples at a time, so that memory stays bounded at any K; the chunk changes the
numbers only by float rounding (evaluation has no dropout: each sample's ln p(x|z) is its own).
The data arrive as batches of a named split, each with the number of units per data point
(1 per symbol; the tokens of a sentence): the metrics are sums over the split divided by its
units, so they are per symbol or per token. For a split that lists every point of a uniform data distribution once (the
synthetic task's vocabulary), the average is the exact expectation over p_D, not a sample of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .config import check, check_types
from .estimators import log_marginal_of_weights, snis_log_lik_of_weights
from .runtime import step_generator, to_device

__all__ = ["EvalConfig", "EvalBatch", "evaluate", "tensor_batches"]


@dataclass
class EvalConfig:
    num_samples: int = 100  # K for the IWAE NLL and the Û - Ŝ mutual information (paper: 100)
    batch_size: int = 100  # data points per evaluation batch (memory: batch × K × vocabulary logits)
    split: str = ""  # the data split to evaluate on ("" = the task's default; its splits are listed in errors)
    sample_chunk: int = (
        0  # samples scored per decoder pass (0: all num_samples); bounds memory, same numbers to rounding
    )

    def __post_init__(self) -> None:
        check_types(self)
        check(self.num_samples >= 1, "num_samples", f"must be >= 1, got {self.num_samples}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(self.sample_chunk >= 0, "sample_chunk", f"must be >= 0 (0: all samples at once), got {self.sample_chunk}")

    @property
    def samples_per_pass(self) -> int:
        """Samples the decoder scores at once."""
        return min(self.sample_chunk or self.num_samples, self.num_samples)


@dataclass(frozen=True)
class EvalBatch:
    x: Any  # [B, ...] data points (a tensor, or a tuple such as (tokens, lengths)), as the model takes them
    units: Tensor  # [B] units per data point that the metrics are averaged over (symbols, tokens)


def tensor_batches(data: Tensor, batch_size: int) -> Iterator[EvalBatch]:
    """Data points batched along dim 0, one unit each."""
    for start in range(0, len(data), batch_size):
        x = data[start : start + batch_size]
        yield EvalBatch(x, torch.ones(len(x)))


@torch.no_grad()
def evaluate(
    model: nn.Module, data: Tensor | Iterable[EvalBatch], config: EvalConfig, seed: int = 0, progress: bool = False
) -> dict[str, float]:
    """Per unit over all of ``data``: -Ŝ^K (nll), Û^K - Ŝ^K (mutual_information) and KL(q || p).

    ``model`` provides ``latent``, ``proposal(x)`` and ``log_likelihood(x, z)``; ``data`` is a tensor
    of data points (batched along dim 0 by ``config.batch_size``, one unit each) or the
    :class:`EvalBatch` es of a task's split. Returns the three metrics and ``units``, the count they
    are averaged over. Seeded: the same call gives the same numbers. ``progress``: a bar over the
    data points.
    """
    batches = list(tensor_batches(data, config.batch_size) if isinstance(data, Tensor) else data)
    points = sum(len(batch.units) for batch in batches)
    bar = tqdm(total=points, disable=not progress, desc="evaluate", unit="point", dynamic_ncols=True)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)
    units = 0.0
    try:
        for index, batch in enumerate(batches):
            x = to_device(batch.x, device)
            proposal = model.proposal(x)
            generator = step_generator(seed, "eval", index, device)
            z = model.latent.sample(proposal, config.num_samples, generator, reparameterize=False)  # [K, B, ...]
            chunk = config.samples_per_pass
            log_lik = torch.cat([model.log_likelihood(x, z[i : i + chunk]) for i in range(0, len(z), chunk)])
            log_lik = log_lik.float()  # [K, B]
            log_w = log_lik + model.latent.log_prior(z) - model.latent.log_q(proposal, z)
            log_marginal = log_marginal_of_weights(log_w)
            per_point = torch.stack(
                [
                    -log_marginal,
                    snis_log_lik_of_weights(log_w, log_lik) - log_marginal,
                    model.latent.kl_to_prior(proposal),
                ]
            )
            totals += per_point.double().sum(1)
            units += float(batch.units.double().sum())
            bar.update(len(batch.units))
    finally:
        bar.close()
        model.train(was_training)
    if units <= 0:
        raise ValueError("evaluate: the split has no data points (no units to average over)")
    nll, mutual_information, representational_kl = (totals / units).tolist()
    return {
        "nll": nll,
        "mutual_information": mutual_information,
        "representational_kl": representational_kl,
        "units": units,
    }
