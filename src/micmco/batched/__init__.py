"""Many trials of one study in one process: N runs trained as one batched computation.

The trials of a study share their seed, data and shapes and differ in learning rate, λ, α, dropout rates and
L2: :func:`run_batch` trains them together, each with its own run directory, lock, checkpoint and
``result.json`` in the format of :func:`micmco.experiment.run`, so that any trial resumes alone or in
another batch. Tasks without a batched model train their trials one after another.
"""

from __future__ import annotations

from .run import batchable, run_batch

__all__ = ["run_batch", "batchable"]
