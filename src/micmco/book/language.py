"""§7.2 and Appendix B: what the Penn Treebank chapter adds to the figures of :mod:`micmco.book.figures`:
the profiles our PTB results come from, set against the paper's, and Table 1 side by side.

The figures themselves (8-14, 16-25, 28, 29) are drawn, tabulated and compared by the same code as the
synthetic ones (:func:`micmco.book.figures.show_figure`, :mod:`micmco.book.claims`), per token.
Nothing is trained here.
"""

from __future__ import annotations

import math
from pathlib import Path

from .common import markdown_table, repo_path
from .figures import compute_summary, load_figure
from .registry import ptb_figures

# The base configs behind the PTB curves: ours (cpu: training fit, validation) and the paper's.
PROFILE_CONFIGS = {
    "cpu, training fit (Figures 8, 9)": "params/ptb/cpu/ptb-trial-dreg16-kl.yaml",
    "cpu, validation (Figures 10-12)": "params/ptb/cpu/ptb-valid-dreg16-kl.yaml",
    "paper (every PTB figure)": "params/ptb/paper/ptb-base-dreg.yaml",
}
TRAINING_SENTENCES = 42_068  # PTB's training split (Mikolov's), the paper's whole training set


def profile_table() -> str:
    """Markdown: what each PTB profile trains, read from its base config (so the chapter cannot drift from
    the configs): training sentences, passes over them, steps and batch, vocabulary, sizes, evaluation; then
    the base configs."""
    from ..runconfig import load_config

    rows = []
    for name, path in PROFILE_CONFIGS.items():
        config = load_config(repo_path(path))
        sentences = config.data.train_sentences or TRAINING_SENTENCES
        passes = config.train.steps * config.data.batch_size / sentences
        rows.append([
            name, f"{sentences:,}", f"{config.train.steps:,} × {config.data.batch_size}", f"{passes:.0f}",
            f"{config.data.vocab_size:,}", f"{config.model.embedding_size} / {config.model.hidden_size}",
            f"K = {config.eval.num_samples}, {config.eval.split}",
        ])  # fmt: skip
    headers = ["profile", "sentences", "steps × batch", "passes", "words", "embedding / hidden", "evaluation"]
    configs = "; ".join(f"{name.split(' (')[0]}: `{path}`" for name, path in PROFILE_CONFIGS.items())
    return f"{markdown_table(rows, headers)}\n\nBase configs: {configs}."


CALIBRATION_TABLE = "results/calibration/cpu-ptb-valid.tsv"  # params/ptb/cpu/calibrate_valid.py writes it


def calibration_table(path: str | Path = CALIBRATION_TABLE) -> str:
    """Markdown: the calibration behind the cpu validation profile, one row per estimator, λ and dropout,
    one column per training-set size, headed sentences × passes (equal cost: the passes shrink as the
    sentences grow); dropout as input/state/output rates; each cell validation NLL / latent usage per token."""
    import csv

    with repo_path(str(path)).open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    sizes = sorted({int(row["train_sentences"]) for row in rows})
    passes = {int(row["train_sentences"]): row["passes"] for row in rows}
    labels = {"reinforce1": "REINFORCE 1", "dreg1": "DReG 1", "vimco16": "VIMCO 16"}
    settings: dict[tuple[str, str, str, str], dict[int, str]] = {}
    for row in rows:
        key = (labels.get(row["estimator"], row["estimator"]), row["lam"], row["dropout"], row["masks"])
        settings.setdefault(key, {})[int(row["train_sentences"])] = f"{float(row['nll']):.2f} / {float(row['mi']):.2f}"
    body = [
        [estimator, lam, dropout + (" (shared masks)" if masks == "shared" else ""),
         *[cells.get(size, "") for size in sizes]]
        for (estimator, lam, dropout, masks), cells in settings.items()
    ]  # fmt: skip
    headers = ["estimator", "λ", "dropout", *[f"{size:,} × {passes[size]}" for size in sizes]]
    return markdown_table(body, headers)


def ptb_summary(profile: str = "cpu", results_dir: Path | None = None) -> str:
    """One line: the PTB tables of results/<profile>/, their finished trials and compute."""
    tables, trials, seconds = compute_summary(profile, results_dir, task="ptb")
    return (f"`results/{profile}/`, Penn Treebank task: {tables} tables, {trials} finished trials, "
            f"{seconds / 3600:.1f} h of compute (sum of `wall_s`)")  # fmt: skip


def appendix_figures(section: str) -> list[int]:
    """The PTB figures of Appendix B's sections: B.1 robustness, B.2 asymmetric samples, B.3 power."""
    sections = {"B.1": [16, 17, 18, 19, 20, 21, 24, 25], "B.2": [22, 23], "B.3": [28, 29]}
    if section not in sections:
        raise ValueError(f"no appendix section {section!r}; choose one of {', '.join(sections)}")
    return [n for n in sections[section] if n in ptb_figures()]


def table1_side_by_side(profile: str = "cpu", results_dir: Path | None = None) -> str:
    """Markdown: the paper's Table 1 (from its own trials) and ours beside it: per column (DReG and VIMCO
    with 1 and 16 samples, KL and Rényi), the best validation perplexity, NLL and per-token KL, and the
    trials behind it; the paper's NLL and KL cut to three decimals as its printed table has them, ours
    rounded. The two sides' vocabularies differ, so their perplexities are not comparable."""
    from ..best_trials import TABLE1_COLUMNS, table1

    figure = load_figure(12, profile, results_dir)
    paper = table1([c.paper for c in figure.curves])
    ours = table1([c.ours for c in figure.curves if c.ours is not None])
    vocab = {"paper": "V = 10000"}
    mine = sorted({c.ours.setting_label.split(",")[0] for c in figure.curves if c.ours is not None})
    vocab["ours"] = ", ".join(mine) or "no results"
    headers = ["", *[" ".join(column.heading) for column in TABLE1_COLUMNS]]

    def cells(table, value) -> list[str]:
        return ["–" if table[column] is None else value(table[column]) for column in TABLE1_COLUMNS]

    def cut(value: float) -> str:  # the paper prints NLL and KL cut to three decimals (4.5929 as 4.592)
        return f"{math.floor(value * 1000) / 1000:.3f}"

    rows = []
    for side, table in (("paper", paper), ("ours", ours)):
        three = cut if side == "paper" else (lambda value: f"{value:.3f}")
        rows += [
            [f"{side}: perplexity ({vocab[side]})", *cells(table, lambda b: f"{b.perplexity:.1f}")],
            [f"{side}: NLL per token", *cells(table, lambda b, three=three: three(b.nll))],
            [f"{side}: per-token KL", *cells(table, lambda b, three=three: three(b.mi))],
            [f"{side}: trials", *cells(table, lambda b: str(b.trials))],
        ]
    return markdown_table(rows, headers)


def table1_order(profile: str = "cpu", results_dir: Path | None = None) -> str:
    """The columns of Table 1 sorted by best validation NLL, on each side, and whether the orders agree
    over the columns both sides have."""
    from ..best_trials import TABLE1_COLUMNS, table1

    figure = load_figure(12, profile, results_dir)
    sides = {
        "paper": table1([c.paper for c in figure.curves]),
        "ours": table1([c.ours for c in figure.curves if c.ours is not None]),
    }
    both = [c for c in TABLE1_COLUMNS if sides["paper"][c] is not None and sides["ours"][c] is not None]
    if len(both) < 2:
        return f"Table 1: {len(both)} column(s) filled on both sides; no order to compare yet."
    orders = {side: sorted(both, key=lambda c: table[c].nll) for side, table in sides.items()}
    text = {side: " < ".join(" ".join(c.heading) for c in order) for side, order in orders.items()}
    same = orders["paper"] == orders["ours"]
    return (f"Table 1 by best validation NLL, over the {len(both)} columns both sides have: paper {text['paper']}; "
            f"ours {text['ours']} ({'the same order' if same else 'a different order'}).")  # fmt: skip
