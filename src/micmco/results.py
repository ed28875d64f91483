"""The results schema: one row per finished trial, common columns then the task's own.

``results/<profile>/<study>.tsv`` (tab-separated) is written by the sweep tool and read by the
frontier code and the book. The common columns say what a row is (task, split, estimator, K, K′,
objective, tuned values, size), what it measured (``mi`` and ``nll``, in nats per the task's unit),
how it ended, and what readers need to know of its task (:data:`READER_COLUMNS`: the reference NLL
where known, the uniform model's NLL ln V, the label of its setting), so that neither this module nor
the frontier code asks a task about a row; each task adds its columns (the synthetic task:
``vocab_size`` and ``optimal_nll``, its ln V). Tables written before a column existed stay readable:
a missing ``task`` reads as the default task (:data:`micmco.tasks.DEFAULT_TASK`), a missing ``split``
as the task's default split, and missing reader columns come from the task registry's one legacy path
(:func:`micmco.tasks.legacy_reader_values`).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .evaluation import HALF_KEYS, halves_of
from .naming import OBJECTIVES, estimator_names
from .util import full_precision

__all__ = [
    "STATUSES",
    "COMMON_COLUMNS",
    "READER_COLUMNS",
    "PRECISE_COLUMNS",
    "HALF_COLUMNS",
    "RETRAIN_COLUMNS",
    "precise_values",
    "full_precision",
    "TableError",
    "Row",
    "columns_of",
    "result_row",
    "format_table",
    "apply_divergence_rule",
    "read_table",
    "read_rows",
    "reader_values",
    "study_regulariser_rows",
    "parse_number",
]

STATUSES = ("complete", "failed", "diverged")
# What readers need of a row's task, written by the task into the row (full precision: a reader gets the very
# float the task computed): its reference NLL ("" where unknown), its uniform NLL ln V, its setting's label.
READER_COLUMNS = ("reference_nll", "uniform_nll", "setting_label")
# The precise evaluation (micmco.evaluation.evaluate_repeated): means of independent K = 100 evaluations and
# their standard errors, and how many were averaged; then its two halves (micmco.evaluation.split_halves): the
# one a frontier chooses on (nll_select, mi_select) and the one it reports (nll_report ± nll_report_se). Empty
# where a row has none (read as unknown: NaN, 0). A row recorded on another machine whose retrain here does not
# reproduce its recorded numbers bit for bit (floating point differs between machines: NOTES.md) is evaluated
# precisely as retrained here; RETRAIN_COLUMNS then give that retrained model's own recorded evaluation (the
# run's seed, K = 100), to set beside nll and mi. Empty where the precise evaluation is of the recorded model.
HALF_COLUMNS = ("nll_select", "mi_select", "nll_report", "nll_report_se")
RETRAIN_COLUMNS = ("retrain_nll", "retrain_mi")
PRECISE_COLUMNS = ("nll_precise", "nll_se", "mi_precise", "mi_se", "eval_repeats", *HALF_COLUMNS, *RETRAIN_COLUMNS)
COMMON_COLUMNS = (
    "trial", "task", "split", "estimator", "k", "k_mi", "objective", "learning_rate", "lam", "alpha", "steps",
    "batch_size", "mi", "nll", *PRECISE_COLUMNS, "seed", "status", "reason", "wall_s", "threads", "device", "head",
    "commit", "run", *READER_COLUMNS,
)  # fmt: skip
# "head": the softmax head that trained the row (train.head: cached or recompute; empty in rows recorded before it
# existed, which were the recompute head's); a row reruns with its own (micmco.rerun).
# Columns every results table has had; the others are filled in when an older table lacks them.
REQUIRED_COLUMNS = (
    "estimator", "k", "k_mi", "objective", "learning_rate", "lam", "alpha", "steps", "batch_size", "mi", "nll",
    "seed", "status", "wall_s", "device", "commit",
)  # fmt: skip


class TableError(ValueError):
    """A table that cannot be read: the message is one line naming the file (and line) and what is valid."""


def _task(name: str):
    from .tasks import DEFAULT_TASK, get_task

    return get_task(name or DEFAULT_TASK)


def columns_of(task: str) -> list[str]:
    """The columns of a results table of ``task``: the common ones, then the task's."""
    return [*COMMON_COLUMNS[:12], *_task(task).result_columns, *COMMON_COLUMNS[12:]]


def result_row(
    config: dict[str, Any], record: dict | None, status: str, reason: str, wall: float, run: str, threads: int, commit
) -> dict[str, Any]:
    """The row of one trial from its resolved config (plain data), its result record (None if it never
    ran), its status and reason; ``commit`` is used when the record has none."""
    from .runconfig import config_from_dict

    task = _task(config.get("task", ""))
    typed = config_from_dict(config)  # the task's reference and uniform NLL are of its typed config
    reference = task.reference_nll(typed)
    values = task.result_values(config)
    estimator = config.get("estimator") or {}
    objective = config.get("objective") or {}
    model = config.get("model") or {}
    record = record or {}
    metrics = {} if status == "diverged" else (record.get("metrics") or {})
    k = estimator.get("num_samples", "")
    k_mi = estimator.get("mi_samples") or k

    def number(value):
        return "" if value is None or value == "" else full_precision(value)

    train_wall = record.get("train_wall_time_s")
    eval_wall = record.get("eval_wall_time_s") or 0.0
    split = (record.get("evaluation") or {}).get("split") or (config.get("eval") or {}).get("split") or task.splits[0]
    return {
        "task": task.name,
        "split": split,
        "estimator": estimator.get("base", "vqvae" if model.get("kind") == "vqvae" else ""),
        "k": k,
        "k_mi": k_mi,
        "objective": objective.get("kind", "none"),
        "learning_rate": number(config["train"]["learning_rate"]),
        "lam": number(objective.get("lam")),
        "alpha": number(objective.get("alpha")),
        "steps": config["train"]["steps"],
        "batch_size": config["data"]["batch_size"],
        **values,
        "mi": "" if "mutual_information" not in metrics else f"{metrics['mutual_information']:.6f}",
        "nll": "" if "nll" not in metrics else f"{metrics['nll']:.6f}",
        **precise_values(None if status == "diverged" else record.get("precise_evaluation")),
        "seed": config["seed"],
        "status": status,
        "reason": reason.replace("\t", " ").replace("\n", " ")[:300],
        "wall_s": f"{(train_wall + eval_wall) if train_wall is not None else wall:.1f}",
        "threads": record.get("threads", threads),
        "device": record.get("device", ""),
        "head": (config.get("train") or {}).get("head", ""),
        "commit": record.get("git_commit") or commit or "",
        "run": run,
        "reference_nll": "" if reference is None else repr(float(reference)),
        "uniform_nll": repr(float(task.uniform_nll(typed))),
        "setting_label": task.setting_label({column: str(values[column]) for column in task.curve_columns}),
    }


def precise_values(precise: dict[str, Any] | None) -> dict[str, str]:
    """The :data:`PRECISE_COLUMNS` of a precise evaluation (a result record's ``precise_evaluation``, or the
    same keys recorded for a committed trial); empty cells for None."""
    if not precise:
        return dict.fromkeys(PRECISE_COLUMNS, "")
    halves = halves_of(precise)
    return {
        "nll_precise": f"{precise['nll']:.6f}",
        "nll_se": f"{precise['nll_se']:.6f}",
        "mi_precise": f"{precise['mutual_information']:.6f}",
        "mi_se": f"{precise['mutual_information_se']:.6f}",
        "eval_repeats": str(int(precise["repeats"])),
        **{
            column: f"{halves[key]:.6f}" if key in halves else ""
            for column, key in zip(HALF_COLUMNS, HALF_KEYS, strict=True)
        },
        **retrain_values(precise.get("retrained")),
    }


def retrain_values(retrained: dict[str, Any] | None) -> dict[str, str]:
    """The :data:`RETRAIN_COLUMNS` of a precise evaluation's ``retrained`` record (the retrained model's own
    recorded ``nll`` and ``mutual_information``); empty where the evaluated model is the recorded one."""
    if not retrained:
        return dict.fromkeys(RETRAIN_COLUMNS, "")
    return {"retrain_nll": f"{retrained['nll']:.6f}", "retrain_mi": f"{retrained['mutual_information']:.6f}"}


def format_table(rows: Sequence[dict[str, Any]], task: str = "") -> str:
    """Rows as a results table (tab-separated, header first) with the columns of ``task`` (default: the
    default task), each as given (a row without reader columns keeps them empty: readers fill them); rows
    recorded complete before the divergence rule existed are relabelled by it (:func:`apply_divergence_rule`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns_of(task), delimiter="\t", lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(apply_divergence_rule(row))
    return buffer.getvalue()


def apply_divergence_rule(row: dict[str, Any]) -> dict[str, Any]:
    """The row, relabelled ``diverged`` when it says ``complete`` with an NLL the rule calls useless
    (micmco.tasks.base.useless_nll: above 10 times the uniform model's ln V); its numbers are kept."""
    from .tasks.base import useless_nll

    if row.get("status") != "complete":
        return row
    try:
        nll = float(row["nll"])
        uniform = optional_number(reader_values(row)["uniform_nll"])
    except (KeyError, TypeError, ValueError):
        return row  # not readable here: read_rows reports it
    reason = useless_nll(nll, uniform) if uniform is not None and math.isfinite(nll) else None
    if reason is None:
        return row
    return {**row, "status": "diverged", "reason": f"{reason} (relabelled by the divergence rule)"}


def reader_values(row: dict[str, Any]) -> dict[str, str]:
    """The row's :data:`READER_COLUMNS` as text: as written, or, for a row written before rows carried them
    (no setting label), from the task registry's legacy path; a ValueError when neither can tell."""
    if row.get("setting_label"):
        return {column: str(row.get(column) or "") for column in READER_COLUMNS}
    from .tasks import legacy_reader_values

    return legacy_reader_values(row)


def optional_number(text: str) -> float | None:
    """A reader column's number; None for an empty cell (a task without a known reference NLL)."""
    return float(text) if text else None


# --- reading -----------------------------------------------------------------------------------------


def read_table(path: str | Path, delimiter: str | None = "\t") -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and (line number, row) pairs; ``delimiter`` None splits on whitespace. Tab-separated files
    whose header has no tab are read as whitespace-separated too."""
    path = Path(path)
    if path.is_dir():
        raise TableError(f"{path}: is a directory; give results/<profile>/<study>.tsv files or the paper's trial files")
    if not path.is_file():
        raise TableError(f"{path}: no such file; give results/<profile>/<study>.tsv files or the paper's trial files")
    lines = path.read_text().splitlines()
    numbered = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise TableError(f"{path}: empty file; a table needs a header line and one row per trial")
    if delimiter == "\t" and "\t" not in numbered[0][1]:
        delimiter = None
    split = (
        (lambda line: line.split()) if delimiter is None else (lambda line: next(csv.reader([line], delimiter="\t")))
    )
    header = [column.strip() for column in split(numbered[0][1])]
    rows = []
    for number, line in numbered[1:]:
        cells = split(line)
        if len(cells) != len(header):
            raise TableError(f"{path}, line {number}: {len(cells)} cells for the {len(header)} columns of the header")
        rows.append((number, dict(zip(header, (cell.strip() for cell in cells)))))
    return header, rows


@dataclass
class Row:
    """One row of a results table, checked and typed (numbers NaN where the table has none)."""

    line: int  # line number in the file
    task: str
    split: str
    status: str  # one of STATUSES
    estimator: str
    k: int  # 1 for the VQ-VAE, which draws no samples (as the paper's vq-vae file has it)
    k_mi: int
    objective: str
    steps: int
    batch_size: int
    mi: float  # the recorded evaluation (one, K = 100, the run's seed); a frontier chooses on it without halves
    nll: float
    hyperparameters: dict[str, float]  # learning_rate, lam, alpha (NaN where not tuned)
    task_values: dict[str, str]  # the task's curve columns, e.g. {"vocab_size": "200"}
    reference_nll: float | None  # the task's optimal NLL for this row (ln V), None where unknown
    uniform_nll: float | None  # the uniform model's NLL for this row (ln V), None where the row cannot tell
    setting_label: str  # the task's label of its curve columns, e.g. "V = 200"
    wall_s: float
    raw: dict[str, str]  # the row as read
    nll_precise: float = math.nan  # the precise evaluation (independent of the recorded one): NaN where unknown
    nll_se: float = math.nan  # its standard error
    mi_precise: float = math.nan
    mi_se: float = math.nan
    eval_repeats: int = 0  # evaluations averaged (0: no precise evaluation)
    nll_select: float = math.nan  # its half a frontier chooses on (NaN: none; then it chooses on nll, mi)
    mi_select: float = math.nan
    nll_report: float = math.nan  # its other half, which a frontier reports
    nll_report_se: float = math.nan
    retrain_nll: float = math.nan  # NaN: the precise evaluation is of the recorded model; else of a retrain here
    retrain_mi: float = math.nan  # (whose own recorded evaluation these are; nll, mi: the original machine's)


def read_rows(path: str | Path) -> list[Row]:
    """Every row of one of our results tables, checked: a TableError names the file, line and column."""
    path = Path(path)
    header, raw_rows = read_table(path)
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise TableError(
            f"{path}: missing column(s) {', '.join(missing)}; a results table has {', '.join(REQUIRED_COLUMNS)} "
            "(a paper trials file has validklp and validnll)"
        )
    study_regulariser_rows([raw for _, raw in raw_rows])
    rows = []
    for line, raw in raw_rows:
        raw = apply_divergence_rule(raw)
        try:
            task = _task(raw.get("task", ""))
        except ValueError as error:
            raise TableError(f"{path}, line {line}: column task: {error}") from None
        absent = [column for column in task.curve_columns if column not in header]
        if absent:
            raise TableError(f"{path}: missing column(s) {', '.join(absent)} of the {task.name} task")
        status = choice(raw, "status", STATUSES, path, line)
        estimator = choice(raw, "estimator", estimator_names(), path, line)
        objective = choice(raw, "objective", OBJECTIVES, path, line) if raw["objective"] else "none"
        if estimator == "vqvae":  # trains its own loss: no samples, like the paper's vq-vae file (K = 1)
            k = k_mi = 1
        else:
            k = integer(raw, "k", path, line)
            k_mi = integer(raw, "k_mi", path, line) if raw["k_mi"] not in ("", "none", "None") else k
        mi, nll = (parse_number(raw, column, path, line, missing=math.nan) for column in ("mi", "nll"))
        for column, value in (("mi", mi), ("nll", nll)):
            if status == "complete" and not math.isfinite(value):
                raise TableError(f"{path}, line {line}: a complete trial needs a finite {column}, got {value}")
        try:
            readings = reader_values(raw)
            reference, uniform = (optional_number(readings[c]) for c in ("reference_nll", "uniform_nll"))
        except ValueError as error:
            raise TableError(f"{path}, line {line}: {error}") from None
        rows.append(
            Row(
                line=line,
                task=task.name,
                split=raw.get("split") or task.splits[0],
                status=status,
                estimator=estimator,
                k=k,
                k_mi=k_mi,
                objective=objective,
                steps=integer(raw, "steps", path, line),
                batch_size=integer(raw, "batch_size", path, line),
                mi=mi,
                nll=nll,
                hyperparameters={
                    c: parse_number(raw, c, path, line, missing=math.nan) for c in ("learning_rate", "lam", "alpha")
                },
                task_values={c: raw[c] for c in task.curve_columns},
                reference_nll=reference,
                uniform_nll=uniform,
                setting_label=readings["setting_label"],
                wall_s=parse_number(raw, "wall_s", path, line, missing=0.0),
                raw=raw,
                **_precise_of(raw, status, path, line),
            )
        )
    return rows


def _precise_of(raw: dict[str, str], status: str, path: Path, line: int) -> dict[str, Any]:
    """A row's precise columns, typed; unknown (NaN, 0 repeats) in tables written before they existed."""
    if status != "complete" or not raw.get("eval_repeats"):
        return {}
    values: dict[str, Any] = {c: parse_number(raw, c, path, line) for c in PRECISE_COLUMNS[:4]}
    values["eval_repeats"] = integer(raw, "eval_repeats", path, line)
    if raw.get("nll_report"):  # halves: tables written before them, and evaluations of < 4 repeats, have none
        values.update({c: parse_number(raw, c, path, line) for c in HALF_COLUMNS})
    if raw.get("retrain_nll"):
        values.update({c: parse_number(raw, c, path, line) for c in RETRAIN_COLUMNS})
    for column in ("nll_se", "mi_se", "nll_report_se"):
        if column not in values:
            continue
        if not values[column] >= 0:
            raise TableError(f"{path}, line {line}: column {column}: a standard error is >= 0, got {raw[column]!r}")
    return values


RATE_COLUMNS = ("input_dropout", "state_dropout", "output_dropout", "l2")  # a regulariser's rates (PTB)


def study_regulariser_rows(rows: list[dict[str, str]]) -> None:
    """Give the rows of one table (one study) the study's regulariser: in tables exported before the sweep took
    it from the study, a dropout study's trial that drew all its rates 0 says ``none`` and became a curve of
    its own. Such a row (``none``, every rate 0) takes the regulariser of the table's other rows when they
    have exactly one. Rows with a setting label are left as they are: the export gave them their study's
    regulariser, label included (micmco.sweep.optuna_study.rows_of). Changes ``rows`` in place."""
    others = {row.get("regulariser") for row in rows} - {"none", None}
    if len(others) == 1:
        (regulariser,) = others
        for row in rows:
            if row.get("setting_label"):
                continue
            if row.get("regulariser") == "none" and all(_is_zero(row.get(column, "")) for column in RATE_COLUMNS):
                row["regulariser"] = regulariser


def _is_zero(text: str) -> bool:
    try:
        return float(text or 0) == 0
    except ValueError:
        return False


def parse_number(row: dict[str, str], column: str, path: Path, line: int, missing: float | None = None) -> float:
    """A cell as a float; ``missing`` for an empty cell (an error when None)."""
    text = row[column]
    if text in ("", "none", "None", "NA") and missing is not None:
        return missing
    try:
        return float(text)
    except ValueError:
        raise TableError(f"{path}, line {line}: column {column}: {text!r} is not a number") from None


def integer(row: dict[str, str], column: str, path: Path, line: int) -> int:
    value = parse_number(row, column, path, line)
    if not value.is_integer():
        raise TableError(f"{path}, line {line}: column {column}: {row[column]!r} is not an integer")
    return int(value)


def choice(row: dict[str, str], column: str, choices: Sequence[str], path: Path, line: int) -> str:
    value = row[column].strip().lower()
    if value not in choices:
        raise TableError(f"{path}, line {line}: column {column}: {row[column]!r}; valid: {', '.join(choices)}")
    return value
