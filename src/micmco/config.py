"""Strict YAML -> dataclass configuration.

Every component has one ``@dataclass`` config whose ``__post_init__`` checks its field types
(:func:`check_types`, so a config built in Python fails at once too) and its own ranges, and
raises :class:`ConfigError` naming the field. :func:`from_dict` maps a nested
mapping (parsed YAML) onto such a dataclass and rejects unknown keys and wrong types,
prefixing errors with the full dotted key (``objective.lam: ...``). :func:`apply_overrides`
implements ``--set key=value``.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import functools
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """An invalid configuration value; ``key`` is the dotted path of the offending key."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)

    def under(self, prefix: str) -> "ConfigError":
        return ConfigError(f"{prefix}.{self.key}" if self.key else prefix, self.message)


def check(condition: bool, key: str, message: str) -> None:
    """Raise ConfigError(key, message) unless condition holds."""
    if not condition:
        raise ConfigError(key, message)


E = TypeVar("E", bound=enum.Enum)


def parse_enum(cls: type[E], value: E | str, what: str) -> E:
    """The member of ``cls`` for a member or its string value; a ValueError naming the valid choices otherwise."""
    try:
        return cls(value)
    except ValueError:
        valid = ", ".join(member.value for member in cls)
        raise ValueError(f"unknown {what} {value!r}; valid choices: {valid}") from None


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1, or a usage error saying so."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def check_choice(value: str, choices: Iterable[str], key: str) -> None:
    choices = list(choices)
    check(value in choices, key, f"unknown value {value!r}; valid choices: {', '.join(choices)}")


class _StrictSafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no Python objects, ever), rejecting duplicate keys instead of keeping the last."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise ConfigError(str(key), f"duplicate key (line {line}, first at line {seen[key]}); keep one")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


# YAML 1.2's floats: PyYAML (YAML 1.1) reads 1e-3 and 1E5, without a dot, as strings; a number is a number however
# it is written, and a quoted one is a string (refused where a number is due, as in Python).
_StrictSafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+|[-+]?[0-9][0-9_]*\.[0-9_]*|[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str = "<string>") -> Any:
    """Parse YAML with the strict safe loader; syntax errors become a one-line ConfigError naming ``source``."""
    try:
        return yaml.load(text, Loader=_StrictSafeLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise ConfigError("", f"{source}: YAML syntax error at {where}: {error.problem}") from None
    except yaml.YAMLError as error:
        raise ConfigError("", f"{source}: not valid YAML: {str(error).splitlines()[0]}") from None


def read_yaml_file(path: str | Path) -> Any:
    """Read a YAML file strictly: a clear ConfigError for a directory, a binary or non-UTF-8 file, bad syntax."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError("", f"{path} is a directory; give a YAML file, e.g. params/synthetic/smoke/elbo-kl.yaml")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("", f"no such file: {path}") from None
    except OSError as error:
        raise ConfigError("", f"cannot read {path}: {error.strerror}") from None
    if b"\0" in raw:
        raise ConfigError("", f"{path} is a binary file, not a YAML text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError("", f"{path} is not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    return parse_yaml(text, str(path))


def from_dict(cls: type[T], data: Mapping[str, Any] | None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, strictly: unknown keys and wrong types are errors."""
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(prefix, f"expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise ConfigError(_join(prefix, str(key)), f"unknown key; valid keys here: {', '.join(fields)}")
    kwargs = {name: _coerce(hints[name], value, _join(prefix, name)) for name, value in data.items()}
    missing = [
        name
        for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and name not in data
    ]
    if missing:
        raise ConfigError(_join(prefix, missing[0]), "required key is missing")
    try:
        return cls(**kwargs)
    except ConfigError as error:
        if not prefix:
            raise
        raise error.under(prefix) from None


def to_dict(config: Any) -> dict[str, Any]:
    """The inverse of from_dict: plain, YAML/JSON-serialisable nested dicts."""
    return dataclasses.asdict(config)


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``key.path=value`` overrides (values parsed as YAML; a mapping given to a
    section is merged into it)."""
    result = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(item, "an override must look like key.path=value")
        node = result
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(".".join(parts[: depth + 1]), "is a value, not a section; cannot set keys below it")
            node = child
        if not all(parts):
            raise ConfigError(item, "an override must look like key.path=value (empty key part)")
        try:
            value = parse_yaml(raw, f"--set {item}") if raw != "" else ""
        except ConfigError as error:
            raise ConfigError(key, f"cannot parse the value of --set {item!r}: {error.message}") from None
        if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):  # a section: merged (or another kind)
            value = _merged(node[parts[-1]], value)
        node[parts[-1]] = value
    return result


def _merged(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update``'s keys set, sections merged key by key (``--set 'train={steps: 5}'`` keeps the
    section's other keys, as ``--set train.steps=5`` does). A section given another ``kind`` is another component
    and replaces it whole (``model.latent={kind: gaussian, ...}`` drops a categorical latent's fields)."""
    if "kind" in update and update["kind"] != base.get("kind"):
        return dict(update)
    merged = dict(base)
    for key, value in update.items():
        merged[key] = (
            _merged(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def check_types(config: Any) -> None:
    """Check each field of dataclass ``config`` against its annotation; a ConfigError naming the first that fails.

    bool is a boolean only; int an integer, not a boolean; float a number (an int is accepted and stored
    as a float, as :func:`from_dict` does, so both paths give equal configs and run identities); str a
    string; a dataclass an instance of it; Optional and unions any of their options (so an enum field
    annotated ``Kind | str`` takes its plain string); Any anything. Call it first in ``__post_init__``.
    """
    for name, annotation in _field_types(type(config)):
        value = getattr(config, name)
        if not _matches(annotation, value):
            enums = [option for option in _options(annotation) if isinstance(option, enum.EnumMeta)]
            choices = "".join(f"; valid choices: {', '.join(str(m.value) for m in kind)}" for kind in enums)
            numeric = any(_is_number_text(value, option) for option in _options(annotation))
            quoted = " (a quoted string: write the number without quotes)" if numeric else ""
            raise ConfigError(
                name, f"must be {_describe(annotation)}, got {type(value).__name__} {value!r}{quoted}{choices}"
            )
        if _is_float(annotation, value):
            object.__setattr__(config, name, float(value))  # also on frozen dataclasses


@functools.cache
def _field_types(cls: type) -> tuple[tuple[str, Any], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def _options(annotation: Any) -> tuple[Any, ...]:
    """The options of a union annotation, or the annotation alone."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _matches(annotation: Any, value: Any) -> bool:
    for option in _options(annotation):
        if option is Any:
            return True
        if option is type(None):
            if value is None:
                return True
        elif option is bool or option is int:
            if isinstance(value, option) and (option is bool or not isinstance(value, bool)):
                return True
        elif option is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return True
        elif isinstance(option, type):  # str, an enum, a nested dataclass
            if isinstance(value, option):
                return True
        elif typing.get_origin(option) is not None and isinstance(typing.get_origin(option), type):
            if isinstance(value, typing.get_origin(option)):  # list[...], dict[...], tuple[...]: the container only
                return True
        else:
            raise TypeError(f"unsupported config annotation {option}")
    return False


def _is_float(annotation: Any, value: Any) -> bool:
    """Whether ``value`` is an int in a field that takes floats but not ints (to be stored as a float)."""
    options = _options(annotation)
    return float in options and int not in options and isinstance(value, int) and not isinstance(value, bool)


def _describe(annotation: Any) -> str:
    names = [_type_name(option) for option in _options(annotation) if option is not type(None)]
    text = " or ".join(names)
    return text + " or None" if type(None) in _options(annotation) else text


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def flat_keys(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping (a config's ``to_dict``) as dotted keys: {"objective.lam": 0.5, ...}, as overrides name them."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat.update(flat_keys(value, _join(prefix, key)))
        else:
            flat[_join(prefix, key)] = value
    return flat


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def _coerce(annotation: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None:
            if type(None) in options:
                return None
            raise ConfigError(key, "must not be null")
        non_null = [option for option in options if option is not type(None)]
        if len(non_null) == 1:
            return _coerce(non_null[0], value, key)
        raise TypeError(f"unsupported union annotation {annotation} at {key}")
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, key)
    if value is None:
        raise ConfigError(key, f"must be {_type_name(annotation)}, got null")
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        if number is not None:
            if not math.isfinite(number):
                raise ConfigError(key, f"must be a finite number, got {value!r}")
            return number
    elif annotation is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"unsupported config annotation {annotation} at {key}")
    quoted = " (a quoted string: write the number without quotes)" if _is_number_text(value, annotation) else ""
    raise ConfigError(key, f"must be {_type_name(annotation)}, got {type(value).__name__} {value!r}{quoted}")


def _is_number_text(value: Any, annotation: Any) -> bool:
    if annotation not in (int, float) or not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def _type_name(annotation: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    if annotation in names:
        return names[annotation]
    if isinstance(annotation, type):
        name = annotation.__name__
        return f"{'an' if name[0] in 'AEIOU' else 'a'} {name}"
    return str(annotation)
