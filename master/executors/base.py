"""Executor interface: how the master starts, stops and re-finds the workers of a run."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlbench_core.spec import RunSpec


@dataclass(frozen=True)
class Launch:
    """Everything an executor needs to start the workers of one run."""

    run_id: int
    spec: RunSpec
    api_url: str
    """Base URL of the master as the workers reach it, e.g. http://127.0.0.1:8000."""
    token: str
    """The run's own worker token (plain text; the master stores only its hash)."""


@dataclass(frozen=True)
class Exit:
    """How the workers of a run ended, as the executor saw it."""

    run_id: int
    exit_code: int | None
    """Launcher exit code; None when it could not be known (e.g. re-attached process)."""
    reason: str
    """One readable line: why it ended (exit code, signal, last log line)."""


# Called from the executor's own thread when a run's workers are gone.
ExitCallback = Callable[[Exit], None]


class Executor(ABC):
    kind: str
    runs_end_with_master: bool = False
    """True when the workers are this master's own processes: a master that shuts down
    stops them (and records ``stopped``) instead of leaving them unwatched."""

    def __init__(self, on_exit: ExitCallback) -> None:
        self._on_exit = on_exit

    @abstractmethod
    def start(self, launch: Launch) -> dict[str, Any]:
        """Start the workers; returns a JSON-able reference stored with the run."""

    @abstractmethod
    def stop(self, run_id: int, ref: dict[str, Any]) -> None:
        """Ask the workers to end; returns at once, the exit arrives through ``on_exit``."""

    @abstractmethod
    def reattach(self, run_id: int, ref: dict[str, Any]) -> bool:
        """After a master restart: watch the run again if its workers still live."""

    def shutdown(self) -> None:  # noqa: B027 - optional hook, most executors own nothing
        """Stop watching (and, for executors that own processes, stop them)."""
