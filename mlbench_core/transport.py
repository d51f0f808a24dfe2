"""HTTP to the master for the metrics client: one request, retried with exponential backoff.

Connection errors, 5xx and 429 are retried; any other 4xx is final (a bug or a run that is
gone: repeating cannot help). While the client closes, retries and timeouts are cut so that
nothing runs past the close deadline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from enum import Enum
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)
from tenacity.stop import stop_base

from mlbench_core.reports import ClientStats, log


class Send(Enum):
    """How one request ended."""

    ok = "ok"
    rejected = "rejected"
    failed = "failed"


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


class Transport:
    """Sends JSON requests to the master over one connection pool, with retries.

    ``close_deadline`` returns the monotonic time by which a closing client must be done, or
    None while it is not closing. It is asked when a request starts (to cut its retries) and
    again on every attempt (to cut its timeout), because ``close()`` may come in the middle of
    a retry sequence.
    """

    def __init__(
        self,
        api_url: str,
        headers: dict[str, str],
        *,
        stats: ClientStats,
        close_deadline: Callable[[], float | None],
        timeout_s: float,
        backoff_s: float,
        max_backoff_s: float,
    ) -> None:
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._stats = stats
        self._close_deadline = close_deadline
        self._http = httpx.Client(base_url=api_url, headers=headers)

    def request(self, method: str, path: str, body: dict[str, Any], attempts: int) -> Send:
        """Send ``body`` with up to ``attempts`` tries; log (not raise) what went wrong."""
        content = json.dumps(body, separators=(",", ":"), allow_nan=False)
        stop = stop_after_attempt(attempts)
        deadline = self._close_deadline()
        if deadline is not None:
            stop = stop | _stop_at_deadline(deadline)
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
            log.error("master rejected %s %s: %s; dropping it", method, path, one_line(str(exc)))
            return Send.rejected
        except (httpx.TransportError, _RetryableStatus) as exc:
            log.warning(
                "master unreachable for %s %s after %d attempt(s): %s",
                method,
                path,
                attempts,
                one_line(f"{type(exc).__name__}: {exc}"),
            )
            return Send.failed
        return Send.ok

    def close(self) -> None:
        """Close the connection pool; only once no request is in flight."""
        self._http.close()

    def _send_once(self, method: str, path: str, content: str) -> None:
        timeout = self.timeout_s
        deadline = self._close_deadline()
        if deadline is not None:
            timeout = max(0.1, min(timeout, deadline - time.monotonic()))
        response = self._http.request(
            method,
            path,
            content=content,
            headers={"Content-Type": "application/json"},
            timeout=timeout,
        )
        if response.status_code == 429 or response.status_code >= 500:
            raise _RetryableStatus(response.status_code, one_line(response.text, 200))
        if response.status_code >= 400:
            raise _Rejected(response.status_code, one_line(response.text, 200))

    def _before_retry(self, retry_state: RetryCallState) -> None:
        self._stats.retries += 1
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        log.debug("retrying after attempt %d: %s", retry_state.attempt_number, one_line(repr(exc)))


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line, cut to ``limit`` characters (for log messages)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
