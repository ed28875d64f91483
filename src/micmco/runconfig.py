"""A run config read from YAML, and what its run is called.

A run config names its task (``task: synthetic``; the default, so configs written before tasks
existed still load). The task's module (:mod:`micmco.tasks`) defines a subclass of
:class:`micmco.tasks.base.RunConfig` (the sections every task shares) whose ``data`` and ``model``
sections are the task's dataclasses, so a YAML file maps onto exactly one dataclass tree and unknown
keys are errors as everywhere else.

The identity of a run (:func:`identity`: everything that affects its results) gives its
fingerprint, hence its run directory, and a study's definition hash. Keys added after results
were recorded are left out of the identity while they hold the value every older run had, so
old run directories and stored studies keep their names.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from .config import ConfigError, apply_overrides, from_dict, read_yaml_file, to_dict
from .tasks import get_task
from .tasks.base import RunConfig

__all__ = [
    "load_config",
    "config_from_dict",
    "identity",
    "drop_legacy_defaults",
    "MEASUREMENT_ONLY",
    "NOT_IN_DEFINITION",
    "drop_keys",
    "fingerprint",
    "run_directory",
]

# (dotted key, the value all runs recorded before the key existed): left out of the identity at that value.
# train.precision has two: a run recorded before it had float32, or bfloat16 where its train.mixed_precision
# (kept, and always in agreement with precision: TrainerConfig) says so; tf32 is new and enters the identity.
LEGACY_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("task", "synthetic"), ("eval.split", ""), ("eval.sample_chunk", 0), ("data.unverified", False),
    ("train.precision", "float32"), ("train.precision", "bfloat16"),
)  # fmt: skip
# Keys that do not affect results: where results go, the progress bar, the thread count, where the PTB
# files are (their checksums pin the data, so a run keeps its directory from machine to machine; files taken
# without them put their sha256s in the identity: Task.data_identity), and how many samples evaluation
# scores at once, and the precise evaluation's repeats (added to a finished run by `micmco evaluate`; the
# recorded evaluation is the same whatever they are).
NOT_IDENTITY = ("output_dir", "train.progress", "train.threads", "data.path", "eval.sample_chunk")
MEASUREMENT_ONLY = ("eval.repeats", "eval.target_se")  # nor in a study's definition: old studies resume
# How training computes what it computes: the softmax head (train.head) gives the same values and gradients up to
# rounding; a run records it and keeps it when resumed, and a committed trial reruns with its own (rerun.py).
IMPLEMENTATION_ONLY = ("train.head",)
NOT_IDENTITY += MEASUREMENT_ONLY + IMPLEMENTATION_ONLY
NOT_IN_DEFINITION = MEASUREMENT_ONLY + IMPLEMENTATION_ONLY  # a study's definition leaves these out


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """The run config of a mapping: its ``task`` picks the dataclass tree; ConfigError names the bad key."""
    task = get_task(data.get("task", "synthetic"))
    return from_dict(task.config_class, data)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Read a YAML run config (strictly: safe loader, no duplicate keys), apply ``key=value`` overrides, validate."""
    data = read_yaml_file(path)
    if not isinstance(data, dict):
        raise ConfigError("", f"{path} does not hold a mapping of config sections (name, data, model, ...)")
    if "base" in data and not data.keys() & RUN_SECTIONS:
        raise ConfigError(
            "", f"{path} is a study file (it has base:), not a run config: run its trials with `micmco sweep {path}`"
        )
    return config_from_dict(apply_overrides(data, overrides))


RUN_SECTIONS = {"data", "model", "estimator", "objective", "train", "eval"}  # a run config's sections


def identity(config: RunConfig) -> dict[str, Any]:
    """Everything that affects the results, as plain data (see the module docstring): the config, and
    what its task's data add when the config does not pin them (:meth:`micmco.tasks.base.Task.data_identity`:
    then the data are read, and a ConfigError says when they cannot be)."""
    data = drop_legacy_defaults(to_dict(config))
    drop_keys(data, NOT_IDENTITY)
    files = get_task(config.task).data_identity(config)
    if files is not None:
        data["data_files"] = files
    return data


def drop_keys(data: dict[str, Any], keys) -> dict[str, Any]:
    """``data`` (a config as plain data, changed in place) without the dotted ``keys``."""
    for key in keys:
        _pop(data, key)
    return data


def drop_legacy_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a config as plain data, changed in place) without the keys that hold the value all
    runs had before those keys existed (:data:`LEGACY_DEFAULTS`), so that hashes of old configs stay."""
    for key, legacy in LEGACY_DEFAULTS:
        if _get(data, key) == legacy:
            _pop(data, key)
    return data


def fingerprint(config: RunConfig) -> str:
    """Short hash of the run's identity: its run directory's suffix."""
    return hashlib.sha256(json.dumps(identity(config), sort_keys=True).encode()).hexdigest()[:10]


def write_config_record(config: RunConfig, run_dir: Path) -> None:
    """The run's ``config.yaml``: its config as YAML, in UTF-8 as written (R\u00e9nyi, not "R\\xE9nyi")."""
    text = yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True)
    (Path(run_dir) / "config.yaml").write_text(text, encoding="utf-8")


def run_directory(config: RunConfig) -> Path:
    return Path(config.output_dir) / f"{config.name}-{fingerprint(config)}"


def _get(data: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _pop(data: dict[str, Any], key: str) -> None:
    *parents, leaf = key.split(".")
    for part in parents:
        data = data.get(part) or {}
    data.pop(leaf, None)
