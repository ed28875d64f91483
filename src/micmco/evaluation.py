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

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .config import check, check_types
from .estimators import log_marginal_of_weights, snis_log_lik_of_weights
from .runtime import step_generator, to_device

__all__ = [
    "EvalConfig", "EvalBatch", "evaluate", "evaluate_repeated", "split_halves", "halves_of", "HALF_KEYS",
    "tensor_batches", "MIN_REPEATS",
]  # fmt: skip

# The fewest independent evaluations a standard error is computed from (its own relative error is then ~25%).
MIN_REPEATS = 8


@dataclass
class EvalConfig:
    num_samples: int = 100  # K for the IWAE NLL and the Û - Ŝ mutual information (paper: 100)
    batch_size: int = 100  # data points per evaluation batch (memory: batch × K × vocabulary logits)
    split: str = ""  # the data split to evaluate on ("" = the task's default; its splits are listed in errors)
    sample_chunk: int = (
        0  # samples scored per decoder pass (0: all num_samples); bounds memory, same numbers to rounding
    )
    repeats: int = 100  # most independent K-sample evaluations averaged into the precise numbers (0: none)
    target_se: float = 0.002  # stop adding evaluations once NLL's and MI's standard errors are <= this (0: all)

    def __post_init__(self) -> None:
        check_types(self)
        check(self.num_samples >= 1, "num_samples", f"must be >= 1, got {self.num_samples}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(self.sample_chunk >= 0, "sample_chunk", f"must be >= 0 (0: all samples at once), got {self.sample_chunk}")
        check(self.repeats >= 0, "repeats", f"must be >= 0 (0: no precise evaluation), got {self.repeats}")
        check(self.target_se >= 0, "target_se", f"must be >= 0 nats (0: always all repeats), got {self.target_se}")

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
    """Per unit over all of ``data``: -Ŝ^K (nll), Û^K - Ŝ^K (mutual_information) and KL(q || p), one evaluation.

    ``model`` provides ``latent``, ``proposal(x)`` and ``log_likelihood(x, z)``; ``data`` is a tensor
    of data points (batched along dim 0 by ``config.batch_size``, one unit each) or the
    :class:`EvalBatch` es of a task's split. Returns the three metrics and ``units``, the count they
    are averaged over. Seeded: the same call gives the same numbers. ``progress``: a bar over the
    data points. This is the evaluation a run records and a frontier selects its trials on; its noise
    is measured by :func:`evaluate_repeated`.
    """
    batches = _batches(data, config)
    points = sum(len(batch.units) for batch in batches)
    with tqdm(total=points, disable=not progress, desc="evaluate", unit="point", dynamic_ncols=True) as bar:
        totals, units = _evaluate_once(
            model, batches, config, lambda index, device: step_generator(seed, "eval", index, device), bar
        )
    nll, mutual_information, representational_kl = (totals / units).tolist()
    return {
        "nll": nll,
        "mutual_information": mutual_information,
        "representational_kl": representational_kl,
        "units": units,
    }


@torch.no_grad()
def evaluate_repeated(
    model: nn.Module, data: Tensor | Iterable[EvalBatch], config: EvalConfig, seed: int = 0, progress: bool = False
) -> dict[str, Any]:
    """The paper's metrics (K = ``config.num_samples``) averaged over independent evaluations, with their
    standard errors: the precise numbers a frontier chooses and reports on (:func:`split_halves`).

    Repeat r draws its samples from its own stream (``eval-repeat``, r), never the one :func:`evaluate`
    uses with the same ``seed``: every repeat is independent of the recorded evaluation and of the others.
    Repeats are added until the standard errors of NLL and MI (the standard deviation of the repeats over √R) are
    both at most ``config.target_se``, after at least :data:`MIN_REPEATS` (or all of
    ``config.repeats``, if fewer) and at most ``config.repeats``. Returns nll, nll_se, mutual_information,
    mutual_information_se, representational_kl (exact: no sampling), units, repeats, samples, seed,
    ``values``: each repeat's nll and mutual_information (the noise of one evaluation), and the two halves a
    frontier chooses on and reports on (:func:`split_halves`).
    """
    if config.repeats < 1:
        raise ValueError("evaluate_repeated: config.repeats is 0 (no precise evaluation asked for)")
    batches = _batches(data, config)
    per_repeat: list[list[float]] = []  # [R, 3]
    units = 0.0
    bar = tqdm(total=config.repeats, disable=not progress, desc="evaluate (repeats)", unit="eval", dynamic_ncols=True)
    with bar:
        for repeat in range(config.repeats):

            def generator(index: int, device, repeat: int = repeat) -> torch.Generator:
                return step_generator(seed, "eval-repeat", repeat << 24 | index, device)

            totals, units = _evaluate_once(model, batches, config, generator, None)
            per_repeat.append((totals / units).tolist())
            bar.update(1)
            done = len(per_repeat)
            if done < 2:
                continue
            errors = _standard_errors(per_repeat)
            bar.set_postfix(nll_se=f"{errors[0]:.2g}", mi_se=f"{errors[1]:.2g}", refresh=False)
            enough = done >= min(MIN_REPEATS, config.repeats) and config.target_se > 0
            if enough and max(errors[0], errors[1]) <= config.target_se:
                break
    values = torch.tensor(per_repeat, dtype=torch.float64)  # [R, 3]
    mean = values.mean(0).tolist()
    errors = _standard_errors(per_repeat)
    return {
        "nll": mean[0],
        "nll_se": errors[0],
        "mutual_information": mean[1],
        "mutual_information_se": errors[1],
        "representational_kl": mean[2],
        "units": units,
        "repeats": len(per_repeat),
        "samples": config.num_samples,
        "seed": seed,
        "values": {"nll": values[:, 0].tolist(), "mutual_information": values[:, 1].tolist()},
        **split_halves(values[:, 0].tolist(), values[:, 1].tolist()),
    }


HALF_KEYS = ("nll_select", "mutual_information_select", "nll_report", "nll_report_se")  # split_halves's


def halves_of(precise: dict[str, Any]) -> dict[str, float]:
    """The halves of a precise evaluation record (:func:`split_halves`): as recorded, or computed from its
    per-repeat ``values``; empty where it has neither (an older record kept without its values)."""
    if all(key in precise for key in HALF_KEYS):
        return {key: precise[key] for key in HALF_KEYS}
    values = precise.get("values")
    return split_halves(values["nll"], values["mutual_information"]) if values else {}


def split_halves(nll: list[float], mutual_information: list[float]) -> dict[str, float]:
    """Two independent halves of the repeats of a precise evaluation: the even-numbered ones, which a frontier
    chooses its trial on (``nll_select``, ``mutual_information_select``), and the odd-numbered ones, which it
    reports (``nll_report`` ± ``nll_report_se``). Choosing on one half and reporting the other keeps the
    reported value free of the winner's curse while the choice itself is made on many evaluations, not one.
    Empty with fewer than 4 repeats (no standard error for a half)."""
    if len(nll) < 4:
        return {}
    select = torch.tensor([nll[0::2], mutual_information[0::2]], dtype=torch.float64)  # [2, R/2]
    report = torch.tensor(nll[1::2], dtype=torch.float64)  # [R/2]
    return {
        "nll_select": select[0].mean().item(),
        "mutual_information_select": select[1].mean().item(),
        "nll_report": report.mean().item(),
        "nll_report_se": (report.std(correction=1) / math.sqrt(len(report))).item(),
    }


def _standard_errors(per_repeat: list[list[float]]) -> list[float]:
    """Standard error of the mean of each metric over the repeats (NaN from one repeat)."""
    values = torch.tensor(per_repeat, dtype=torch.float64)
    if len(values) < 2:
        return [math.nan] * values.shape[1]
    return (values.std(0, correction=1) / math.sqrt(len(values))).tolist()


def _batches(data: Tensor | Iterable[EvalBatch], config: EvalConfig) -> list[EvalBatch]:
    return list(tensor_batches(data, config.batch_size) if isinstance(data, Tensor) else data)


def _evaluate_once(
    model: nn.Module, batches: list[EvalBatch], config: EvalConfig, generator_of, bar
) -> tuple[Tensor, float]:
    """(sums over the split of -Ŝ^K, Û^K - Ŝ^K and KL(q || p) as a float64 [3] tensor, the units they are over);
    batch ``index`` draws its samples from ``generator_of(index, device)``."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)
    units = 0.0
    try:
        for index, batch in enumerate(batches):
            x = to_device(batch.x, device)
            proposal = model.proposal(x)
            z = model.latent.sample(
                proposal, config.num_samples, generator_of(index, device), reparameterize=False
            )  # [K, B, ...]
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
            if bar is not None:
                bar.update(len(batch.units))
    finally:
        model.train(was_training)
    if units <= 0:
        raise ValueError("evaluate: the split has no data points (no units to average over)")
    return totals, units
