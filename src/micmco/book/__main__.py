"""``python -m micmco.book studies PROFILE [FIGURE]``: the study files ``make reproduce`` runs."""

from __future__ import annotations

import sys

from .figures import figure_studies
from .registry import all_figures


def main(argv: list[str]) -> int:
    """Print the study files behind a figure (all synthetic figures without one), cheapest first;
    exit status 2 with a message on stderr for a wrong call, an unknown profile or figure."""
    if len(argv) not in (2, 3) or argv[0] != "studies":
        print("usage: python -m micmco.book studies cpu|paper [FIGURE]", file=sys.stderr)
        return 2
    try:
        text = argv[2] if len(argv) == 3 else ""
        if text and not text.isdigit():
            numbers = sorted(n for figures in all_figures().values() for n in figures)
            raise ValueError(f"FIGURE={text} is not a figure number; choose one of {numbers}")
        figure = int(text) if text else None
        print(" ".join(figure_studies(figure, argv[1])))
    except ValueError as error:
        print(f"make reproduce: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:  # Ctrl-C in `make reproduce` while it lists the studies: one line
        print("make reproduce: interrupted", file=sys.stderr)
        sys.exit(130)
