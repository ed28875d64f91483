"""Pareto frontiers of latent usage against NLL, from our sweep results and from the paper's trials.

Every curve of the paper is a frontier over tuning trials: the lowest NLL for at least that
much latent usage (mutual information). This module reads

- our exported results, ``results/<profile>/<study>.tsv`` (tab-separated, one finished
  trial a row; only ``status == complete`` rows count; one file may hold several curves,
  one per estimator, K, K', objective, vocabulary, steps and batch size), and
- the paper's own trials, ``paper-frontiers/<folder>/*.tsv`` of the shared data
  (whitespace-separated; ``validklp`` is the latent usage, ``validnll`` the NLL, the file
  name encodes the setting, see each folder's README; the folder names the task, whose
  :meth:`~micmco.tasks.base.Task.paper_curve` says what else the files mean),

and offers the frontier, the summary "lowest NLL among trials with latent usage >= m", a
normalised view (excess NLL over the reference, ln V, against usage / ln V, so that a
vocabulary-1000 curve lies over the paper's vocabulary-10000 one) and the paper's counterparts
of our curves (``micmco.frontier_plot`` draws them). Nothing here is particular to a task: rows
carry what their task says of them (:data:`micmco.results.READER_COLUMNS`), and a task's own
facts (its unit, whether its splits differ, what a paper counterpart shares) are its attributes.

Its command line, ``micmco pareto``, is :mod:`micmco.pareto_cli`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .naming import Setting, parse_paper_file_name
from .results import HALF_COLUMNS, Row, TableError, parse_number, read_rows, read_table
from .tasks import DEFAULT_TASK, TASKS, get_task, task_of_paper_folder

__all__ = [
    "Curve",
    "ParetoError",
    "NoCompleteTrials",
    "read_curves",
    "read_inputs",
    "read_results",
    "curves_of",
    "read_paper_trials",
    "read_paper_folder",
    "pareto_frontier",
    "lowest_nll",
    "frontier_value",
    "FrontierValue",
    "summary_table",
    "frontier_table",
    "paper_counterparts",
    "at_paper_main_setting",
    "worse_than_uniform",
    "distinct_labels",
    "compute_multiples",
]

ParetoError = TableError  # bad input: the message is one line naming the file and what is valid


class NoCompleteTrials(ParetoError):
    """A results table without a complete trial yet."""


PAPER_COLUMNS = {  # the paper's column -> ours; two spellings occur
    "trialid": "trial",
    "trial_id": "trial",
    "input_dropout": "input_dropout",
    "inputdropout": "input_dropout",
    "state_dropout": "state_dropout",
    "statedropout": "state_dropout",
    "output_dropout": "output_dropout",
    "outputdropout": "output_dropout",
    "l2_penalty": "l2",
    "learning_rate": "learning_rate",
    "learningrate": "learning_rate",
    "posterior_div_weight": "lam",
    "posteriordivweight": "lam",
    "alpha_dup": "alpha",
    "alphadup": "alpha",
    "num_latents": "num_latents",
    "num_latent_categories": "num_latent_categories",
    "vq_beta": "vq_beta",
    "vq_decay": "vq_decay",
    "validklp": "mi",
    "validnll": "nll",
}


@dataclass
class Curve:
    """The trials of one setting. ``mi`` and ``nll`` are in nats per the task's unit, or normalised
    (see :meth:`normalised`)."""

    source: str  # "paper" or "ours"
    path: Path
    estimator: str  # one of micmco.naming.estimator_names()
    k: int  # samples of the ln p(x) term (1 for the VQ-VAE)
    k_mi: int  # samples of the mutual-information term
    objective: str  # one of micmco.naming.OBJECTIVES
    steps: int
    batch_size: int
    mi: np.ndarray  # [trials] latent usage
    nll: np.ndarray  # [trials]
    hyperparameters: dict[str, np.ndarray] = field(default_factory=dict)  # learning_rate, lam, alpha, ... [trials]
    latents: str = ""  # "40 gaussian", "8x10 categorical" where known
    normalised_view: bool = False
    task: str = DEFAULT_TASK  # the task the trials ran on (micmco.tasks)
    split: str = "valid"  # the split their metrics were evaluated on
    task_values: dict[str, str] = field(default_factory=dict)  # the task's curve columns, e.g. {"vocab_size": "200"}
    reference_nll: float | None = None  # the optimal NLL (ln V where the data entropy is known); None where unknown
    uniform_nll: float | None = None  # the uniform model's NLL (ln V); None where unknown
    setting_label: str = ""  # the task's settings of the curve in a few characters, e.g. "V = 200"
    # The precise evaluation of each trial (independent of the recorded one that mi and nll hold; NaN where a
    # trial has none: the paper's trials, rows recorded before it existed): mean and standard error.
    nll_precise: np.ndarray | None = None  # [trials]
    nll_se: np.ndarray | None = None  # [trials]
    mi_precise: np.ndarray | None = None  # [trials]
    mi_se: np.ndarray | None = None  # [trials]
    eval_repeats: np.ndarray | None = None  # [trials] evaluations averaged (0: none)
    # Its two independent halves (micmco.evaluation.split_halves; NaN where a trial has none): a frontier
    # chooses on the first and reports the second.
    nll_select: np.ndarray | None = None  # [trials]
    mi_select: np.ndarray | None = None  # [trials]
    nll_report: np.ndarray | None = None  # [trials]
    nll_report_se: np.ndarray | None = None  # [trials]

    def __post_init__(self) -> None:
        if self.nll is None:  # a curve named but not read (labels)
            return
        for name in ("nll_precise", "nll_se", "mi_precise", "mi_se", *HALF_COLUMNS):
            if getattr(self, name) is None:
                setattr(self, name, np.full(len(self.nll), math.nan))
        if self.eval_repeats is None:
            self.eval_repeats = np.zeros(len(self.nll), dtype=int)

    @property
    def setting(self) -> tuple:
        """What a paper curve and ours must share to be drawn beside each other."""
        return (self.estimator, self.k, self.k_mi, self.objective)

    @property
    def label(self) -> str:
        """The paper's name of the curve: "DReG 16, Rényi", "VIMCO 16/1, KL", "REINFORCE 1, KL", "ELBO, KL"."""
        return Setting(*self.setting).label

    @property
    def description(self) -> str:
        return (
            f"{self.label} ({self.source}: {self.path.name}; {self.setting_label}, {self.steps} steps, "
            f"batch {self.batch_size}, {len(self.mi)} trials)"
        )

    def normalised(self) -> Curve:
        """Excess NLL over the optimum (ln V) against usage / ln V: curves of different vocabularies overlay."""
        if self.normalised_view:
            return self
        if self.reference_nll is None:
            raise ParetoError(
                f"{self.path}: the {self.task} task has no known optimal NLL, so its curves cannot be normalised; "
                "show them in nats"
            )
        log_v = self.reference_nll
        uniform = None if self.uniform_nll is None else self.uniform_nll - log_v
        return replace(
            self, mi=self.mi / log_v, nll=self.nll - log_v, uniform_nll=uniform, normalised_view=True,
            nll_precise=self.nll_precise - log_v, mi_precise=self.mi_precise / log_v, mi_se=self.mi_se / log_v,
            nll_select=self.nll_select - log_v, mi_select=self.mi_select / log_v, nll_report=self.nll_report - log_v,
        )  # fmt: skip

    @property
    def selection_mi(self) -> np.ndarray:
        """Each trial's usage as a frontier chooses on it: its precise evaluation's selecting half where it has
        one, the recorded evaluation otherwise (:func:`frontier_value`)."""
        return np.where(np.isfinite(self.mi_select), self.mi_select, self.mi)

    @property
    def selection_nll(self) -> np.ndarray:
        """Each trial's NLL as a frontier chooses on it (as :attr:`selection_mi`)."""
        return np.where(np.isfinite(self.nll_select), self.nll_select, self.nll)

    @property
    def reported_nll(self) -> np.ndarray:
        """Each trial's NLL as a frontier reports it, independent of the number it was chosen on: the reporting
        half of its precise evaluation; the whole precise evaluation where it has no halves (then it was chosen
        on the recorded one); the recorded one where it has no precise evaluation (:func:`frontier_value`)."""
        precise = np.where(np.isfinite(self.nll_precise), self.nll_precise, self.nll)
        return np.where(np.isfinite(self.nll_report), self.nll_report, precise)

    @property
    def reported_nll_se(self) -> np.ndarray:
        """The standard error of :attr:`reported_nll` (NaN: a recorded number, its error unmeasured)."""
        return np.where(np.isfinite(self.nll_report), self.nll_report_se, self.nll_se)

    def frontier(self) -> np.ndarray:
        """Indices of the frontier's trials, by increasing usage, as a frontier chooses them (on
        :attr:`selection_mi` and :attr:`selection_nll`)."""
        return pareto_frontier(self.selection_mi, self.selection_nll)


# --- frontiers ---------------------------------------------------------------------------------------


def pareto_frontier(mi: Sequence[float], nll: Sequence[float]) -> np.ndarray:
    """Indices of the trials with the lowest NLL for at least their latent usage, by increasing usage.

    Trial i is on the frontier when every trial with usage >= mi[i] has NLL > nll[i] (of
    trials with equal usage and NLL, the first one listed). NaNs are never on it.
    """
    mi, nll = np.asarray(mi, dtype=float), np.asarray(nll, dtype=float)
    order = np.lexsort((np.arange(len(mi)), nll, -mi))  # usage descending, then NLL ascending, then file order
    frontier, best = [], math.inf
    for index in order:
        if np.isfinite(mi[index]) and nll[index] < best:
            frontier.append(index)
            best = nll[index]
    return np.array(frontier[::-1], dtype=int)


def worse_than_uniform(curve: Curve) -> np.ndarray:
    """Indices of the frontier's trials whose NLL is above the uniform model's (ln V per token), by
    increasing usage: a model worse than knowing nothing, kept as data (the paper's files have such
    points too) but to be named wherever the frontier is shown. Empty where the optimum is known (then the
    data's own NLL is the yardstick; uniform data make the uniform model optimal) or the uniform NLL is not."""
    frontier = curve.frontier()
    if curve.uniform_nll is None or curve.reference_nll is not None:
        return frontier[:0]
    return frontier[curve.reported_nll[frontier] > curve.uniform_nll]


@dataclass(frozen=True)
class FrontierValue:
    """The frontier at usage >= m: the trial with the lowest NLL among those whose usage reaches m, both as
    measured by the selecting half of their precise evaluations, reported on the other half (independent
    repeats: micmco.evaluation.split_halves). So the reported value is free of the winner's curse (the minimum
    over trials of noisy numbers is biased low), and which trial is chosen hardly depends on the evaluation
    seed, since each choice rests on many evaluations. Trials without halves are chosen on their recorded
    evaluation and reported on their precise one (still independent), or, without a precise evaluation, on the
    recorded one (``precise`` False: chosen and reported on one evaluation, biased low)."""

    value: float  # NLL (excess NLL on a normalised curve); NaN when no trial reaches m
    se: float  # its standard error; NaN where the trial has no precise evaluation
    trials: int  # trials whose usage (as chosen on) reaches m
    index: int  # the chosen trial (-1: none)
    precise: bool  # reported on an evaluation independent of the one it was chosen on
    chosen_on: float = math.nan  # the NLL it was chosen on: what choosing the lowest of several frontiers compares


def frontier_value(curve: Curve, min_usage: float) -> FrontierValue:
    """The frontier of ``curve`` at usage >= ``min_usage`` (:class:`FrontierValue`)."""
    mi, nll = curve.selection_mi, curve.selection_nll
    eligible = np.flatnonzero((mi >= min_usage) & np.isfinite(nll))
    if not len(eligible):
        return FrontierValue(math.nan, math.nan, 0, -1, False)
    index = int(eligible[np.argmin(nll[eligible])])
    se = float(curve.reported_nll_se[index])
    precise = bool(np.isfinite(se))
    return FrontierValue(float(curve.reported_nll[index]), se, len(eligible), index, precise, float(nll[index]))


def lowest_nll(curve: Curve, min_usage: float) -> float:
    """The frontier's NLL at usage >= ``min_usage`` as reported (:func:`frontier_value`; NaN when no trial
    reaches it): the reporting half of the chosen trial's precise evaluation, its whole precise evaluation, or its
    recorded one, whichever it has first."""
    return frontier_value(curve, min_usage).value


# --- reading -----------------------------------------------------------------------------------------


def read_curves(paths: Iterable[str | Path]) -> list[Curve]:
    """Every curve in ``paths``: our results tables and the paper's trial files, told apart by their header."""
    curves = []
    for path in paths:
        header, _ = read_table(Path(path))
        if "validklp" in header or "validnll" in header:
            curves.append(read_paper_trials(path))
        else:
            curves.extend(read_results(path))
    return curves


def read_results(path: str | Path) -> list[Curve]:
    """Our exported results: one curve per setting among the complete trials."""
    return curves_of(read_rows(path), Path(path))


def curves_of(rows: Sequence[Row], path: Path) -> list[Curve]:
    """One curve per setting among the complete trials of ``rows`` (read from ``path``)."""
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        if row.status == "complete":
            key = (row.task, row.split, row.estimator, row.k, row.k_mi, row.objective, row.steps, row.batch_size,
                   tuple(row.task_values.items()))  # fmt: skip
            groups.setdefault(key, []).append(row)
    if not groups:
        statuses: dict[str, int] = {}
        for row in rows:
            statuses[row.status] = statuses.get(row.status, 0) + 1
        counts = ", ".join(f"{count} {status}" for status, count in statuses.items()) or "no rows"
        raise NoCompleteTrials(f"{path}: no complete trials ({counts}); only rows with status complete count")
    curves = []
    for (task, split, estimator, k, k_mi, objective, steps, batch_size, task_values), trials in groups.items():
        curves.append(
            Curve(
                source="ours",
                path=path,
                estimator=estimator,
                k=k,
                k_mi=k_mi,
                objective=objective,
                steps=steps,
                batch_size=batch_size,
                mi=np.array([trial.mi for trial in trials]),
                nll=np.array([trial.nll for trial in trials]),
                nll_precise=np.array([trial.nll_precise for trial in trials]),
                nll_se=np.array([trial.nll_se for trial in trials]),
                mi_precise=np.array([trial.mi_precise for trial in trials]),
                mi_se=np.array([trial.mi_se for trial in trials]),
                eval_repeats=np.array([trial.eval_repeats for trial in trials]),
                **{name: np.array([getattr(trial, name) for trial in trials]) for name in HALF_COLUMNS},
                hyperparameters={
                    name: np.array([trial.hyperparameters[name] for trial in trials])
                    for name in trials[0].hyperparameters
                },
                task=task,
                split=split,
                task_values=dict(task_values),
                reference_nll=trials[0].reference_nll,
                uniform_nll=trials[0].uniform_nll,
                setting_label=trials[0].setting_label,
            )
        )
    return curves


def read_paper_trials(path: str | Path) -> Curve:
    """One of the paper's trial files; the setting comes from the file name, the task from its folder
    (:func:`micmco.tasks.task_of_paper_folder`), which says the rest (vocabulary, split, reference NLL)."""
    path = Path(path)
    task = task_of_paper_folder(path.parent)
    named = parse_paper_file_name(path.stem)
    if named is None:
        raise ParetoError(
            f"{path}: cannot read the setting from the file name; expected e.g. l40x0-bs256-hs128-t40-dreg16-kl.tsv, "
            "l8x10-bs256-hs128-t40x16-vimco1-renyi16.tsv or bs256-hs128-t40-vq-vae.tsv"
        )
    header, rows = read_table(path, delimiter=None)
    unknown = [column for column in header if column not in PAPER_COLUMNS]
    missing = [column for column in ("validklp", "validnll") if column not in header]
    if unknown or missing:
        problem = f"unknown column(s) {', '.join(unknown)}" if unknown else f"missing column(s) {', '.join(missing)}"
        raise ParetoError(f"{path}: {problem}; a paper trials file has columns among {', '.join(PAPER_COLUMNS)}")
    if not rows:
        raise ParetoError(f"{path}: no trials (a header and no rows)")
    columns: dict[str, list[float]] = {PAPER_COLUMNS[column]: [] for column in header}
    for line, row in rows:
        for column in header:
            columns[PAPER_COLUMNS[column]].append(parse_number(row, column, path, line))
    values = {name: np.array(column) for name, column in columns.items()}
    values.pop("trial")
    setting = named.setting
    return Curve(
        source="paper",
        path=path,
        estimator=setting.estimator,
        k=setting.k,
        k_mi=setting.k_mi,
        objective=setting.objective,
        steps=named.steps,
        batch_size=named.batch_size,
        mi=values.pop("mi"),
        nll=values.pop("nll"),
        hyperparameters=values,
        latents=named.latents,
        task=task.name,
        **task.paper_curve(named),
    )


def read_inputs(paths: Sequence[Path]) -> list[Curve]:
    """The curves of files and folders of tables (*.tsv, by name). A table named on the command line must
    have complete trials; in a folder, a table without any yet (a sweep's first trial still running) is
    skipped, and only a folder without any curve is an error."""
    curves = []
    for path in paths:
        if not path.is_dir():
            curves += read_curves([path])
            continue
        tables = sorted(path.glob("*.tsv"))
        found = []
        for table in tables:
            try:
                found += read_curves([table])
            except NoCompleteTrials:
                pass
        if not found:
            what = "no results tables (*.tsv)" if not tables else "no table with complete trials"
            raise ParetoError(f"{path}: a folder with {what}")
        curves += found
    return curves


# --- tables ------------------------------------------------------------------------------------------


def frontier_table(curve: Curve) -> str:
    """The frontier's trials, one a line: usage and NLL as a frontier chooses and reports them (:func:`frontier_value`:
    ± the reported number's standard error where it has one) and the hyperparameters."""
    names = [name for name in ("learning_rate", "lam", "alpha") if name in curve.hyperparameters]
    usage, nll = ("usage/lnV", "excess") if curve.normalised_view else ("MI", "NLL")
    lines = [f"{usage:>10s} {nll:>17s} " + " ".join(f"{name:>13s}" for name in names)]
    worse = set(worse_than_uniform(curve).tolist())
    reported, errors, chosen_usage = curve.reported_nll, curve.reported_nll_se, curve.selection_mi
    for index in curve.frontier():
        values = " ".join(f"{curve.hyperparameters[name][index]:13.5g}" for name in names)
        note = "  worse than uniform" if index in worse else ""
        error = f"±{errors[index]:.4f}" if np.isfinite(errors[index]) else ""
        lines.append(f"{chosen_usage[index]:10.4f} {f'{reported[index]:.4f}{error}':>17s} {values}{note}")
    return "\n".join(lines)


def uniform_notes(curves: Sequence[Curve], labels: Sequence[str]) -> list[str]:
    """A line for each curve with frontier points worse than the uniform model (see worse_than_uniform)."""
    notes = []
    for curve, label in zip(curves, labels):
        worse = worse_than_uniform(curve)
        if len(worse):
            points = "point" if len(worse) == 1 else "points"
            nll, mi = curve.reported_nll[worse], curve.selection_mi[worse]
            where = f"NLL {nll.min():.2f}" + (f" to {nll.max():.2f}" if len(worse) > 1 else "")
            where += f" at latent usage {mi.min():.2f}" + (f" to {mi.max():.2f}" if len(worse) > 1 else "")
            notes.append(
                f"note: {label}: {len(worse)} frontier {points} worse than the uniform model "
                f"(NLL > ln V = {curve.uniform_nll:.2f} nats per {get_task(curve.task).unit}): {where}"
            )
    return notes


def distinct_labels(curves: Sequence[Curve]) -> list[str]:
    """Each curve's label with its source, split (where a task's splits differ) and task settings, plus
    every setting in which it differs from another curve of the same label: steps as T×n and batch as bs×n
    (the paper's compute-matched baselines) against the main setting (the paper's 40 thousand steps and
    batch 256; the smallest among our tables), and the results folder (the profile) of our tables."""
    labels: list[list[str]] = []
    for curve in curves:
        same = [
            other
            for other in curves
            if other.label == curve.label and other.source == curve.source and other.task == curve.task
        ]
        parts = [curve.source, *([curve.split] if names_split(curve) else []), curve.setting_label]
        multiples = compute_multiples(curve, curves)
        for attribute, prefix in (("steps", "T"), ("batch_size", "bs")):
            if len({getattr(other, attribute) for other in same}) > 1:
                multiple = multiples[attribute]
                nice = multiple.is_integer() or (1 / multiple).is_integer()
                value = getattr(curve, attribute)
                parts.append(f"{prefix}×{multiple:g}" if nice else f"{attribute.replace('_', ' ')} {value}")
        if curve.source == "ours" and len({other.path.parent for other in same}) > 1:
            parts.append(curve.path.parent.name)
        labels.append(parts)
    full = [f"{curve.label} ({', '.join(parts)})" for curve, parts in zip(curves, labels)]
    # Curves that still read alike (the same settings in several files): name the file.
    return [
        f"{curve.label} ({', '.join([*parts, curve.path.stem])})" if full.count(label) > 1 else label
        for curve, parts, label in zip(curves, labels, full)
    ]


def compute_multiples(curve: Curve, curves: Sequence[Curve]) -> dict[str, float]:
    """The curve's steps and batch size as multiples of its source's main setting (§7.2.6's compute-matched
    baselines): the paper's 40 thousand steps and batch 256; for our tables, the smallest among ``curves``
    of the same label (a profile's baselines multiply its main setting)."""
    same = [
        other
        for other in curves
        if other.label == curve.label and other.source == curve.source and other.task == curve.task
    ]
    return {
        attribute: getattr(curve, attribute)
        / (PAPER_MAIN_SETTINGS[attribute] if curve.source == "paper" else min(getattr(o, attribute) for o in same))
        for attribute in ("steps", "batch_size")
    }


def names_split(curve: Curve) -> bool:
    """Whether a curve's label names its split: not for a task whose splits are the same data."""
    return get_task(curve.task).distinct_splits


PER_UNIT_USAGES = [0.1, 0.5, 1.0]  # nats per token: the default thresholds for text (the paper's axes span 0-2)


def default_fractions() -> list[float]:
    """The summary's thresholds when none are given: fractions of each curve's ln V."""
    return [0.5, 0.8, 0.95]


def summary_table(curves: Sequence[Curve], min_usages: Sequence[float], fractions: bool = False) -> str:
    """The frontier's NLL (or excess NLL, normalised) at latent usage >= m, one curve a row, as reported
    (:func:`frontier_value`: ± its standard error where the chosen trial has a precise evaluation).
    ``fractions``: each m is a fraction of the curve's own ln V (its reference NLL), in nats otherwise."""
    labels = distinct_labels(curves)
    width = max([len(label) for label in labels] + [5])
    unit = " ln V" if fractions else ""
    lines = [f"{'curve':{width}s} " + " ".join(f"{'m = ' + format(m, 'g') + unit:>14s}" for m in min_usages)]
    for curve, label in zip(curves, labels):
        cells = []
        for m in min_usages:
            if fractions and curve.reference_nll is None:
                cells.append(f"{'n/a':>14s}")
                continue
            threshold = m * curve.reference_nll if fractions else m
            value = frontier_value(curve, threshold)
            text = "-" if math.isnan(value.value) else f"{value.value:.4f}"
            if value.precise:
                text += f"±{value.se:.4f}"
            cells.append(f"{text:>14s}")
        lines.append(f"{label:{width}s} " + " ".join(cells))
    return "\n".join(lines)


# --- the paper's counterparts ----------------------------------------------------------------------


PAPER_MAIN_SETTINGS = {"steps": 40_000, "batch_size": 256, "hidden_size": "128"}  # the paper's main figures


def at_paper_main_setting(curve: Curve) -> bool:
    """Whether a curve has the paper's main settings (40 thousand steps, batch 256, hidden size 128); a task
    whose curves do not record the hidden size (synthetic: always 128 in the paper) has it."""
    hidden = curve.task_values.get("hidden_size", PAPER_MAIN_SETTINGS["hidden_size"])
    return (curve.steps, curve.batch_size, hidden) == tuple(PAPER_MAIN_SETTINGS.values())


def paper_counterparts(curves: Sequence[Curve], directory: str | Path) -> list[Curve]:
    """The paper's curves (``directory``: a folder of data/paper-frontiers) of the settings of ``curves``:
    the same estimator, K, K′ and objective, evaluated on the same split with the same task settings where
    the task says so (:func:`_counterpart_key`), at the paper's main settings (40 thousand steps, batch 256,
    hidden size 128); settings the paper has no file for are left out."""
    papers = {}
    for curve in read_paper_folder(directory):
        if at_paper_main_setting(curve):
            papers[_counterpart_key(curve)] = curve
    wanted = dict.fromkeys(_counterpart_key(curve) for curve in curves if curve.source != "paper")
    return [papers[key] for key in wanted if key in papers]


def read_paper_folder(directory: str | Path) -> list[Curve]:
    """Every trial file (*.tsv) of a folder of the paper's trials, by name."""
    directory = Path(directory)
    if not directory.is_dir():
        folders = [get_task(name).paper_folder for name in TASKS if get_task(name).paper_folder]
        raise ParetoError(
            f"{directory}: no such directory; --paper takes the folder of the paper's trial files "
            f"({' or '.join(f'data/paper-frontiers/{folder}' for folder in folders)})"
        )
    return [read_paper_trials(path) for path in sorted(directory.glob("*.tsv"))]


def _counterpart_key(curve: Curve) -> tuple:
    """What a curve and its paper counterpart share: the task, the setting, the split where the task's splits
    differ, and the task's columns a counterpart must match (Task.paper_match_columns)."""
    task = get_task(curve.task)
    split = (curve.split,) if task.distinct_splits else ()
    return (curve.task, curve.setting, *split, *(curve.task_values.get(column) for column in task.paper_match_columns))
