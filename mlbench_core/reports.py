"""What the worker reports through: the ``Reporter`` interface, reports and their outcomes.

``MetricsClient`` (:mod:`mlbench_core.metrics_client`) and ``NullReporter`` implement
``Reporter``; ``ClientStats`` counts what the client did with the points and reports it got.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from mlbench_core.wire import Manifest, RunResult

# The logger of the metrics client: the whole client path logs under one name, as it did when
# it was a single module, so logging configured for that name keeps covering all of it.
log = logging.getLogger("mlbench_core.metrics_client")


@dataclass
class ClientStats:
    """Counters of what happened to the points and reports handed to the client."""

    sent_points: int = 0
    """Points in batches the master acknowledged (including acknowledged duplicates)."""
    sent_batches: int = 0
    """Metric batches the master acknowledged, replayed ones included."""
    retries: int = 0
    """Request attempts repeated after a connection error, 5xx or 429."""
    dropped_nonfinite: int = 0
    """Points dropped because the value was NaN or infinite (JSON cannot carry them)."""
    dropped_invalid: int = 0
    """Points dropped because name, step or epoch would make the master reject the batch."""
    dropped_rejected: int = 0
    """Points in batches the master refused with a 4xx other than 429."""
    rejected_reports: int = 0
    """Status/result reports the master refused with a 4xx other than 429."""
    spooled_batches: int = 0
    """Batches (and reports) written to the spool file."""
    replayed_batches: int = 0
    """Spooled batches (and reports) later delivered to the master."""
    sent_reports: int = 0
    """Status/result reports the master acknowledged."""


class Reporter(Protocol):
    """What the worker needs from a metrics client (``MetricsClient`` or ``NullReporter``)."""

    def log(
        self, name: str, value: float, *, step: int, epoch: float = 0.0, time: float | None = None
    ) -> None: ...

    def status(self, state: str, reason: str = "") -> Report | None: ...

    def result(self, result: RunResult) -> Report | None: ...

    def manifest(self, manifest: Manifest) -> Report | None: ...

    def run_state(self) -> str | None: ...

    def mark_progress(self, step: int) -> None: ...

    def close(self, timeout_s: float = 10.0) -> None: ...


class Outcome(Enum):
    """What became of one report."""

    pending = "pending"
    sent = "sent"
    rejected = "rejected"
    spooled = "spooled"


@dataclass
class Report:
    """A queued status or result report; ``wait`` tells whether the master got it."""

    kind: str
    method: str
    path: str
    body: dict[str, Any]
    outcome: Outcome = Outcome.pending
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the report was handled; True if the master acknowledged it."""
        self._done.wait(timeout)
        return self.outcome is Outcome.sent

    def _finish(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self._done.set()


class NullReporter:
    """Reporter for ``--no-report`` debugging: points go to the log, nothing to a master."""

    def __init__(self, rank: int = 0) -> None:
        self.rank = rank

    def log(
        self, name: str, value: float, *, step: int, epoch: float = 0.0, time: float | None = None
    ) -> None:
        log.debug(
            "metric %s rank=%d step=%d epoch=%.3f value=%g", name, self.rank, step, epoch, value
        )

    def status(self, state: str, reason: str = "") -> Report | None:
        log.info("status %s%s", state, f": {reason}" if reason else "")
        return None

    def result(self, result: RunResult) -> Report | None:
        log.info("result %s", result.model_dump_json())
        return None

    def manifest(self, manifest: Manifest) -> Report | None:
        log.info("manifest %s", manifest.model_dump_json())
        return None

    def run_state(self) -> str | None:
        return None

    def mark_progress(self, step: int) -> None:
        return None

    def close(self, timeout_s: float = 10.0) -> None:
        return None
