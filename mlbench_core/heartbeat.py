"""A worker's heartbeat: one small request every few seconds, on a thread of its own.

Not on the metrics sender's thread: a long spool replay there must not look like a hang. A beat
that fails is not retried or spooled (the next one says the same, newer); the master treats a
run whose worker stops beating as hung (docs/reliability.md, "Hung workers").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import httpx

from mlbench_core.wire import Heartbeat

log = logging.getLogger(__name__)

Progress = Callable[[], tuple[int, float]]
"""Returns (step of the newest logged metric, seconds since the training thread logged one)."""


class HeartbeatSender:
    """Posts ``Heartbeat``s for one rank every ``interval_s`` until ``close()``."""

    def __init__(
        self,
        api_url: str,
        run_id: int,
        headers: dict[str, str],
        rank: int,
        progress: Progress,
        *,
        interval_s: float = 2.0,
    ) -> None:
        self.rank = rank
        self.interval_s = interval_s
        self.sent = 0
        self.failed = 0
        self._progress = progress
        self._path = f"/api/v1/runs/{run_id}/heartbeat"
        self._http = httpx.Client(
            base_url=api_url, headers=headers, timeout=max(1.0, min(5.0, interval_s))
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"mlbench-heartbeat-rank{rank}", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        while True:
            self._beat(final=False)
            if self._stop.wait(self.interval_s):
                return

    def _beat(self, final: bool) -> None:
        step, idle_s = self._progress()
        beat = Heartbeat(rank=self.rank, step=step, idle_s=max(0.0, idle_s), final=final)
        try:
            response = self._http.post(self._path, json=beat.model_dump(mode="json"))
            response.raise_for_status()
            self.sent += 1
        except httpx.HTTPError as exc:
            self.failed += 1
            if self.failed == 1 or self.failed % 100 == 0:
                log.warning("heartbeat %d not delivered: %s", self.failed, _why(exc))

    def close(self, final: bool = True) -> None:
        """Stop beating; ``final`` tells the master this rank is done (best effort)."""
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 6.0)
        if final:
            self._beat(final=True)
        self._http.close()


def _why(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}: {exc.response.text[:200]}"
    return type(exc).__name__
