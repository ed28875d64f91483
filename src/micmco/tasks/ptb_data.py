"""Penn Treebank data (§7.2.1): Mikolov's word-level files, verified, as sentences of token ids.

The files are ``ptb.{train,valid,test}.txt`` from the ``data/`` folder of Tomas Mikolov's
simple-examples (one sentence per line, 10k-word vocabulary with ``<unk>``). Each is checked
before any work (:meth:`micmco.tasks.base.Task.check_data`, before a run directory exists): present,
readable, non-empty, ASCII, LF endings, no tabs, no empty lines, and its size and sha256 those of
Mikolov's file. A file that is not his byte for byte (truncated, corrupted, someone else's
preprocessing) is refused unless ``data.unverified: true``; such a run then has the sha256s of the
files it read in its identity (another run directory than the real data's) and its record says so.

The vocabulary comes from all of train, whatever ``train_sentences`` says: ``<eos>`` (id 0, also
the padding), ``<unk>`` (id 1), then the words by descending train count, ties alphabetical. At
the full 10000 it is exactly the file's 9,999 types plus ``<eos>``; smaller vocabularies keep the
most frequent words and map the rest to ``<unk>``.

Each sentence is its words plus ``<eos>``. Train and valid are truncated to ``max_length`` tokens,
``<eos>`` included and kept: a long sentence becomes its first max_length - 1 words and ``<eos>``,
so every data point is a whole sequence that the decoder ends, and the model stays a distribution
over sentences. At 35 this drops 3.12 % of train tokens (29,025 of 929,589) and 2.88 % of valid
(2,127 of 73,760), the paper's "3 %". Test is never truncated: the paper does not evaluate on it,
and a test NLL is only comparable with the literature on the standard, whole sentences.

Batches are ``(tokens, lengths)``: tokens [B, T] padded with ``<eos>`` to the batch's longest
sentence, lengths [B] the real positions (``<eos>`` included); padding never counts. Padding and
masks beat packing (``pack_padded_sequence``): on CPU its LSTMs were about 2x slower even on random
training batches, 39 % padding. Evaluation sorts a split by length, so batches of 64 hold 1.4 % padding (valid).
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path

import torch
from torch import Tensor

from ..config import ConfigError, check, check_types
from ..models.sentence import SentenceBatch  # re-exported: the loaders make them
from ..runtime import step_generator

__all__ = [
    "PTBDataConfig",
    "SplitStats",
    "Corpus",
    "SentenceBatch",
    "TrainingSentences",
    "find_ptb",
    "load_corpus",
    "pad_sentences",
    "evaluation_batches",
    "PTB_SPLITS",
    "PAPER_VOCABULARY",
    "EOS",
    "UNK",
]

PTB_SPLITS = ("train", "valid", "test")
PAPER_VOCABULARY = 10000  # Mikolov's 9,999 train types (with <unk>) and <eos>
EOS, UNK = "<eos>", "<unk>"
TRUNCATED_SPLITS = ("train", "valid")  # the paper truncates these; test stays whole (see the module docstring)
REPO = Path(__file__).resolve().parents[3]  # src/micmco/tasks/ -> the repository root
ENV_VAR = "MICMCO_PTB"
SOURCE = (
    "the data/ folder of Tomas Mikolov's simple-examples.tgz "
    "(http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz; also in torchtext and the TensorFlow PTB tutorial)"
)
# Mikolov's files (shared/data/ptb/README.md): split -> (bytes, sha256).
EXPECTED = {
    "train": (5101618, "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
    "valid": (399782, "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
    "test": (449945, "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
}

FILES = "ptb.train.txt, ptb.valid.txt and ptb.test.txt"


@dataclass
class PTBDataConfig:
    path: str = ""  # folder with ptb.{train,valid,test}.txt; "" = $MICMCO_PTB, data/ptb/, ../shared/data/ptb/
    vocab_size: int = 10000  # words kept from train, <eos> and <unk> included (paper: all 10000)
    max_length: int = 35  # train and valid sentences truncated to this many tokens, <eos> included (paper: 35)
    train_sentences: int = 0  # 0 = all of train; N = its first N sentences (a smaller profile)
    batch_size: int = 256  # sentences per training batch
    unverified: bool = False  # accept files whose size or sha256 differ from Mikolov's (truncated, another
    # preprocessing): the run's identity then holds their sha256s, and its record says the data are unverified

    def __post_init__(self) -> None:
        check_types(self)
        check(self.max_length >= 1, "max_length", f"truncation length must be >= 1, got {self.max_length}")
        check(
            3 <= self.vocab_size <= PAPER_VOCABULARY,
            "vocab_size",
            f"must be in [3, {PAPER_VOCABULARY}] (<eos>, <unk> and at least one word), got {self.vocab_size}",
        )
        check(self.train_sentences >= 0, "train_sentences", f"must be >= 0 (0 = all), got {self.train_sentences}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class SplitStats:
    sentences: int  # sentences in the split (train: after the train_sentences cut)
    tokens: int  # tokens with one <eos> per sentence, before truncation
    kept_tokens: int  # tokens after truncation to max_length (= tokens for test)
    truncated_sentences: int  # sentences longer than max_length
    unk_tokens: int  # kept tokens that are <unk> (the file's own and the words outside the vocabulary)
    verified: bool  # the file is Mikolov's: his size and sha256 (False only with data.unverified)

    @property
    def lost_fraction(self) -> float:
        """The fraction of tokens dropped by truncation."""
        return (self.tokens - self.kept_tokens) / self.tokens


@dataclass(frozen=True, eq=False)
class Corpus:
    """The vocabulary and the sentences of each split; shared by the cache, so never modify its tensors."""

    path: Path  # the folder the files were read from
    max_length: int  # the truncation of train and valid
    vocabulary: tuple[str, ...] = field(repr=False)  # index = token id
    sentences: dict[str, tuple[Tensor, ...]] = field(repr=False)  # split -> a 1-D long tensor per sentence, <eos> last
    padded: dict[str, Tensor] = field(repr=False)  # split -> [N, T_max] its sentences padded with <eos> (for batching)
    lengths: dict[str, Tensor] = field(repr=False)  # split -> [N] long, tokens per sentence (<eos> included)
    stats: dict[str, SplitStats]  # split -> its counts
    files: dict[str, tuple[int, str]]  # split -> (bytes, sha256) of the file read

    eos_id = 0
    unk_id = 1

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        """Token ids as words, for messages and tests; an id outside [0, vocab_size) is a ValueError naming it."""
        words = []
        for i in ids:
            if not 0 <= int(i) < self.vocab_size:
                raise ValueError(f"token id {int(i)} is not in the vocabulary: ids are in [0, {self.vocab_size})")
            words.append(self.vocabulary[int(i)])
        return " ".join(words)

    def encode(self, words: str | Sequence[str]) -> Tensor:
        """Words (a list, or one string split at whitespace) as a 1-D long tensor of ids, one per word; a word
        outside the vocabulary is ``<unk>``. The inverse of :meth:`decode` for words in the vocabulary; as a data
        point a sentence ends with ``<eos>``: ``corpus.encode("the cat sat <eos>")``."""
        if isinstance(words, str):
            words = words.split()
        return torch.tensor([self.word_ids.get(word, self.unk_id) for word in words], dtype=torch.long)

    @functools.cached_property
    def word_ids(self) -> dict[str, int]:
        """word -> token id (computed once per corpus)."""
        return {word: i for i, word in enumerate(self.vocabulary)}


def find_ptb(path: str = "") -> Path:
    """The folder of the PTB files: ``path``, else $MICMCO_PTB when set (it must hold the three files), else
    the first of data/ptb/ and ../shared/data/ptb/ holding any of them; a one-line ConfigError on
    ``data.path`` saying where it looked and what to put there."""
    if path:
        folder = Path(path).expanduser().resolve()
        check(not folder.exists() or folder.is_dir(), "data.path", f"{folder} is a file; give the folder of {FILES}")
        check(folder.is_dir(), "data.path", f"no folder {folder}; put {FILES} there; they are {SOURCE}")
        return folder
    env = os.environ.get(ENV_VAR, "")
    if env:
        return env_folder(env)
    candidates = [REPO / "data" / "ptb", REPO.parent / "shared/data/ptb"]
    for folder in candidates:
        if any((folder / f"ptb.{split}.txt").exists() for split in PTB_SPLITS):
            return folder.resolve()
    raise ConfigError(
        "data.path",
        f"no Penn Treebank files found; looked in {', '.join(map(str, candidates))} (${ENV_VAR} unset); "
        f"put {FILES} in {candidates[0]} (or a folder named by data.path or ${ENV_VAR}); they are {SOURCE}",
    )


def env_folder(env: str) -> Path:
    """The folder named by $MICMCO_PTB; a one-line ConfigError naming the variable and what it holds unless
    it is a folder with the three files (a mistyped variable is never silently passed over)."""
    folder = Path(env).expanduser().resolve()
    if not folder.is_dir():
        problem = "a file, not a folder" if folder.exists() else "no such folder"
    else:
        problem = file_problems(folder)
        if problem is None:
            return folder
        names = sorted(entry.name for entry in folder.iterdir())
        held = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        problem = f"{problem} (it holds {held or 'nothing'})"
    raise ConfigError(
        "data.path",
        f"${ENV_VAR} is {env!r}: {problem}; set it to the folder of {FILES}, or unset it; they are {SOURCE}",
    )


def file_problems(folder: Path) -> str | None:
    """What is wrong with the folder's three files (missing, or not files), or None."""
    names = [f"ptb.{split}.txt" for split in PTB_SPLITS]
    lacking = [name for name in names if not (folder / name).exists()]
    not_files = [name for name in names if (folder / name).exists() and not (folder / name).is_file()]
    problems = [f"{folder} lacks {', '.join(lacking)}"] if lacking else []
    problems += [f"{folder / name} is a folder, not a file" for name in not_files]
    return "; ".join(problems) or None


def read_split(file: Path) -> tuple[list[list[str]], tuple[int, str]]:
    """The sentences (lists of words) of one present file, checked, and its (bytes, sha256); a one-line
    ConfigError on ``data.path`` naming the file and what is wrong otherwise."""

    def bad(problem: str) -> ConfigError:
        return ConfigError("data.path", f"{file} {problem}")

    raw = file.read_bytes()
    if not raw:
        raise bad("is empty")
    if raw.startswith(codecs.BOM_UTF8):
        raise bad("starts with a byte-order mark (BOM); Mikolov's files are ASCII: save it without one")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise bad(f"is not UTF-8 text (byte {error.start}); Mikolov's files are ASCII") from None
    if not text.isascii():
        first = next(index for index, byte in enumerate(raw) if byte > 127)
        raise bad(f"has a non-ASCII character at byte {first}; Mikolov's files are ASCII")
    for char, name in (("\r", "a carriage return (\\r, CRLF endings?)"), ("\t", "a tab")):
        if char in text:
            raise bad(f"has {name} at byte {text.index(char)}; the files have LF endings and single spaces")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the final newline
    sentences = [line.split() for line in lines]
    empty = next((number for number, words in enumerate(sentences, 1) if not words), None)
    if empty is not None:
        raise bad(f"line {empty} is empty; the files have one sentence per line")
    eos = next((number for number, words in enumerate(sentences, 1) if EOS in words), None)
    if eos is not None:
        raise bad(f"line {eos} contains {EOS}; the files have no end-of-sentence token (it is added)")
    return sentences, (len(raw), hashlib.sha256(raw).hexdigest())


def check_mikolov(folder: Path, files: dict[str, tuple[int, str]], unverified: bool) -> None:
    """A one-line ConfigError on ``data.path`` for the first file whose (bytes, sha256) are not those of
    Mikolov's, unless ``unverified`` (data.unverified: the user takes other files knowingly)."""
    if unverified:
        return
    for split, (size, digest) in files.items():
        expected_size, expected_digest = EXPECTED[split]
        if size != expected_size:
            problem = f"is {size} bytes, not the {expected_size} of Mikolov's (truncated, or another preprocessing)"
        elif digest != expected_digest:
            problem = f"has sha256 {digest}, not Mikolov's {expected_digest} (corrupted, or another version)"
        else:
            continue
        raise ConfigError(
            "data.path",
            f"{folder / f'ptb.{split}.txt'} {problem}; use Mikolov's files ({SOURCE}), or set data.unverified: true "
            "to train on these anyway (such a run has a run directory of its own; not comparable with the paper's)",
        )


def build_vocabulary(train: list[list[str]], vocab_size: int, file: Path) -> tuple[str, ...]:
    """<eos>, <unk>, then the vocab_size - 2 most frequent other train words (ties alphabetical)."""
    counts = Counter(word for words in train for word in words)
    counts.pop(UNK, None)
    available = len(counts) + 2
    check(
        available >= vocab_size,
        "data.vocab_size",
        f"{file} has only {available} types with <eos>, <unk>; set data.vocab_size to at most {available}",
    )
    ranked = sorted(counts, key=lambda word: (-counts[word], word))
    return (EOS, UNK, *ranked[: vocab_size - 2])


def pad_sentences(sentences: Sequence[Tensor], pad_id: int = Corpus.eos_id) -> SentenceBatch:
    """Sentences (1-D long tensors) as one padded batch (tokens [B, T], lengths [B]); no sentences, or an
    empty one, is a ValueError (a sentence has at least its ``<eos>``)."""
    if len(sentences) == 0:
        raise ValueError("sentences is empty; give at least one sentence")
    empty = [i for i, sentence in enumerate(sentences) if len(sentence) == 0]
    if empty:
        raise ValueError(f"sentence {empty[0]} is empty (length 0); every sentence has at least its <eos>")
    lengths = torch.tensor([len(sentence) for sentence in sentences], dtype=torch.long)  # [B]
    tokens = torch.nn.utils.rnn.pad_sequence(list(sentences), batch_first=True, padding_value=pad_id)  # [B, T]
    return SentenceBatch.of(tokens, lengths)


_CACHE: dict[tuple, Corpus] = {}


def load_corpus(config: PTBDataConfig) -> Corpus:
    """The corpus of ``config``, checked (a one-line ConfigError on ``data.path`` or ``data.train_sentences``,
    unreadable files and folders included) and cached per (files, vocab_size, max_length, train_sentences);
    files that are not Mikolov's are refused unless ``data.unverified``, cached corpus or not."""
    try:
        folder = find_ptb(config.path)
        files = {split: folder / f"ptb.{split}.txt" for split in PTB_SPLITS}
        stamps = tuple((f.stat().st_size, f.stat().st_mtime_ns) if f.is_file() else None for f in files.values())
        key = (str(folder), stamps, config.vocab_size, config.max_length, config.train_sentences)
        if key not in _CACHE:
            _CACHE[key] = build_corpus(folder, files, config)
    except OSError as error:  # permissions, a file vanishing, an I/O error: what the user can fix, in one line
        where = error.filename or config.path or "the Penn Treebank files"
        raise ConfigError("data.path", f"cannot read {where}: {error.strerror or error}") from None
    corpus = _CACHE[key]
    check_mikolov(corpus.path, corpus.files, config.unverified)
    return corpus


def build_corpus(folder: Path, files: dict[str, Path], config: PTBDataConfig) -> Corpus:
    problems = file_problems(folder)
    check(problems is None, "data.path", f"{problems}; put {FILES} there; they are {SOURCE}")
    read = {split: read_split(file) for split, file in files.items()}  # every file checked before any work
    sums = {split: checksum for split, (_, checksum) in read.items()}
    check_mikolov(folder, sums, config.unverified)
    vocabulary = build_vocabulary(read["train"][0], config.vocab_size, files["train"])
    ids = {word: index for index, word in enumerate(vocabulary)}
    unk, eos = Corpus.unk_id, Corpus.eos_id
    sentences, padded, lengths, stats = {}, {}, {}, {}
    for split, (words_of, checksum) in read.items():
        if split == "train" and config.train_sentences:
            check(
                config.train_sentences <= len(words_of),
                "data.train_sentences",
                f"{files['train']} has {len(words_of)} sentences, fewer than the {config.train_sentences} asked for; "
                f"set data.train_sentences to at most {len(words_of)}, or 0 for all",
            )
            words_of = words_of[: config.train_sentences]
        keep = config.max_length if split in TRUNCATED_SPLITS else None
        flat: list[int] = []
        split_lengths, tokens = [], 0
        for words in words_of:
            tokens += len(words) + 1
            if keep is not None and len(words) + 1 > keep:
                words = words[: keep - 1]  # the cut keeps <eos>: the first max_length - 1 words
            flat.extend(map(ids.get, words, repeat(unk)))
            flat.append(eos)
            split_lengths.append(len(words) + 1)
        flat_ids = torch.tensor(flat, dtype=torch.long)  # [sum of lengths]
        split_lengths_t = torch.tensor(split_lengths, dtype=torch.long)  # [N]
        N, T = len(split_lengths), max(split_lengths)  # sentences, longest
        matrix = torch.full((N, T), eos, dtype=torch.long)  # [N, T]
        matrix[torch.arange(T) < split_lengths_t[:, None]] = flat_ids  # row-major: the sentences in order
        sentences[split] = torch.split(flat_ids, split_lengths)
        padded[split], lengths[split] = matrix, split_lengths_t
        stats[split] = SplitStats(
            sentences=N,
            tokens=tokens,
            kept_tokens=len(flat),
            truncated_sentences=sum(len(words) + 1 > keep for words in words_of) if keep else 0,
            unk_tokens=int((flat_ids == unk).sum()),
            verified=checksum == EXPECTED[split],
        )
    return Corpus(folder, config.max_length, vocabulary, sentences, padded, lengths, stats, sums)


def take(corpus: Corpus, split: str, index: Tensor) -> SentenceBatch:
    """Sentences ``index`` [B] of a split as a batch padded to its longest one."""
    lengths = corpus.lengths[split][index]  # [B]
    tokens = corpus.padded[split][index, : int(lengths.max())]  # [B, T]
    return SentenceBatch.of(tokens, lengths)


class TrainingSentences:
    """Training batches: batch t is sentences [tB, (t+1)B) of a stream of per-epoch permutations of train,
    epoch e's drawn from (seed, e); so every epoch sees each sentence once, and batch t depends only on
    (seed, t): resumable and reproducible."""

    def __init__(self, corpus: Corpus, config: PTBDataConfig, seed: int):
        self.corpus = corpus
        self.batch_size = config.batch_size
        self.seed = seed
        self.size = corpus.stats["train"].sentences
        self.permutations: dict[int, Tensor] = {}  # epoch -> [N], the last few

    def permutation(self, epoch: int) -> Tensor:
        if epoch not in self.permutations:
            if len(self.permutations) >= 4:
                self.permutations.pop(min(self.permutations))
            generator = step_generator(self.seed, "data", epoch)
            self.permutations[epoch] = torch.randperm(self.size, generator=generator)  # [N]
        return self.permutations[epoch]

    def __call__(self, step: int) -> SentenceBatch:
        positions = torch.arange(step * self.batch_size, (step + 1) * self.batch_size)  # [B] in the stream
        epochs, offsets = positions // self.size, positions % self.size
        index = torch.empty_like(positions)
        for epoch in epochs.unique().tolist():
            chosen = epochs == epoch
            index[chosen] = self.permutation(epoch)[offsets[chosen]]
        return take(self.corpus, "train", index)


def evaluation_batches(corpus: Corpus, split: str, batch_size: int) -> Iterator[SentenceBatch]:
    """Every sentence of ``split`` exactly once, in batches of sentences of similar length (sorted by length,
    longest first, so a batch that does not fit in memory fails at once; ties in corpus order): deterministic."""
    check(split in corpus.lengths, "eval.split", f"unknown split {split!r}; valid choices: {', '.join(PTB_SPLITS)}")
    check(batch_size >= 1, "eval.batch_size", f"must be >= 1, got {batch_size}")
    lengths = corpus.lengths[split]  # [N]
    order = torch.sort(-lengths, stable=True).indices  # [N] longest first
    for start in range(0, len(order), batch_size):
        yield take(corpus, split, order[start : start + batch_size])
