"""Worker side of the metrics path: batched, retried, spooled reports to the master.

Training code calls :meth:`MetricsClient.log` on its hot path, so ``log`` only validates the
point and appends it to an in-memory queue; a background thread turns the queue into
``MetricBatch`` requests. The guarantees (DESIGN.md: Metrics):

* ``log`` never blocks on the network and never raises.
* Each batch gets a uuid4 ``batch_id`` once, so a batch retried after a lost response is
  stored once by the master.
* Memory is bounded: past ``max_pending`` queued points, new points go to a spool file on
  local disk. A batch (or status/result report) that still fails after all retries is also
  appended to the spool, and the client carries on. The spool is replayed, in order and with
  the same batch ids, before anything newer once the master answers again, and on ``close()``.
* ``status`` and ``result`` are queued behind the points logged before them, so when the master
  sees ``succeeded`` every earlier metric has been stored.

Spool file: ``<spool_dir>/run<id>-rank<r>.jsonl``; one JSON object per line, either a
``MetricBatch`` (``{"batch_id", "points"}``) or a report
(``{"report": "status"|"result", "method", "path", "body"}``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)
from tenacity.stop import stop_base

from mlbench_core.wire import MAX_BATCH_POINTS, METRIC_NAME_PATTERN, RunResult, StatusUpdate

log = logging.getLogger(__name__)

_NAME_RE = re.compile(METRIC_NAME_PATTERN)
_MAX_STEP = 2**62
_MAX_RANK = 65_535
_MAX_REASON = 4000


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

    def run_state(self) -> str | None: ...

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


@dataclass
class _Flush:
    done: threading.Event = field(default_factory=threading.Event)


class _RetryableStatus(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text}")
        self.status = status


class _Rejected(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text}")
        self.status = status


class _stop_at_deadline(stop_base):
    """Stop retrying when the next sleep would end past the deadline (close/flush timeouts)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return time.monotonic() + (retry_state.upcoming_sleep or 0.0) >= self.deadline


class _Send(Enum):
    ok = "ok"
    rejected = "rejected"
    failed = "failed"


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class MetricsClient:
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
        spool = Path(spool_dir)
        spool.mkdir(parents=True, exist_ok=True)
        self.spool_path = spool / f"run{run_id}-rank{rank}.jsonl"
        self._replay_path = self.spool_path.with_name(self.spool_path.name + ".replaying")
        self._spool_lock = threading.Lock()

        # Everything below _cond is shared between log()/status() and the sender thread.
        self._cond = threading.Condition()
        self._queue: deque[dict[str, Any] | Report | _Flush] = deque()
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

        self._http = httpx.Client(base_url=self.api_url, headers=self._headers)
        self._thread = threading.Thread(
            target=self._run, name=f"mlbench-metrics-rank{rank}", daemon=True
        )
        self._thread.start()

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
            self._spool([_new_batch(chunk)])

    def status(self, state: str, reason: str = "") -> Report | None:
        """Queue a status report (behind every point logged so far); never raises."""
        try:
            update = StatusUpdate(state=state, rank=self.rank, reason=reason[:_MAX_REASON])  # type: ignore[arg-type]
        except Exception as exc:
            log.error("not sending invalid status %r: %s", state, _one_line(str(exc)))
            return None
        return self._enqueue_report(
            Report("status", "POST", f"{self._run_path}/status", update.model_dump(mode="json"))
        )

    def result(self, result: RunResult) -> Report | None:
        """Queue the run's result (behind every point logged so far); never raises."""
        try:
            body = result.model_dump(mode="json")
        except Exception as exc:
            log.error("not sending invalid result: %s", _one_line(str(exc)))
            return None
        return self._enqueue_report(Report("result", "PUT", f"{self._run_path}/result", body))

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
            self._spool([_report_line(report)])
            report._finish(Outcome.spooled)
        return report

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued so far was sent or spooled; False on timeout."""
        marker = _Flush()
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
            log.warning("could not read the run's state from the master: %s", _one_line(str(exc)))
            return None

    def close(self, timeout_s: float = 10.0) -> None:
        """Send (or spool) everything, replay the spool if the master answers, stop the thread."""
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
            self._http.close()
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

    # ------------------------------------------------------------------ sender thread

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
                        self._spool([_report_line(item)])
                        item._finish(Outcome.spooled)
                    elif isinstance(item, _Flush):
                        item.done.set()
                except Exception:
                    log.exception("metrics sender: could not spool either")
        try:
            self._finish()
        except Exception:
            log.exception("metrics sender: error while finishing")

    def _next_item(self) -> dict[str, Any] | Report | _Flush | str | None:
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
        return _new_batch(batch)

    def _handle(self, item: dict[str, Any] | Report | _Flush | str) -> None:
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
            item._finish(self._deliver_line(_report_line(item)))
        elif isinstance(item, _Flush):
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
        if result is _Send.failed:
            self._spool([line])
            return Outcome.spooled
        return Outcome.sent if result is _Send.ok else Outcome.rejected

    def _skip_network(self) -> bool:
        if self._gave_up:
            return True
        if self._closing:
            return _monotonic() >= self._deadline
        return self._down and _monotonic() < self._next_probe

    def _attempts(self) -> int:
        # A master known to be down gets a single probe, not a full retry sequence.
        return 1 if self._down else self.max_attempts

    def _send_line(self, line: dict[str, Any], attempts: int) -> _Send:
        if "batch_id" in line:
            method, path, body, kind = "POST", self._metrics_path, line, "metrics"
        else:
            method, path, body, kind = line["method"], line["path"], line["body"], line["report"]
        result = self._request(method, path, body, attempts)
        if result is _Send.ok:
            self._down = False
            if kind == "metrics":
                self.stats.sent_batches += 1
                self.stats.sent_points += len(line["points"])
            else:
                self.stats.sent_reports += 1
        elif result is _Send.rejected:
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

    def _request(self, method: str, path: str, body: dict[str, Any], attempts: int) -> _Send:
        content = json.dumps(body, separators=(",", ":"), allow_nan=False)
        stop = stop_after_attempt(attempts)
        if self._closing:
            stop = stop | _stop_at_deadline(self._deadline)
        retrying = Retrying(
            stop=stop,
            wait=wait_exponential(
                multiplier=self.backoff_s, min=self.backoff_s, max=self.max_backoff_s
            ),
            retry=retry_if_exception_type((httpx.TransportError, _RetryableStatus)),
            before_sleep=self._before_retry,
            reraise=True,
        )
        try:
            retrying(self._send_once, method, path, content)
        except _Rejected as exc:
            # A 4xx means a bug or a run that is gone: repeating cannot help.
            log.error("master rejected %s %s: %s; dropping it", method, path, _one_line(str(exc)))
            return _Send.rejected
        except (httpx.TransportError, _RetryableStatus) as exc:
            log.warning(
                "master unreachable for %s %s after %d attempt(s): %s",
                method,
                path,
                attempts,
                _one_line(f"{type(exc).__name__}: {exc}"),
            )
            return _Send.failed
        return _Send.ok

    def _send_once(self, method: str, path: str, content: str) -> None:
        timeout = self.timeout_s
        if self._closing:
            timeout = max(0.1, min(timeout, self._deadline - _monotonic()))
        response = self._http.request(
            method,
            path,
            content=content,
            headers={"Content-Type": "application/json"},
            timeout=timeout,
        )
        if response.status_code == 429 or response.status_code >= 500:
            raise _RetryableStatus(response.status_code, _one_line(response.text, 200))
        if response.status_code >= 400:
            raise _Rejected(response.status_code, _one_line(response.text, 200))

    def _before_retry(self, retry_state: RetryCallState) -> None:
        self.stats.retries += 1
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        log.debug("retrying after attempt %d: %s", retry_state.attempt_number, _one_line(repr(exc)))

    # ------------------------------------------------------------------ spool

    def _spool_has_data(self) -> bool:
        for path in (self._replay_path, self.spool_path):
            try:
                if path.stat().st_size > 0:
                    return True
            except FileNotFoundError:
                continue
        return False

    def _spool(self, lines: list[dict[str, Any]]) -> None:
        if not lines:
            return
        data = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
        with self._spool_lock, open(self.spool_path, "a", encoding="utf-8") as fh:
            fh.write(data)
            self.stats.spooled_batches += len(lines)

    def _spool_overflow(self) -> None:
        with self._cond:
            chunk, self._overflow = self._overflow, []
        if chunk:
            self._spool([_new_batch(chunk)])

    def _spool_items(
        self, items: list[dict[str, Any] | Report | _Flush], overflow: list[dict[str, Any]]
    ) -> None:
        lines: list[dict[str, Any]] = []
        points: list[dict[str, Any]] = []

        def cut() -> None:
            for start in range(0, len(points), self.flush_points):
                lines.append(_new_batch(points[start : start + self.flush_points]))
            points.clear()

        for item in items:
            if isinstance(item, dict):
                points.append(item)
            elif isinstance(item, Report):
                cut()
                lines.append(_report_line(item))
                item._finish(Outcome.spooled)
            else:
                item.done.set()
        points.extend(overflow)
        cut()
        self._spool(lines)

    def _deliver_spool(self, force: bool = False) -> bool:
        """Replay the spool in order; True when it is empty afterwards.

        The spool file is first renamed to ``.replaying`` so that new spooling (from ``log``
        on overflow) goes to a fresh file meanwhile; whatever cannot be delivered is put back
        in front of it, keeping the original order.
        """
        if not force and self._skip_network():
            return not self._spool_has_data()
        with self._spool_lock:
            if self._replay_path.exists():
                # Left over from an interrupted replay (or a crashed process): it comes first.
                if self.spool_path.exists():
                    with open(self._replay_path, "ab") as out, open(self.spool_path, "rb") as src:
                        shutil.copyfileobj(src, out)
                    self.spool_path.unlink()
            elif self.spool_path.exists():
                os.replace(self.spool_path, self._replay_path)
            else:
                return True
        with open(self._replay_path, "rb") as fh:
            while True:
                raw = fh.readline()
                if not raw:
                    break
                if not raw.strip():
                    continue
                try:
                    line = json.loads(raw)
                    if "batch_id" not in line and "report" not in line:
                        raise ValueError("neither a batch nor a report")
                except ValueError:
                    log.warning("skipping a corrupt spool line in %s", self._replay_path)
                    continue
                if (self._closing and _monotonic() >= self._deadline) or self._gave_up:
                    result = _Send.failed
                else:
                    result = self._send_line(line, self._attempts())
                if result is _Send.failed:
                    self._unreplay(raw, fh)
                    return False
                if result is _Send.ok:
                    self.stats.replayed_batches += 1
        self._replay_path.unlink()
        return True

    def _unreplay(self, current: bytes, rest: Any) -> None:
        """Put the undelivered part of the replay file back in front of the spool."""
        with self._spool_lock:
            tmp = self.spool_path.with_name(self.spool_path.name + ".tmp")
            with open(tmp, "wb") as out:
                out.write(current)
                shutil.copyfileobj(rest, out)
                if self.spool_path.exists():
                    with open(self.spool_path, "rb") as src:
                        shutil.copyfileobj(src, out)
            os.replace(tmp, self.spool_path)
            self._replay_path.unlink()

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned and len(self._warned) < 1000:
            self._warned.add(key)
            log.warning(message)


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

    def run_state(self) -> str | None:
        return None

    def close(self, timeout_s: float = 10.0) -> None:
        return None


def _new_batch(points: list[dict[str, Any]]) -> dict[str, Any]:
    # The id is fixed here, once: every retry and every replay of this batch reuses it.
    return {"batch_id": uuid.uuid4().hex, "points": points}


def _report_line(report: Report) -> dict[str, Any]:
    return {
        "report": report.kind,
        "method": report.method,
        "path": report.path,
        "body": report.body,
    }


def _monotonic() -> float:
    return time.monotonic()


def _wall_time() -> float:
    return time.time()
