"""``python -m micmco.sweep STUDY.yaml ...``: ``micmco sweep``, as local worker processes are started."""

import sys

from . import cli_main

sys.exit(cli_main())
