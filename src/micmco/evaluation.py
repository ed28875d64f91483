"""Evaluation as in §7.1.2: NLL by IWAE and mutual information as the average of Û - Ŝ.

Both come from the same K = 100 samples per data point. For a data set that lists every
point of a uniform data distribution once (the synthetic task's vocabulary), the average
over it is the exact expectation over p_D, not a sample of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .config import check
from .estimators import _logmeanexp, _snis
from .trainer import step_generator

__all__ = ["EvalConfig", "evaluate"]


@dataclass
class EvalConfig:
    num_samples: int = 100  # K for the IWAE NLL and the Û - Ŝ mutual information (paper: 100)
    batch_size: int = 100  # data points per evaluation batch (memory: batch × K × vocabulary logits)

    def __post_init__(self) -> None:
        check(self.num_samples >= 1, "num_samples", f"must be >= 1, got {self.num_samples}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")


@torch.no_grad()
def evaluate(model: nn.Module, data: Tensor, config: EvalConfig, seed: int = 0) -> dict[str, float]:
    """Average over ``data`` of -Ŝ^K (nll), Û^K - Ŝ^K (mutual_information) and KL(q || p).

    ``model`` provides ``latent``, ``posterior(x)`` and ``log_likelihood(x, z)``; ``data`` is
    any tensor of data points batched along dim 0. Seeded: the same call gives the same numbers.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)
    try:
        for index, start in enumerate(range(0, len(data), config.batch_size)):
            x = data[start : start + config.batch_size].to(device)
            posterior = model.posterior(x)
            generator = step_generator(seed, "eval", index, device)
            z = model.latent.sample(posterior, config.num_samples, generator, reparameterize=False)
            log_lik = model.log_likelihood(x, z).float()  # [K, B]
            log_w = log_lik + model.latent.log_prior(z) - model.latent.log_q(posterior, z)
            log_marginal = _logmeanexp(log_w)
            per_point = torch.stack(
                [-log_marginal, _snis(log_w, log_lik) - log_marginal, model.latent.kl_to_prior(posterior)]
            )
            totals += per_point.double().sum(1)
    finally:
        model.train(was_training)
    nll, mutual_information, representational_kl = (totals / len(data)).tolist()
    return {"nll": nll, "mutual_information": mutual_information, "representational_kl": representational_kl}
