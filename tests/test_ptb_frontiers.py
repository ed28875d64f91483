"""PTB curves in the frontier tools: the paper's Table 1 from its own trial files, Table 1 of our tables,
the paper's counterparts of a PTB curve, per-token plots and folders of tables with sweeps in progress.
Only the vendored data/paper-frontiers/ptb/ is needed, so nothing here skips."""

import math
from pathlib import Path

import matplotlib
import pytest

from micmco import best_trials, pareto, pareto_cli
from micmco.best_trials import TABLE1_COLUMNS, format_table1, table1
from micmco.frontier_plot import curve_styles, plot_frontiers
from micmco.pareto import ParetoError, paper_counterparts, read_curves, read_inputs
from micmco.results import format_table

matplotlib.use("Agg")
PAPER_PTB = Path(__file__).resolve().parents[1] / "data/paper-frontiers/ptb"

# The paper's Table 1 as printed: perplexity, NLL and per-token KL of each column (§7.2.5).
PRINTED_TABLE1 = {
    ("DReG 1", "K/R"): (99.4, 4.599, 0.056),
    ("DReG 16", "K"): (98.3, 4.588, 0.074),
    ("DReG 16", "R"): (98.8, 4.592, 0.206),
    ("VIMCO 1", "K/R"): (99.9, 4.603, 0.001),
    ("VIMCO 16", "K"): (99.2, 4.596, 0.144),
    ("VIMCO 16", "R"): (98.9, 4.594, 0.170),
}


def ptb_row(trial, mi, nll, estimator="dreg", k=16, k_mi=None, objective="kl", split="valid",
            regulariser="dropout-shared", status="complete", **values):  # fmt: skip
    row = {
        "trial": trial, "task": "ptb", "split": split, "estimator": estimator, "k": k, "k_mi": k_mi or k,
        "objective": objective, "learning_rate": 0.003, "lam": 0.5, "alpha": 1.5 if objective == "renyi" else "",
        "steps": 1500, "batch_size": 32, "vocab_size": 2000, "hidden_size": 64, "regulariser": regulariser,
        "input_dropout": 0.2, "state_dropout": 0.1, "output_dropout": 0.3, "l2": 0, "mi": mi, "nll": nll, "seed": 0,
        "status": status, "reason": "", "wall_s": 60.0, "threads": 1, "device": "cpu", "commit": "abc", "run": "r",
    }  # fmt: skip
    return row | values


def write_ptb_table(path, *rows):
    path.write_text(format_table(list(rows), "ptb"))
    return path


def test_table1_of_the_papers_trials_is_the_printed_table():
    table = table1(read_curves(sorted(PAPER_PTB.glob("*.tsv"))))
    assert [column.heading for column in table] == list(PRINTED_TABLE1)
    for column, best in table.items():
        perplexity, nll, kl = PRINTED_TABLE1[column.heading]
        assert round(best.perplexity, 1) == perplexity, column
        # The paper prints NLL and KL cut to three decimals (4.5929 as 4.592), not rounded.
        assert math.floor(best.nll * 1000) / 1000 == pytest.approx(nll), column
        assert math.floor(best.mi * 1000) / 1000 == pytest.approx(kl), column
    # With one sample the KL and Rényi files are one column: DReG 1's best is the KL file's 4.5995 of 166 trials.
    dreg1 = table[TABLE1_COLUMNS[0]]
    assert dreg1.path.name == "l40x0-bs256-hs128-t40-dreg1-kl-valid.tsv" and dreg1.trials == 69 + 97
    assert "state_dropout" in dreg1.hyperparameters
    # The 16-sample columns take the shared-mask files only (the naive-mask DReG 16 KL best is worse).
    assert table[TABLE1_COLUMNS[1]].path.name.endswith("-valid-nsd.tsv")


def test_table1_takes_figure_12s_curves_of_our_tables(tmp_path):
    path = write_ptb_table(
        tmp_path / "ours.tsv",
        ptb_row(0, 0.05, 4.50),
        ptb_row(1, 0.20, 4.40),  # the best DReG 16 KL
        ptb_row(2, 0.30, 4.45, status="diverged"),
        ptb_row(3, 0.01, 4.30, regulariser="dropout-naive"),  # K = 16 with naive masks: Figure 10, not Table 1
        ptb_row(4, 0.01, 4.20, split="train", regulariser="none"),  # training fit
        ptb_row(5, 0.01, 4.10, k_mi=1),  # DReG 16/1: not a column
        ptb_row(6, 0.02, 4.60, k=1, regulariser="dropout-naive"),  # one sample: any dropout
        ptb_row(7, 0.03, 4.55, k=1, objective="renyi", regulariser="dropout-naive"),
        ptb_row(8, 0.10, 4.52, estimator="reinforce", k=1, objective="renyi"),  # the paper's VIMCO 1
    )
    table = table1(read_curves([path]))
    best = {column.heading: value for column, value in table.items()}
    assert (best["DReG 16", "K"].nll, best["DReG 16", "K"].mi, best["DReG 16", "K"].trials) == (4.40, 0.20, 2)
    assert (best["DReG 1", "K/R"].nll, best["DReG 1", "K/R"].trials) == (4.55, 2)
    assert best["VIMCO 1", "K/R"].nll == 4.52 and best["DReG 16", "R"] is None
    text = format_table1(table)
    assert "81.5" in text  # exp(4.40), the perplexity
    assert text.splitlines()[2].split()[3] == "-"  # DReG 16 R has no trials: a dash, not a number


def test_table1_command(tmp_path, capsys):
    assert best_trials.cli_main(["--paper", str(PAPER_PTB)]) == 0
    out = capsys.readouterr().out
    assert "99.4      98.3      98.8      99.9      99.2      98.9" in out
    training = write_ptb_table(tmp_path / "train.tsv", ptb_row(0, 0.05, 4.5, split="train", regulariser="none"))
    assert best_trials.cli_main([str(training)]) == 2
    assert "no PTB validation curves with dropout" in capsys.readouterr().err
    synthetic = Path(__file__).resolve().parents[1] / "data/paper-frontiers/synthetic"
    assert best_trials.cli_main(["--paper", str(synthetic)]) == 2
    assert "none of the paper's PTB validation files" in capsys.readouterr().err
    assert best_trials.cli_main(["--paper", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(SystemExit):
        best_trials.cli_main([])


def test_the_papers_counterpart_of_a_ptb_curve_has_its_split_regulariser_and_main_settings(tmp_path):
    path = write_ptb_table(
        tmp_path / "ours.tsv",
        ptb_row(0, 0.05, 4.5, split="train", regulariser="none"),
        ptb_row(1, 0.05, 4.5, estimator="vimco", objective="renyi", regulariser="dropout-naive"),
        ptb_row(2, 0.05, 4.5, estimator="reinforce", k=1, objective="renyi", split="train", regulariser="none"),
    )
    matched = paper_counterparts(read_curves([path]), PAPER_PTB)
    assert [curve.path.name for curve in matched] == [
        "l40x0-bs256-hs128-t40-dreg16-kl.tsv",  # not bs64, bs1024, hs256 or t80
        "l8x10-bs256-hs128-t40-vimco16-renyi-valid.tsv",  # naive masks: not -nsd or -l2
        "l8x10-bs256-hs128-t40-vimco1-renyi.tsv",  # REINFORCE 1 is the paper's VIMCO 1; not t40x16
    ]


def test_ptb_frontiers_plot_per_token_with_ours_and_the_papers_side_by_side(tmp_path):
    path = write_ptb_table(tmp_path / "ours.tsv", ptb_row(0, 0.05, 4.5, split="train", regulariser="none"),
                           ptb_row(1, 0.10, 4.6, split="train", regulariser="none"))  # fmt: skip
    ours = read_curves([path])
    curves = ours + paper_counterparts(ours, PAPER_PTB)
    figure = plot_frontiers(curves, normalised=False)
    left, right = figure.axes
    assert (left.get_title(loc="left"), right.get_title(loc="left")) == ("ours", "the paper's trials")
    assert left.get_xlabel() == "latent usage per token (nats)" and left.get_ylabel().startswith("train NLL")
    low, high = left.get_ylim()
    assert low < 4.5 and 4.6 < high < 4.7  # each panel its own NLL range
    assert right.get_ylim()[0] < 2.4  # the paper's training NLL at hs128
    with pytest.raises(ParetoError, match="no known optimal NLL"):
        plot_frontiers(curves)  # normalised: text has no ln V


def test_a_folder_skips_tables_whose_first_trial_is_still_running(tmp_path, capsys):
    write_ptb_table(tmp_path / "a.tsv", ptb_row(0, 0.05, 4.5))
    empty = tmp_path / "b.tsv"
    empty.write_text(format_table([], "ptb"))  # a sweep's table before its first trial ends
    assert len(read_inputs([tmp_path])) == 1
    with pytest.raises(ParetoError, match="no complete trials"):
        read_inputs([empty])  # named on the command line: an error
    only_empty = tmp_path / "only"
    only_empty.mkdir()
    (only_empty / "c.tsv").write_text(format_table([], "ptb"))
    with pytest.raises(ParetoError, match="a folder with no table with complete trials"):
        read_inputs([only_empty])
    assert pareto_cli.cli_main([str(tmp_path), "--plot", str(tmp_path / "p.png"), "--no-frontiers"]) == 0
    assert (tmp_path / "p.png").stat().st_size > 0


def test_tables_of_two_tasks_get_a_summary_each_and_no_shared_plot(tmp_path, capsys):
    write_ptb_table(tmp_path / "ptb.tsv", ptb_row(0, 0.2, 4.5, split="train", regulariser="none"))
    synthetic = ptb_row(0, 4.0, 5.4, task="synthetic", vocab_size=200)
    (tmp_path / "synthetic.tsv").write_text(format_table([synthetic], "synthetic"))
    assert pareto_cli.cli_main([str(tmp_path), "--no-frontiers"]) == 0
    out = capsys.readouterr().out
    assert "each curve's ln V) >= m (synthetic)" in out and "(nats per token) >= m (ptb)" in out
    plot = tmp_path / "p.png"
    assert pareto_cli.cli_main([str(tmp_path), "--plot", str(plot)]) == 2
    assert "cannot share one plot" in capsys.readouterr().err and not plot.exists()


# --- issue 18: the study's regulariser, labels, the plot, --paper and worse-than-uniform points ---------


def trial6_rows():
    """cpu-ptb-vimco16-renyi-valid-shared (git bfb641c), trials 5-7 as exported: trial 6 drew all three dropout
    rates 0 and its row says ``none``, a curve of its own beside its study's."""
    rates = dict(input_dropout=0.547, state_dropout=0, output_dropout=0)
    return [
        ptb_row(5, 0.106648, 4.491712, estimator="vimco", objective="renyi", **rates),
        ptb_row(6, 0.104578, 4.383123, estimator="vimco", objective="renyi", regulariser="none",
                input_dropout=0, state_dropout=0, output_dropout=0),
        ptb_row(7, 0.086806, 4.335944, estimator="vimco", objective="renyi", **rates),
    ]  # fmt: skip


def test_a_dropout_trial_at_rates_0_stays_on_its_studys_curve_when_read(tmp_path):
    (curve,) = read_curves([write_ptb_table(tmp_path / "shared.tsv", *trial6_rows())])
    assert curve.task_values["regulariser"] == "dropout-shared" and len(curve.mi) == 3
    # An unregularised table (a training fit) and an L2 study's table keep theirs.
    training = write_ptb_table(tmp_path / "train.tsv", ptb_row(0, 0.1, 4.2, split="train", regulariser="none",
                               input_dropout=0, state_dropout=0, output_dropout=0))  # fmt: skip
    assert [c.task_values["regulariser"] for c in read_curves([training])] == ["none"]
    # A row of none with a rate above 0 is not a rate-0 trial: it is not regrouped.
    odd = write_ptb_table(tmp_path / "odd.tsv", trial6_rows()[0], ptb_row(1, 0.1, 4.2, regulariser="none", l2=1e-4))
    assert sorted(c.task_values["regulariser"] for c in read_curves([odd])) == ["dropout-shared", "none"]


def test_the_export_takes_the_regulariser_from_the_study():
    """A run config cannot tell a dropout study's trial at rates 0 from an unregularised run; the study can."""
    from types import SimpleNamespace

    from optuna.trial import TrialState

    from micmco.study import load_study
    from micmco.sweep.optuna_study import rows_of, study_regulariser
    from micmco.tasks.ptb import regulariser_of

    root = Path(__file__).resolve().parents[1]
    study = load_study(root / "params/studies/cpu/ptb-vimco16-renyi-valid-shared.yaml", root=root)
    training = load_study(root / "params/studies/cpu/ptb-vimco16-renyi.yaml", root=root)
    assert (study_regulariser(study.definition), study_regulariser(training.definition)) == ("dropout-shared", None)
    rows = [{k: str(v) for k, v in row.items()} | {"run": f"run{row['trial']}"} for row in trial6_rows()]
    trials = [SimpleNamespace(number=i, state=TrialState.COMPLETE, user_attrs={"row": row, "outcome": "complete"})
              for i, row in enumerate(rows)]  # fmt: skip
    assert [row["regulariser"] for row in rows_of(trials, study.definition)] == ["dropout-shared"] * 3
    assert [row["regulariser"] for row in rows_of(trials)] == ["dropout-shared", "none", "dropout-shared"]
    # rows that carry their setting label (rows written since they do): it follows the study's regulariser
    labels = {"none": "V = 2000, H = 64, unregularised", "dropout-shared": "V = 2000, H = 64, dropout, shared masks"}
    labelled = [row | {"setting_label": labels[row["regulariser"]]} for row in rows]
    trials = [SimpleNamespace(number=i, state=TrialState.COMPLETE, user_attrs={"row": row, "outcome": "complete"})
              for i, row in enumerate(labelled)]  # fmt: skip
    assert [row["setting_label"] for row in rows_of(trials, study.definition)] == [labels["dropout-shared"]] * 3
    # micmco train outside a study: today's rule, from the rates
    zero = {"input_dropout": 0.0, "state_dropout": 0.0, "output_dropout": 0.0, "masks": "shared", "l2": 0.0}
    assert regulariser_of(zero) == "none" and regulariser_of({**zero, "l2": 1e-4}) == "l2"
    assert regulariser_of(zero, {"model.input_dropout"}) == "dropout-shared"
    assert regulariser_of(zero, {"model.l2"}) == "l2"


def test_ptb_labels_name_the_split_and_paper_batches_are_against_256():
    """bs×N was relative to the smallest batch: the paper's bs×16 baseline (4096) showed as "bs×64"."""
    names = ["bs64", "bs256", "bs1024", "bs4096"]
    curves = read_curves([PAPER_PTB / f"l40x0-{name}-hs128-t40-dreg1-kl.tsv" for name in names])
    labels = pareto.distinct_labels(curves)
    assert [label.split(", ")[-1] for label in labels] == ["bs×0.25)", "bs×1)", "bs×4)", "bs×16)"]
    assert all(label.startswith("DReG 1, KL (paper, train, V = 10000") for label in labels)
    (valid,) = read_curves([PAPER_PTB / "l40x0-bs256-hs128-t40-dreg1-kl-valid.tsv"])
    assert "valid" in pareto.distinct_labels([valid])[0]
    # Curves of one colour (the same estimator, split, regulariser and baseline) that differ in size: other markers
    sizes = read_curves([PAPER_PTB / f"l40x0-bs256-{hs}-t40-dreg1-kl.tsv" for hs in ("hs128", "hs256")])
    first, second = curve_styles(sizes)
    assert first["color"] == second["color"] and first["marker"] != second["marker"]


def test_plot_styles_labels_axes_and_legend(tmp_path):
    """Curves differing only in split or regulariser had one style; the y label came from the first curve; the
    axes cut points off silently; the legend, beside the axes in x-small type, took 40 % of the width."""
    base = dict(estimator="vimco", objective="renyi")
    path = write_ptb_table(
        tmp_path / "ours.tsv",
        ptb_row(0, 0.05, 4.5, split="train", regulariser="none", **base),
        ptb_row(1, 0.10, 4.6, split="train", regulariser="none", **base),
        ptb_row(2, 0.05, 4.7, **base),
        ptb_row(3, 0.10, 4.8, **base),
        ptb_row(4, 0.05, 4.7, regulariser="dropout-naive", **base),
        ptb_row(5, 0.30, 9.2, regulariser="dropout-naive", **base),  # far above: off the axes, worse than uniform
    )
    curves = read_curves([path])
    assert len(curves) == 3
    figure = plot_frontiers(curves, normalised=False)
    (ax,) = figure.axes
    lines = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
    styles = {(line.get_color(), line.get_marker(), line.get_markerfacecolor(), line.get_linestyle()) for line in lines}
    assert len(lines) == len(styles) == 3
    assert ax.get_ylabel() == "NLL per token (nats): train, valid"
    assert ax.get_ylim()[1] < 9.2
    off = [line for line in ax.get_lines() if line.get_label() == "_off the axes"]
    assert len(off) == 1 and off[0].get_ydata().tolist() == [ax.get_ylim()[1]] and not off[0].get_clip_on()
    notes = [text.get_text() for text in ax.texts]
    assert any("1 point off the axes" in note and "1 worse than uniform" in note
               for note in notes), notes  # fmt: skip
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    (legend,) = figure.legends
    assert legend.get_window_extent(renderer).y1 <= ax.get_window_extent(renderer).y0
    assert legend.get_texts()[0].get_fontsize() >= 9


def test_worse_than_uniform_points_are_kept_and_named(tmp_path, capsys):
    """cpu-ptb-dreg1-kl-valid trials 5 and 6 ended at 9.20 and 10.16 nats per token, above the uniform
    model's ln 2000 = 7.60: kept as data, named by the summary and by worse_than_uniform."""
    path = write_ptb_table(
        tmp_path / "cpu-ptb-dreg1-kl-valid.tsv",
        ptb_row(3, 0.257985, 4.614455, k=1, regulariser="dropout-naive"),
        ptb_row(5, 5.112783, 9.201229, k=1, regulariser="dropout-naive"),
        ptb_row(6, 4.880186, 10.16198, k=1, regulariser="dropout-naive"),
        ptb_row(7, 0.175641, 4.430701, k=1, regulariser="dropout-naive"),
    )
    (curve,) = read_curves([path])
    assert curve.uniform_nll == pytest.approx(math.log(2000))
    assert curve.nll[pareto.worse_than_uniform(curve)].tolist() == [9.201229]  # trial 6 is not on the frontier
    assert pareto_cli.cli_main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "1 frontier point worse than the uniform model (NLL > ln V = 7.60 nats per token)" in out
    assert "worse than uniform" in out[: out.index("Lowest")]  # the frontier's row says so too
    # The synthetic task's optimum is the uniform model: nothing to flag there.
    synthetic = read_curves([PAPER_PTB.parent / "synthetic" / "l40x0-bs256-hs128-t40-dreg16-kl.tsv"])[0]
    assert len(pareto.worse_than_uniform(synthetic)) == 0


def test_paper_folder_of_another_task_is_an_error_or_a_warning(tmp_path, capsys):
    ptb = write_ptb_table(tmp_path / "ptb.tsv", ptb_row(0, 0.2, 4.5, split="train", regulariser="none"))
    synthetic_dir = PAPER_PTB.parent / "synthetic"
    assert pareto_cli.cli_main([str(ptb), "--paper", str(synthetic_dir), "--no-frontiers"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(synthetic_dir) in error and "ptb" in error and "synthetic" in error
    assert pareto_cli.cli_main([str(ptb), "--paper", str(PAPER_PTB), "--no-frontiers"]) == 0
    assert "paper, train, V = 10000" in capsys.readouterr().out


def test_mixed_folder_normalised_with_the_synthetic_paper_and_a_plot(tmp_path, capsys):
    """The README's command failed once PTB tables shared results/cpu."""
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "cpu-dreg16-kl.tsv").write_text((root / "results/cpu/cpu-dreg16-kl.tsv").read_text())
    write_ptb_table(tmp_path / "cpu-ptb-dreg16-kl.tsv", ptb_row(0, 0.2, 4.5, split="train", regulariser="none"))
    plot = tmp_path / "f.png"
    argv = [str(tmp_path), "--normalised", "--paper", str(root / "data/paper-frontiers/synthetic"), "--plot", str(plot)]
    assert pareto_cli.cli_main(argv) == 0
    captured = capsys.readouterr()
    assert plot.stat().st_size > 0
    assert "(synthetic)" in captured.out and "(ptb)" in captured.out  # a summary per task
    assert "DReG 16, KL (paper, V = 10000)" in captured.out
    assert "cpu-ptb-dreg16-kl.tsv" in captured.err and "left out" in captured.err  # what the plot left out
    assert "no known optimal NLL" in captured.err


def test_labels_compare_steps_and_batches_within_a_task_only(tmp_path):
    """A synthetic DReG 1, KL table beside a PTB one read "bs×4" (128 against PTB's 32) and the PTB curve "T×1"."""
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "cpu-dreg1-kl.tsv").write_text((root / "results/cpu/cpu-dreg1-kl.tsv").read_text())
    row = ptb_row(0, 0.2, 4.5, split="train", regulariser="none")
    write_ptb_table(tmp_path / "cpu-ptb-dreg1-kl.tsv", {**row, "estimator": "dreg", "k": "1", "k_mi": "1"})
    curves = pareto.read_curves([tmp_path / "cpu-dreg1-kl.tsv", tmp_path / "cpu-ptb-dreg1-kl.tsv"])
    assert {c.label for c in curves} == {"DReG 1, KL"} and {c.task for c in curves} == {"synthetic", "ptb"}
    for label in pareto.distinct_labels(curves):
        assert "×" not in label, label
