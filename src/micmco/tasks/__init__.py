"""Tasks: what a run learns from. A task module owns its data (with named splits), its model
construction and loss, its evaluation batches and their units, its reference NLL where one
exists, its extra result columns, its memory estimate and its plausibility checks; the run hub
(:mod:`micmco.experiment`), the trainer, the sweep tool and the frontier code are shared.

A run config's ``task:`` names one (like big_vision's configs name a model module):

- ``synthetic`` (:mod:`micmco.tasks.synthetic`): single symbols uniform over a vocabulary (§7.1).
- ``ptb`` (:mod:`micmco.tasks.ptb`, data in :mod:`micmco.tasks.ptb_data`): Penn Treebank sentences (§7.2).

A new task is a module here with a ``TASK`` object (a :class:`micmco.tasks.base.Task`) and a line in
:data:`TASKS`.
"""

from __future__ import annotations

import importlib

from ..config import ConfigError
from .base import Task

__all__ = ["TASKS", "Task", "get_task"]

TASKS = {"synthetic": "micmco.tasks.synthetic", "ptb": "micmco.tasks.ptb"}  # task name -> its module


def get_task(name: str) -> Task:
    """The task called ``name``; a ConfigError on the key ``task`` listing the valid choices otherwise."""
    if not isinstance(name, str) or name not in TASKS:
        raise ConfigError("task", f"unknown task {name!r}; valid choices: {', '.join(TASKS)}")
    return importlib.import_module(TASKS[name]).TASK
