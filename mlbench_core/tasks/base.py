"""The task interface: one benchmark = model + dataset + optimizer + quality goal."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ValidationError

from mlbench_core.tracker import Tracker
from mlbench_core.wire import RunResult


@dataclass(frozen=True)
class GoalSpec:
    """The quality target a task is judged by."""

    metric: str
    """Metric name the goal is read from, e.g. ``val/accuracy``."""
    higher_is_better: bool
    """True when larger values are better (accuracy), False for losses and perplexity."""
    full: float
    """Target of the full benchmark."""
    light: float
    """Easier target for quick checks."""

    def reached(self, value: float, target: float) -> bool:
        return value >= target if self.higher_is_better else value <= target


@dataclass
class TaskContext:
    """What a running task gets from the worker: its place in the job and where to report."""

    rank: int
    """Global rank of this process."""
    world_size: int
    """Number of processes in the job."""
    device: torch.device
    """Device this rank computes on (cpu, or cuda:LOCAL_RANK)."""
    seed: int
    """Seed shared by all ranks; tasks derive per-rank seeds from it where needed."""
    goal_kind: str
    """full, light or custom: micro-benchmarks without a quality goal map it to their size."""
    goal_value: float | None
    """Concrete target for the task's goal metric, None when the task has no quality goal."""
    tracker: Tracker
    """Phase timer and goal detector for this rank."""
    log: Callable[..., None]
    """``log(name, value, step=, epoch=)``: queue one metric point (never blocks)."""
    data_dir: str
    """Directory for datasets and caches shared by runs."""
    should_stop: Callable[[], bool] = field(default=lambda: False)
    """True once the run's time budget is spent; tasks check it between steps."""
    on_progress: Callable[[int], None] = field(default=lambda step: None)
    """Called with the step on every rank at each ``progress``: feeds the worker's heartbeat,
    so a rank that logs no metrics of its own still shows that it trains."""

    def progress(self, fraction: float, step: int, epoch: float = 0.0) -> None:
        """Report overall progress in [0, 1] (rank 0 only; clients draw progress bars from it)."""
        self.on_progress(step)
        if self.rank == 0:
            self.log("progress", min(max(fraction, 0.0), 1.0), step=step, epoch=epoch)


class Task(ABC):
    """Base class of every benchmark in the catalog."""

    id: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]
    Config: ClassVar[type[BaseModel]]
    goal: ClassVar[GoalSpec | None]

    @classmethod
    def config_from(cls, overrides: Mapping[str, Any]) -> BaseModel:
        """Defaults plus overrides, validated; unknown keys and bad values raise ValueError.

        A dotted key sets one entry of a mapping setting, so flat ``--set`` overrides reach
        nested settings: ``aggregator_settings.rank=4`` becomes ``{"aggregator_settings":
        {"rank": 4}}``.
        """
        nested: dict[str, Any] = {}
        for key, value in overrides.items():
            head, _, rest = key.partition(".")
            if rest:
                entry = nested.setdefault(head, {})
                if not isinstance(entry, dict):
                    raise ValueError(f"{cls.id}: {head!r} is set both as a whole and by {key!r}")
                entry[rest] = value
            elif isinstance(nested.get(head), dict) and not isinstance(value, dict):
                raise ValueError(f"{cls.id}: {head!r} is set both as a whole and by key")
            else:
                nested[head] = value
        known = sorted(cls.Config.model_fields)
        unknown = sorted(set(nested) - set(known))
        if unknown:
            raise ValueError(
                f"{', '.join(map(repr, unknown))} not a setting of {cls.id!r} "
                f"(settings: {', '.join(known)})"
            )
        try:
            return cls.Config.model_validate(nested)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ValueError(f"{cls.id}: setting {where!r}: {first['msg']}") from None

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Catalog entry: id, text, goal and the JSON schema of the settings."""
        goal = cls.goal
        return {
            "id": cls.id,
            "title": cls.title,
            "description": cls.description,
            "goal": None
            if goal is None
            else {
                "metric": goal.metric,
                "higher_is_better": goal.higher_is_better,
                "full": goal.full,
                "light": goal.light,
            },
            "settings": cls.Config.model_json_schema(),
        }

    @abstractmethod
    def run(self, ctx: TaskContext, config: BaseModel) -> RunResult:
        """Train/measure on every rank; the result of rank 0 is the run's result."""
