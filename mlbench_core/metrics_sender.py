"""The background half of :class:`~mlbench_core.metrics_client.MetricsClient`: its sender thread.

The training thread only queues points and reports (``metrics_client``); the sender thread
here turns the queue into requests, in order: the spool first, then what was queued. After a
delivery failed the master counts as down, and only a probe per interval goes out, so a dead
master costs one connection attempt per interval instead of a full retry sequence per batch.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from mlbench_core.reports import ClientStats, Outcome, Report, log
from mlbench_core.spool import Spool, batch_line, report_line
from mlbench_core.transport import Send, Transport


@dataclass
class FlushMarker:
    """Queued by ``flush()``; set once everything queued before it was sent or spooled."""

    done: threading.Event = field(default_factory=threading.Event)


QueueItem = dict[str, Any] | Report | FlushMarker
"""A queued point (a dict), report or flush marker."""


class SenderLoop:
    """Base class of ``MetricsClient`` holding the sender thread's side; not used alone.

    The attributes are set by ``MetricsClient.__init__``; the ones from ``_cond`` to
    ``_abandoned`` are shared with the training thread and guarded by ``_cond``.
    """

    flush_points: int
    flush_interval_s: float
    max_attempts: int
    backoff_s: float
    stats: ClientStats

    _cond: threading.Condition
    _queue: deque[QueueItem]
    _pending_points: int
    _oldest_pending: float
    _controls: int
    _overflow: list[dict[str, Any]]
    _closing: bool
    _deadline: float
    _abandoned: bool

    _down: bool
    _next_probe: float
    _gave_up: bool
    _metrics_path: str
    _spool_file: Spool
    _transport: Transport

    def _run(self) -> None:
        while True:
            try:
                item = self._next_item()
            except Exception:
                log.exception("metrics sender: unexpected error while waiting; continuing")
                time.sleep(0.05)
                continue
            if item is None:
                break
            try:
                self._handle(item)
            except Exception:
                # Never lose data to a bug here: keep what was in hand and go on.
                log.exception("metrics sender: unexpected error; spooling the item")
                try:
                    if isinstance(item, dict):
                        self._spool([item])  # same batch id: a copy that did arrive dedupes
                    elif isinstance(item, Report):
                        self._spool([report_line(item)])
                        item._finish(Outcome.spooled)
                    elif isinstance(item, FlushMarker):
                        item.done.set()
                except Exception:
                    log.exception("metrics sender: could not spool either")
        try:
            self._finish()
        except Exception:
            log.exception("metrics sender: error while finishing")

    def _next_item(self) -> QueueItem | str | None:
        """Block until there is work: a batch of points, a report, a flush marker or a probe."""
        with self._cond:
            while True:
                if self._abandoned:
                    return None
                now = _monotonic()
                if self._queue:
                    head = self._queue[0]
                    if not isinstance(head, dict):
                        self._queue.popleft()
                        self._controls -= 1
                        return head
                    due = self._oldest_pending + self.flush_interval_s
                    if (
                        self._closing
                        or self._controls
                        or self._pending_points >= self.flush_points
                        or now >= due
                    ):
                        return self._pop_batch(now)
                    timeout = due - now
                elif self._closing:
                    return None
                else:
                    timeout = None
                if self._down and not self._closing and self._spool_has_data():
                    if now >= self._next_probe:
                        return "probe"
                    probe_in = self._next_probe - now
                    timeout = probe_in if timeout is None else min(timeout, probe_in)
                elif self._overflow and not self._closing:
                    # Overflow points not yet a full chunk: write them out within an interval.
                    return "overflow"
                self._cond.wait(timeout)

    def _pop_batch(self, now: float) -> dict[str, Any]:
        batch: list[dict[str, Any]] = []
        while self._queue and isinstance(self._queue[0], dict) and len(batch) < self.flush_points:
            batch.append(self._queue.popleft())  # type: ignore[arg-type]
        self._pending_points -= len(batch)
        if self._pending_points:
            self._oldest_pending = now
        return batch_line(batch)

    def _handle(self, item: QueueItem | str) -> None:
        if item == "probe":
            self._deliver_spool()
        elif item == "overflow":
            self._spool_overflow()
        elif isinstance(item, dict):
            self._deliver_line(item)
        elif isinstance(item, Report):
            # Points that overflowed to memory before this report must reach the master first;
            # on disk they are replayed ahead of it.
            self._spool_overflow()
            item._finish(self._deliver_line(report_line(item)))
        elif isinstance(item, FlushMarker):
            self._spool_overflow()
            if self._spool_has_data():
                self._deliver_spool(force=True)
            item.done.set()

    def _finish(self) -> None:
        """Closing: everything queued was handled; write the overflow, replay the spool once."""
        self._spool_overflow()
        if self._spool_has_data() and not self._gave_up and _monotonic() < self._deadline:
            self._deliver_spool(force=True)

    def _deliver_line(self, line: dict[str, Any]) -> Outcome:
        """Send one batch/report, after the spool (order); spool it when that is not possible."""
        if self._spool_has_data() and not self._deliver_spool():
            self._spool([line])
            return Outcome.spooled
        if self._skip_network():
            self._spool([line])
            return Outcome.spooled
        result = self._send_line(line, self._attempts())
        if result is Send.failed:
            self._spool([line])
            return Outcome.spooled
        return Outcome.sent if result is Send.ok else Outcome.rejected

    def _skip_network(self) -> bool:
        if self._gave_up:
            return True
        if self._closing:
            return _monotonic() >= self._deadline
        return self._down and _monotonic() < self._next_probe

    def _attempts(self) -> int:
        # A master known to be down gets a single probe, not a full retry sequence.
        return 1 if self._down else self.max_attempts

    def _send_line(self, line: dict[str, Any], attempts: int) -> Send:
        if "batch_id" in line:
            method, path, body, kind = "POST", self._metrics_path, line, "metrics"
        else:
            method, path, body, kind = line["method"], line["path"], line["body"], line["report"]
        result = self._transport.request(method, path, body, attempts)
        if result is Send.ok:
            self._down = False
            if kind == "metrics":
                self.stats.sent_batches += 1
                self.stats.sent_points += len(line["points"])
            else:
                self.stats.sent_reports += 1
        elif result is Send.rejected:
            if kind == "metrics":
                self.stats.dropped_rejected += len(line["points"])
            else:
                self.stats.rejected_reports += 1
        else:
            self._down = True
            self._next_probe = _monotonic() + max(self.flush_interval_s, self.backoff_s)
            if self._closing:
                self._gave_up = True
        return result

    def _close_deadline(self) -> float | None:
        """For the transport: when a closing client must be done; None while not closing."""
        return self._deadline if self._closing else None

    # ------------------------------------------------------------------ spool

    def _spool_has_data(self) -> bool:
        return self._spool_file.has_data()

    def _spool(self, lines: list[dict[str, Any]]) -> None:
        self._spool_file.append(lines)

    def _spool_overflow(self) -> None:
        with self._cond:
            chunk, self._overflow = self._overflow, []
        if chunk:
            self._spool([batch_line(chunk)])

    def _spool_items(self, items: list[QueueItem], overflow: list[dict[str, Any]]) -> None:
        lines: list[dict[str, Any]] = []
        points: list[dict[str, Any]] = []

        def cut() -> None:
            for start in range(0, len(points), self.flush_points):
                lines.append(batch_line(points[start : start + self.flush_points]))
            points.clear()

        for item in items:
            if isinstance(item, dict):
                points.append(item)
            elif isinstance(item, Report):
                cut()
                lines.append(report_line(item))
                item._finish(Outcome.spooled)
            else:
                item.done.set()
        points.extend(overflow)
        cut()
        self._spool(lines)

    def _deliver_spool(self, force: bool = False) -> bool:
        """Replay the spool in order (see ``Spool.replay``); True when it is empty afterwards."""
        if not force and self._skip_network():
            return not self._spool_has_data()
        return self._spool_file.replay(self._replay_line)

    def _replay_line(self, line: dict[str, Any]) -> bool:
        """Deliver one spooled line; False when it must stay spooled (master down, too late)."""
        if (self._closing and _monotonic() >= self._deadline) or self._gave_up:
            return False
        result = self._send_line(line, self._attempts())
        if result is Send.ok:
            self.stats.replayed_batches += 1
        return result is not Send.failed


def _monotonic() -> float:
    return time.monotonic()
