"""Tensor plumbing shared by the aggregators: gradients, model state, buckets, averaging."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn

MB = 1 << 20


def trainable(model: nn.Module) -> list[nn.Parameter]:
    """The parameters an aggregator synchronises, in the model's (rank-independent) order."""
    return [p for p in model.parameters() if p.requires_grad]


def grads_of(model: nn.Module) -> list[torch.Tensor]:
    """Every trainable parameter's gradient; a missing one becomes zeros.

    A parameter that took no part in this rank's forward has no ``.grad``; it still has to
    enter the collectives, or the ranks would disagree on the message layout.
    """
    grads = []
    for p in trainable(model):
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    return grads


def state_of(model: nn.Module, include_buffers: bool) -> list[torch.Tensor]:
    """Parameters (and floating-point buffers such as BatchNorm statistics) to average or mix.

    Integer buffers (``num_batches_tracked``) are counters, not estimates; averaging them is
    meaningless, so they stay local.
    """
    tensors = [p.data for p in model.parameters()]
    if include_buffers:
        tensors += [b.data for b in model.buffers() if b.is_floating_point()]
    return tensors


def buckets(tensors: list[torch.Tensor], bucket_bytes: int) -> list[list[torch.Tensor]]:
    """Group tensors in order into runs of one dtype of at most ``bucket_bytes`` each.

    A tensor larger than the limit is a bucket of its own (it is never split). The grouping
    depends only on shapes and dtypes, so every rank builds the same buckets.
    """
    out: list[list[torch.Tensor]] = []
    current: list[torch.Tensor] = []
    size = 0
    for t in tensors:
        nbytes = t.numel() * t.element_size()
        if current and (t.dtype != current[0].dtype or size + nbytes > bucket_bytes):
            out.append(current)
            current, size = [], 0
        current.append(t)
        size += nbytes
    if current:
        out.append(current)
    return out


def flatten(tensors: list[torch.Tensor]) -> torch.Tensor:
    """One new contiguous 1-D tensor holding ``tensors`` back to back."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten_into(flat: torch.Tensor, tensors: list[torch.Tensor]) -> None:
    """Copy ``flat`` back into ``tensors`` (the inverse of ``flatten``)."""
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset : offset + n].view_as(t))
        offset += n


def allreduce_mean_(
    tensors: list[torch.Tensor],
    world_size: int,
    bucket_bytes: int | None,
    count: Callable[[torch.Tensor], None],
) -> None:
    """Average ``tensors`` over all ranks in place: one all-reduce per bucket.

    ``bucket_bytes=None`` means one all-reduce per tensor (no flattening copy).
    """
    if world_size == 1 or not tensors:
        return
    if bucket_bytes is None:
        for t in tensors:
            count(t)
            dist.all_reduce(t)
            t.div_(world_size)
        return
    for bucket in buckets(tensors, bucket_bytes):
        flat = flatten(bucket)
        count(flat)
        dist.all_reduce(flat)
        flat.div_(world_size)
        unflatten_into(flat, bucket)
