"""Study files: a base run config, the parameters a sweep tunes, grid points, a trial budget.

A study is one curve of a paper figure: the Pareto frontier (lowest NLL at each level of
latent usage) over many runs of one estimator and objective whose learning rate, λ and α
are tuned. ``params/studies/<profile>/*.yaml`` declares each one; :func:`load_study` reads
it as strictly as run configs are read (unknown keys, wrong types and out-of-range values
are errors naming the key) and checks, before any work, that the base config with the
parameters at both ends of their ranges and at every grid point is a valid run config.

Parameters default to the ranges of the paper's Appendix C, Table 2, which the task of the base
config holds (:attr:`micmco.tasks.base.Task.tuned_ranges`): for every task the learning rate in
[1e-4, 1e-2] (log scale), λ in [-0.05, 0.9999] (KL and Rényi objectives) and α in [0.86, 16]
(log scale; Rényi and power objectives; the paper's own Rényi trials in
``shared/data/paper-frontiers`` span exactly this range); PTB adds its dropout rates and L2 penalty.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .config import ConfigError, check, check_choice, from_dict, read_yaml_file, to_dict

__all__ = [
    "ParameterConfig",
    "StudyConfig",
    "Study",
    "SAMPLERS",
    "BASELINES",
    "load_study",
    "study_from_dict",
]

SAMPLERS = ("gp", "tpe", "random", "grid")
SCALES = ("linear", "log")
# §7.2.6: single-sample baselines at the compute of a 16-sample estimator.
BASELINES = {"none": None, "t16": ("train.steps", 16), "bs16": ("data.batch_size", 16)}


@dataclass
class ParameterConfig:
    """One tuned parameter; every field defaults to Table 2's for the parameters the base config's task has a
    range of (learning_rate, lam, alpha; PTB's dropout rates and l2)."""

    key: str = ""  # the dotted run-config key it sets, e.g. objective.lam ("" = Table 2's key for this name)
    low: float | None = None  # lower end of the range (null = Table 2's)
    high: float | None = None  # upper end of the range (null = Table 2's)
    scale: str = ""  # linear or log ("" = Table 2's; log needs low > 0)
    integer: bool = False  # integer-valued (e.g. the VQ-VAE's number of latents, Table 2)

    def __post_init__(self) -> None:
        if self.scale:
            check_choice(self.scale, SCALES, "scale")
        for name in ("low", "high"):
            value = getattr(self, name)
            check(value is None or math.isfinite(value), name, f"must be a finite number, got {value}")


@dataclass
class StudyConfig:
    """The scalar part of a study file (``parameters``, ``grid`` and ``set`` are read beside it)."""

    name: str  # study name: the Optuna study, results/<profile>/<name>.tsv and runs/sweeps/<name>/
    base: str  # the run config every trial starts from, relative to the repository root (or to this file)
    profile: str  # the base config's profile (smoke, cpu, paper, custom): results go to results/<profile>/
    reproduces: str = ""  # the paper figure this study's curve belongs to
    curve: str = ""  # the curve's label in that figure, e.g. "VIMCO 16, Rényi"
    trials: int | None = None  # trials in the study, grid points included (omitted: the number of grid points)
    sampler: str = "gp"  # gp (Gaussian process, log-EHVI), tpe, random, or grid (grid points only)
    startup_trials: int = 8  # random trials before the gp or tpe model proposes points
    seed: int = 0  # seeds the sampler; each run's own seed is the base config's
    baseline: str = "none"  # compute-matched baselines of §7.2.6: none, t16 (16x steps), bs16 (16x batch)

    def __post_init__(self) -> None:
        check(
            bool(self.name) and "/" not in self.name, "name", f"must be a non-empty name without '/', got {self.name!r}"
        )
        check(bool(self.base), "base", "must name a run config, e.g. params/synthetic/cpu/elbo-kl.yaml")
        check(
            self.trials is None or self.trials >= 1,
            "trials",
            f"must be >= 1, got {self.trials} (omit it to run the grid points only)",
        )
        check_choice(self.sampler, SAMPLERS, "sampler")
        check(self.startup_trials >= 0, "startup_trials", f"must be >= 0, got {self.startup_trials}")
        check(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        check_choice(self.baseline, BASELINES, "baseline")


@dataclass
class Parameter:
    """A resolved tuned parameter."""

    name: str
    key: str
    low: float
    high: float
    log: bool
    integer: bool = False


@dataclass
class Study:
    """A validated study: its config, resolved parameters, grid points and per-trial overrides."""

    config: StudyConfig
    path: Path | None  # the study file
    base_path: Path  # the resolved base run config
    parameters: list[Parameter]
    grid: list[dict[str, float]]
    overrides: list[str]  # the study's `set` plus the baseline's, applied to every trial
    base_profile: str = ""
    definition: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def trials(self) -> int:
        return self.config.trials or len(self.grid)

    def trial_overrides(self, params: Mapping[str, float]) -> list[str]:
        """The --set overrides of one trial: the study's fixed ones, then the tuned parameters."""
        by_name = {p.name: p for p in self.parameters}
        return self.overrides + [
            f"{by_name[name].key}={int(value) if by_name[name].integer else _yaml_number(value)}"
            for name, value in params.items()
        ]

    def definition_hash(self) -> str:
        """Identifies what the trials compute (not the budget): a stored study must match it."""
        data = {k: v for k, v in self.definition.items() if k not in ("trials", "reproduces", "curve")}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def load_study(path: str | Path, root: str | Path | None = None) -> Study:
    """Read and validate a study file (as strictly as run configs); ConfigError names the offending key."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError("", f"{path} is a directory; give a study file such as params/studies/cpu/elbo-kl.yaml")
    if not path.exists():
        raise ConfigError("", f"no such study file: {path}")
    data = read_yaml_file(path)
    if not isinstance(data, dict):
        raise ConfigError("", f"{path} does not hold a mapping of study fields")
    sections = sorted(data.keys() & {"data", "model", "estimator", "objective", "train", "eval"})
    if "base" not in data and sections:
        raise ConfigError(
            "",
            f"{path} is a run config (it has {', '.join(sections)}), not a study: train it with `micmco train {path}`, "
            "or give a study file whose base: names it (params/studies/<profile>/*.yaml)",
        )
    return study_from_dict(data, path=path, root=root)


def study_from_dict(data: Mapping[str, Any], path: Path | None = None, root: str | Path | None = None) -> Study:
    data = dict(data)
    raw_parameters = data.pop("parameters", None)
    raw_grid = data.pop("grid", None)
    raw_set = data.pop("set", None)
    known = ["parameters", "grid", "set"]
    try:
        config = from_dict(StudyConfig, data)
    except ConfigError as error:
        if error.key and error.message.startswith("unknown key; valid keys here: "):
            raise ConfigError(error.key, error.message + ", " + ", ".join(known)) from None
        raise
    base_path = _resolve_base(config.base, path, root)

    from .runconfig import load_config  # imports torch: only once the study's own fields are valid

    base = _load_run_config(load_config, base_path, [], "base")
    if base.profile != config.profile:
        raise ConfigError(
            "profile", f"is {config.profile!r} but the base config {base_path} has profile {base.profile!r}"
        )

    overrides = _parse_set(raw_set)
    fixed = _load_run_config(load_config, base_path, overrides, "set")
    multiplier = BASELINES[config.baseline]
    if multiplier is not None:  # scales the value after `set`
        key, factor = multiplier
        section, leaf = key.split(".")
        overrides.append(f"{key}={getattr(getattr(fixed, section), leaf) * factor}")
        fixed = _load_run_config(load_config, base_path, overrides, "baseline")

    parameters = _parse_parameters(raw_parameters, fixed)
    grid = _parse_grid(raw_grid, parameters)
    study = Study(config, path, base_path, parameters, grid, overrides, base.profile)
    if config.sampler == "grid":
        check(bool(grid), "grid", "the grid sampler needs grid points")
        check(
            config.trials in (None, len(grid)),
            "trials",
            f"the grid sampler runs exactly the {len(grid)} grid points; omit trials or set it to {len(grid)}",
        )
    else:
        check(
            study.trials >= max(1, len(grid)),
            "trials",
            f"must be at least the {len(grid)} grid points (and >= 1), got {config.trials}",
        )

    # Every trial must be a valid run: check both ends of every range and every grid point now.
    for end in ("low", "high"):
        values = {p.name: getattr(p, end) for p in parameters}
        _load_run_config(
            load_config, base_path, study.trial_overrides(values), "parameters", f"(all at their {end} end)"
        )
    for index, point in enumerate(grid):
        values = {p.name: point.get(p.name, p.low) for p in parameters}
        _load_run_config(load_config, base_path, study.trial_overrides(values), f"grid[{index}]")

    study.definition = {
        "name": config.name,
        "base": str(config.base),
        "base_config": _config_dict(fixed),
        "parameters": [{k: v for k, v in asdict(p).items() if k != "integer" or v} for p in parameters],
        "grid": grid,
        "set": overrides,
        "trials": study.trials,
        "reproduces": config.reproduces,
        "curve": config.curve,
    }
    return study


def _config_dict(config) -> dict[str, Any]:
    """The base config as the definition hash sees it: all of it but output_dir, how precisely finished runs
    are measured and which softmax head computes them (NOT_IN_DEFINITION), with keys added since
    studies were first stored left out at their old value (micmco.runconfig.LEGACY_DEFAULTS)."""
    from .runconfig import NOT_IN_DEFINITION, drop_keys, drop_legacy_defaults

    data = drop_keys(drop_legacy_defaults(to_dict(config)), NOT_IN_DEFINITION)
    data.pop("output_dir", None)
    return data


def _load_run_config(load_config, base_path: Path, overrides: list[str], field_name: str, detail: str = ""):
    try:
        return load_config(base_path, overrides)
    except ConfigError as error:
        suffix = f" {detail}" if detail else ""
        raise ConfigError(field_name, f"makes an invalid run config{suffix}: {error}") from None
    except (OSError, ValueError) as error:
        raise ConfigError(field_name, f"cannot load the run config {base_path}: {error}") from None


def _resolve_base(base: str, study_path: Path | None, root: str | Path | None) -> Path:
    candidate = Path(base)
    if candidate.is_absolute():
        places = [candidate]
    else:
        places = [Path(root) / candidate] if root is not None else []
        places.append(Path.cwd() / candidate)
        if study_path is not None:
            places += [parent / candidate for parent in Path(study_path).resolve().parents]
    for place in places:
        if place.is_file():
            return place
    raise ConfigError("base", f"no such run config: {base} (looked in the repository root and above the study file)")


def _parse_set(raw: Any) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError("set", f"must be a list of key=value strings, got {type(raw).__name__}")
    items = []
    for index, item in enumerate(raw):
        if not isinstance(item, str) or "=" not in item or item.startswith("="):
            raise ConfigError(f"set[{index}]", f"must look like key.path=value, got {item!r}")
        items.append(item)
    return items


def _parse_parameters(raw: Any, fixed) -> list[Parameter]:
    """Resolve the tuned parameters; omitted, they default to Table 2's for the base config (its task says which)."""
    from .tasks import get_task

    task = get_task(fixed.task)
    table2 = task.tuned_ranges
    if raw is None:
        raw = {name: {} for name in task.default_parameters(fixed)}
    if not isinstance(raw, Mapping):
        raise ConfigError("parameters", f"must map parameter names to ranges, got {type(raw).__name__}")
    if not raw:
        raise ConfigError("parameters", "no parameters to tune; give at least one (e.g. learning_rate: {})")
    parameters = []
    for name, spec in raw.items():
        prefix = f"parameters.{name}"
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(prefix, "a parameter name must be an identifier (it becomes a column of the results)")
        spec = from_dict(ParameterConfig, spec, prefix)
        default = table2.get(name)
        if default is None and (not spec.key or spec.low is None or spec.high is None):
            raise ConfigError(
                prefix,
                f"not a Table 2 parameter of the {task.name} task ({', '.join(table2)}): give key, low and high "
                "(and scale)",
            )
        key = spec.key or default[0]
        low = spec.low if spec.low is not None else default[1]
        high = spec.high if spec.high is not None else default[2]
        scale = spec.scale or (default[3] if default else "linear")
        if low >= high:
            raise ConfigError(f"{prefix}.low", f"must be below high ({high}), got {low}")
        if scale == "log" and low <= 0:
            raise ConfigError(f"{prefix}.low", f"a log scale needs low > 0, got {low}")
        if key.count(".") < 1:
            raise ConfigError(
                f"{prefix}.key", f"must be a dotted run-config key such as train.learning_rate, got {key!r}"
            )
        if spec.integer and (low != int(low) or high != int(high)):
            raise ConfigError(f"{prefix}.low", f"an integer parameter needs integer ends, got [{low}, {high}]")
        parameters.append(Parameter(name, key, float(low), float(high), scale == "log", spec.integer))
    keys = [p.key for p in parameters]
    for p in parameters:
        if keys.count(p.key) > 1:
            raise ConfigError(f"parameters.{p.name}.key", f"{p.key} is set by more than one parameter")
    return parameters


def _parse_grid(raw: Any, parameters: list[Parameter]) -> list[dict[str, float]]:
    """Grid points: a list of {name: value} points, or {name: [values]} for their product."""
    if raw is None:
        return []
    by_name = {p.name: p for p in parameters}
    if isinstance(raw, Mapping):
        names = list(raw)
        for name in names:
            if not isinstance(raw[name], list) or not raw[name]:
                raise ConfigError(f"grid.{name}", "in the product form, each parameter maps to a non-empty list")
        points = [dict(zip(names, values)) for values in itertools.product(*(raw[n] for n in names))]
        labels = [f"grid.{'/'.join(names)}"] * len(points)
    elif isinstance(raw, list):
        points, labels = raw, [f"grid[{i}]" for i in range(len(raw))]
    else:
        raise ConfigError("grid", f"must be a list of points or a mapping of value lists, got {type(raw).__name__}")
    grid: list[dict[str, float]] = []
    for label, point in zip(labels, points):
        if not isinstance(point, Mapping) or not point:
            raise ConfigError(label, "a grid point maps parameter names to values, e.g. {lam: 0.5}")
        resolved = {}
        for name, value in point.items():
            if name not in by_name:
                raise ConfigError(f"{label}.{name}", f"not a tuned parameter; tuned here: {', '.join(by_name)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                quoted = " (a quoted string: write the number without quotes)" if isinstance(value, str) else ""
                raise ConfigError(f"{label}.{name}", f"must be a number, got {value!r}{quoted}")
            value = float(value)
            p = by_name[name]
            if not p.low <= value <= p.high:
                raise ConfigError(f"{label}.{name}", f"{value} is outside the range [{p.low}, {p.high}]")
            if p.integer and value != int(value):
                raise ConfigError(f"{label}.{name}", f"must be an integer, got {value}")
            resolved[name] = int(value) if p.integer else value
        if resolved in grid:
            raise ConfigError(label, f"repeats an earlier grid point {resolved}")
        grid.append(resolved)
    return grid


def _yaml_number(value: float) -> str:
    return repr(float(value))
