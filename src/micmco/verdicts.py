"""Verdicts that account for noise: is one frontier below another at usage >= m, and are two on par?

Every number compared here is a frontier value (:func:`micmco.pareto.frontier_value`) with a standard error.
A difference is decided only when it exceeds :data:`Z` combined standard errors and at least
:data:`MIN_TRIALS` trials reach m on each side; otherwise it is *inconclusive*, never a verdict. The
standard errors come from measurement:

- ours: the reporting half of the chosen trial's precise evaluation (the mean of independent K = 100
  evaluations that did not choose it: micmco.evaluation.split_halves), or its whole precise evaluation where it
  has no halves; a trial without one (a row recorded before precise evaluation, not yet re-evaluated) is given
  the single-evaluation noise measured on the precisely evaluated trials of its task
  (:func:`single_evaluation_noise`: their median; the noise of a high-usage trial can be several times
  larger), and marked as assumed;
- the paper's: its trial files carry one evaluation per trial and no standard error. It is assumed to have
  the single-evaluation noise we measure, scaled by √(our units / the paper's units) where both are known
  (the synthetic task: the noise of an average over V symbols falls as 1/√V; the paper's V = 10,000 against
  our 200), and unscaled otherwise (Penn Treebank: the paper's split is larger than ours, so this
  overstates its noise and errs towards inconclusive). Its frontier is also a minimum over noisy evaluations
  (biased low by selection); no correction is made for that.

A claim about a range of usage is decided at each m of the range (:func:`combine`): it holds where it holds
at some m and fails at none, fails where it fails at some m and holds at none, is *mixed* where both, and
inconclusive where no m decides.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Z",
    "MIN_TRIALS",
    "Estimate",
    "decide_order",
    "decide_par",
    "combine",
    "single_evaluation_noise",
    "training_noise",
    "typical_noise",
    "VERDICTS",
]

Z = 2.0  # a difference is decided beyond 2 combined standard errors (~95% two-sided, normal errors)
MIN_TRIALS = 2  # fewer trials reaching usage m on either side: inconclusive (one trial is no frontier)
VERDICTS = ("holds", "fails", "mixed", "inconclusive")


@dataclass(frozen=True)
class Estimate:
    """A frontier value at usage >= m with its uncertainty."""

    value: float  # NLL or excess NLL; NaN when no trial reaches m (or no curve)
    se: float  # standard error (NaN: unknown)
    trials: int  # trials reaching m
    assumed: bool = False  # the standard error is assumed, not measured on this trial (see the module)

    def text(self, digits: int = 3) -> str:
        if math.isnan(self.value):
            return "–"
        if math.isnan(self.se):
            return f"{self.value:.{digits}f}"
        mark = "~" if self.assumed else ""
        return f"{self.value:.{digits}f} ± {mark}{self.se:.{digits}f}"


def _reason_missing(a: Estimate, b: Estimate, min_trials: int) -> str | None:
    if math.isnan(a.value) and math.isnan(b.value):
        return "neither reaches m"
    if min(a.trials, b.trials) < min_trials:
        return f"fewer than {min_trials} trials reach m"
    if math.isnan(a.se) or math.isnan(b.se):
        return "no standard error"
    return None


def decide_order(low: Estimate, high: Estimate, z: float = Z, min_trials: int = MIN_TRIALS) -> tuple[str, str]:
    """Is ``low`` below ``high``? ("holds" | "fails" | "inconclusive", the reason in a few words). A side
    that no trial reaches while the other does counts as above it only with enough trials on the other."""
    if math.isnan(low.value) != math.isnan(high.value):  # one side reaches m, the other never does
        reached = high if math.isnan(low.value) else low
        if reached.trials < min_trials:
            return "inconclusive", f"fewer than {min_trials} trials reach m"
        return ("fails", "only the other reaches m") if math.isnan(low.value) else ("holds", "only it reaches m")
    missing = _reason_missing(low, high, min_trials)
    if missing:
        return "inconclusive", missing
    difference, error = high.value - low.value, math.hypot(low.se, high.se)
    if difference > z * error:
        return "holds", f"by {difference:.3f} ± {error:.3f}"
    if -difference > z * error:
        return "fails", f"reversed by {-difference:.3f} ± {error:.3f}"
    return "inconclusive", f"{difference:+.3f} within ±{z * error:.3f}"


def decide_par(
    a: Estimate, b: Estimate, tolerance: float, z: float = Z, min_trials: int = MIN_TRIALS
) -> tuple[str, str]:
    """Are ``a`` and ``b`` on par, within ``tolerance`` nats? Holds when the whole interval of their difference
    (± z standard errors) lies inside ± tolerance, fails when it lies wholly outside, inconclusive otherwise
    (an equivalence test: "within the noise" is not "on par")."""
    missing = _reason_missing(a, b, min_trials)
    if missing:
        return "inconclusive", missing
    difference, error = abs(a.value - b.value), z * math.hypot(a.se, b.se)
    if difference + error <= tolerance:
        return "holds", f"|Δ| = {difference:.3f} ± {error:.3f} within {tolerance:g}"
    if difference - error > tolerance:
        return "fails", f"|Δ| = {difference:.3f} ± {error:.3f} beyond {tolerance:g}"
    return "inconclusive", f"|Δ| = {difference:.3f} ± {error:.3f} straddles {tolerance:g}"


def combine(verdicts: Iterable[str]) -> str:
    """One verdict over a range of usage from the verdicts at each m (see the module)."""
    seen = set(verdicts)
    if "holds" in seen and "fails" in seen:
        return "mixed"
    if "holds" in seen:
        return "holds"
    if "fails" in seen:
        return "fails"
    return "inconclusive"


# The typical trial's noise (the median): measured on the cpu profile, one evaluation's noise runs from ~0.001
# (collapsed posteriors) to ~0.2 nats (trials far from the data, usage above ln V); the median is ~0.03.
NOISE_QUANTILE = 0.5


def typical_noise(deviations: Iterable[float]) -> float:
    """The noise assumed for a trial without a measurement: the median of the measured standard deviations of
    one evaluation, leaving out exact zeros (models whose evaluation draws nothing random: the VQ-VAE)."""
    values = [v for v in deviations if v > 0 and math.isfinite(v)]
    return float(np.quantile(values, NOISE_QUANTILE)) if values else math.nan


def single_evaluation_noise(curves: Sequence) -> float:
    """The standard deviation of one recorded evaluation's NLL, measured: :func:`typical_noise` over every
    precisely evaluated trial of ``curves`` of its standard error × √(evaluations) (NaN when none has been)."""
    values = []
    for curve in curves:
        if curve is None:
            continue
        repeats_known = np.isfinite(curve.nll_se) & np.isfinite(curve.nll_precise)
        if not repeats_known.any():
            continue
        values.extend((curve.nll_se[repeats_known] * np.sqrt(curve.eval_repeats[repeats_known])).tolist())
    return typical_noise(values)


def training_noise(rows: Iterable) -> tuple[float, int]:
    """The standard deviation of one training's NLL, measured where a trial was trained twice: rows recorded on
    another machine and evaluated as retrained here (results.RETRAIN_COLUMNS; floating point differs between
    machines, and training amplifies it). For such a row, d = its retrain's precise NLL - its recorded NLL has
    Var(d) = 2 sd_train² + sd_eval² (two trainings, one recorded evaluation whose noise is taken as the retrained
    model's: √repeats × its standard error). Robust: sd(d) from the median |d| (/ 0.674, a normal's), sd_eval² the
    median. Returns (sd_train, rows used); (NaN, 0) without any. The verdicts do not include it (their standard
    errors are evaluation's): scripts/training_noise_sensitivity.py counts what it would change."""
    pairs = [
        (row.nll_precise - row.nll, row.nll_se * math.sqrt(row.eval_repeats))
        for row in rows
        if row.status == "complete" and math.isfinite(row.retrain_nll) and math.isfinite(row.nll_precise)
    ]
    if not pairs:
        return math.nan, 0
    spread = float(np.median([abs(d) for d, _ in pairs])) / 0.674
    evaluation = float(np.median([sd * sd for _, sd in pairs]))
    return math.sqrt(max(0.0, spread**2 - evaluation) / 2), len(pairs)
