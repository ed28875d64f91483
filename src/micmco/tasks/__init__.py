"""Tasks: what a run learns from. A task module owns its data (with named splits), its model
construction and loss, its evaluation batches and their units, its reference NLL where one
exists, its extra result columns and the label of its settings, its memory estimate, the ranges
its studies tune (Appendix C, Table 2), and how the paper's trial files of it read; the run hub
(:mod:`micmco.experiment`), the trainer, the plausibility rule (:mod:`micmco.tasks.base`), the
sweep tool and the frontier code are shared, and none of them names a task.

A run config's ``task:`` names one (like big_vision's configs name a model module):

- ``synthetic`` (:mod:`micmco.tasks.synthetic`): single symbols uniform over a vocabulary (§7.1).
- ``ptb`` (:mod:`micmco.tasks.ptb`, data in :mod:`micmco.tasks.ptb_data`): Penn Treebank sentences (§7.2).

A new task is a module here with a ``TASK`` object (a :class:`micmco.tasks.base.Task`) and a line in
:data:`TASKS`, or a Task defined elsewhere (a plugin, a test's throwaway task) added by :func:`register_task`.
tests/test_tasks.py holds every task to the same contract.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path

from ..config import ConfigError
from .base import Task

__all__ = ["TASKS", "DEFAULT_TASK", "Task", "get_task", "register_task", "task_of_paper_folder", "legacy_reader_values"]

TASKS: dict[str, str | Task] = {  # task name -> its module (which holds TASK), or the Task (register_task)
    "synthetic": "micmco.tasks.synthetic",
    "ptb": "micmco.tasks.ptb",
}
DEFAULT_TASK = "synthetic"  # the task of configs, results rows and paper folders that name none (older than tasks)


def get_task(name: str) -> Task:
    """The task called ``name``; a ConfigError on the key ``task`` listing the valid choices otherwise."""
    if not isinstance(name, str) or name not in TASKS:
        raise ConfigError("task", f"unknown task {name!r}; valid choices: {', '.join(TASKS)}")
    entry = TASKS[name]
    return entry if isinstance(entry, Task) else importlib.import_module(entry).TASK


def register_task(task: Task) -> None:
    """Add ``task`` to :data:`TASKS` under ``task.name``, so that run configs with that ``task:`` load and
    run through the hub, and its results rows read. For tasks defined outside this package; ``del
    TASKS[name]`` takes it out again (as a test fixture does)."""
    if not task.name or task.name in TASKS:
        raise ValueError(f"a task needs a new name; taken: {', '.join(TASKS)}; got {task.name!r}")
    TASKS[task.name] = task


def task_of_paper_folder(directory: str | Path) -> Task:
    """The task whose paper trial files are in ``directory`` (named as its :attr:`Task.paper_folder`, e.g.
    data/paper-frontiers/ptb); the default task for any other folder."""
    name = Path(directory).name
    for task_name in TASKS:
        task = get_task(task_name)
        if task.paper_folder and task.paper_folder == name:
            return task
    return get_task(DEFAULT_TASK)


# --- LEGACY: results rows older than their reader columns ---------------------------------------------
# Rows carry what readers need (micmco.results.READER_COLUMNS: the reference NLL, the uniform NLL, the
# setting label); every table committed before they did, and every row an older sweep stored in its
# journal (an export writes rows as stored), lacks them. Those rows are of these two tasks only, whose
# vocabulary column gives both NLLs: task -> whether ln V is also its reference NLL (the data entropy).
# A task added since writes the columns into every row and never appears here.
LEGACY_READER_TASKS = {"synthetic": True, "ptb": False}


def legacy_reader_values(row: dict[str, str]) -> dict[str, str]:
    """The one path for rows written before rows carried their reader columns: those columns (as text,
    exactly as a new row writes them) from the row's own; a ValueError naming what is wrong otherwise."""
    name = row.get("task") or DEFAULT_TASK
    if name not in LEGACY_READER_TASKS:
        raise ValueError(f"a {name} row needs the columns reference_nll, uniform_nll and setting_label")
    task = get_task(name)
    try:
        ln_v = math.log(int(row["vocab_size"]))
    except (KeyError, ValueError):
        raise ValueError(f"a {name} results row needs an integer vocab_size, got {row.get('vocab_size')!r}") from None
    return {
        "reference_nll": repr(ln_v) if LEGACY_READER_TASKS[name] else "",
        "uniform_nll": repr(ln_v),
        "setting_label": task.setting_label({column: row[column] for column in task.curve_columns}),
    }
