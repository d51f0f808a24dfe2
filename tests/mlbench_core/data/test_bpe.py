"""The shared byte-level BPE: training, cache, round trip, ids with <s>/</s>."""

from __future__ import annotations

import logging
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from mlbench_core.data.bpe import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    decode_ids,
    encode_lines,
    load_bpe,
    train_bpe,
)
from mlbench_core.data.errors import DataFormatError, DatasetUnavailable
from tests.mlbench_core.data.make_files import DE, EN, write_lines

VOCAB = 400


@pytest.fixture
def corpus(tmp_path: Path) -> list[Path]:
    en = write_lines(tmp_path / "train.en", EN * 20)
    de = write_lines(tmp_path / "train.de", DE * 20)
    return [en, de]


def test_round_trip_is_exact(tmp_path: Path, corpus: list[Path]) -> None:
    tok = train_bpe(corpus, VOCAB, tmp_path / "cache")
    assert tok.get_vocab_size() <= VOCAB
    texts = [
        *EN,
        *DE,
        "Größere Änderungen, ungesehene Wörter: Zyxwv ß€ 日本 🙂",
        "  double  spaces and trailing ",
    ]
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert decode_ids(tok, ids) == text
    # The corpus' frequent words became single tokens (merges were learned).
    assert len(tok.encode("Sitzungsperiode", add_special_tokens=False).ids) <= 3


def test_cache_is_reused_and_keyed_by_corpus(tmp_path: Path, corpus: list[Path]) -> None:
    train_bpe(corpus, VOCAB, tmp_path / "cache")
    cached = list((tmp_path / "cache").glob("bpe-*.json"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    train_bpe(corpus, VOCAB, tmp_path / "cache")
    assert cached[0].stat().st_mtime_ns == stamp  # loaded, not trained again
    write_lines(corpus[0], EN * 21)
    train_bpe(corpus, VOCAB, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("bpe-*.json"))) == 2


def _train_in_child(files: list[str], cache: str, go: Any, log_path: str) -> None:
    handler = logging.FileHandler(log_path)  # appends: every child's records end up there
    logging.getLogger("mlbench_core.data.bpe").addHandler(handler)
    logging.getLogger("mlbench_core.data.bpe").setLevel(logging.INFO)
    go.wait(60)
    train_bpe(files, VOCAB, cache)


def test_concurrent_workers_train_once(tmp_path: Path, corpus: list[Path]) -> None:
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    log_path = tmp_path / "train.log"
    args = ([str(p) for p in corpus], str(tmp_path / "cache"), go, str(log_path))
    procs = [ctx.Process(target=_train_in_child, args=args) for _ in range(3)]
    for proc in procs:
        proc.start()
    go.set()
    for proc in procs:
        proc.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert log_path.read_text().count("training a 400-token BPE") == 1
    files = sorted(os.listdir(tmp_path / "cache"))
    assert [f for f in files if f.endswith(".json")] == [
        next(f for f in files if f.startswith("bpe-"))
    ]
    assert not [f for f in files if f.endswith(".part")]


def test_encode_lines_adds_bos_and_eos(tmp_path: Path, corpus: list[Path]) -> None:
    tok = train_bpe(corpus, VOCAB, tmp_path / "cache")
    lines = [EN[0], "", DE[1]]
    ragged = encode_lines(tok, lines, chunk=2)  # chunk=2: the chunk seam is covered too
    assert len(ragged) == 3
    for i, line in enumerate(lines):
        ids = ragged.values[ragged.offsets[i] : ragged.offsets[i + 1]]
        assert ids[0] == BOS_ID and ids[-1] == EOS_ID
        assert decode_ids(tok, ids) == line
        assert ids[1:-1].tolist() == tok.encode(line, add_special_tokens=False).ids
    assert ragged.lengths[1] == 2  # an empty line is just <s> </s>
    bare = encode_lines(tok, lines, bos=False, eos=False)
    assert torch.equal(bare.lengths, ragged.lengths - 2)
    padded = ragged.pad(torch.tensor([1, 0]), PAD_ID)
    assert padded.dtype == torch.long and padded[0, 2:].eq(PAD_ID).all()


def test_bad_inputs(tmp_path: Path, corpus: list[Path]) -> None:
    with pytest.raises(ValueError, match="at least 260"):
        train_bpe(corpus, 100, tmp_path / "cache")
    with pytest.raises(DatasetUnavailable, match=r"nope\.en is missing"):
        train_bpe([tmp_path / "nope.en"], VOCAB, tmp_path / "cache")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="not a tokenizers JSON file"):
        load_bpe(tmp_path / "broken.json")
