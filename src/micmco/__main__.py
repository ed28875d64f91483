"""``python -m micmco train|check|sweep|pareto|table1 ...``: the ``micmco`` command without installing the
package (``PYTHONPATH=src python3 -m micmco ...`` on a GPU box that keeps its own torch)."""

import sys

from .cli import main

sys.exit(main())
