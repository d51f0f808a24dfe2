"""Deterministic data partitioning across ranks: training shards per epoch, validation slices.

Training: every rank computes the same permutation of ``range(n)`` from (seed, epoch) - no
communication - and keeps every ``world``-th index starting at its rank. All shards have the
same length, so every rank takes the same number of steps and meets the others at each
collective. When ``n`` is not a multiple of ``world`` the permutation is either padded by
wrapping around to its head (default, as torch's DistributedSampler: a few samples are seen
twice that epoch) or cut to a multiple (``drop_last=True``: a few are not seen that epoch).
When ``n`` is a multiple of ``world`` both give every sample exactly once per epoch.

Validation: contiguous slices, sizes differing by at most one, that together cover every
sample exactly once; a rank sums its loss and count, and a global sum of both gives the exact
average over the whole validation set.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def epoch_seed(seed: int, epoch: int) -> int:
    """A 64-bit seed mixed from (seed, epoch): unlike ``seed + epoch``, (1, 2) and (2, 1)
    give unrelated orders."""
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got {seed} and {epoch}")
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0])


def epoch_generator(
    seed: int, epoch: int, device: torch.device | str | None = None
) -> torch.Generator:
    """A generator on ``device`` (default the CPU) seeded from (seed, epoch); identical on
    every rank."""
    generator = torch.Generator() if device is None else torch.Generator(device=device)
    return generator.manual_seed(epoch_seed(seed, epoch))


def shard_size(n: int, world: int, *, drop_last: bool = False) -> int:
    """Length of every rank's shard."""
    _check(n, 0, world)
    return n // world if drop_last else math.ceil(n / world)


def shard_indices(
    n: int,
    rank: int,
    world: int,
    seed: int,
    epoch: int,
    *,
    drop_last: bool = False,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """This rank's indices into ``range(n)`` for ``epoch`` (LongTensor on ``device``, default
    the CPU). The permutation is drawn on ``device`` itself, so a GPU shard costs no copy; on
    the CPU it is the same order whichever way ``device`` is given."""
    _check(n, rank, world)
    device = torch.device("cpu") if device is None else torch.device(device)
    generator = epoch_generator(seed, epoch, device)
    order = torch.randperm(n, generator=generator, device=device)
    size = shard_size(n, world, drop_last=drop_last)
    if size == 0:
        raise ValueError(f"{n} samples leave nothing for {world} ranks with drop_last=True")
    total = size * world
    if total > n:  # wrap around; repeat the whole order when n < world / 2
        order = order.repeat(math.ceil(total / n))
    return order[rank:total:world]


def validation_slice(n: int, rank: int, world: int) -> slice:
    """This rank's contiguous part of ``range(n)``; the parts of all ranks partition it."""
    _check(n, rank, world)
    return slice(rank * n // world, (rank + 1) * n // world)


def _check(n: int, rank: int, world: int) -> None:
    if n < 1:
        raise ValueError(f"cannot partition {n} samples")
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in a world of {world}")
