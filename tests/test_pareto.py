"""micmco.pareto: frontiers, the summary, the normalised view, reading both formats, the plot and the CLI."""

import math
import re
from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from micmco import pareto
from micmco.frontier_plot import plot_frontiers
from micmco.pareto import ParetoError, lowest_nll, pareto_frontier, read_curves, read_paper_trials
from micmco.pareto_cli import cli_main

matplotlib.use("Agg")

# The columns of the first results tables (no task, split or optimal_nll): still readable.
HEADER = (
    "estimator", "k", "k_mi", "objective", "learning_rate", "lam", "alpha", "vocab_size", "steps",
    "batch_size", "mi", "nll", "seed", "status", "wall_s", "device", "commit",
)  # fmt: skip


def synthetic_curve(estimator, k, k_mi, objective, vocab_size, steps, batch_size, mi, nll, **fields):
    """A Curve of the synthetic task with vocabulary ``vocab_size`` (its reference NLL is ln V)."""
    return pareto.Curve("ours", fields.pop("path", Path("x.tsv")), estimator, k, k_mi, objective, steps, batch_size,
                        mi, nll, task_values={"vocab_size": str(vocab_size)}, reference_nll=math.log(vocab_size),
                        **fields)  # fmt: skip


def results_row(**values):
    row = {
        "estimator": "dreg", "k": "16", "k_mi": "16", "objective": "renyi", "learning_rate": "0.003", "lam": "0.5",
        "alpha": "1.5", "vocab_size": "1000", "steps": "6000", "batch_size": "256", "mi": "3.0", "nll": "6.95",
        "seed": "0", "status": "complete", "wall_s": "60.0", "device": "cpu", "commit": "abc123",
    }  # fmt: skip
    row.update({key: str(value) for key, value in values.items()})
    return "\t".join(row[column] for column in HEADER)


def write_results(path, *rows, header=HEADER):
    path.write_text("\n".join(["\t".join(header), *rows]) + "\n")
    return path


# --- frontier and summary, by hand ------------------------------------------------------------------


def test_frontier_against_a_hand_computed_one():
    #            0     1     2     3     4     5     6     7     8
    mi = [0.1, 2.0, 1.5, 4.0, 5.0, 5.0, 3.0, 4.0, 0.1]
    nll = [9.21, 9.25, 9.30, 9.24, 9.40, 9.35, 9.23, 9.24, 9.20]
    # By decreasing usage: 5.0 -> best of (9.40, 9.35) is 9.35 (trial 5); 4.0 -> 9.24 < 9.35 (trial 3, listed
    # before its twin 7); 3.0 -> 9.23 (6); 2.0 -> 9.25 is not below 9.23; 1.5 -> 9.30 no; 0.1 -> 9.20 (8),
    # and trial 0 (9.21 at the same usage) is dominated by it.
    assert pareto_frontier(mi, nll).tolist() == [8, 6, 3, 5]
    curve = synthetic_curve("dreg", 16, 16, "kl", 1000, 100, 256, np.array(mi), np.array(nll))
    assert lowest_nll(curve, 0.0) == 9.20
    assert lowest_nll(curve, 0.2) == 9.23
    assert lowest_nll(curve, 3.5) == 9.24
    assert lowest_nll(curve, 4.5) == 9.35
    assert math.isnan(lowest_nll(curve, 5.1))


def test_frontier_ignores_nans_and_handles_empty_input():
    assert pareto_frontier([1.0, float("nan"), 2.0], [9.3, 9.0, float("nan")]).tolist() == [0]
    assert pareto_frontier([], []).tolist() == []


def test_normalised_view_divides_usage_and_subtracts_ln_v():
    curve = synthetic_curve("elbo", 1, 1, "kl", 1000, 1, 1, np.array([3.4539]), np.array([7.0]))
    normalised = curve.normalised()
    assert normalised.mi[0] == pytest.approx(0.5, abs=1e-4)
    assert normalised.nll[0] == pytest.approx(7.0 - math.log(1000))
    assert normalised.normalised() is normalised


# --- our results ------------------------------------------------------------------------------------


def test_results_are_grouped_into_curves_and_only_complete_trials_count(tmp_path):
    path = write_results(
        tmp_path / "study.tsv",
        results_row(mi=1.0, nll=6.92),
        results_row(mi=2.0, nll=6.93, status="failed"),
        results_row(mi=5.0, nll=6.99, objective="kl", k_mi=""),  # k_mi empty: K' = K
        results_row(mi=6.0, nll="nan", status="diverged"),
        results_row(mi=3.0, nll=6.91),
    )
    curves = {curve.label: curve for curve in read_curves([path])}
    assert set(curves) == {"DReG 16, Rényi", "DReG 16, KL"}
    renyi = curves["DReG 16, Rényi"]
    assert renyi.mi.tolist() == [1.0, 3.0] and renyi.nll.tolist() == [6.92, 6.91]
    assert renyi.hyperparameters["lam"].tolist() == [0.5, 0.5]
    assert (renyi.task_values["vocab_size"], renyi.steps, renyi.batch_size, renyi.source) == ("1000", 6000, 256, "ours")
    assert (renyi.task, renyi.split, renyi.reference_nll) == ("synthetic", "valid", pytest.approx(math.log(1000)))
    assert curves["DReG 16, KL"].k_mi == 16


def test_labels_follow_the_paper():
    def label(**values):
        return synthetic_curve(k_mi=values.pop("k_mi", values["k"]), vocab_size=1000, steps=1, batch_size=1,
                               mi=None, nll=None, **values).label  # fmt: skip

    assert label(estimator="elbo", k=1, objective="kl") == "ELBO, KL"
    assert label(estimator="vimco", k=16, k_mi=1, objective="renyi") == "VIMCO 16/1, Rényi"
    assert label(estimator="reinforce", k=1, objective="kl") == "REINFORCE 1, KL"


@pytest.mark.parametrize(
    "rows, header, message",
    [
        ([], HEADER, "no complete trials (no rows)"),
        ([results_row(status="failed")], HEADER, "no complete trials (1 failed)"),
        ([results_row()], [c for c in HEADER if c != "nll"], "missing column(s) nll; a results table has estimator"),
        ([results_row(estimator="dreg2")], HEADER, "line 2: column estimator: 'dreg2'; valid: elbo, iwae"),
        ([results_row(nll="abc")], HEADER, "line 2: column nll: 'abc' is not a number"),
        ([results_row(nll="inf")], HEADER, "line 2: a complete trial needs a finite nll"),
    ],
)
def test_bad_results_tables_give_one_line_errors_naming_the_file(tmp_path, rows, header, message):
    if header is not HEADER:  # drop the nll cell too
        rows = ["\t".join(cell for column, cell in zip(HEADER, row.split("\t")) if column != "nll") for row in rows]
    path = write_results(tmp_path / "bad.tsv", *rows, header=header)
    with pytest.raises(ParetoError) as error:
        read_curves([path])
    assert str(error.value).startswith(str(path)) and message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_and_empty_files_are_rejected(tmp_path):
    with pytest.raises(ParetoError, match=r"nothing\.tsv: no such file; give results/<profile>/<study>\.tsv"):
        read_curves([tmp_path / "nothing.tsv"])
    (tmp_path / "empty.tsv").write_text("\n")
    with pytest.raises(ParetoError, match=r"empty\.tsv: empty file; a table needs a header line"):
        read_curves([tmp_path / "empty.tsv"])


# --- the paper's trials -----------------------------------------------------------------------------


PAPER_HEADER = "      trialid   learning_rate posterior_div_weight     validklp       validnll\n"


@pytest.mark.parametrize(
    "name, setting, steps",
    [
        ("l40x0-bs256-hs128-t40-dreg16-kl1", ("dreg", 16, 1, "kl"), 40_000),
        ("l40x0-bs256-hs128-t40-vae-renyi", ("elbo", 1, 1, "renyi"), 40_000),
        ("l8x10-bs256-hs128-t40-vimco1-renyi16", ("reinforce", 1, 16, "renyi"), 40_000),  # VIMCO 1 is REINFORCE 1
        ("l8x10-bs256-hs128-t40x16-vimco1-kl", ("reinforce", 1, 1, "kl"), 640_000),
        ("l8x10-bs256-hs128-t40-vimco16-alpha", ("vimco", 16, 16, "power"), 40_000),
        ("bs256-hs128-t40-vq-vae", ("vqvae", 1, 1, "none"), 40_000),
    ],
)
def test_paper_file_names_give_the_setting(tmp_path, name, setting, steps):
    path = tmp_path / f"{name}.tsv"
    path.write_text(PAPER_HEADER + "  1  0.001  0.5  4.0  9.25\n")
    curve = read_paper_trials(path)
    assert curve.setting == setting and curve.steps == steps
    assert (curve.task_values["vocab_size"], curve.batch_size, curve.source) == ("10000", 256, "paper")
    assert curve.reference_nll == pytest.approx(math.log(10000))
    assert curve.mi.tolist() == [4.0] and curve.nll.tolist() == [9.25]


def test_bad_paper_files_give_one_line_errors(tmp_path):
    bad_name = tmp_path / "dreg16.tsv"
    bad_name.write_text(PAPER_HEADER + "1 0.001 0.5 4.0 9.25\n")
    with pytest.raises(ParetoError, match=r"dreg16\.tsv: cannot read the setting from the file name; expected e\.g\."):
        read_curves([bad_name])
    unknown = tmp_path / "l40x0-bs256-hs128-t40-dreg16-kl.tsv"
    unknown.write_text("trialid lr validklp validnll\n1 0.001 4.0 9.25\n")
    with pytest.raises(ParetoError, match=r"kl\.tsv: unknown column\(s\) lr; a paper trials file has columns among"):
        read_curves([unknown])
    unknown.write_text(PAPER_HEADER)
    with pytest.raises(ParetoError, match=r"kl\.tsv: no trials \(a header and no rows\)"):
        read_curves([unknown])


README_CURVES = {  # the README's curve names -> files
    "ELBO (vae), KL objective": "l40x0-bs256-hs128-t40-vae-kl",
    "IWAE 1, KL": "l40x0-bs256-hs128-t40-iwae1-kl",
    "DReG 1, KL": "l40x0-bs256-hs128-t40-dreg1-kl",
    "DReG 16, KL": "l40x0-bs256-hs128-t40-dreg16-kl",
    "DReG 16, Rényi": "l40x0-bs256-hs128-t40-dreg16-renyi",
    "REINFORCE 1 (vimco1), Rényi": "l8x10-bs256-hs128-t40-vimco1-renyi",
    "VIMCO 16, KL": "l8x10-bs256-hs128-t40-vimco16-kl",
    "VIMCO 16, Rényi": "l8x10-bs256-hs128-t40-vimco16-renyi",
    "VQ-VAE": "bs256-hs128-t40-vq-vae",
}


def test_summary_reproduces_the_papers_table(shared_dir):
    """The README's table "lowest NLL among trials with latent usage >= m", to its four decimals."""
    folder = shared_dir / "data" / "paper-frontiers"
    readme = (folder / "README.md").read_text()
    table = readme[readme.index("## Summary") :]
    thresholds = [float(m) for m in re.findall(r"m = (\d+(?:\.\d+)?)", table.splitlines()[2])]
    rows = [line.strip("|").split("|") for line in table.splitlines()[4:] if line.startswith("|")]
    assert thresholds == [4.0, 8.0, 9.0] and len(rows) == len(README_CURVES)
    for name, *values in rows:
        curve = read_paper_trials(folder / "synthetic" / f"{README_CURVES[name.strip()]}.tsv")
        assert [f"{lowest_nll(curve, m):.4f}" for m in thresholds] == [value.strip() for value in values], name


def test_every_paper_file_reads(shared_dir):
    files = sorted((shared_dir / "data" / "paper-frontiers" / "synthetic").glob("*.tsv"))
    curves = read_curves(files)
    assert len(curves) == len(files) > 0
    assert all(len(curve.frontier()) >= 1 and curve.task_values["vocab_size"] == "10000" for curve in curves)
    matched = pareto.paper_counterparts([curve for curve in curves if curve.estimator == "dreg"], files[0].parent)
    assert matched == []  # paper curves are not matched against themselves
    ours = [replace(curves[0], source="ours")]
    assert [curve.path for curve in pareto.paper_counterparts(ours, files[0].parent)] == [curves[0].path]


# --- plot and command line --------------------------------------------------------------------------


def test_plot_draws_kl_hollow_renyi_filled_and_the_paper_dashed(tmp_path):
    path = write_results(
        tmp_path / "study.tsv",
        results_row(mi=1.0, nll=6.92),
        results_row(mi=3.0, nll=6.95, objective="kl"),
    )
    paper_file = tmp_path / "l40x0-bs256-hs128-t40-dreg16-kl.tsv"
    paper_file.write_text(PAPER_HEADER + "1 0.001 0.5 4.0 9.25\n2 0.001 0.5 8.0 9.30\n")
    figure = plot_frontiers(read_curves([path, paper_file]))
    lines = {line.get_label(): line for line in figure.axes[0].get_lines() if not line.get_label().startswith("_")}
    ours_renyi = lines["DReG 16, Rényi (ours, V = 1000)"]
    ours_kl = lines["DReG 16, KL (ours, V = 1000)"]
    paper_kl = lines["DReG 16, KL (paper, V = 10000)"]
    assert ours_kl.get_markerfacecolor() == "none" and ours_renyi.get_markerfacecolor() != "none"
    assert ours_kl.get_color() == ours_renyi.get_color() == paper_kl.get_color()  # one colour per estimator
    assert paper_kl.get_linestyle() == "--" and ours_kl.get_linestyle() == "-" and paper_kl.get_alpha() < 1
    assert paper_kl.get_xdata().tolist() == pytest.approx([4.0 / math.log(10000), 8.0 / math.log(10000)])


def test_cli_prints_frontiers_and_summary_and_writes_a_plot(tmp_path, capsys):
    path = write_results(tmp_path / "study.tsv", results_row(mi=1.0, nll=6.92), results_row(mi=3.0, nll=6.95))
    assert cli_main([str(path), "--normalised", "--min-usage", "0.1", "0.9", "--plot", str(tmp_path / "f.png")]) == 0
    out = capsys.readouterr().out
    assert "== DReG 16, Rényi (ours, V = 1000): study.tsv, 6000 steps, batch 256, 2 trials, 2 on the frontier" in out
    summary = out[out.index("Lowest excess NLL") :].splitlines()
    assert "m = 0.1" in summary[1] and "m = 0.9" in summary[1]
    assert summary[2].split()[-2:] == [f"{6.92 - math.log(1000):.4f}", "-"]
    assert (tmp_path / "f.png").stat().st_size > 0


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    assert cli_main([str(tmp_path / "missing.tsv")]) == 2
    error = capsys.readouterr().err
    assert (
        error.count("\n") == 1 and error.startswith("micmco pareto: error: ") and "missing.tsv: no such file" in error
    )


@pytest.mark.parametrize(
    "plot, message",
    [
        ("f.xyz", "f.xyz: cannot plot to .xyz; choose one of"),
        ("f", "cannot plot to .no extension"),
        ("{file}/f.png", "cannot create the folder"),  # below a file
    ],
)
def test_cli_refuses_a_plot_it_cannot_write_in_one_line_before_any_work(tmp_path, capsys, plot, message):
    path = write_results(tmp_path / "study.tsv", results_row(mi=1.0, nll=6.92))
    assert cli_main([str(path), "--plot", str(tmp_path / plot.format(file="study.tsv"))]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and message in captured.err and "Traceback" not in captured.err
    assert captured.out == ""  # nothing was read or printed first


def test_cli_reads_a_folder_of_tables_and_says_when_it_has_none(tmp_path, capsys):
    write_results(tmp_path / "a.tsv", results_row(mi=1.0, nll=6.92))
    write_results(tmp_path / "b.tsv", results_row(mi=2.0, nll=6.93, objective="kl"))
    assert cli_main([str(tmp_path), "--no-frontiers"]) == 0
    out = capsys.readouterr().out
    assert "DReG 16, Rényi (ours, V = 1000)" in out and "DReG 16, KL (ours, V = 1000)" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main([str(empty)]) == 2
    assert "a folder with no results tables" in capsys.readouterr().err


def test_default_thresholds_are_fractions_of_each_tables_ln_v(tmp_path, capsys):
    """At V = 200 (ln V = 5.3) the old defaults, 4, 8 and 9 nats of the paper's V = 10000, could only be
    met by artefacts; the defaults are now 0.5, 0.8 and 0.95 of each curve's own ln V, and say so."""
    ln_v = math.log(200)
    path = write_results(tmp_path / "v200.tsv", results_row(vocab_size=200, mi=0.6 * ln_v, nll=5.40),
                         results_row(vocab_size=200, mi=0.9 * ln_v, nll=5.45))  # fmt: skip
    assert cli_main([str(path), "--no-frontiers"]) == 0
    summary = capsys.readouterr().out.splitlines()
    assert "each curve's ln V" in summary[0] and "m = 0.8 ln V" in summary[1]
    assert summary[2].split()[-3:] == ["5.4000", "5.4500", "-"]


def test_labels_name_every_setting_in_which_two_curves_differ(tmp_path):
    """cpu-dreg1-kl and cpu-dreg1-kl-t16 both printed as "DReG 1, KL ours, V = 200"."""
    from micmco.pareto import distinct_labels

    for folder in ("cpu", "paper"):
        tmp_path.joinpath(folder).mkdir()
    plain = write_results(tmp_path / "cpu" / "dreg1-kl.tsv", results_row(k=1, k_mi=1, objective="kl"))
    longer = write_results(tmp_path / "cpu" / "dreg1-kl-t16.tsv", results_row(k=1, k_mi=1, objective="kl", steps=96000))
    wider = write_results(tmp_path / "cpu" / "dreg1-kl-bs16.tsv", results_row(k=1, k_mi=1, objective="kl",
                                                                              batch_size=4096))  # fmt: skip
    other_profile = write_results(tmp_path / "paper" / "dreg1-kl.tsv", results_row(k=1, k_mi=1, objective="kl"))
    labels = distinct_labels(read_curves([plain, longer, wider, other_profile]))
    assert len(set(labels)) == 4, labels
    assert "T×16" in labels[1] and "bs×16" in labels[2] and "paper" in labels[3]


def test_vqvae_rows_have_no_sample_counts(tmp_path):
    """The sweep exports the VQ-VAE's trials with k, k_mi, lam and alpha empty: it trains its own loss."""
    path = write_results(
        tmp_path / "vq.tsv",
        results_row(estimator="vqvae", k="", k_mi="", objective="none", lam="", alpha="", mi=4.6, nll=6.95),
        results_row(estimator="vqvae", k="", k_mi="", objective="none", lam="", alpha="", mi=2.3, nll=6.93),
    )
    (curve,) = read_curves([path])
    assert (curve.estimator, curve.k, curve.k_mi) == ("vqvae", 1, 1)
    assert sorted(curve.mi.tolist()) == [2.3, 4.6]


def test_complete_rows_with_a_useless_nll_read_and_export_as_diverged(tmp_path):
    """The divergence rule relabels what older tables recorded as complete: an NLL above 10 ln V (the ELBO
    at λ = 0.9999 reached 164-567 at V = 200; the DReG 16/1 runaways 10^17 and more) is not a result."""
    from micmco.results import format_table, read_rows, read_table

    ln_v = math.log(200)
    path = write_results(
        tmp_path / "old.tsv",
        results_row(vocab_size=200, mi=4.0, nll=5.4),
        results_row(vocab_size=200, mi=5.0, nll=164.3),
        results_row(vocab_size=200, mi=5.0, nll=9.9e17),
        results_row(vocab_size=200, mi=5.0, nll=10 * ln_v - 0.01),  # just inside: kept
    )
    rows = read_rows(path)
    assert [row.status for row in rows] == ["complete", "diverged", "diverged", "complete"]
    (curve,) = read_curves([path])
    assert curve.nll.tolist() == [5.4, pytest.approx(10 * ln_v - 0.01)]
    exported = tmp_path / "new.tsv"
    _, recorded = read_table(path)  # as the journal holds them: all four complete
    exported.write_text(format_table([row for _, row in recorded]))
    _, again = read_table(exported)
    assert [row["status"] for _, row in again] == ["complete", "diverged", "diverged", "complete"]
    assert "more than 10 times the uniform model's ln V" in again[1][1]["reason"]


def test_every_committed_table_reads_the_same_with_or_without_its_reader_columns(tmp_path):
    """Older committed tables predate the reader columns (micmco.results.READER_COLUMNS), which the task
    registry's legacy path fills; newer exports carry them. Either way, a table reads to the same numbers with
    the columns written in and with them stripped (results/calibration/ holds no trial tables)."""
    import csv

    from micmco.results import READER_COLUMNS, read_rows, read_table, reader_values

    def reading(path):
        rows = read_rows(path)
        curves = pareto.read_curves([path]) if any(row.status == "complete" for row in rows) else []
        return [
            [(r.task, r.split, r.status, r.mi, r.nll, r.task_values, r.reference_nll, r.uniform_nll, r.setting_label)
             for r in rows],
            [(c.label, c.setting_label, c.mi.tolist(), c.nll.tolist(), c.reference_nll, c.uniform_nll) for c in curves],
        ]  # fmt: skip

    results = Path(__file__).resolve().parents[1] / "results"
    tables = sorted(path for path in results.glob("**/*.tsv") if "calibration" not in path.relative_to(results).parts)
    assert tables
    written = 0
    for path in tables:
        header, rows = read_table(path)
        # Exported from journals whose rows predate the columns, a table may carry them empty: still legacy rows.
        carries = any(row.get(column) for _, row in rows for column in READER_COLUMNS)
        written += carries
        header = [column for column in header if column not in READER_COLUMNS]
        copy = tmp_path / path.name
        with copy.open("w", newline="") as file:
            writer = csv.DictWriter(file, header if carries else [*header, *READER_COLUMNS], delimiter="\t",
                                    lineterminator="\n", extrasaction="ignore")  # fmt: skip
            writer.writeheader()
            writer.writerows(row if carries else {**row, **reader_values(row)} for _, row in rows)
        assert reading(copy) == reading(path), path
    assert written  # the newer exports are among them, so both directions are checked


def test_help_states_the_units_of_the_thresholds_per_task(capsys):
    """--help said the thresholds were fractions of ln V; PTB's are nats per token."""
    with pytest.raises(SystemExit):
        cli_main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "fractions of ln V for the synthetic task" in text and "0.1 0.5 1.0 nats per token for PTB" in text


def test_pareto_frontier_by_hand():
    points = [(0.0, 5.0), (1.0, 5.2), (2.0, 5.1), (3.0, 5.5), (2.5, 5.6), (3.0, 5.4)]
    # (1.0, 5.2) is dominated by (2.0, 5.1); (2.5, 5.6) and (3.0, 5.5) by (3.0, 5.4)
    mi, nll = zip(*points)
    assert [points[i] for i in pareto_frontier(mi, nll)] == [(0.0, 5.0), (2.0, 5.1), (3.0, 5.4)]
