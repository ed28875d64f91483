"""§2: posterior collapse on the synthetic task, trained with and without the mutual-information term."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from .common import markdown_table


def train_collapse_demo(
    config_path: str | Path,
    lambdas: list[float],
    steps: int,
    vocab_size: int,
    seed: int,
    objective: str = "renyi",
    alpha: float = 10.0,
    threads: int = 1,
) -> list[dict[str, Any]]:
    """Train the synthetic model once per λ (λ = 0: no mutual-information term) and evaluate it.

    Starts from a run config (``params/synthetic/...``), overrides the steps, vocabulary,
    seed, torch threads and objective, and runs each in a fresh temporary directory through
    the public API (:func:`micmco.experiment.run`). Returns the result records, in the order of
    ``lambdas``; a run that did not complete (a diverged one) is an error naming its λ.
    """
    from ..experiment import run
    from ..runconfig import load_config

    records = []
    with tempfile.TemporaryDirectory(prefix="micmco-book-") as output_dir:
        for lam in lambdas:
            if lam == 0:
                objective_overrides = ["objective.kind=none", "objective.lam=null", "objective.alpha=null"]
            elif objective == "kl":
                objective_overrides = ["objective.kind=kl", f"objective.lam={lam}", "objective.alpha=null"]
            else:
                objective_overrides = [
                    f"objective.kind={objective}",
                    f"objective.lam={lam}",
                    f"objective.alpha={alpha}",
                ]
            overrides = objective_overrides + [
                f"train.steps={steps}",
                f"train.checkpoint_every={steps}",
                f"train.log_every={max(1, steps // 20)}",
                "train.progress=false",
                f"data.vocab_size={vocab_size}",
                f"train.threads={threads}",
                f"seed={seed}",
                f"output_dir={output_dir}",
            ]
            record = run(load_config(config_path, overrides), echo=lambda *_: None)
            if record.get("status", "complete") != "complete":
                raise RuntimeError(f"the run with λ = {lam} ended {record['status']}: {record.get('divergence')}")
            records.append(record)
    return records


def collapse_table(records: list[dict[str, Any]], lambdas: list[float]) -> str:
    """One row per run: λ, mutual information, NLL, NLL − ln V, KL(q ‖ p), training time."""
    rows = []
    for lam, record in zip(lambdas, records):
        m = record["metrics"]
        rows.append(
            [
                lam,
                m["mutual_information"],
                m["nll"],
                m["nll"] - m["optimal_nll"],
                m["representational_kl"],
                record["train_wall_time_s"],
            ]
        )
    headers = ["λ", "I(X, Z) (nats)", "NLL (nats)", "NLL − ln V", "KL(q ‖ p) (nats)", "train time (s)"]
    return markdown_table(rows, headers, digits=3)


def collapse_summary(records: list[dict[str, Any]], lambdas: list[float]) -> tuple[dict, dict]:
    """Print the runs without the MI term and with the largest λ; return their metrics."""
    without, best = records[0]["metrics"], records[-1]["metrics"]
    for label, m in (("without the MI term (λ = 0)", without), (f"with λ = {lambdas[-1]}", best)):
        print(
            f"{label:28s} I(X, Z) = {m['mutual_information']:.3f} nats, NLL − ln V = {m['nll'] - m['optimal_nll']:+.3f}"
        )
    print(f"the most information a symbol can carry is H(X) = ln V = {without['optimal_nll']:.3f} nats")
    return without, best


def plot_collapse_demo(records: list[dict[str, Any]], lambdas: list[float]):
    """Two panels: the mutual-information estimate during training, and the final NLL vs MI."""
    import matplotlib.pyplot as plt

    fig, (curves, frontier) = plt.subplots(1, 2, figsize=(10, 3.8))
    for lam, record in zip(lambdas, records):
        history = record["train_history"]
        label = "no MI term (λ = 0)" if lam == 0 else f"λ = {lam}"
        curves.plot([h["step"] for h in history], [h["divergence"] for h in history], marker=".", label=label)
        m = record["metrics"]
        frontier.scatter(m["mutual_information"], m["nll"], s=50, label=label)
    optimum = records[0]["metrics"]["optimal_nll"]
    frontier.axhline(optimum, color="gray", linestyle="--", label="optimum ln V")
    curves.set(xlabel="training step", ylabel="Û − Ŝ on the batch (nats)", title="latent usage during training")
    frontier.set(xlabel="mutual information I(X, Z) (nats)", ylabel="NLL (nats)", title="data fit vs latent usage")
    curves.legend()
    frontier.legend()
    fig.tight_layout()
    return fig
