"""Ragged sequences and batching by a token budget."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from mlbench_core.data.batching import Ragged, token_batches


def ragged(lengths: list[int]) -> Ragged:
    offsets = torch.zeros(len(lengths) + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(torch.tensor(lengths), 0)
    return Ragged(torch.arange(int(offsets[-1]), dtype=torch.int32) + 10, offsets)


def test_pad_and_select() -> None:
    r = ragged([3, 1, 2])
    assert r.lengths.tolist() == [3, 1, 2] and len(r) == 3
    padded = r.pad(torch.tensor([1, 0, 2]), pad_id=0)
    assert padded.tolist() == [[13, 0, 0], [10, 11, 12], [14, 15, 0]]
    assert padded.dtype == torch.long
    picked = r.select(torch.tensor([2, 0]))
    assert picked.lengths.tolist() == [2, 3]
    assert picked.values.tolist() == [14, 15, 10, 11, 12]
    with pytest.raises(ValueError, match="offsets"):
        Ragged(torch.arange(3), torch.tensor([0, 2]))


def lengths(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 60, (n,), generator=g), torch.randint(1, 60, (n,), generator=g)


def test_batches_respect_the_budget_and_cover_everything() -> None:
    src, tgt = lengths(1000)
    batches = token_batches(src, tgt, max_tokens=256, seed=3, epoch=0)
    seen = torch.cat(batches)
    assert sorted(seen.tolist()) == list(range(1000))  # every sample exactly once
    for batch in batches:
        assert len(batch) * int(torch.maximum(src[batch], tgt[batch]).max()) <= 256
    # Length bucketing: most batches hold sentences of one length, so little padding.
    full = [b for b in batches if len(b) > 1]
    same = sum(int(torch.maximum(src[b], tgt[b]).unique().numel() == 1) for b in full)
    assert same == len(full)
    # A batch of length L holds 256 // L sentences (short ones many, long ones few); only the
    # last batch of each length may hold fewer.
    short_of_budget: Counter[int] = Counter()
    for b in batches:
        length = int(torch.maximum(src[b], tgt[b]).max())
        assert len(b) <= 256 // length
        short_of_budget[length] += len(b) < 256 // length
    assert max(short_of_budget.values()) == 1


def test_bucket_width_trades_padding_for_fewer_batches() -> None:
    src, tgt = lengths(1000)
    narrow = token_batches(src, tgt, 512, seed=1)
    wide = token_batches(src, tgt, 512, seed=1, bucket_width=8)
    assert len(wide) < len(narrow)
    for batch in wide:
        assert len(batch) * int(torch.maximum(src[batch], tgt[batch]).max()) <= 512


def test_order_depends_on_seed_and_epoch_only() -> None:
    src, tgt = lengths(500)
    a = token_batches(src, tgt, 300, seed=1, epoch=2)
    b = token_batches(src, tgt, 300, seed=1, epoch=2)
    c = token_batches(src, tgt, 300, seed=1, epoch=3)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert [x.tolist() for x in a] != [x.tolist() for x in c]
    # Steps per epoch are fixed: the count depends on the lengths, not on the epoch.
    assert len(a) == len(c)
    shares = [token_batches(src, tgt, 300, seed=1, epoch=e, rank=1, world_size=3) for e in range(4)]
    assert len({len(s) for s in shares}) == 1


def test_ranks_get_disjoint_equal_shares() -> None:
    src, tgt = lengths(1000)
    everything = token_batches(src, tgt, 256, seed=5, epoch=1)
    shares = [token_batches(src, tgt, 256, seed=5, epoch=1, rank=r, world_size=3) for r in range(3)]
    assert len({len(s) for s in shares}) == 1
    assert len(shares[0]) == len(everything) // 3
    ids = [i for share in shares for batch in share for i in batch.tolist()]
    assert len(ids) == len(set(ids))


def test_unshuffled_batches_follow_length() -> None:
    src, tgt = lengths(300)
    batches = token_batches(src, tgt, 200, shuffle=False)
    maxima = [int(torch.maximum(src[b], tgt[b]).max()) for b in batches]
    assert maxima == sorted(maxima)


def test_too_long_and_bad_arguments() -> None:
    src = torch.tensor([5, 300, 7])
    tgt = torch.tensor([5, 10, 7])
    with pytest.raises(ValueError, match="sample 1 has 300 tokens, more than max_tokens=256"):
        token_batches(src, tgt, 256)
    with pytest.raises(ValueError, match="equally long"):
        token_batches(src, tgt[:2], 256)
    with pytest.raises(ValueError, match="rank 3"):
        token_batches(src, tgt, 512, rank=3, world_size=2)
    assert (
        token_batches(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 8) == []
    )
