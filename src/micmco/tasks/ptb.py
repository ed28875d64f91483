"""The Penn Treebank task (§7.2): sentences of the Mikolov files and the sentence VAE.

Data (:mod:`micmco.tasks.ptb_data`): one sentence per line with ``<eos>`` appended, the
10,000-word vocabulary of train (or a cap with ``<unk>``), train and valid truncated to 35
tokens; splits ``train``, ``valid`` and ``test``. Model (:mod:`micmco.models.sentence`):
a bidirectional LSTM encoder, 40 Gaussian or 8 × 10 categorical latents, an LSTM decoder, with
the regularisation of §7.2.5 (dropout with naive or shared masks, or an L2 penalty). Metrics are
per token (``<eos>`` included): sums over the sentences of a split divided by its tokens, as the
paper's ``validklp`` and ``validnll``; perplexity = exp(NLL). There is no known optimal NLL, so
curves are never normalised by one; the uniform model's NLL is ln V per token.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import check, check_choice
from ..evaluation import EvalBatch
from ..gradients import estimator_spec
from ..latents import make_latent
from ..memory import MemoryEstimate, latent_sizes, step_memory
from ..models.sentence import SentenceModelConfig, SentenceVAE
from ..runtime import derive_seed
from ..util import full_precision
from .base import RunConfig, Task, check_trained_by_estimator
from .ptb_data import PAPER_VOCABULARY, PTB_SPLITS, PTBDataConfig, TrainingSentences, evaluation_batches, load_corpus

__all__ = ["PTBRunConfig", "PTBTask", "TASK", "REGULARISERS", "regulariser_of", "SentenceLoss", "first_cpu_draw"]

REGULARISERS = ("none", "dropout-naive", "dropout-shared", "l2")


@dataclass
class PTBRunConfig(RunConfig):
    data: PTBDataConfig = field(default_factory=PTBDataConfig)  # the sentences
    model: SentenceModelConfig = field(default_factory=SentenceModelConfig)  # the sentence VAE

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.task == "ptb", "task", f"a PTB run config has task: ptb, got {self.task!r}")
        if self.eval.split:
            check_choice(self.eval.split, PTB_SPLITS, "eval.split")
        check_trained_by_estimator(self, True, self.model.latent.kind, "")
        check(
            not (self.model.dropout and self.model.l2 > 0),
            "model.l2",
            "the paper regularises with dropout or with an L2 penalty (Figure 11), not both; set one to 0",
        )


def regulariser_of(model: dict[str, Any], tuned: Collection[str] = ()) -> str:
    """The ``regulariser`` column of a model section (plain data): none, dropout-naive, dropout-shared or l2.
    ``tuned``: the run-config keys a study tunes (``model.input_dropout``, ``model.l2``, ...). A study that
    tunes a regulariser has it in every trial, one whose rates all came out 0 included; a run alone cannot
    tell that trial from an unregularised run, so outside a study the rates decide."""
    rates = ("input_dropout", "state_dropout", "output_dropout")
    if any(model.get(key, 0.0) > 0 or f"model.{key}" in tuned for key in rates):
        return f"dropout-{model.get('masks', 'naive')}"
    return "l2" if model.get("l2", 0.0) > 0 or "model.l2" in tuned else "none"


class SentenceLoss:
    """The estimator's loss, with the dropout masks of step t drawn from their own seeded stream (so a
    resumed run is bit-identical) and the L2 penalty added (0 without one)."""

    def __init__(self, loss, seed: int):
        self.loss, self.seed, self.calls = loss, seed, 0

    def __call__(self, model: SentenceVAE, x, generator: torch.Generator | None = None):
        device = x[0].device
        # Step t's generator is fresh, seeded from (seed, "noise", t); the masks get their own, seeded with the
        # generator's first draw as a CPU generator makes it, computed on the host (on a GPU, reading the
        # draw back would make every step wait). The draw itself is still taken, unread, so that the
        # estimator's draws go on from the same place of the stream as ever.
        seed = self.seed
        if generator is not None:
            seed = first_cpu_draw(generator.initial_seed())
            torch.randint(2**62, (1,), generator=generator, device=generator.device)
        model.noise = torch.Generator(device=device).manual_seed(seed)
        value, metrics = self.loss(model, x, generator)
        penalty = model.l2_penalty()
        if model.config.l2 > 0:
            metrics["l2_penalty"] = penalty.detach()
        return value + penalty, metrics


def first_cpu_draw(seed: int) -> int:
    """``torch.randint(2**62, (1,), generator=torch.Generator().manual_seed(seed))``'s value, on the host.

    A CPU generator is a Mersenne twister (MT19937) seeded with the seed's low 32 bits; randint over a range
    of 2**62 takes two 32-bit outputs, the first as the high word, modulo the range. Only the state words
    that the first two outputs read (0 to 398) are made. tests/test_ptb_task.py checks it against torch.
    """
    state = [seed & 0xFFFFFFFF]
    for i in range(1, 399):
        previous = state[-1]
        state.append((1812433253 * (previous ^ (previous >> 30)) + i) & 0xFFFFFFFF)
    words = []
    for k in (0, 1):
        y = (state[k] & 0x80000000) | (state[k + 1] & 0x7FFFFFFF)  # the twist of word k
        y = state[k + 397] ^ (y >> 1) ^ (0x9908B0DF if y & 1 else 0)
        y ^= y >> 11  # tempering
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        words.append(y)
    return ((words[0] << 32) | words[1]) % 2**62


REGULARISER_LABELS = {  # the regulariser column in a curve's label
    "none": "unregularised",
    "dropout-naive": "dropout, naive masks",
    "dropout-shared": "dropout, shared masks",
    "l2": "L2",
}


class PTBTask(Task):
    name = "ptb"
    config_class = PTBRunConfig
    unit = "token"
    data_point = "sentence"  # the training loss is per sentence; evaluation's metrics per token
    splits = ("valid", "train", "test")  # the default is valid; training-fit studies set eval.split: train
    result_columns = (
        "vocab_size", "hidden_size", "regulariser", "input_dropout", "state_dropout", "output_dropout", "l2",
    )  # fmt: skip
    curve_columns = ("vocab_size", "hidden_size", "regulariser")
    paper_folder = "ptb"
    paper_match_columns = ("regulariser",)  # a validation curve's counterpart is regularised the same way
    tuned_ranges = {
        **Task.tuned_ranges,  # the objective's rows (tasks.base.OBJECTIVE_RANGES)
        # Table 2's validation runs (§7.2.5): the three dropout rates, or an L2 penalty instead
        "input_dropout": ("model.input_dropout", 0.0, 0.9, "linear"),
        "state_dropout": ("model.state_dropout", 0.0, 0.8, "linear"),
        "output_dropout": ("model.output_dropout", 0.0, 0.95, "linear"),
        "l2": ("model.l2", 5e-6, 1e-3, "log"),
    }
    memory_hint = (
        "reduce data.batch_size, data.max_length, data.vocab_size, model.hidden_size, estimator.num_samples "
        "or eval.batch_size, or set eval.sample_chunk"
    )

    def check_data(self, config: PTBRunConfig) -> list[str]:
        corpus = load_corpus(config.data)  # cached: the run reuses it
        unverified = [split for split, stats in corpus.stats.items() if not stats.verified]
        if not unverified:
            return []
        files = ", ".join(f"ptb.{split}.txt" for split in unverified)
        return [
            f"data.unverified: {files} in {corpus.path}: not Mikolov's (size or sha256); this run is kept "
            "apart from runs on his data, and its results are not comparable with the paper's"
        ]

    def data_identity(self, config: PTBRunConfig) -> dict[str, Any] | None:
        """Mikolov's files are pinned by their checksums (so data.path is not in the identity); files taken
        with data.unverified are pinned by the sha256s of what was read."""
        if not config.data.unverified:
            return None
        return {"sha256": {split: digest for split, (_, digest) in load_corpus(config.data).files.items()}}

    def data_record(self, config: PTBRunConfig) -> dict[str, Any]:
        corpus = load_corpus(config.data)
        verified = all(stats.verified for stats in corpus.stats.values())
        return {
            "folder": str(corpus.path),
            "files": "verified" if verified else "unverified",  # verified: Mikolov's, by size and sha256
            "sha256": {split: digest for split, (_, digest) in corpus.files.items()},
        }

    def training_data(self, config: PTBRunConfig) -> TrainingSentences:
        return TrainingSentences(load_corpus(config.data), config.data, config.seed)

    def evaluation_batches(self, config: PTBRunConfig, split: str) -> Iterator[EvalBatch]:
        for batch in evaluation_batches(load_corpus(config.data), split, config.eval.batch_size):
            yield EvalBatch(batch, batch.lengths.double())  # per token, <eos> included

    def split_units(self, config: PTBRunConfig, split: str) -> int:
        return load_corpus(config.data).stats[split].kept_tokens  # after truncation, <eos> included

    def build_model(self, config: PTBRunConfig) -> nn.Module:
        corpus = load_corpus(config.data)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(config.seed, "init"))
            model = SentenceVAE(corpus.vocab_size, make_latent(config.model.latent), config.model, corpus.eos_id)
        model.head = config.train.head
        return model

    def build_loss(self, config: PTBRunConfig):
        return SentenceLoss(super().build_loss(config), derive_seed(config.seed, "noise"))

    def uniform_nll(self, config: PTBRunConfig) -> float:
        return math.log(config.data.vocab_size)

    def result_values(self, config: dict[str, Any]) -> dict[str, str]:
        model = config["model"]
        return {
            "vocab_size": config["data"]["vocab_size"],
            "hidden_size": model["hidden_size"],
            "regulariser": regulariser_of(model),
            **{
                key: full_precision(model.get(key, 0.0)) for key in ("input_dropout", "state_dropout", "output_dropout")
            },
            "l2": full_precision(model.get("l2", 0.0)),
        }

    def setting_label(self, values: dict[str, str]) -> str:
        regulariser = REGULARISER_LABELS.get(values["regulariser"], values["regulariser"])
        return f"V = {values['vocab_size']}, H = {values['hidden_size']}, {regulariser}"

    def describe_metrics(self, metrics: dict[str, float]) -> str:
        return f"NLL {metrics['nll']:.4f} nats per token (perplexity {math.exp(min(metrics['nll'], 700)):.1f})"

    def estimate_memory(self, config: PTBRunConfig, device: torch.device | str = "cpu") -> MemoryEstimate:
        """The embeddings, the encoder's two LSTM directions, the proposal head, the decoder LSTM and
        the softmax; a step's K·B·T decoder rows, T the longest sentence of the split read: train's for a
        training step (max_length, where sentences are truncated), the evaluated split's for evaluation
        (the test split is not truncated: up to 78 tokens). Batch memory grows with the batch's longest
        sentence; counting every row at it bounds the batch of the longest sentences."""
        V, E, H = config.data.vocab_size, config.model.embedding_size, config.model.hidden_size
        sizes = latent_sizes(config.model.latent, E)
        lstm = 4 * H * (E + H + 2)
        parameters = 2 * V * E + 2 * lstm + 2 * H * sizes.proposal_size + sizes.decoder_input + lstm + H * V + V
        draws = max(config.estimator.num_samples, config.estimator.mi_samples or 0)
        lengths = load_corpus(config.data).lengths  # cached: the run reuses it
        eval_rows = config.eval.samples_per_pass * config.eval.batch_size * int(lengths[self.split(config)].max())
        rows_per_draw = config.data.batch_size * int(lengths["train"].max())
        copies = estimator_spec(config.estimator.base).memory
        # LSTM steps keep their gates for backward: about 3 H-sized tensors per row more than an MLP layer.
        return step_memory(
            parameters,
            copies,
            draws,
            rows_per_draw,
            V,
            3 * H,
            sizes.sample_floats,
            eval_rows,
            device,
            config.train.head,
        )

    def default_parameters(self, config: PTBRunConfig) -> list[str]:
        """The objective's, and the regulariser's rates where the base config has one."""
        names = super().default_parameters(config)
        names += ["input_dropout", "state_dropout", "output_dropout"] if config.model.dropout else []
        return names + (["l2"] if config.model.l2 > 0 else [])

    def paper_curve(self, named: Any) -> dict[str, Any]:
        """The paper's PTB trials: its 10,000-word vocabulary, the file's split, hidden size and regulariser;
        no known optimum (text), the uniform model's ln V per token."""
        values = {"vocab_size": str(PAPER_VOCABULARY), "hidden_size": str(named.hidden_size),
                  "regulariser": named.regulariser}  # fmt: skip
        return dict(
            split=named.split, task_values=values, reference_nll=None, uniform_nll=math.log(PAPER_VOCABULARY),
            setting_label=self.setting_label(values),
        )  # fmt: skip


TASK = PTBTask()
