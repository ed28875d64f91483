"""What the sampler proposes and what it is told: its construction and seeding, the two objectives
it sees of a complete or diverged trial, and when two proposals are the same point."""

from __future__ import annotations

import json
import math
import zlib

__all__ = ["make_sampler", "sampler_values", "diverged_values", "near"]


def make_sampler(config, seed_parts: tuple[int, ...]):
    """The study's sampler, seeded from (study seed, trials so far, worker): reproducible with one worker,
    and a restarted sweep never replays the proposals it already made."""
    import optuna

    seed = zlib.crc32(json.dumps(list(seed_parts)).encode()) & 0x7FFFFFFF
    if config.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=config.startup_trials)
    if config.sampler == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=config.startup_trials, multivariate=True, constant_liar=True
        )
    return optuna.samplers.RandomSampler(seed=seed)


def sampler_values(nll: float, mi: float, reference_nll: float | None, mode: str = "log-excess") -> list[float]:
    """The two objectives the sampler sees (the export keeps the measured NLL and MI).

    Latent usage cannot exceed the data entropy, the task's reference NLL (ln V for the synthetic
    task): a larger estimate (a model far from the data, flagged in the row's `reason`) counts as
    the reference, so such runs compete on NLL alone. The NLL is seen as ln(excess NLL + 0.001):
    blown-up runs (excess in the hundreds at λ near 1) would otherwise set the Gaussian process's
    scale and hide differences of 0.01 nats. Both maps are monotone, so the study's Pareto set is
    the same as on the measured values. A study whose user attribute `sampler_values` is "capped"
    (the first cpu studies, made before this map) keeps the measured NLL, so that all its trials
    stay on one scale. A task without a reference NLL: the measured values, uncapped.
    """
    if reference_nll is None:
        return [nll, mi]
    if mode == "capped":
        return [nll, min(mi, reference_nll)]
    return [math.log(max(nll - reference_nll, 0.0) + 1e-3), min(mi, reference_nll)]


def diverged_values(uniform_nll: float, reference_nll: float | None, mode: str = "log-excess") -> list[float]:
    """What the sampler sees of a diverged trial: no latent usage, and an NLL of twice the uniform
    model's (2 ln V for the synthetic task, twice its optimum).

    Samplers ignore failed trials, so a Gaussian process that liked a corner proposed it again and
    again, each time a run that diverged (REINFORCE 1, Rényi: learning rate 0.01, λ 0.36, α 9.1,
    six times in a row). Told as a dominated point, the corner looks bad and the proposals move
    away. The export still shows the trial as diverged, without metrics.
    """
    return sampler_values(2 * uniform_nll, 0.0, reference_nll, mode)


def near(parameters, a: dict[str, float], b: dict[str, float], tolerance: float = 0.02) -> bool:
    """Whether two points differ by less than `tolerance` of every parameter's range (log ranges in log)."""
    for p in parameters:
        if p.name not in a or p.name not in b:
            return False
        scale = (lambda v: math.log(v)) if p.log else (lambda v: v)
        if abs(scale(a[p.name]) - scale(b[p.name])) > tolerance * (scale(p.high) - scale(p.low)):
            return False
    return True
