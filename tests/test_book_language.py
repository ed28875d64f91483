"""The book's Penn Treebank layer: the figure registry of both tasks (micmco.book.registry), PTB figures drawn,
tabulated and compared per token by the same code as the synthetic ones (micmco.book.figures, claims), the
language-modelling claims, and Table 1 side by side (micmco.book.language). Only vendored data is read."""

from pathlib import Path

import matplotlib
import pytest

from micmco import naming
from micmco.book import claims, figures, language, orderings, registry
from micmco.results import format_table

matplotlib.use("Agg")
REPO = Path(__file__).resolve().parents[1]


def ptb_row(trial, mi, nll, estimator="dreg", k=16, objective="kl", split="valid", regulariser="dropout-shared"):
    """One complete trial of a results table of the PTB task (cpu profile's sizes)."""
    return {
        "trial": trial, "task": "ptb", "split": split, "estimator": estimator, "k": k, "k_mi": k,
        "objective": objective, "learning_rate": 0.003, "lam": 0.5, "alpha": 1.5 if objective == "renyi" else "",
        "steps": 1500, "batch_size": 32, "vocab_size": 2000, "hidden_size": 64, "regulariser": regulariser,
        "input_dropout": 0.2, "state_dropout": 0.1, "output_dropout": 0.3, "l2": 0, "mi": mi, "nll": nll, "seed": 0,
        "status": "complete", "reason": "", "wall_s": 60.0, "threads": 1, "device": "cpu", "commit": "abc", "run": "r",
    }  # fmt: skip


def write(tmp_path, curve_id, points, **kind):
    """results/cpu/cpu-<curve>.tsv with complete trials at (usage, NLL) per token."""
    rows = [ptb_row(t, mi, nll, **kind) for t, (mi, nll) in enumerate(points)]
    (tmp_path / f"cpu-{curve_id}.tsv").write_text(format_table(rows, "ptb"))


def test_the_registry_covers_every_paper_file_and_every_curve_has_its_studies():
    files = figures.ptb_paper_files()
    used = {c for _, curves in registry.ptb_figures().values() for c in curves}
    assert used == set(files), "every PTB trial file of the paper is a curve of some figure"
    assert sorted(registry.ptb_figures()) == [8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 28, 29]
    for number, (_, curves) in registry.ptb_figures().items():
        for curve in curves:
            assert (REPO / "params/studies/paper" / f"{curve}.yaml").exists(), (number, curve)
            setting = naming.parse_curve_id(curve)
            cpu = (REPO / "params/studies/cpu" / f"{curve}.yaml").exists()
            one_objective = setting.k == setting.k_mi == 1 and setting.objective == "renyi"
            if number in (8, 9, 10, 11, 12) and not one_objective:  # the cpu profile sweeps these
                assert cpu, (number, curve)
    # Figure 12's single-sample curves are Figure 10's (one sample: naive and shared masks coincide)
    assert registry.figure_curves(12)[1][:2] == ("ptb-dreg1-kl-valid", "ptb-vimco1-kl-valid")
    assert registry.figure_task(28) == "ptb" and registry.figure_task(26) == "synthetic"
    with pytest.raises(ValueError, match=r"no figure 15\b|no figure 1 among.*ptb: 8"):
        registry.figure_task(1)
    assert registry.expand_braces("a{b,c{d,e}}f") == ["abf", "acdf", "acef"]


def test_ptb_curve_ids_parse_and_name_what_sets_them_apart():
    assert naming.curve_label("ptb-vimco1-kl-t16") == "REINFORCE 1, KL, T×16"
    assert naming.curve_label("ptb-vimco1-kl16") == "VIMCO 1/16, KL"  # 16 samples for the divergence: a baseline
    assert naming.curve_label("ptb-dreg16-renyi-hidden256-steps80k") == "DReG 16, Rényi, H = 256, 80k steps"
    assert naming.curve_label("ptb-dreg16-alpha") == "DReG 16, power"
    assert naming.curve_label("vimco1-kl16") == "VIMCO 1/16, KL"  # synthetic names unchanged
    assert orderings.same_objective("ptb-vimco1-kl-t16", "ptb-vimco1-renyi-t16")
    assert not orderings.same_objective("ptb-vimco1-kl", "ptb-vimco1-renyi-t16")  # 16 times longer: another curve
    assert not orderings.same_objective("ptb-vimco16-kl", "ptb-vimco16-renyi")
    with pytest.raises(ValueError, match="ptb-dreg16-kl-valid-shared"):
        naming.parse_curve_id("ptb-dreg16-kl-valid-masks")


def test_a_ptb_figure_reads_per_token_and_says_why_a_curve_has_no_results(tmp_path):
    write(tmp_path, "ptb-dreg1-kl", [(0.1, 1.5), (0.9, 2.0), (0.8, 2.1)], split="train", regulariser="none", k=1)
    write(tmp_path, "ptb-dreg16-renyi", [(0.3, 1.2), (0.9, 1.4), (0.7, 1.5)], split="train", regulariser="none",
          objective="renyi")  # fmt: skip
    figure = figures.load_figure(8, "cpu", tmp_path)
    assert figure.task == "ptb" and figure.split == "train"
    dreg1 = figure.curves[0]
    assert dreg1.ours.mi.tolist() == [0.1, 0.9, 0.8] and dreg1.ours.nll.tolist() == [1.5, 2.0, 2.1]  # not normalised
    assert orderings.lowest_excess(dreg1.paper, 0.5) == pytest.approx(2.4973, abs=1e-4)  # the paper's, per token
    table = figures.figure_table(figure, [0.5])
    noise = figure.noise.single  # measured on the committed runs (no trial here is evaluated precisely)
    assert f"| DReG 1, KL | 3/3 (too few) | 3 | 2.000 ± ~{noise:.3f} / 2.497 |" in table
    assert "| DReG 1, Rényi | 0/0 | 0 | see KL (one objective) / " in table
    assert "| DReG 16, KL | 0/0 | 0 | no results / " in table  # a cpu study that has not run
    ordering = orderings.compare_ordering(figure, 0.5, orderings.Noise(0.001, None))
    assert ordering.holds == [("DReG 16, Rényi", "DReG 1, KL")] and not ordering.fails
    assert ("DReG 1, KL" in ordering.compared) and "DReG 1, Rényi" not in ordering.compared
    figure18 = figures.load_figure(18, "cpu", tmp_path)
    assert "no cpu study" in figures.figure_table(figure18, [0.5])
    assert figures.figure_studies(18, "paper")[0].startswith("params/studies/paper/ptb-")
    with pytest.raises(ValueError, match="no cpu studies for Figure 18.*PROFILE=paper FIGURE=18"):
        figures.figure_studies(18, "cpu")
    assert [Path(s).stem for s in figures.figure_studies(9, "cpu")][:1] == ["ptb-vimco1-kl"]  # cheapest first


def test_a_single_sample_ptb_curve_is_drawn_in_both_objective_panels(tmp_path):
    write(tmp_path, "ptb-vimco1-kl-valid", [(0.1, 4.5), (0.3, 4.6)], estimator="reinforce", k=1,
          regulariser="dropout-naive")  # fmt: skip
    figure = figures.load_figure(12, "cpu", tmp_path)
    panels = figures._panels_of(figure)
    assert [c.curve_id for c in panels["renyi"]][:2] == ["ptb-dreg1-kl-valid", "ptb-vimco1-kl-valid"]
    fig = figures.plot_figure(figure)
    kl, renyi = fig.axes[:2]
    assert kl.get_ylabel() == "validation NLL (nats per token)" and "per token" in kl.get_xlabel()
    assert len(renyi.lines) == 4 + 2  # six paper frontiers... of which two single-sample, ours: dots + frontier
    matplotlib.pyplot.close(fig)


def test_the_language_claims_are_decided_on_the_papers_trials_and_ours(tmp_path):
    noise = orderings.Noise(0.001, None)

    def check(numbers, **kw):
        rows = claims.check_claims(0.5, "cpu", figures=numbers, task="ptb", noise=noise, **kw)
        return {r["figure"]: r for r in rows}

    rows = check((8, 9), results_dir=tmp_path)
    # Figure 8's claim speaks of high usage: decided at m = 0.5 and 0.8 per token
    assert rows[8]["usages"] == (0.5, 0.8) and rows[8]["paper"] == "holds"
    assert rows[8]["paper_values"].startswith("m 0.5: 2.444 ± ~0.001 vs 2.497 ± ~0.001 (holds)")
    assert rows[9]["ours"] == "no results yet"
    write(tmp_path, "ptb-vimco1-kl", [(0.6, 1.0), (0.7, 1.1)], estimator="reinforce", k=1, split="train",
          regulariser="none")  # fmt: skip
    write(tmp_path, "ptb-vimco16-kl", [(0.6, 1.3), (0.7, 1.4)], estimator="vimco", split="train", regulariser="none")
    rows = check((9,), results_dir=tmp_path)
    assert rows[9]["ours"] == "fails" and rows[9]["ours_values"].startswith("m 0.5: 1.300 ± ~0.001 vs 1.000 ± ~0.001")
    assert rows[9]["ours_values"].endswith("(fails); partial: 2 of 4 curves")
    twelve = claims.check_claims(0.5, "cpu", figures=(12,), task="ptb", noise=noise)
    parity = [r for r in twelve if r["expect"] == "tie"]
    assert [r["usages"] for r in parity] == [(0.1, 0.2, 0.3, 0.5), (0.0, 0.1, 0.2, 0.5)]
    assert all(r["paper"] in ("holds", "fails", "mixed", "inconclusive") for r in parity)
    table = claims.claims_table(parity, task="ptb")
    assert "m ∈ {0.1, 0.2, 0.3, 0.5} nats per token; on par: within 0.01 nats" in table
    with pytest.raises(ValueError, match="choose one of synthetic, ptb"):
        claims.check_claims(0.5, task="text")


def test_table1_sets_ours_beside_the_papers_with_each_vocabulary(tmp_path):
    write(tmp_path, "ptb-dreg1-kl-valid", [(0.05, 4.40), (0.3, 4.50)], k=1, regulariser="dropout-naive")
    write(tmp_path, "ptb-dreg16-kl-valid-shared", [(0.1, 4.35)])
    text = language.table1_side_by_side("cpu", tmp_path)
    assert "| paper: perplexity (V = 10000) | 99.4 | 98.3 | 98.8 | 99.9 | 99.2 | 98.9 |" in text
    # the paper's NLL and KL as printed (cut to three decimals, not rounded: 4.5929 is 4.592)
    assert "| paper: NLL per token | 4.599 | 4.588 | 4.592 | 4.603 | 4.596 | 4.594 |" in text
    assert "| paper: per-token KL | 0.056 | 0.074 | 0.206 | 0.001 | 0.144 | 0.170 |" in text
    assert "| ours: NLL per token | 4.400 | 4.350 | – | – | – | – |" in text and "ours: perplexity (V = 2000)" in text
    assert language.table1_order("cpu", tmp_path) == (
        "Table 1 by best validation NLL, over the 2 columns both sides have: paper DReG 16 K < DReG 1 K/R; "
        "ours DReG 16 K < DReG 1 K/R (the same order)."
    )


def test_the_profile_table_is_read_from_the_base_configs():
    table = language.profile_table()
    assert "| cpu, training fit (Figures 8, 9) | 480 | 1,500 × 32 | 100 | 2,000 | 64 / 64 | K = 20, train |" in table
    assert "| paper (every PTB figure) | 42,068 | 40,000 × 256 | 243 | 10,000 | 128 / 128 | K = 100, train |" in table
    assert "paper: `params/ptb/paper/ptb-base-dreg.yaml`" in table
    assert language.appendix_figures("B.2") == [22, 23]
    with pytest.raises(ValueError, match="choose one of B.1, B.2, B.3"):
        language.appendix_figures("B.4")


def test_the_validation_calibration_table_is_the_scripts_grid_and_renders_every_run():
    """results/calibration/cpu-ptb-valid.tsv holds one row per run of params/ptb/cpu/calibrate_valid.py's grid
    (the same overrides, so a changed grid without a rerun fails here), and the chapter's table shows each."""
    import csv
    import importlib.util

    spec = importlib.util.spec_from_file_location("calibrate_valid", REPO / "params/ptb/cpu/calibrate_valid.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with (REPO / language.CALIBRATION_TABLE).open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    expected = []
    for estimator, sentences, lam, extra in script.grid():
        base, sets = script.BASES[estimator]
        expected.append((base, " ".join([*sets, f"objective.lam={lam}", f"data.train_sentences={sentences}", *extra])))
    assert [(row["base"], row["set"]) for row in rows] == expected
    table = language.calibration_table()
    assert table.count("\n") == 2 + len({(r["estimator"], r["lam"], r["dropout"], r["masks"]) for r in rows}) - 1
    for row in rows:
        assert f"{float(row['nll']):.2f} / {float(row['mi']):.2f}" in table
    assert "| 3,200 × 10 |" in table and "| 32,000 × 1 |" in table


def test_the_paper_side_table_names_each_figures_lowest_curve_and_its_trials():
    from micmco.book import figures, orderings

    table = figures.paper_side([10, 12], 0.2)
    for number in (10, 12):
        figure = figures.load_figure(number)
        lowest = {c.label: orderings.lowest_excess(c.paper, 0.2) for c in figure.curves}
        label = min(lowest, key=lowest.get)
        assert table.loc[number].tolist() == [len(figure.curves), sum(len(c.paper.mi) for c in figure.curves),
                                              label, round(lowest[label], 4)]  # fmt: skip
    assert list(table.columns) == ["curves", "paper trials", "lowest at usage >= 0.2", "NLL per token"]


def test_the_claims_without_our_results_are_listed_from_the_verdicts_not_by_hand():
    from micmco.book.claims import unswept_sentence

    rows = [{"claim": "T×16 does not close the gap", "figure": 13, "ours": "no results yet"},
            {"claim": "shared masks restore the gain", "figure": 12, "ours": "holds"}]  # fmt: skip
    assert unswept_sentence(rows) == (
        "Decided on the paper's side only (no results yet on ours): T×16 does not close the gap (Figure 13)."
    )
    assert unswept_sentence(rows[1:]) == "Every claim has results on our side."
    chapter = (REPO / "book" / "chapters" / "08_conclusions.md").read_text()
    assert "L2 with 16 samples, T×16, bs×16" not in chapter and "claims.unswept_sentence(ptb_verdicts)" in chapter
