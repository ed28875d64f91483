"""run_batch: N run configs of one study, trained together where the task has a batched model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..experiment import run
from ..tasks.base import RunConfig

__all__ = ["run_batch", "batchable"]


def batchable(configs: Sequence[RunConfig]) -> str | None:
    """None when ``configs`` can train as one batch, else why not (one line)."""
    return "batched training is not implemented yet"


def run_batch(configs: Sequence[RunConfig], echo=print) -> list[dict[str, Any]]:
    """Train (or resume) and evaluate each of ``configs``; their result records, in order, also written as JSON.

    Raises as :func:`micmco.experiment.run` does: RunLocked, ConfigError, KeyboardInterrupt (every trial of the
    batch checkpointed, resumable alone or in another batch).
    """
    return [run(config, echo) for config in configs]
