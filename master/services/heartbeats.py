"""Heartbeats of running workers, and the watchdog that fails a run whose worker hangs.

Beats are kept in memory only: they are worth nothing after a few seconds, and writing each one
to the database would cost a write transaction per worker every two seconds. A restarted
master therefore starts every live run's clock afresh (at its own start), which errs towards
patience, never towards failing a healthy run. Rules: docs/reliability.md ("Hung workers").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from master.db import write_transaction
from master.executors.base import Executor
from master.models import Run
from master.services.runs import lock_run, stop_workers_quietly, transition
from mlbench_core.states import RunState
from mlbench_core.wire import Heartbeat

log = logging.getLogger(__name__)

SessionFactory = Callable[[], Session]


@dataclass
class _Beat:
    at: float  # monotonic time the master received it
    step: int
    idle_s: float
    final: bool


class HeartbeatMonitor:
    """Receives beats (``record``) and, on a thread of its own, fails hung runs (``check``)."""

    def __init__(
        self,
        session_factory: SessionFactory,
        executors: Mapping[str, Executor],
        *,
        timeout_s: float,
        progress_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session_factory = session_factory
        self.executors = executors
        self.timeout_s = timeout_s
        self.progress_timeout_s = progress_timeout_s
        self.interval_s = min(5.0, max(0.2, timeout_s / 4))
        self._clock = clock
        self._lock = threading.Lock()
        self._beats: dict[int, dict[int, _Beat]] = {}
        # When this master first saw each run running: the clock of a rank never heard from.
        self._seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, run_id: int, beat: Heartbeat) -> None:
        with self._lock:
            self._beats.setdefault(run_id, {})[beat.rank] = _Beat(
                self._clock(), beat.step, beat.idle_s, beat.final
            )

    # -- the watchdog -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="heartbeat-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # a database outage must not end the watchdog
                log.exception("heartbeat check failed; trying again in %.1f s", self.interval_s)

    def check(self) -> list[int]:
        """Fail every running run with a silent or stuck rank; returns the ids of those runs."""
        now = self._clock()
        with self.session_factory() as session:
            rows = session.execute(
                select(Run.id, Run.spec).where(Run.state == RunState.running.value)
            ).all()
        running = {run_id: int((spec or {}).get("workers", 1)) for run_id, spec in rows}
        failed: list[tuple[int, str]] = []
        with self._lock:
            for gone in (set(self._seen) | set(self._beats)) - set(running):
                self._seen.pop(gone, None)
                self._beats.pop(gone, None)
            for run_id, workers in running.items():
                since = self._seen.setdefault(run_id, now)
                reason = self._hang(self._beats.get(run_id, {}), workers, since, now)
                if reason is not None:
                    failed.append((run_id, reason))
        for run_id, reason in failed:
            self._fail(run_id, reason)
        return [run_id for run_id, _ in failed]

    def _hang(self, beats: dict[int, _Beat], workers: int, since: float, now: float) -> str | None:
        """Why the run counts as hung (naming the first such rank), or None."""
        for rank in range(workers):
            beat = beats.get(rank)
            if beat is None:
                if now - since > self.timeout_s:
                    return (
                        f"rank {rank}: no heartbeat for {now - since:.0f} s (none received "
                        f"since this master saw the run running; heartbeat_timeout_s="
                        f"{self.timeout_s:g})"
                    )
                continue
            if beat.final:
                continue
            silent = now - beat.at
            if silent > self.timeout_s:
                return (
                    f"rank {rank}: no heartbeat for {silent:.0f} s (last at step {beat.step}); "
                    f"its process is gone, frozen or cut off (heartbeat_timeout_s="
                    f"{self.timeout_s:g})"
                )
            idle = beat.idle_s + silent
            if idle > self.progress_timeout_s:
                return (
                    f"rank {rank}: alive but no training progress for {idle:.0f} s (stuck at "
                    f"step {beat.step}; progress_timeout_s={self.progress_timeout_s:g})"
                )
        return None

    def _fail(self, run_id: int, reason: str) -> None:
        stop_ref: tuple[str, dict[str, Any]] | None = None
        with self.session_factory() as session, write_transaction(session):
            run = lock_run(session, run_id)
            if RunState(run.state) is not RunState.running:
                return  # it ended or is being stopped meanwhile: nothing to do
            if transition(session, run, RunState.failed, reason):
                stop_ref = (run.executor, dict(run.executor_ref or {}))
        log.warning("run %s failed: %s", run_id, reason)
        with self._lock:
            self._beats.pop(run_id, None)
            self._seen.pop(run_id, None)
        if stop_ref is not None and (executor := self.executors.get(stop_ref[0])) is not None:
            stop_workers_quietly(executor, run_id, stop_ref[1])
