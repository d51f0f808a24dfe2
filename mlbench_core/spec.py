"""RunSpec: the one typed description of a run, shared by API, CLI, executors and workflows."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlbench_core import __version__

# Run names become Kubernetes object names later, so they follow the DNS-label rules.
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")

Scalar = bool | int | float | str

# The image built from this very release (docker/worker.Dockerfile, tag = package version), so
# a run never picks up a moving ``latest``.
DEFAULT_WORKER_IMAGE = f"mlbench/worker:{__version__}"


class Backend(StrEnum):
    gloo = "gloo"
    nccl = "nccl"


class ExecutorKind(StrEnum):
    local = "local"
    argo = "argo"


class GoalKind(StrEnum):
    full = "full"
    light = "light"
    custom = "custom"


class Resources(BaseModel):
    """Per-worker resources; the local executor records them, the Kubernetes path enforces them."""

    model_config = ConfigDict(extra="forbid")

    cpu: float = Field(1.0, gt=0, le=256, description="CPU cores per worker.")
    memory: str = Field("2Gi", description="Memory per worker, a Kubernetes quantity (e.g. 4Gi).")
    gpu: int = Field(0, ge=0, le=16, description="GPUs per worker (nvidia.com/gpu).")

    @field_validator("memory")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if not _QUANTITY.match(value):
            raise ValueError(f"memory {value!r} is not a quantity such as 512Mi or 4Gi")
        return value


class Goal(BaseModel):
    """Which quality target ends the run: the task's full or light goal, or a custom value."""

    model_config = ConfigDict(extra="forbid")

    kind: GoalKind = Field(GoalKind.full, description="full, light or custom.")
    value: float | None = Field(None, description="Target value; required for kind=custom.")

    @model_validator(mode="after")
    def _value_matches_kind(self) -> Goal:
        if self.kind is GoalKind.custom and self.value is None:
            raise ValueError("goal kind 'custom' needs a value")
        if self.kind is not GoalKind.custom and self.value is not None:
            raise ValueError(f"goal kind {self.kind.value!r} takes no value; use kind 'custom'")
        return self


class RunSpec(BaseModel):
    """Everything needed to start a run. Validated once, at the edge (API/CLI)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "digits-2w",
                    "benchmark": "digits-mlp",
                    "workers": 2,
                    "backend": "gloo",
                    "goal": {"kind": "full"},
                    "overrides": {"lr": 0.2},
                    "seed": 1,
                }
            ]
        },
    )

    name: Annotated[str, Field(pattern=NAME_PATTERN, description="DNS-label run name.")]
    benchmark: str = Field(description="Benchmark id from the catalog (GET /api/v1/benchmarks).")
    workers: int = Field(2, ge=1, le=256, description="Number of worker processes (world size).")
    backend: Backend = Field(Backend.gloo, description="torch.distributed backend.")
    resources: Resources = Field(default_factory=Resources)
    goal: Goal = Field(default_factory=Goal)
    overrides: dict[str, Scalar] = Field(
        default_factory=dict, description="Hyperparameter overrides, checked against the task."
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Random seed shared by all workers.")
    group: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="Repeats of one configuration (different seeds) share a group; the master "
        "summarises their time-to-goal.",
    )
    executor: ExecutorKind | None = Field(
        None,
        description="local or argo; unset = the master's default (MLBENCH_DEFAULT_EXECUTOR). "
        "The master stores the executor it used.",
    )
    image: str = Field(
        DEFAULT_WORKER_IMAGE,
        min_length=1,
        max_length=255,
        description="Worker image on Kubernetes; default: the worker image of this release.",
    )
    max_duration_s: int = Field(
        3600, ge=1, le=7 * 24 * 3600, description="Hard wall-clock limit for the whole run."
    )

    @model_validator(mode="after")
    def _check_against_catalog(self) -> RunSpec:
        from mlbench_core.tasks import get_task

        task = get_task(self.benchmark)  # raises ValueError listing known ids
        task.config_from(self.overrides)  # raises ValueError naming the bad key
        if self.goal.kind is GoalKind.custom and task.goal is None:
            raise ValueError(f"benchmark {self.benchmark!r} has no quality goal to set a value for")
        if self.backend is Backend.nccl and self.resources.gpu == 0:
            raise ValueError("backend 'nccl' needs resources.gpu >= 1")
        return self

    def goal_value(self) -> float | None:
        """The concrete target this run aims at (None for benchmarks without a quality goal)."""
        from mlbench_core.tasks import get_task

        goal = get_task(self.benchmark).goal
        if self.goal.kind is GoalKind.custom:
            return self.goal.value
        if goal is None:
            return None
        return goal.full if self.goal.kind is GoalKind.full else goal.light


def parse_override(text: str) -> tuple[str, Scalar]:
    """Parse one CLI ``key=value``; the value is read as bool, int, float, else string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"override {text!r} is not of the form key=value")
    value: Any = raw.strip()
    lowered = value.lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            continue
    return key, value
