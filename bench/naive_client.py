"""The baseline of figure 6: the metrics client most code would start with, with no bound.

``log`` appends to a list; a thread posts the oldest points in batches and, while the master
cannot be reached, keeps them and retries, so everything not yet sent stays in memory.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import httpx

BATCH = 500


class NaiveClient:
    def __init__(self, url: str, run_id: int, token: str) -> None:
        self._http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        self._path = f"/api/v1/runs/{run_id}/metrics"
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._closing = False
        self._thread = threading.Thread(target=self._send, daemon=True)
        self._thread.start()

    def log(self, name: str, value: float, *, step: int) -> None:
        point = {"name": name, "step": step, "time": time.time(), "value": value}
        with self._lock:
            self._pending.append(point)

    def close(self, timeout_s: float) -> None:
        self._closing = True
        self._thread.join(timeout_s)
        self._http.close()

    def _send(self) -> None:
        while True:
            with self._lock:
                batch = self._pending[:BATCH]
            if not batch:
                if self._closing:
                    return
                time.sleep(0.1)
                continue
            body = {"batch_id": uuid.uuid4().hex, "points": batch}
            try:
                self._http.post(self._path, json=body).raise_for_status()
            except httpx.HTTPError:
                time.sleep(0.5)  # keep the points, try again
                continue
            with self._lock:
                del self._pending[: len(batch)]
