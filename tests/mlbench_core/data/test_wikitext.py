"""WikiText-2 token files: vocabulary, encoding, world-sharded batchify, BPTT windows."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from mlbench_core.data.errors import DataFormatError, DatasetUnavailable
from mlbench_core.data.sources import Source
from mlbench_core.data.wikitext import (
    EOS,
    UNK,
    Vocabulary,
    batchify,
    bptt_batches,
    load_wikitext,
    prepare_wikitext2,
)
from tests.mlbench_core.data.http_server import FileServer
from tests.mlbench_core.data.make_files import WIKI_TRAIN, write_wikitext, zip_bytes


def test_vocabulary_and_encoding(tmp_path: Path) -> None:
    data = load_wikitext(write_wikitext(tmp_path))
    vocab = data.vocab
    # First occurrence order: the blank first line gives <eos> index 0.
    assert vocab.itos[:3] == [EOS, "=", "Valkyria"]
    assert UNK in vocab.stoi
    n_train = sum(len(line.split()) + 1 for line in WIKI_TRAIN)
    assert data.train.dtype == torch.long and data.train.numel() == n_train
    assert vocab.decode(data.train[:6]) == [EOS, "=", "Valkyria", "Chronicles", "III", "="]
    # Validation words missing from train are read as <unk>; known ones keep their index.
    valid = vocab.decode(data.valid)
    assert valid[:3] == [EOS, "=", UNK]  # "Homarus" is not in the training text
    assert "game" in valid and valid.count(EOS) == 3


def test_unknown_word_without_unk_is_an_error(tmp_path: Path) -> None:
    folder = write_wikitext(tmp_path, train=[" = Title = ", " plain words only . "])
    with pytest.raises(DataFormatError, match=r"wiki.valid.tokens:2: word 'Homarus'.*no <unk>"):
        load_wikitext(folder)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    folder = write_wikitext(tmp_path)
    (folder / "wiki.test.tokens").unlink()
    with pytest.raises(DatasetUnavailable, match=r"wiki\.test\.tokens is missing"):
        load_wikitext(folder)
    (folder / "wiki.train.tokens").write_text("")
    with pytest.raises(DataFormatError, match="holds no words"):
        Vocabulary.build(folder / "wiki.train.tokens")
    (folder / "wiki.train.tokens").write_bytes(b" ok \n \xff\xfe \n")
    with pytest.raises(DataFormatError, match="line 2 is not UTF-8"):
        Vocabulary.build(folder / "wiki.train.tokens")


def test_batchify_columns_are_contiguous_and_world_sharded() -> None:
    stream = torch.arange(103)
    single = batchify(stream, 4)
    assert single.shape == (25, 4)
    assert torch.equal(single[:, 1], torch.arange(25, 50))  # a column is a stretch of text
    # Two ranks with 2 columns each split the same 4-column layout between them.
    ranks = [batchify(stream, 2, rank=r, world_size=2) for r in range(2)]
    assert all(r.shape == (25, 2) for r in ranks)
    assert torch.equal(torch.cat(ranks, dim=1), single)
    with pytest.raises(ValueError, match="too few"):
        batchify(torch.arange(5), 4)
    with pytest.raises(ValueError, match="rank=2"):
        batchify(stream, 2, rank=2, world_size=2)


def test_fixed_bptt_windows_cover_the_rows() -> None:
    source = batchify(torch.arange(200), 4)  # 50 x 4
    batches = list(bptt_batches(source, 10))
    assert [b.seq_len for b in batches] == [10, 10, 10, 10, 9]
    for b in batches:
        assert b.inputs.shape == b.targets.shape == (b.seq_len, 4)
        assert torch.equal(b.targets, b.inputs + 1)  # the stream is arange: target = next
    assert torch.equal(torch.cat([b.inputs for b in batches]), source[:-1])


def test_variable_bptt_is_reproducible_and_varies() -> None:
    source = batchify(torch.arange(4000), 2)  # 2000 x 2
    lengths = [
        [b.seq_len for b in bptt_batches(source, 35, variable=True, generator=g)]
        for g in (torch.Generator().manual_seed(1), torch.Generator().manual_seed(1))
    ]
    assert lengths[0] == lengths[1]
    assert sum(lengths[0]) == 1999
    assert len(set(lengths[0])) > 5 and min(lengths[0][:-1]) >= 5
    assert any(n < 25 for n in lengths[0])  # some windows come from the bptt / 2 mode
    other = [
        b.seq_len
        for b in bptt_batches(source, 35, variable=True, generator=torch.Generator().manual_seed(2))
    ]
    assert other != lengths[0]
    capped = bptt_batches(
        source, 35, variable=True, generator=torch.Generator().manual_seed(1), max_len=36
    )
    assert max(b.seq_len for b in capped) <= 36
    with pytest.raises(ValueError, match="needs a generator"):
        next(bptt_batches(source, 35, variable=True))


def test_prepare_from_zip_mirror(tmp_path: Path) -> None:
    folder = write_wikitext(tmp_path / "src")
    archive = zip_bytes({f"wikitext-2/{p.name}": p.read_bytes() for p in folder.iterdir()})
    with FileServer({"/wikitext-2-v1.zip": archive}) as server:
        source = Source(
            server.url("/wikitext-2-v1.zip"),
            "wikitext-2-v1.zip",
            sha256=hashlib.sha256(archive).hexdigest(),
        )
        got = prepare_wikitext2(tmp_path / "data", source=source)
    assert got.name == "wikitext-2"
    assert load_wikitext(got).train.numel() > 0
