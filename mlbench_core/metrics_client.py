"""Worker side of the metrics path: batched, retried, spooled reports to the master.

Training code calls :meth:`MetricsClient.log` on its hot path, so ``log`` only validates the
point and appends it to an in-memory queue; a background thread
(:mod:`mlbench_core.metrics_sender`) turns the queue into ``MetricBatch`` requests. The
guarantees (DESIGN.md: Metrics):

* ``log`` never blocks on the network and never raises.
* Each batch gets a uuid4 ``batch_id`` once, so a batch retried after a lost response is
  stored once by the master.
* Memory is bounded: past ``max_pending`` queued points, new points go to a spool file on
  local disk. A batch (or status/result report) that still fails after all retries is also
  appended to the spool, and the client carries on. The spool is replayed, in order and with
  the same batch ids, before anything newer once the master answers again, and on ``close()``.
* ``status`` and ``result`` are queued behind the points logged before them, so when the master
  sees ``succeeded`` every earlier metric has been stored.

The spool file and its format: :mod:`mlbench_core.spool`; retries: :mod:`mlbench_core.transport`.
``ClientStats``, ``Reporter``, ``Outcome``, ``Report`` and ``NullReporter`` live in
:mod:`mlbench_core.reports` and are re-exported here.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from mlbench_core.heartbeat import HeartbeatSender
from mlbench_core.metrics_sender import FlushMarker, QueueItem, SenderLoop, _monotonic
from mlbench_core.reports import ClientStats, NullReporter, Outcome, Report, Reporter, log
from mlbench_core.spool import Spool, batch_line, report_line
from mlbench_core.transport import Transport, one_line
from mlbench_core.wire import (
    MAX_BATCH_POINTS,
    METRIC_NAME_PATTERN,
    Manifest,
    RunResult,
    StatusUpdate,
)

__all__ = ["ClientStats", "MetricsClient", "NullReporter", "Outcome", "Report", "Reporter"]

_NAME_RE = re.compile(METRIC_NAME_PATTERN)
_MAX_STEP = 2**62
_MAX_RANK = 65_535
_MAX_REASON = 4000


class MetricsClient(SenderLoop):
    """Batches metric points to the master from a background thread; see the module doc."""

    def __init__(
        self,
        api_url: str,
        run_id: int,
        token: str,
        rank: int,
        *,
        spool_dir: str | os.PathLike[str],
        flush_points: int = 500,
        flush_interval_s: float = 1.0,
        max_pending: int = 50_000,
        timeout_s: float = 5.0,
        max_attempts: int = 5,
        backoff_s: float = 0.2,
        max_backoff_s: float = 10.0,
        heartbeat_s: float | None = None,
    ) -> None:
        if not 1 <= flush_points <= MAX_BATCH_POINTS:
            raise ValueError(f"flush_points must be in [1, {MAX_BATCH_POINTS}]")
        if max_pending < flush_points:
            raise ValueError("max_pending must be >= flush_points")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if not 0 <= rank <= _MAX_RANK:
            raise ValueError(f"rank must be in [0, {_MAX_RANK}]")
        self.api_url = api_url.rstrip("/")
        self.run_id = run_id
        self.rank = rank
        self.flush_points = flush_points
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.stats = ClientStats()

        self._headers = {"Authorization": f"Bearer {token}"}
        self._run_path = f"/api/v1/runs/{run_id}"
        self._metrics_path = f"{self._run_path}/metrics"
        self._spool_file = Spool(Path(spool_dir), f"run{run_id}-rank{rank}.jsonl", self.stats)
        self.spool_path = self._spool_file.path

        # Everything below _cond is shared between log()/status() and the sender thread.
        self._cond = threading.Condition()
        self._queue: deque[QueueItem] = deque()
        self._pending_points = 0
        self._oldest_pending = 0.0  # monotonic time the oldest queued point arrived
        self._controls = 0  # reports and flush markers in the queue: they end a batch early
        self._overflow: list[dict[str, Any]] = []
        self._closing = False
        self._deadline = math.inf
        self._abandoned = False
        self._warned: set[str] = set()

        # Sender-thread state: after a delivery failed, the master counts as down and only a
        # probe per interval goes out, so a dead master costs one connection attempt per
        # interval instead of a full retry sequence per batch.
        self._down = False
        self._next_probe = 0.0
        self._gave_up = False  # closing and the master is unreachable: spool the rest

        self._transport = Transport(
            self.api_url,
            self._headers,
            stats=self.stats,
            close_deadline=self._close_deadline,
            timeout_s=timeout_s,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
        )
        self._thread = threading.Thread(
            target=self._run, name=f"mlbench-metrics-rank{rank}", daemon=True
        )
        self._thread.start()
        # Progress for the heartbeat: written by log() only, read by the heartbeat thread.
        self._progress_step = 0
        self._progress_at = _monotonic()
        self._heartbeat = (
            None
            if heartbeat_s is None
            else HeartbeatSender(
                self.api_url, run_id, self._headers, rank, self._progress, interval_s=heartbeat_s
            )
        )

    # ------------------------------------------------------------------ training-thread API

    def log(
        self,
        name: str,
        value: float,
        *,
        step: int,
        epoch: float = 0.0,
        time: float | None = None,
    ) -> None:
        """Queue one point; never blocks on the network, never raises."""
        try:
            self._log(name, value, step, epoch, time)
        except Exception:  # reporting must never break training
            self._warn_once("log-error", "dropping a metric point after an internal error")
            log.debug("log() failed", exc_info=True)

    def _log(self, name: str, value: float, step: int, epoch: float, when: float | None) -> None:
        value = float(value)
        if not math.isfinite(value):
            self.stats.dropped_nonfinite += 1
            self._warn_once(f"nonfinite:{name}", f"dropping non-finite value of {name!r}")
            return
        step = int(step)
        epoch = float(epoch)
        when = _wall_time() if when is None else float(when)
        if (
            not isinstance(name, str)
            or not _NAME_RE.match(name)
            or not 0 <= step <= _MAX_STEP
            or not (math.isfinite(epoch) and epoch >= 0)
            or not math.isfinite(when)
        ):
            self.stats.dropped_invalid += 1
            self._warn_once(
                f"invalid:{name}",
                f"dropping invalid metric point name={name!r} step={step} epoch={epoch}",
            )
            return
        self._progress_step, self._progress_at = step, _monotonic()
        point = {
            "name": name,
            "rank": self.rank,
            "step": step,
            "epoch": epoch,
            "time": when,
            "value": value,
        }
        chunk: list[dict[str, Any]] | None = None
        with self._cond:
            if self._closing or self._pending_points >= self.max_pending:
                # Memory stays bounded: overflow collects into spool-sized chunks on disk.
                self._overflow.append(point)
                if self._closing or len(self._overflow) >= self.flush_points:
                    chunk, self._overflow = self._overflow, []
            else:
                self._queue.append(point)
                self._pending_points += 1
                if self._pending_points == 1:
                    # Wake the sender so it arms the interval timer for this first point.
                    self._oldest_pending = _monotonic()
                    self._cond.notify()
                elif self._pending_points >= self.flush_points:
                    self._cond.notify()
        if chunk:
            self._spool([batch_line(chunk)])

    def status(self, state: str, reason: str = "") -> Report | None:
        """Queue a status report (behind every point logged so far); never raises."""
        try:
            update = StatusUpdate(state=state, rank=self.rank, reason=reason[:_MAX_REASON])  # type: ignore[arg-type]
        except Exception as exc:
            log.error("not sending invalid status %r: %s", state, one_line(str(exc)))
            return None
        return self._enqueue_report(
            Report("status", "POST", f"{self._run_path}/status", update.model_dump(mode="json"))
        )

    def result(self, result: RunResult) -> Report | None:
        """Queue the run's result (behind every point logged so far); never raises."""
        try:
            body = result.model_dump(mode="json")
        except Exception as exc:
            log.error("not sending invalid result: %s", one_line(str(exc)))
            return None
        return self._enqueue_report(Report("result", "PUT", f"{self._run_path}/result", body))

    def manifest(self, manifest: Manifest) -> Report | None:
        """Queue the run's manifest (rank 0, once at start); never raises."""
        body = manifest.model_dump(mode="json")
        return self._enqueue_report(Report("manifest", "PUT", f"{self._run_path}/manifest", body))

    def _enqueue_report(self, report: Report) -> Report:
        with self._cond:
            if self._closing:
                log.error("%s report after close(): spooling it", report.kind)
                closed = True
            else:
                self._queue.append(report)
                self._controls += 1
                self._cond.notify()
                closed = False
        if closed:
            self._spool([report_line(report)])
            report._finish(Outcome.spooled)
        return report

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued so far was sent or spooled; False on timeout."""
        marker = FlushMarker()
        with self._cond:
            if self._closing:
                return not self._thread.is_alive()
            self._queue.append(marker)
            self._controls += 1
            self._cond.notify()
        return marker.done.wait(timeout_s)

    def run_state(self) -> str | None:
        """The run's state in the master (GET /runs/{id}); None when it cannot be read."""
        try:
            response = httpx.get(
                f"{self.api_url}{self._run_path}",
                headers=self._headers,
                timeout=min(self.timeout_s, 5.0),
            )
            response.raise_for_status()
            state = response.json().get("state")
            return state if isinstance(state, str) else None
        except Exception as exc:
            log.warning("could not read the run's state from the master: %s", one_line(str(exc)))
            return None

    def mark_progress(self, step: int) -> None:
        """The training thread is at ``step`` (heartbeat; ``log`` marks progress too)."""
        self._progress_step, self._progress_at = max(0, int(step)), _monotonic()

    def _progress(self) -> tuple[int, float]:
        return self._progress_step, _monotonic() - self._progress_at

    def close(self, timeout_s: float = 10.0) -> None:
        """Send (or spool) everything, replay the spool if the master answers, stop the thread."""
        heartbeat, self._heartbeat = self._heartbeat, None
        if heartbeat is not None:
            heartbeat.close()
        with self._cond:
            if self._closing:
                already = True
            else:
                already = False
                self._closing = True
                self._deadline = _monotonic() + timeout_s
                self._cond.notify_all()
        if already:
            self._thread.join(timeout_s)
            return
        self._thread.join(timeout_s + 1.0)
        if self._thread.is_alive():
            # The sender is stuck in a request: take what it has not reached and keep it on
            # disk. The thread is a daemon, so it cannot hold the process open.
            with self._cond:
                self._abandoned = True
                left = list(self._queue)
                self._queue.clear()
                self._pending_points = 0
                overflow, self._overflow = self._overflow, []
            self._spool_items(left, overflow)
            log.warning("metrics sender did not finish in %.1fs; the rest is spooled", timeout_s)
        else:
            self._transport.close()
        log.info(
            "metrics client closed: %s%s",
            self.stats,
            f"; spool {self.spool_path} still holds data" if self._spool_has_data() else "",
        )

    def __enter__(self) -> MetricsClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned and len(self._warned) < 1000:
            self._warned.add(key)
            log.warning(message)


def _wall_time() -> float:
    return time.time()
