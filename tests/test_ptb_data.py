"""The Penn Treebank data layer (§7.2.1): verification, vocabulary, truncation, batches.

The real files are ../shared/data/ptb/ (always there under CI); bad inputs are tmp_path copies.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from micmco.config import ConfigError, from_dict
from micmco.tasks import ptb_data
from micmco.tasks.ptb_data import (
    EOS,
    UNK,
    PTBDataConfig,
    TrainingSentences,
    evaluation_batches,
    find_ptb,
    load_corpus,
)

# shared/data/ptb/README.md: split -> (lines, tokens, tokens + <eos>, word types, <unk>)
README = {
    "train": (42068, 887521, 929589, 9999, 45020),
    "valid": (3370, 70390, 73760, 6021, 3485),
    "test": (3761, 78669, 82430, 6048, 4794),
}
FIRST_LINE = (
    "aer banknote berlitz calloway centrust cluett fromstein gitano guterman hydro-quebec ipo kia memotec mlx "
    "nahb punts rake regatta rubens sim snack-food ssangyong swapo wachter"
)
CPU = dict(vocab_size=2000, train_sentences=10000)  # the cpu profile's data


@pytest.fixture(scope="module")
def ptb() -> Path:
    folder = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ptb"
    if not folder.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{folder} is missing, but CI always provides it")
        pytest.skip(f"needs the Penn Treebank files of the project's shared data at {folder}")
    return folder


@pytest.fixture(scope="module")
def corpus(ptb):
    return load_corpus(PTBDataConfig(path=str(ptb)))


@pytest.fixture(scope="module")
def whole(ptb):
    """No truncation: max_length above the longest sentence (83 tokens)."""
    return load_corpus(PTBDataConfig(path=str(ptb), max_length=100))


def rows(batches) -> list[tuple[int, ...]]:
    """The real part of every row of (tokens, lengths) batches."""
    return [tuple(row[:length].tolist()) for tokens, lengths, *_ in batches for row, length in zip(tokens, lengths)]


@contextmanager
def one_line_error(key: str, *words: str):
    """Expect a one-line ConfigError on ``key`` whose text holds ``words``."""
    with pytest.raises(ConfigError) as info:
        yield
    error = info.value
    assert error.key == key and "\n" not in str(error), str(error)
    for word in words:
        assert word in str(error), (word, str(error))


def test_readme_counts_and_vocabulary(whole):
    assert whole.vocab_size == 10000 and len(set(whole.vocabulary)) == 10000
    assert whole.vocabulary[whole.eos_id] == EOS and whole.vocabulary[whole.unk_id] == UNK
    for split, (lines, tokens, with_eos, types, unks) in README.items():
        stats = whole.stats[split]
        assert stats.verified
        assert (stats.sentences, stats.tokens, stats.kept_tokens, stats.unk_tokens) == (lines, with_eos, with_eos, unks)
        assert stats.tokens - stats.sentences == tokens
        ids = torch.cat(whole.sentences[split])
        assert len(ids.unique()) - 1 == types  # every valid and test type is in train: no word became <unk>
        assert all(sentence[-1] == whole.eos_id for sentence in whole.sentences[split])
    assert whole.decode(whole.sentences["train"][0]) == FIRST_LINE + " " + EOS


def test_truncation_statistics(corpus, whole):
    train, valid, test = (corpus.stats[split] for split in ("train", "valid", "test"))
    assert (train.tokens, train.kept_tokens, train.truncated_sentences) == (929589, 900564, 4144)
    assert (valid.tokens, valid.kept_tokens, valid.truncated_sentences) == (73760, 71633, 330)
    assert train.lost_fraction == pytest.approx(29025 / 929589) and 0.03 < train.lost_fraction < 0.032
    assert test.kept_tokens == test.tokens == 82430 and int(corpus.lengths["test"].max()) == 78  # test stays whole
    for split in ("train", "valid"):
        assert int(corpus.lengths[split].max()) == 35
        for cut, full in zip(corpus.sentences[split], whole.sentences[split]):
            if len(full) > 35:  # the first 34 words, then <eos>
                assert cut[:34].tolist() == full[:34].tolist() and int(cut[34]) == corpus.eos_id and len(cut) == 35
            else:
                assert torch.equal(cut, full)


def test_cache(ptb, corpus):
    assert load_corpus(PTBDataConfig(path=str(ptb))) is corpus
    assert load_corpus(PTBDataConfig(path=str(ptb), batch_size=7)) is corpus  # the batch size is not the corpus's


@pytest.mark.parametrize("split", ["valid", "test", "train"])
def test_evaluation_batches_cover_each_sentence_once(corpus, split):
    batches = list(evaluation_batches(corpus, split, 64))
    assert Counter(rows(batches)) == Counter(tuple(sentence.tolist()) for sentence in corpus.sentences[split])
    real = padded = 0
    for tokens, lengths, *_ in batches:
        B, T = tokens.shape  # sentences, time
        assert tokens.dtype == lengths.dtype == torch.long and B <= 64 and T == int(lengths.max())
        padding = torch.arange(T) >= lengths[:, None]  # [B, T]
        assert bool((tokens[padding] == corpus.eos_id).all())
        real, padded = real + int(lengths.sum()), padded + B * T
    assert real == corpus.stats[split].kept_tokens  # padding never counts
    assert 1 - real / padded < 0.04  # length buckets: little padding
    lengths = torch.cat([batch.lengths for batch in batches])
    assert bool((lengths[:-1] >= lengths[1:]).all())  # longest first
    again = list(evaluation_batches(corpus, split, 64))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again))


def test_training_batches(ptb, tmp_path, corpus):
    config = PTBDataConfig(path=str(ptb), batch_size=64)
    data = TrainingSentences(corpus, config, seed=3)
    tokens, lengths, *_ = data(5)
    B, T = tokens.shape  # sentences, time
    assert B == 64 and T == int(lengths.max()) and T <= 35
    assert bool((tokens[torch.arange(T) >= lengths[:, None]] == corpus.eos_id).all())  # padding
    assert bool((tokens[torch.arange(B), lengths - 1] == corpus.eos_id).all())  # every sentence ends
    train = {tuple(sentence.tolist()) for sentence in corpus.sentences["train"]}
    assert all(row in train for row in rows([(tokens, lengths)]))
    # (the same batch for the same step, another for another step: tests/test_tasks.py, for every task)
    assert not torch.equal(TrainingSentences(corpus, config, seed=4)(5)[0][:, :5], tokens[:, :5])
    # a second load of the same files (another folder, so not the cached corpus) gives the same batches
    for split in ptb_data.PTB_SPLITS:
        shutil.copyfile(ptb / f"ptb.{split}.txt", tmp_path / f"ptb.{split}.txt")
    small = dict(max_length=35, **CPU)
    first, second = (load_corpus(PTBDataConfig(path=str(path), **small)) for path in (ptb, tmp_path))
    assert first is not second
    for step in (0, 200):  # 200: a later epoch
        a, b = TrainingSentences(first, config, 1)(step), TrainingSentences(second, config, 1)(step)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_each_epoch_sees_every_sentence_once(corpus):
    sentences = corpus.stats["train"].sentences
    data = TrainingSentences(corpus, PTBDataConfig(batch_size=10000), seed=0)
    seen = rows(data(step) for step in range(-(-sentences // 10000)))  # the last batch straddles two epochs
    expected = Counter(tuple(sentence.tolist()) for sentence in corpus.sentences["train"])
    assert Counter(seen[:sentences]) == expected and len(seen) > sentences


def test_vocabulary_order(whole):
    """<eos>, <unk>, then the words by descending train count, ties alphabetical."""
    counts = Counter(torch.cat(whole.sentences["train"]).tolist())
    ranked = [(-counts[index], whole.vocabulary[index]) for index in range(2, whole.vocab_size)]
    assert ranked == sorted(ranked)


def test_cpu_profile_maps_rare_words_to_unk(ptb, whole):
    small = load_corpus(PTBDataConfig(path=str(ptb), **CPU))
    assert small.vocabulary == whole.vocabulary[:2000]  # the most frequent words of all of train, not of the subset
    assert small.stats["train"].sentences == 10000
    for split in ("train", "valid"):
        ids = torch.cat(small.sentences[split])  # [tokens]
        assert int(ids.max()) < 2000 and small.stats[split].unk_tokens == int((ids == small.unk_id).sum())
    assert small.stats["valid"].unk_tokens > 3 * whole.stats["valid"].unk_tokens
    first = whole.sentences["train"][0]  # aer banknote berlitz ...: rare words, all outside the 2000
    assert bool((first[:-1] >= 2000).all()) and small.decode(small.sentences["train"][0]) == " ".join(
        [UNK] * (len(first) - 1) + [EOS]
    )
    index = next(i for i in range(100, 200) if len(whole.sentences["train"][i]) <= 35)  # not truncated
    mapped = [UNK if i >= 2000 else whole.vocabulary[i] for i in whole.sentences["train"][index].tolist()]
    assert small.decode(small.sentences["train"][index]) == " ".join(mapped)


def broken_copy(ptb: Path, folder: Path, split: str, change) -> Path:
    """A copy of the files in ``folder`` with ``split``'s bytes changed (None: that file left out)."""
    folder.mkdir()
    for name in ptb_data.PTB_SPLITS:
        target = folder / f"ptb.{name}.txt"
        if name != split:
            shutil.copyfile(ptb / f"ptb.{name}.txt", target)
        elif change is not None:
            target.write_bytes(change((ptb / f"ptb.{name}.txt").read_bytes()))
    return folder


TRUNCATED = lambda raw: raw[: raw.index(b"\n", len(raw) // 2) + 1]  # noqa: E731 - whole lines, half the file
BAD_FILES = {  # id -> (split, change, words of the one-line error)
    "missing-file": ("test", None, ["lacks ptb.test.txt", "simple-examples"]),
    "checksum": ("valid", lambda raw: raw.replace(b" the ", b" tha ", 1), ["ptb.valid.txt", "sha256", "corrupted"]),
    "truncated": ("train", TRUNCATED, ["ptb.train.txt", "bytes, not the 5101618", "data.unverified: true"]),
    "non-utf8": ("valid", lambda raw: raw[:1000] + b"\xff" + raw[1000:], ["ptb.valid.txt", "not UTF-8", "byte 1000"]),
    "non-ascii": ("valid", lambda raw: raw[:1000] + "é".encode() + raw[1000:], ["ptb.valid.txt", "non-ASCII"]),
    "bom": ("train", lambda raw: b"\xef\xbb\xbf" + raw, ["ptb.train.txt", "byte-order mark"]),
    "empty": ("train", lambda raw: b"", ["ptb.train.txt", "is empty"]),
    "crlf": ("valid", lambda raw: raw.replace(b"\n", b"\r\n"), ["ptb.valid.txt", "carriage return"]),
    "tab": ("valid", lambda raw: raw.replace(b" ", b"\t", 1), ["ptb.valid.txt", "a tab"]),
    "empty-line": ("valid", lambda raw: b" a \n\n" + raw, ["ptb.valid.txt", "line 2 is empty"]),
    "eos": ("test", lambda raw: raw.replace(b"\n", b" <eos>\n", 2), ["ptb.test.txt", "line 1 contains <eos>"]),
}


@pytest.mark.parametrize("split, change, words", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_files(ptb, tmp_path, split, change, words):
    folder = broken_copy(ptb, tmp_path / "ptb", split, change)
    with one_line_error("data.path", *words):
        load_corpus(PTBDataConfig(path=str(folder), **CPU))


def test_a_folder_named_like_a_file_is_not_reported_missing(ptb, tmp_path):
    folder = broken_copy(ptb, tmp_path / "ptb", "train", None)
    (folder / "ptb.train.txt").mkdir()
    with one_line_error("data.path", f"{folder / 'ptb.train.txt'} is a folder, not a file"):
        load_corpus(PTBDataConfig(path=str(folder)))


def test_unverified_files_need_the_opt_in_and_say_so(ptb, tmp_path):
    """Files that are not Mikolov's byte for byte are refused (a truncated train trained and passed for the
    real data before), unless data.unverified; the cache never lets an opted-in corpus through without it."""
    folder = broken_copy(ptb, tmp_path / "ptb", "valid", lambda raw: raw + b" zyzzyva \n")
    refused = ["ptb.valid.txt", "399792 bytes, not the 399782 of Mikolov's", "set data.unverified: true"]
    with one_line_error("data.path", *refused):
        load_corpus(PTBDataConfig(path=str(folder), **CPU))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no raw Python warning with a source line any more
        small = load_corpus(PTBDataConfig(path=str(folder), unverified=True, **CPU))
    assert not small.stats["valid"].verified and small.stats["train"].verified
    assert small.files["valid"] == (399792, hashlib.sha256((folder / "ptb.valid.txt").read_bytes()).hexdigest())
    assert small.files["train"] == ptb_data.EXPECTED["train"]
    with one_line_error("data.path", *refused):  # the same files, cached now, without the opt-in
        load_corpus(PTBDataConfig(path=str(folder), **CPU))
    assert load_corpus(PTBDataConfig(path=str(folder), unverified=True, **CPU)) is small
    truncated = broken_copy(ptb, tmp_path / "truncated", "train", TRUNCATED)
    with one_line_error("data.vocab_size", "only 9659 types", "at most 9659"):  # half of train: fewer words
        load_corpus(PTBDataConfig(path=str(truncated), unverified=True))
    assert not load_corpus(PTBDataConfig(path=str(truncated), unverified=True, **CPU)).stats["train"].verified


def test_default_search(ptb, tmp_path, monkeypatch):
    monkeypatch.setenv("MICMCO_PTB", str(ptb))
    assert find_ptb() == ptb.resolve()
    monkeypatch.delenv("MICMCO_PTB")
    monkeypatch.setattr(ptb_data, "REPO", tmp_path / "repo")
    with one_line_error("data.path", "($MICMCO_PTB unset)", str(tmp_path / "repo/data/ptb"), "simple-examples"):
        find_ptb()
    with one_line_error("data.path", str(tmp_path / "nowhere"), "simple-examples"):
        load_corpus(PTBDataConfig(path=str(tmp_path / "nowhere")))


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda folder: folder / "nowhere", ["no such folder"]),
        (lambda folder: folder, ["lacks ptb.train.txt, ptb.valid.txt, ptb.test.txt", "(it holds notes.txt)"]),
        (lambda folder: folder / "notes.txt", ["a file, not a folder"]),
    ],
    ids=["no-folder", "no-files", "a-file"],
)
def test_an_unusable_micmco_ptb_is_an_error_not_passed_over(ptb, tmp_path, monkeypatch, make, words):
    """A mistyped $MICMCO_PTB was silently skipped for the next place holding the files."""
    (tmp_path / "notes.txt").write_text("x")
    value = str(make(tmp_path))
    monkeypatch.setenv("MICMCO_PTB", value)
    with one_line_error("data.path", f"$MICMCO_PTB is {value!r}", *words, "or unset it"):
        load_corpus(PTBDataConfig())


def test_a_data_path_naming_a_file_says_so(ptb):
    with one_line_error(
        "data.path", f"{(ptb / 'ptb.train.txt').resolve()} is a file; give the folder of ptb.train.txt"
    ):
        load_corpus(PTBDataConfig(path=str(ptb / "ptb.train.txt")))


@pytest.mark.parametrize("where", ["file", "folder"])
def test_unreadable_data_is_one_line(ptb, tmp_path, monkeypatch, where):
    """A PermissionError from the files (or the folder) was a traceback (root reads anything: simulated)."""
    folder = broken_copy(ptb, tmp_path / "ptb", "", None)
    denied = folder / "ptb.valid.txt" if where == "file" else folder
    method = "read_bytes" if where == "file" else "stat"
    original = getattr(Path, method)

    def deny(self, *args, **kwargs):
        if self == denied or (where == "folder" and self.parent == denied):
            raise PermissionError(13, "Permission denied", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, method, deny)
    with one_line_error("data.path", "cannot read", str(denied), "Permission denied"):
        load_corpus(PTBDataConfig(path=str(folder), **CPU))


@pytest.mark.parametrize(
    "values, key, words",
    [
        ({"max_length": 0}, "data.max_length", "truncation length must be >= 1"),
        ({"vocab_size": 1}, "data.vocab_size", "[3, 10000]"),
        ({"vocab_size": 10001}, "data.vocab_size", "[3, 10000]"),
        ({"train_sentences": -1}, "data.train_sentences", ">= 0"),
        ({"batch_size": 0}, "data.batch_size", ">= 1"),
    ],
)
def test_config_ranges(values, key, words):
    with one_line_error(key, words):
        from_dict(PTBDataConfig, values, "data")


def test_too_many_train_sentences(ptb):
    with one_line_error("data.train_sentences", "42068 sentences", "at most 42068, or 0 for all"):
        load_corpus(PTBDataConfig(path=str(ptb), train_sentences=50000))
