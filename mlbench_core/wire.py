"""What workers send to the master: metric batches, status updates and the final result.

The worker's MetricsClient builds these models and the master validates its request bodies with
the very same ones, so the two sides cannot drift apart.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

METRIC_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_./:-]{0,127}$"
MAX_BATCH_POINTS = 10_000
PHASES = ("data", "forward", "backward", "communication", "optimizer", "metrics")

Finite = Annotated[float, Field(allow_inf_nan=False)]
# One definition of each field's rule, shared by the documented models below and the
# TypedDicts the master validates request bodies with.
MetricNameField = Annotated[str, Field(pattern=METRIC_NAME_PATTERN)]
RankField = Annotated[int, Field(ge=0, le=65_535)]
StepField = Annotated[int, Field(ge=0, le=2**62)]
EpochField = Annotated[float, Field(ge=0, allow_inf_nan=False)]
BatchIdField = Annotated[str, Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class MetricPoint(BaseModel):
    """One numeric sample ``(name, rank, step, epoch, wall time, value)``."""

    model_config = ConfigDict(extra="forbid")

    name: MetricNameField = Field(examples=["train/loss"])
    rank: RankField = 0
    step: StepField
    epoch: EpochField = 0.0
    time: Finite = Field(description="Unix wall time in seconds when the value was measured.")
    value: Finite

    @staticmethod
    def is_sendable(value: float) -> bool:
        """JSON has no NaN/inf; the client drops such values and counts them instead."""
        return math.isfinite(value)


class MetricBatch(BaseModel):
    """A batch of points; ``batch_id`` makes a retried batch count once."""

    model_config = ConfigDict(extra="forbid")

    batch_id: BatchIdField
    points: list[MetricPoint] = Field(min_length=1, max_length=MAX_BATCH_POINTS)


@with_config(ConfigDict(extra="forbid"))
class MetricPointDict(TypedDict):
    """``MetricPoint`` as a plain dict: the master validates batches into these, because
    building a model object per point costs more than storing the point."""

    name: MetricNameField
    rank: NotRequired[RankField]
    step: StepField
    epoch: NotRequired[EpochField]
    time: Finite
    value: Finite


@with_config(ConfigDict(extra="forbid"))
class MetricBatchDict(TypedDict):
    """``MetricBatch`` as a plain dict (same rules)."""

    batch_id: BatchIdField
    points: Annotated[list[MetricPointDict], Field(min_length=1, max_length=MAX_BATCH_POINTS)]


METRIC_BATCH = TypeAdapter(MetricBatchDict)
"""Validates a ``MetricBatch`` request body from JSON bytes in one pass (pydantic-core)."""


class StatusUpdate(BaseModel):
    """A worker's report of its own state; the master maps it onto the run's state."""

    model_config = ConfigDict(extra="forbid")

    state: Literal["running", "succeeded", "failed"]
    rank: int = Field(0, ge=0, le=65_535)
    reason: str = Field("", max_length=4000)


class Heartbeat(BaseModel):
    """A worker's sign of life, sent every few seconds from a thread of its own, so that a
    process that is gone, frozen or cut off is noticed by the beats stopping, and a training
    thread that is stuck by ``idle_s`` growing (docs/reliability.md)."""

    model_config = ConfigDict(extra="forbid")

    rank: RankField = Field(description="Rank of the sending worker.")
    step: StepField = Field(0, description="Step of the newest metric it logged.")
    idle_s: Finite = Field(
        0.0, ge=0, le=1e9, description="Seconds since its training thread last logged a metric."
    )
    final: bool = Field(
        False, description="This rank is done: it sends no more beats and is not waited for."
    )


class PhaseTimes(BaseModel):
    """Seconds spent in each phase of a training step, summed over the run (rank 0)."""

    model_config = ConfigDict(extra="forbid")

    data: Finite = Field(0.0, ge=0)
    forward: Finite = Field(0.0, ge=0)
    backward: Finite = Field(0.0, ge=0)
    communication: Finite = Field(0.0, ge=0)
    optimizer: Finite = Field(0.0, ge=0)
    metrics: Finite = Field(0.0, ge=0)


class RunResult(BaseModel):
    """The structured outcome of a run, written once by rank 0."""

    model_config = ConfigDict(extra="forbid")

    goal_reached: bool
    goal_metric: str | None = Field(None, pattern=METRIC_NAME_PATTERN)
    goal_value: Finite | None = None
    time_to_goal_s: Finite | None = Field(None, ge=0)
    final_value: Finite | None = None
    samples_per_s: Finite = Field(0.0, ge=0)
    total_time_s: Finite = Field(0.0, ge=0)
    steps: StepField = 0
    epochs: Finite = Field(0.0, ge=0)
    epochs_to_goal: Finite | None = Field(
        None, ge=0, description="Epochs trained when the goal was first met (None: not met)."
    )
    best_value: Finite | None = Field(
        None, description="Best value of the goal metric seen during the run."
    )
    bytes_communicated: int = Field(
        0,
        ge=0,
        le=2**63 - 1,
        description="Payload bytes sent by all ranks together (aggregator counts).",
    )
    phases: PhaseTimes = Field(default_factory=PhaseTimes)
    extra: dict[str, Finite | str | bool] = Field(
        default_factory=dict, description="Task-specific scalar figures (e.g. peak bus bandwidth)."
    )


class Manifest(BaseModel):
    """Everything needed to reproduce or explain a run, written once by rank 0 at start."""

    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="The RunSpec as the worker received it.")
    settings: dict[str, Any] = Field(description="Resolved task settings (defaults + overrides).")
    seed: int = Field(ge=0)
    world_size: int = Field(ge=1)
    backend: str = Field(max_length=16)
    packages: dict[str, str] = Field(description="Versions of python, torch, numpy, mlbench, ...")
    git_commit: str | None = Field(None, max_length=64)
    host: dict[str, Any] = Field(description="Hostname, OS, CPU model and count, memory.")
    devices: list[str] = Field(description="Device of each local rank, e.g. cpu or CUDA name.")
