"""Response models of the API. Request bodies are the shared models themselves:
``mlbench_core.spec.RunSpec`` for run creation and ``mlbench_core.wire`` for worker reports."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SkipValidation, ValidationError

from master.models import MetricPoint as MetricPointRow
from master.models import Result, Run, RunTransition
from mlbench_core.spec import Backend, ExecutorKind, Goal, GoalKind, Resources, RunSpec
from mlbench_core.states import RunState
from mlbench_core.summary import TimeToGoalSummary
from mlbench_core.wire import PhaseTimes, RunResult

_TS_EXAMPLE = "2026-01-01T12:00:00+00:00"


class ErrorPublic(BaseModel):
    """Every error except 422: one readable line."""

    detail: str = Field(examples=["run 7 does not exist"])


class HealthPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "ok", "database": "sqlite", "version": "0.1.0"}]}
    )

    status: Literal["ok"] = "ok"
    database: str = Field(description="SQLAlchemy dialect: sqlite or postgresql.")
    version: str


class GoalPublic(BaseModel):
    metric: str = Field(examples=["val/accuracy"])
    higher_is_better: bool
    full: float
    light: float


class BenchmarkPublic(BaseModel):
    """One catalog entry (``Task.describe()``)."""

    id: str = Field(examples=["digits-mlp"])
    title: str
    description: str
    goal: GoalPublic | None
    settings: dict[str, Any] = Field(description="JSON schema of the task's settings.")


class TransitionPublic(BaseModel):
    from_state: RunState | None = Field(examples=["starting"])
    to_state: RunState = Field(examples=["running"])
    at: datetime = Field(examples=[_TS_EXAMPLE])
    reason: str = Field(examples=["rank 0 reported running"])

    @classmethod
    def from_row(cls, row: RunTransition) -> TransitionPublic:
        return cls(from_state=row.from_state, to_state=row.to_state, at=row.at, reason=row.reason)


class RunPublic(BaseModel):
    id: int = Field(examples=[1])
    name: str = Field(examples=["digits-2w"])
    benchmark: str = Field(examples=["digits-mlp"])
    state: RunState = Field(examples=["running"])
    reason: str = Field(examples=["rank 0 reported running"])
    # Built only from stored specs (validated when the run was created); validating again
    # would re-check them against today's catalog, see ``load_spec``.
    spec: SkipValidation[RunSpec]
    created_at: datetime = Field(examples=[_TS_EXAMPLE])
    started_at: datetime | None = Field(examples=[_TS_EXAMPLE])
    finished_at: datetime | None = Field(examples=[None])
    exit_code: int | None = Field(examples=[None])
    group: str | None = Field(None, examples=[None])
    transitions: list[TransitionPublic] = Field(default_factory=list)

    @classmethod
    def from_row(cls, run: Run, *, with_transitions: bool = True) -> RunPublic:
        transitions = (
            [TransitionPublic.from_row(t) for t in run.transitions] if with_transitions else []
        )
        return cls(
            id=run.id,
            name=run.name,
            benchmark=run.benchmark,
            state=RunState(run.state),
            reason=run.reason,
            spec=load_spec(run.spec),
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            exit_code=run.exit_code,
            group=run.group,
            transitions=transitions,
        )


class RunProgress(BaseModel):
    """Where a run stands, from its newest stored metric point."""

    step: int = Field(examples=[120])
    epoch: float = Field(examples=[1.5])
    time: float = Field(description="Unix wall time of that point.", examples=[1767268800.25])

    @classmethod
    def from_row(cls, row: MetricPointRow) -> RunProgress:
        return cls(step=row.step, epoch=row.epoch, time=row.time)


class RunResultSummary(BaseModel):
    """The figures of a run's result a listing shows (the whole result: GET /runs/{id}/result)."""

    goal_reached: bool
    time_to_goal_s: float | None
    final_value: float | None
    total_time_s: float
    epochs: float

    @classmethod
    def from_row(cls, row: Result) -> RunResultSummary:
        return cls(
            goal_reached=row.goal_reached,
            time_to_goal_s=row.time_to_goal_s,
            final_value=row.final_value,
            total_time_s=row.total_time_s,
            epochs=row.epochs,
        )


class RunListItem(RunPublic):
    """A run as ``GET /runs`` lists it: with its progress and result summary, so a table of
    runs needs one request, not one per run."""

    progress: RunProgress | None = Field(
        None, description="Newest metric point's step, epoch and time; None before the first."
    )
    result: RunResultSummary | None = Field(None, description="None while the run has none.")


class RunsPublic(BaseModel):
    """One page of runs, newest first."""

    items: list[RunListItem]
    total: int = Field(description="Number of runs matching the filter, over all pages.")
    limit: int
    offset: int


class MetricPointPublic(BaseModel):
    name: str = Field(examples=["train/loss"])
    rank: int = Field(examples=[0])
    step: int = Field(examples=[120])
    epoch: float = Field(examples=[1.5])
    time: float = Field(examples=[1767268800.25])
    value: float = Field(examples=[0.183])


class MetricsPage(BaseModel):
    points: list[MetricPointPublic] = Field(description="Points ordered by id.")
    next_cursor: int = Field(
        description="Pass as ?cursor= to read only points stored after this page (0 = start)."
    )
    has_more: bool = Field(
        False, description="True when more points after next_cursor were already stored."
    )


class MetricName(BaseModel):
    name: str = Field(examples=["train/loss"])
    ranks: list[int] = Field(examples=[[0, 1]])
    count: int = Field(description="Points stored under this name, all ranks.", examples=[240])


class SeriesAxis(StrEnum):
    step = "step"
    time = "time"
    epoch = "epoch"


class SeriesPublic(BaseModel):
    """One series for a plot: at full resolution when the range holds at most ``max_points``
    points, else downsampled (M4: first, last, min and max of each bin) to at most that many."""

    name: str = Field(examples=["train/loss"])
    rank: int | None = Field(description="The rank asked for; None: mean over the ranks.")
    ranks: list[int] = Field(description="Ranks the series was read from.", examples=[[0]])
    axis: SeriesAxis = Field(description="What x holds: step, time (Unix seconds) or epoch.")
    x: list[float] = Field(description="Ascending.", examples=[[0, 10, 20]])
    y: list[float] = Field(examples=[[2.3, 1.1, 0.7]])
    total: int = Field(
        description="Points of the series in the range (steps, for a mean over ranks)."
    )
    downsampled: bool = Field(description="True when x, y hold fewer points than total.")
    last_id: int = Field(
        description="Newest point id the read saw: a metrics read with cursor=last_id returns "
        "exactly the points stored since; pass it as until_id to read other series as of the "
        "same moment."
    )


class IngestResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"stored": 120, "duplicate": False}]})

    stored: int = Field(description="Points stored by this request (0 for a repeated batch).")
    duplicate: bool = Field(description="True when this batch_id had been stored before.")


class HeartbeatAck(BaseModel):
    """The answer to a heartbeat: the run's state, so a worker learns that its run ended."""

    state: RunState = Field(description="The run's state now.")


class ResultPublic(RunResult):
    """The run's ``RunResult`` plus the run it belongs to."""

    run_id: int = Field(examples=[1])

    @classmethod
    def from_row(cls, row: Result) -> ResultPublic:
        return cls(
            run_id=row.run_id,
            goal_reached=row.goal_reached,
            goal_metric=row.goal_metric,
            goal_value=row.goal_value,
            time_to_goal_s=row.time_to_goal_s,
            final_value=row.final_value,
            samples_per_s=row.samples_per_s,
            total_time_s=row.total_time_s,
            steps=row.steps,
            epochs=row.epochs,
            epochs_to_goal=row.epochs_to_goal,
            best_value=row.best_value,
            bytes_communicated=row.bytes_communicated,
            phases=PhaseTimes(
                **{name: getattr(row, f"{name}_s") for name in PhaseTimes.model_fields}
            ),
            extra=row.extra,
        )


def load_spec(data: dict[str, Any]) -> RunSpec:
    """The stored spec of a run as a RunSpec.

    Validated normally; should the catalog have changed since the run was created (benchmark
    renamed, setting removed), the stored values are shown as they are instead of failing to
    list old runs.
    """
    try:
        return RunSpec.model_validate(data)
    except ValidationError:
        fields = {key: value for key, value in data.items() if key in RunSpec.model_fields}
        goal = dict(fields.get("goal") or {})
        fields["backend"] = Backend(fields.get("backend", Backend.gloo))
        fields["executor"] = ExecutorKind(fields.get("executor") or ExecutorKind.local)
        fields["resources"] = Resources.model_construct(**(fields.get("resources") or {}))
        fields["goal"] = Goal.model_construct(
            kind=GoalKind(goal.get("kind", GoalKind.full)), value=goal.get("value")
        )
        return RunSpec.model_construct(**fields)


class GroupRunPublic(BaseModel):
    """One run of a group, with what the summary is computed from."""

    id: int
    name: str
    seed: int
    state: RunState
    goal_reached: bool | None = Field(description="None while the run has no result.")
    time_to_goal_s: float | None
    final_value: float | None
    samples_per_s: float | None


class GroupSummaryPublic(BaseModel):
    """Repeats of one configuration and their time-to-goal summary (ended runs only)."""

    group: str
    runs: list[GroupRunPublic]
    time_to_goal: TimeToGoalSummary


class NodeResources(BaseModel):
    """Resources of one node: CPU in cores, memory in bytes, GPUs (``nvidia.com/gpu``)."""

    cpu: float = Field(examples=[3.5])
    memory: int = Field(description="Bytes.", examples=[16_642_998_272])
    gpu: int = Field(0, examples=[1])


class NodePublic(BaseModel):
    """A machine runs can use: a Kubernetes node, or this host when runs are local."""

    name: str = Field(examples=["gpu-node-1"])
    ready: bool = Field(description="Kubernetes condition Ready (always true for this host).")
    capacity: NodeResources
    allocatable: NodeResources = Field(
        description="What pods may request (Kubernetes); for this host: its CPUs and the "
        "memory available now."
    )
    arch: str | None = Field(None, examples=["amd64"])
    os: str | None = Field(None, examples=["linux"])
    instance_type: str | None = Field(None, examples=["g5.xlarge"])
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="The node's labels of interest (arch, os, instance type, zone, GPU model).",
    )
    source: Literal["kubernetes", "local"]
