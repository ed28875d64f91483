"""What every chapter shares: the setup, paths inside the checkout, Markdown tables, printed lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def setup(threads: int = 1) -> None:
    """What every chapter does first: a fixed number of torch threads, crisp inline figures."""
    torch.set_num_threads(threads)
    try:
        import matplotlib

        matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "font.size": 10})
    except ImportError:  # the figures need the book extra: pip install -e '.[book]'
        pass


PARAMETER_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def check_parameters(namespace: dict[str, Any]) -> None:
    """Check a chapter's parameters (its typed ``parameters`` cell, possibly overridden by papermill's
    ``-p name value``) against their annotations, before any cell uses them: a wrong type is one line
    naming the parameter, not a TypeError cells later. An int given for a float becomes that float. A name
    papermill injected that the chapter has no parameter of (``-p tolerence 0.01``) is an error naming the
    chapter's parameters, not a run on the defaults."""
    declared = namespace.get("__annotations__", {})
    unknown = [name for name in injected_names(namespace) if name not in declared]
    if unknown:
        import difflib

        hints = [difflib.get_close_matches(name, list(declared), n=1) for name in unknown]
        guesses = "".join(f"; did you mean {hint[0]}?" for hint in hints if hint)
        raise NameError(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}{guesses} "
            f"This chapter's parameters: {', '.join(declared) or 'none'}"
        )
    for name, kind in declared.items():
        if kind not in PARAMETER_TYPES.values() or name not in namespace:
            continue
        value = namespace[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            namespace[name] = float(value)
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"parameter {name} must be {kind.__name__}, got {type(value).__name__} {value!r}")


def injected_names(namespace: dict[str, Any]) -> list[str]:
    """The names papermill's injected-parameters cell assigned (its source starts ``# Parameters``, and IPython
    keeps every executed cell's source in ``In``); [] outside IPython or without injected parameters."""
    import ast

    names: list[str] = []
    for source in namespace.get("In") or namespace.get("_ih") or []:
        if not isinstance(source, str) or not source.lstrip().startswith("# Parameters"):
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            names += [target.id for target in targets if isinstance(target, ast.Name) and target.id not in names]
    return names


def floats(name: str, text: str) -> list[float]:
    """A chapter parameter holding comma-separated numbers ("0.2, 0.5, 0.8"), read with an error that names
    the parameter and the bad entry."""
    values = []
    for entry in text.split(","):
        try:
            values.append(float(entry))
        except ValueError:
            raise ValueError(
                f"parameter {name}: {entry.strip()!r} is not a number; give comma-separated numbers, e.g. '0.2, 0.5'"
            ) from None
    return values


def repo_path(relative: str) -> Path:
    """A path inside the micmco checkout (e.g. ``params/synthetic/smoke/vimco16-renyi.yaml``).

    Looked up from the working directory upwards, then from the package's own location, so a
    chapter finds it wherever it runs (book/chapters, a build copy, Binder or Colab clones).
    """
    for start in (Path.cwd(), Path(__file__).resolve()):
        for directory in (start, *start.parents):
            if (directory / relative).exists():
                return directory / relative
    raise FileNotFoundError(f"{relative} not found above {Path.cwd()} nor above the micmco package")


def markdown_table(rows: list[list[Any]], headers: list[str], digits: int = 4) -> str:
    """A Markdown table; floats rounded to ``digits`` decimals, pipes inside cells escaped."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return str(value).replace("|", "\\|")

    numeric = [all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(headers))]
    rule = "|" + "|".join(" ---: " if is_number else " :--- " for is_number in numeric) + "|"
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", rule]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_lines(lines: list[str]) -> str:
    """Computed lines as Markdown that wraps to the page (a printout of long lines scrolls sideways): the
    first line a paragraph, the others a list, lines indented by spaces nested one level."""
    head, *rest = lines
    items = [("  " if line.startswith(" ") else "") + "- " + line.strip().removeprefix("- ") for line in rest]
    return head + ("\n\n" + "\n".join(items) if items else "")
