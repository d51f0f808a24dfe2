"""Local SGD (Stich 2019; Lin et al. 2020, "Don't use large mini-batches, use local SGD").

Each rank takes ``local_steps`` optimizer steps on its own data, then the models are averaged
with an all-reduce. Communication happens once every H steps instead of every step. With
``warmup_steps`` the first steps synchronise after every step (post-local SGD: the noisy early
phase of training runs as plain synchronous model averaging).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from mlbench_core.optim.allreduce import AverageConfig, PeriodicAverage
from mlbench_core.optim.base import AggregatorConfig


class LocalSGDConfig(AverageConfig):
    """Settings of local SGD."""

    local_steps: int = Field(
        8,
        ge=1,
        le=1_000_000,
        description="H: optimizer steps between two model averagings (1 = model averaging).",
    )
    warmup_steps: int = Field(
        0,
        ge=0,
        le=100_000_000,
        description=(
            "Steps at the start of training that average after every step before the local "
            "phase begins (post-local SGD); 0 starts local at once."
        ),
    )


class LocalSGD(PeriodicAverage):
    """H local steps, then an all-reduce average of the parameters."""

    name: ClassVar[str] = "local-sgd"
    Config: ClassVar[type[AggregatorConfig]] = LocalSGDConfig

    def __init__(self, config: AggregatorConfig, *, rank: int, world_size: int) -> None:
        super().__init__(config, rank=rank, world_size=world_size)
        assert isinstance(config, LocalSGDConfig)
        self.local_steps = config.local_steps
        self.warmup_steps = config.warmup_steps

    def sync_due(self, steps: int) -> bool:
        if steps <= self.warmup_steps:
            return True
        # Count the local phase from its own start, so the first local round is a full H steps.
        return (steps - self.warmup_steps) % self.local_steps == 0
