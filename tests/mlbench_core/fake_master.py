"""A small stand-in for the master's worker-facing routes, over real HTTP on 127.0.0.1.

It validates request bodies with the real wire models (``mlbench_core.wire``), dedupes metric
batches by ``batch_id`` like the master does, and can misbehave on purpose: fail requests with
503, store a batch and then lose the response, reject with a 4xx, or hold requests until
released. Used by the metrics-client and worker tests instead of patching httpx.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import ValidationError

from mlbench_core.wire import Manifest, MetricBatch, RunResult, StatusUpdate

_ROUTE = re.compile(r"^/api/v1/runs/(\d+)(/metrics|/status|/result|/manifest)?$")


class FakeMaster:
    def __init__(self, token: str = "worker-token", run_id: int = 1, port: int = 0) -> None:
        self.token = token
        self.run_id = run_id
        self.port = port
        self.lock = threading.Lock()
        self.state = "starting"
        self.batches: dict[str, list[dict[str, Any]]] = {}
        self.points: list[dict[str, Any]] = []
        self.events: list[tuple[Any, ...]] = []
        self.metric_requests = 0
        self.statuses: list[dict[str, Any]] = []
        self.result: dict[str, Any] | None = None
        self.manifest: dict[str, Any] | None = None
        # Misbehaviour knobs (each counts down per metrics request unless noted).
        self.fail_next = 0  # answer 503 without storing
        self.drop_after_store = 0  # store, then close the connection without an answer
        self.error_after_store = 0  # store, then answer 500
        self.reject_status: int | None = None  # answer this 4xx to every metrics request
        self.gate: threading.Event | None = None  # when set to an Event, metrics wait for it
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeMaster:
        master = self

        class Handler(_Handler):
            owner = master

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.gate is not None:
            self.gate.set()

    def __enter__(self) -> FakeMaster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- queries

    def stored_values(self, name: str | None = None) -> list[float]:
        with self.lock:
            return [p["value"] for p in self.points if name is None or p["name"] == name]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    # ---------------------------------------------------------------- request handling

    def handle(self, method: str, path: str, auth: str, body: bytes) -> tuple[int, Any] | None:
        """Returns (status, json body), or None to drop the connection without an answer."""
        match = _ROUTE.match(path)
        if not match:
            return 404, {"detail": f"no route {path}"}
        if auth != f"Bearer {self.token}":
            return 401, {"detail": "invalid token"}
        if int(match.group(1)) != self.run_id:
            return 403, {"detail": "token not valid for this run"}
        route = match.group(2) or ""
        if method == "GET" and route == "":
            with self.lock:
                return 200, {"id": self.run_id, "state": self.state}
        try:
            if method == "POST" and route == "/metrics":
                return self._metrics(MetricBatch.model_validate_json(body))
            if method == "POST" and route == "/status":
                return self._status(StatusUpdate.model_validate_json(body))
            if method == "PUT" and route == "/manifest":
                manifest = Manifest.model_validate_json(body)
                with self.lock:
                    self.manifest = manifest.model_dump(mode="json")
                return 200, self.manifest
            if method == "PUT" and route == "/result":
                result = RunResult.model_validate_json(body)
                with self.lock:
                    self.result = result.model_dump(mode="json")
                    self.events.append(("result", len(self.points)))
                return 200, {"ok": True}
        except ValidationError as exc:
            return 422, {"detail": exc.errors(include_url=False, include_context=False)}
        return 405, {"detail": "method not allowed"}

    def _metrics(self, batch: MetricBatch) -> tuple[int, Any] | None:
        gate = self.gate
        if gate is not None:
            gate.wait(30)
        with self.lock:
            self.metric_requests += 1
            if self.fail_next > 0:
                self.fail_next -= 1
                return 503, {"detail": "try again"}
            if self.reject_status is not None:
                return self.reject_status, {"detail": "run is gone"}
            duplicate = batch.batch_id in self.batches
            if not duplicate:
                points = [p.model_dump() for p in batch.points]
                self.batches[batch.batch_id] = points
                self.points.extend(points)
            self.events.append(("metrics", batch.batch_id, len(batch.points), duplicate))
            if self.drop_after_store > 0:
                self.drop_after_store -= 1
                return None
            if self.error_after_store > 0:
                self.error_after_store -= 1
                return 500, {"detail": "stored, but the answer failed"}
            return 200, {"stored": 0 if duplicate else len(batch.points), "duplicate": duplicate}

    def _status(self, update: StatusUpdate) -> tuple[int, Any]:
        with self.lock:
            self.statuses.append(update.model_dump())
            self.events.append(("status", update.state, len(self.points)))
            terminal = self.state in ("succeeded", "failed", "stopped")
            if not terminal and (update.state != "succeeded" or update.rank == 0):
                self.state = update.state
            return 200, {"id": self.run_id, "state": self.state}


class _Handler(BaseHTTPRequestHandler):
    owner: FakeMaster

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = self.owner.handle(method, self.path, self.headers.get("Authorization", ""), body)
        if answer is None:
            self.close_connection = True  # the client sees the connection drop, no response
            return
        status, payload = answer
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet
