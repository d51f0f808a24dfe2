"""Variable-length sequences as flat tensors, padded batches, and batching by a token budget.

Translation batches are sized by tokens, not sentences: a batch of short sentences holds many,
a batch of long ones few, so every step costs about the same memory and time. Sentences are
grouped by length (``bucket_width``) so that padding is small; within a bucket of maximum
length L a batch holds ``max_tokens // L`` sentences, which bounds ``count x padded length``
on each side by ``max_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mlbench_core.data.partition import epoch_generator


@dataclass
class Ragged:
    """Sequences of varying length: ``values[offsets[i]:offsets[i + 1]]`` is sequence i."""

    values: torch.Tensor
    offsets: torch.Tensor

    def __post_init__(self) -> None:
        off = self.offsets
        if off.dim() != 1 or off.numel() < 1 or int(off[0]) != 0:
            raise ValueError("offsets must be a 1-D tensor starting at 0")
        if int(off[-1]) != self.values.numel() or bool((off[1:] < off[:-1]).any()):
            raise ValueError("offsets must be non-decreasing and end at len(values)")

    def __len__(self) -> int:
        return self.offsets.numel() - 1

    @property
    def lengths(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    def pad(self, indices: torch.Tensor, pad_id: int) -> torch.Tensor:
        """Sequences ``indices`` as a B x L LongTensor, right-padded with ``pad_id``."""
        idx = indices.to(self.offsets.device, torch.long)
        starts = self.offsets[idx]
        lens = self.lengths[idx]
        width = int(lens.max()) if idx.numel() else 0
        steps = torch.arange(width, device=self.offsets.device)
        inside = steps[None, :] < lens[:, None]
        positions = torch.where(inside, starts[:, None] + steps[None, :], 0)
        out = self.values[positions].long() if self.values.numel() else positions.clone()
        return out.masked_fill_(~inside, pad_id)

    def select(self, indices: torch.Tensor) -> Ragged:
        """A new Ragged with sequences ``indices`` in that order (e.g. after a length filter)."""
        idx = indices.to(self.offsets.device, torch.long)
        lens = self.lengths[idx]
        offsets = torch.zeros(idx.numel() + 1, dtype=torch.long, device=self.offsets.device)
        offsets[1:] = torch.cumsum(lens, 0)
        # Source position of every kept token: its sequence's old start + its place in it.
        owner = torch.repeat_interleave(torch.arange(idx.numel(), device=lens.device), lens)
        steps = torch.arange(int(offsets[-1]), device=lens.device)
        positions = self.offsets[idx][owner] + (steps - offsets[owner])
        return Ragged(self.values[positions], offsets)


def token_batches(
    src_lengths: torch.Tensor,
    tgt_lengths: torch.Tensor,
    max_tokens: int,
    *,
    seed: int = 0,
    epoch: int = 0,
    rank: int = 0,
    world_size: int = 1,
    shuffle: bool = True,
    bucket_width: int = 1,
) -> list[torch.Tensor]:
    """Index batches for this rank: each holds at most ``max_tokens`` (padded) tokens per side.

    With ``shuffle`` the order of samples within a length and of the batches comes from
    (seed, epoch), alike on every rank; ranks take every ``world_size``-th batch and the
    last ``len % world_size`` batches are dropped that epoch so that all ranks step together.
    Without ``shuffle`` batches follow increasing length (evaluation). The number of batches
    depends on the lengths only, never on seed or epoch, so steps per epoch are fixed.
    """
    if src_lengths.shape != tgt_lengths.shape or src_lengths.dim() != 1:
        raise ValueError("src_lengths and tgt_lengths must be 1-D and equally long")
    if max_tokens < 1 or bucket_width < 1:
        raise ValueError(
            f"max_tokens and bucket_width must be positive: {max_tokens}, {bucket_width}"
        )
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of {world_size}")
    size = torch.maximum(src_lengths, tgt_lengths).to(torch.long).cpu()
    if size.numel() == 0:
        return []
    if bool((size < 1).any()):
        raise ValueError(f"sample {int((size < 1).nonzero()[0])} is empty on both sides")
    too_long = size > max_tokens
    if bool(too_long.any()):
        first = int(too_long.nonzero()[0])
        raise ValueError(
            f"sample {first} has {int(size[first])} tokens, more than max_tokens={max_tokens}; "
            "filter out long pairs first"
        )
    generator = epoch_generator(seed, epoch)
    order = (
        torch.randperm(size.numel(), generator=generator) if shuffle else torch.arange(size.numel())
    )
    # Bucket key = the bucket's upper edge, so every member fits the bucket's budget.
    key = (size + bucket_width - 1) // bucket_width * bucket_width
    order = order[torch.sort(key[order], stable=True).indices]
    sorted_key = key[order]
    edges, counts = torch.unique_consecutive(sorted_key, return_counts=True)
    batches: list[torch.Tensor] = []
    start = 0
    for edge, count in zip(edges.tolist(), counts.tolist(), strict=True):
        # At least one: a sample that fits max_tokens may sit in a bucket whose edge does not.
        per_batch = max(1, max_tokens // edge)
        bucket = order[start : start + count]
        batches.extend(bucket.split(per_batch))
        start += count
    if shuffle:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator)]
    usable = len(batches) // world_size * world_size
    return batches[rank:usable:world_size]
