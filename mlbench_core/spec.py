"""RunSpec: the one typed description of a run, shared by API, CLI, executors and workflows."""

from __future__ import annotations

import json
import math
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mlbench_core import __version__
from mlbench_core.wire import Finite

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
    # Finite: JSON has no NaN (a stored spec must be valid JSON, which PostgreSQL checks).
    value: Finite | None = Field(None, description="Target value; required for kind=custom.")

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

    @field_validator("image")
    @classmethod
    def _printable_image(cls, value: str) -> str:
        # An image reference has no whitespace or control characters; a NUL byte or newline
        # would otherwise travel into pod manifests and logs.
        if any(ch.isspace() or not ch.isprintable() for ch in value):
            raise ValueError(f"image {value!r} contains whitespace or a control character")
        return value

    @field_validator("overrides")
    @classmethod
    def _finite_overrides(cls, value: dict[str, Scalar]) -> dict[str, Scalar]:
        for key, item in value.items():
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"setting {key!r}: {item} is not a finite number")
        return value

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


MAX_SPEC_FILE_BYTES = 1024 * 1024


class SpecFileError(ValueError):
    """A RunSpec file that cannot be used; the message is one line naming the file and why."""


def load_spec_file(path: str | os.PathLike[str]) -> RunSpec:
    """Read and validate a RunSpec from a JSON or YAML file (``.yaml``/``.yml``: YAML; else
    JSON, then YAML). Every problem, from a missing file to a wrong field, is one
    ``SpecFileError`` line, so the CLI and the worker can print it as it is."""
    source = Path(path)
    try:
        with source.open("rb") as handle:
            raw = handle.read(MAX_SPEC_FILE_BYTES + 1)
    except OSError as exc:
        raise SpecFileError(f"cannot read spec file {source}: {exc.strerror or exc}") from None
    if len(raw) > MAX_SPEC_FILE_BYTES:
        raise SpecFileError(
            f"invalid run spec in {source}: larger than {MAX_SPEC_FILE_BYTES} bytes"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecFileError(
            f"invalid run spec in {source}: not UTF-8 text (byte {exc.start})"
        ) from None
    data = _parse_spec_text(source, text)
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise SpecFileError(
            f"invalid run spec in {source}: {kind}, not a mapping of RunSpec fields"
        )
    try:
        return RunSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecFileError(
            f"invalid run spec in {source}: {describe_validation_error(exc, 500)}"
        ) from None


def _parse_spec_text(source: Path, text: str) -> Any:
    if source.suffix.lower() not in (".yaml", ".yml"):
        try:
            return json.loads(text)
        except RecursionError:
            raise SpecFileError(f"invalid run spec in {source}: nested too deeply") from None
        except json.JSONDecodeError as exc:
            if source.suffix.lower() == ".json":
                raise SpecFileError(
                    f"invalid run spec in {source}: not valid JSON: {exc.msg} at line {exc.lineno} "
                    f"column {exc.colno}"
                ) from None
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader: plain data only
    except RecursionError:
        raise SpecFileError(f"invalid run spec in {source}: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or type(exc).__name__).split())
        raise SpecFileError(
            f"invalid run spec in {source}: neither JSON nor YAML: {problem}{where}"
        ) from None


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: a spec needs none, and aliases let a few bytes expand
    into a huge structure ("billion laughs")."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a run spec", event.start_mark
            )
        return super().compose_node(parent, index)


def describe_validation_error(exc: ValidationError, limit: int = 4000) -> str:
    """The first pydantic error as ``field: message`` (plus how many more), on one line of at
    most ``limit`` characters: what the CLI, the worker and the launcher step print."""
    errors = exc.errors(include_url=False)
    if not errors:
        text = str(exc)
    else:
        first = errors[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        text = f"{where}: {message}" if where else message
        if len(errors) > 1:
            text += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
