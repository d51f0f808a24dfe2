"""All-reduce SGD (gradient averaging) and model averaging.

``AllReduce`` makes every rank's ``.grad`` the mean gradient before the optimizer step, so any
``torch.optim`` optimizer then applies the same update everywhere: with equal shard sizes this
is single-process training on the concatenated batch. ``ModelAverage`` lets each rank step on
its own gradient and averages the parameters themselves after the step, every ``period`` steps.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import torch
from pydantic import Field
from torch import nn

from mlbench_core.optim._tensors import MB, allreduce_mean_, grads_of, state_of
from mlbench_core.optim.base import Aggregator, AggregatorConfig

BUCKET_MB_FIELD = Field(
    25.0,
    gt=0,
    le=4096,
    description=(
        "Size of one all-reduce message in MiB: tensors are flattened into buckets of at most "
        "this size (a larger tensor is a bucket of its own). 25 is DDP's default."
    ),
)


class AllReduceConfig(AggregatorConfig):
    """Settings of all-reduce gradient averaging."""

    bucket_mb: float = BUCKET_MB_FIELD
    per_layer: bool = Field(
        False,
        description=(
            "One all-reduce per parameter tensor instead of buckets (more, smaller messages; "
            "no flattening copy). bucket_mb is then unused."
        ),
    )


class AllReduce(Aggregator):
    """Synchronous data-parallel SGD: all-reduce-average the gradients after backward."""

    name: ClassVar[str] = "allreduce"
    Config: ClassVar[type[AggregatorConfig]] = AllReduceConfig

    def __init__(self, config: AggregatorConfig, *, rank: int, world_size: int) -> None:
        super().__init__(config, rank=rank, world_size=world_size)
        assert isinstance(config, AllReduceConfig)
        self.bucket_bytes: int | None = None if config.per_layer else int(config.bucket_mb * MB)

    def after_backward(self, model: nn.Module) -> None:
        if self.world_size == 1:  # nothing to average: skip the walk over the parameters
            return
        with torch.no_grad():
            allreduce_mean_(grads_of(model), self.world_size, self.bucket_bytes, self.count)


class AverageConfig(AggregatorConfig):
    """Settings shared by the model-averaging aggregators."""

    bucket_mb: float = BUCKET_MB_FIELD
    include_buffers: bool = Field(
        True,
        description=(
            "Average floating-point buffers (e.g. BatchNorm running statistics) with the "
            "parameters, so evaluation sees one model."
        ),
    )


class ModelAverageConfig(AverageConfig):
    """Settings of model averaging."""

    period: int = Field(
        1,
        ge=1,
        le=1_000_000,
        description="Average the models every this many optimizer steps (1 = after every step).",
    )


class PeriodicAverage(Aggregator):
    """Average parameters (and float buffers) across ranks after the optimizer steps that
    ``sync_due`` selects; shared by model averaging and local SGD."""

    def __init__(self, config: AggregatorConfig, *, rank: int, world_size: int) -> None:
        super().__init__(config, rank=rank, world_size=world_size)
        self.steps = 0
        """Optimizer steps taken so far."""
        assert isinstance(config, AverageConfig)
        self.bucket_bytes = int(config.bucket_mb * MB)
        self.include_buffers = config.include_buffers

    @abstractmethod
    def sync_due(self, steps: int) -> bool:
        """Whether the optimizer step number ``steps`` ends with a model average."""

    def after_step(self, model: nn.Module) -> None:
        self.steps += 1
        if self.sync_due(self.steps):
            with torch.no_grad():
                tensors = state_of(model, self.include_buffers)
                allreduce_mean_(tensors, self.world_size, self.bucket_bytes, self.count)


class ModelAverage(PeriodicAverage):
    """Each rank steps on its local gradient; parameters are averaged every ``period`` steps."""

    name: ClassVar[str] = "model-average"
    Config: ClassVar[type[AggregatorConfig]] = ModelAverageConfig

    def __init__(self, config: AggregatorConfig, *, rank: int, world_size: int) -> None:
        super().__init__(config, rank=rank, world_size=world_size)
        assert isinstance(config, ModelAverageConfig)
        self.period = config.period

    def sync_due(self, steps: int) -> bool:
        return steps % self.period == 0
