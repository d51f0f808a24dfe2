"""Benchmark catalog: task ids to task classes."""

from __future__ import annotations

from mlbench_core.tasks.base import GoalSpec, Task, TaskContext

_REGISTRY: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    if cls.id in _REGISTRY:
        raise RuntimeError(f"task id {cls.id!r} registered twice")
    _REGISTRY[cls.id] = cls
    return cls


def get_task(task_id: str) -> type[Task]:
    _load_builtin()
    try:
        return _REGISTRY[task_id]
    except KeyError:
        raise ValueError(
            f"unknown benchmark {task_id!r} (known: {', '.join(sorted(_REGISTRY))})"
        ) from None


def all_tasks() -> list[type[Task]]:
    _load_builtin()
    return [_REGISTRY[key] for key in sorted(_REGISTRY)]


def _load_builtin() -> None:
    # Imported lazily so that `import mlbench_core.tasks` stays cheap for the master.
    from mlbench_core.tasks import (  # noqa: F401
        allreduce,
        cifar_resnet,
        digits,
        epsilon_logreg,
        wikitext_lstm,
        wmt_transformer,
    )


__all__ = ["GoalSpec", "Task", "TaskContext", "all_tasks", "get_task", "register"]
