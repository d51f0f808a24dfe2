"""Sparsified SGD with error feedback: top-k (Stich et al. 2018; Lin et al. 2018) and random-k.

Each rank adds its error memory to the gradient, keeps ``ratio`` of the elements of every
tensor (k = ceil(ratio * numel), at least 1; chosen per tensor so that every layer is updated),
sends those and remembers the rest as the next error. ``.grad`` becomes the average of the
ranks' sparse vectors, summed where their indices overlap.

- top-k keeps each rank's largest-magnitude elements; the ranks choose different indices, so
  (values, indices) pairs travel by ``all_gather``: k float values + k int32 indices per rank.
- random-k draws its indices from a generator seeded alike on every rank, so all ranks keep
  the same indices and only the values travel, by ``all_reduce``: k float values.

Bytes counted = exactly those messages (values at the gradient's element size, indices as int32,
one flat index into the concatenated gradients).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import ClassVar

import torch
import torch.distributed as dist
from pydantic import Field
from torch import nn

from mlbench_core.optim._tensors import flatten, grads_of, unflatten_into
from mlbench_core.optim.base import Aggregator, AggregatorConfig


class SparsifyConfig(AggregatorConfig):
    """Settings of top-k sparsification."""

    ratio: float = Field(
        0.01,
        gt=0,
        le=1,
        description="Fraction of each tensor's elements sent per step (k = ceil(ratio*numel)).",
    )
    error_feedback: bool = Field(
        True,
        description="Keep the unsent elements and add them to the next step's gradient.",
    )


class RandomKConfig(SparsifyConfig):
    """Settings of random-k sparsification."""

    seed: int = Field(
        0,
        ge=0,
        le=2**63 - 1,
        description="Seed of the index draws; every rank uses it, so all pick the same indices.",
    )


def keep_count(numel: int, ratio: float) -> int:
    return min(numel, max(1, math.ceil(ratio * numel)))


class _Sparsified(Aggregator):
    """Error feedback and the flat-vector bookkeeping common to top-k and random-k."""

    def __init__(self, config: AggregatorConfig, *, rank: int, world_size: int) -> None:
        super().__init__(config, rank=rank, world_size=world_size)
        assert isinstance(config, SparsifyConfig)
        self.ratio = config.ratio
        self.error_feedback = config.error_feedback
        self.error: torch.Tensor | None = None

    @abstractmethod
    def _select(self, acc: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        """int64 flat indices to send: k per tensor segment of ``acc``."""

    @abstractmethod
    def _exchange(self, values: torch.Tensor, indices: torch.Tensor, n: int) -> torch.Tensor:
        """Dense sum over ranks of the sparse vectors (values at indices), length ``n``."""

    def after_backward(self, model: nn.Module) -> None:
        grads = grads_of(model)
        if not grads:
            return
        with torch.no_grad():
            acc = flatten(grads)
            if self.error_feedback and self.error is not None:
                acc.add_(self.error)
            indices = self._select(acc, [g.numel() for g in grads])
            values = acc[indices]
            dense = self._exchange(values, indices, acc.numel())
            if self.error_feedback:
                acc[indices] = 0  # what was sent leaves the memory; the rest stays
                self.error = acc
            unflatten_into(dense.div_(self.world_size), grads)


class TopK(_Sparsified):
    """Top-k sparsification: each rank's largest |values| per tensor, exchanged with indices."""

    name: ClassVar[str] = "topk"
    Config: ClassVar[type[AggregatorConfig]] = SparsifyConfig

    def _select(self, acc: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        chosen = []
        offset = 0
        for n in sizes:
            segment = acc[offset : offset + n].abs()
            chosen.append(segment.topk(keep_count(n, self.ratio), sorted=False).indices + offset)
            offset += n
        return torch.cat(chosen)

    def _exchange(self, values: torch.Tensor, indices: torch.Tensor, n: int) -> torch.Tensor:
        dense = torch.zeros(n, dtype=values.dtype, device=values.device)
        if self.world_size == 1:
            return dense.index_add_(0, indices, values)
        # int32 indices: half the bytes of int64; a flat index fits below 2**31 elements.
        wire_indices = indices.to(torch.int32 if n < 2**31 else torch.int64)
        self.count(values)
        self.count(wire_indices)
        all_values = [torch.empty_like(values) for _ in range(self.world_size)]
        all_indices = [torch.empty_like(wire_indices) for _ in range(self.world_size)]
        dist.all_gather(all_values, values)
        dist.all_gather(all_indices, wire_indices)
        for v, i in zip(all_values, all_indices, strict=True):
            dense.index_add_(0, i.long(), v)
        return dense


class RandomK(_Sparsified):
    """Random-k sparsification: shared random indices, values all-reduced."""

    name: ClassVar[str] = "randomk"
    Config: ClassVar[type[AggregatorConfig]] = RandomKConfig

    def __init__(self, config: AggregatorConfig, *, rank: int, world_size: int) -> None:
        super().__init__(config, rank=rank, world_size=world_size)
        assert isinstance(config, RandomKConfig)
        # Every rank draws the same sequence because every rank draws the same sizes, in order.
        self.generator = torch.Generator().manual_seed(config.seed)

    def _select(self, acc: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        chosen = []
        offset = 0
        for n in sizes:
            picks = torch.randperm(n, generator=self.generator)[: keep_count(n, self.ratio)]
            chosen.append(picks + offset)
            offset += n
        return torch.cat(chosen).to(acc.device)

    def _exchange(self, values: torch.Tensor, indices: torch.Tensor, n: int) -> torch.Tensor:
        if self.world_size > 1:
            self.count(values)
            dist.all_reduce(values)
        dense = torch.zeros(n, dtype=values.dtype, device=values.device)
        dense[indices] = values
        return dense
