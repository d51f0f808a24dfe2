"""A real master for the dashboard's document builders: embedded uvicorn on a free port, SQLite
in a temp dir, the real LocalExecutor (real processes, real stop and exit path).

The executor's workers are a stand-in (a sleeping Python process instead of torchrun) and the
executor keeps each run's worker token, so a test can report status, metrics, manifest and
result exactly as workers do, over HTTP, without minutes of training. ``tiny_run_spec`` is a
real digits-mlp run for the few tests that want real curves (use ``real_master``).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bokeh_app.common.api import DashboardApi
from master.executors.base import Exit, Launch
from master.executors.local import LocalExecutor
from master.server import EmbeddedMaster
from master.settings import Settings
from tests.conftest import free_port

ADMIN_TOKEN = "dashboard-admin-token"
API = "/api/v1"


class TokenKeepingExecutor(LocalExecutor):
    """``LocalExecutor`` whose "workers" sleep until stopped, keeping each run's token."""

    def __init__(self, master: DashMaster, runs_dir: Path) -> None:
        super().__init__(self._relay, runs_dir, grace_s=2.0)
        self.master = master
        self.tokens: dict[int, str] = {}

    def _relay(self, exit_: Exit) -> None:
        assert self.master.embedded is not None
        self.master.embedded.app.state.on_exit(exit_)

    def command(self, launch: Launch, spec_path: Path) -> list[str]:
        return [sys.executable, "-c", "import time; time.sleep(300)"]

    def start(self, launch: Launch) -> dict[str, Any]:
        self.tokens[launch.run_id] = launch.token
        return super().start(launch)


def run_spec(**fields: Any) -> dict[str, Any]:
    """A valid RunSpec body (digits-mlp); keyword arguments replace fields."""
    body: dict[str, Any] = {"name": f"dash-{uuid.uuid4().hex[:8]}", "benchmark": "digits-mlp"}
    body.update(fields)
    return body


def tiny_run_spec(name: str) -> dict[str, Any]:
    """A real digits-mlp run that ends within seconds: 2 epochs, an easy goal."""
    return run_spec(
        name=name, workers=2, goal={"kind": "custom", "value": 0.5}, overrides={"epochs": 2}
    )


@dataclass
class DashMaster:
    """A live master the test can stop and start again on the same port and data."""

    settings: Settings
    stand_in_workers: bool = True
    embedded: EmbeddedMaster | None = None
    executor: TokenKeepingExecutor | None = None
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    @property
    def token(self) -> str:
        return ADMIN_TOKEN

    def start(self) -> DashMaster:
        executors = None
        if self.stand_in_workers:
            self.executor = TokenKeepingExecutor(self, self.settings.data_dir / "runs")
            executors = {"local": self.executor}
        self.embedded = EmbeddedMaster(self.settings, executors=executors).start()
        return self

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None

    def api(self, timeout_s: float = 5.0) -> DashboardApi:
        return DashboardApi(self.url, ADMIN_TOKEN, timeout_s)

    # -- what users and workers do, over HTTP ----------------------------------------------

    def create(self, **fields: Any) -> dict[str, Any]:
        response = self.http.post(f"{API}/runs", json=run_spec(**fields))
        assert response.status_code == 201, response.text
        return response.json()

    def get(self, run_id: int) -> dict[str, Any]:
        response = self.http.get(f"{API}/runs/{run_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait(self, run_id: int, states: set[str], timeout_s: float = 60.0) -> dict[str, Any]:
        end = time.monotonic() + timeout_s
        while True:
            run = self.get(run_id)
            if run["state"] in states:
                return run
            if time.monotonic() > end:
                raise AssertionError(f"run {run_id} not in {states} after {timeout_s}s: {run}")
            time.sleep(0.1)

    def worker(self, run_id: int) -> dict[str, str]:
        assert self.executor is not None, "worker tokens need the stand-in workers"
        return {"Authorization": f"Bearer {self.executor.tokens[run_id]}"}

    def status(self, run_id: int, state: str, rank: int = 0, reason: str = "") -> dict[str, Any]:
        response = self.http.post(
            f"{API}/runs/{run_id}/status",
            json={"state": state, "rank": rank, "reason": reason},
            headers=self.worker(run_id),
        )
        assert response.status_code == 200, response.text
        return response.json()

    def metrics(self, run_id: int, points: list[dict[str, Any]]) -> None:
        """Post points (``name``, ``step``, ``value``; ``rank``, ``epoch``, ``time`` optional)."""
        now = time.time()
        full = [{"rank": 0, "epoch": 0.0, "time": now, **p} for p in points]
        for start in range(0, len(full), 10_000):
            response = self.http.post(
                f"{API}/runs/{run_id}/metrics",
                json={"batch_id": uuid.uuid4().hex, "points": full[start : start + 10_000]},
                headers=self.worker(run_id),
            )
            assert response.status_code == 200, response.text

    def result(self, run_id: int, **fields: Any) -> None:
        body = {"goal_reached": True, "goal_metric": "val/accuracy", **fields}
        response = self.http.put(
            f"{API}/runs/{run_id}/result", json=body, headers=self.worker(run_id)
        )
        assert response.status_code == 200, response.text

    def close(self) -> None:
        self.http.close()
        self.stop()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Master and dashboard settings read MLBENCH_*; tests must not see the developer's."""
    for key in list(os.environ):
        if key.startswith("MLBENCH_") and not key.startswith("MLBENCH_TEST_"):
            monkeypatch.delenv(key)


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        port=free_port(),
        admin_token=ADMIN_TOKEN,
        stop_grace_s=2.0,
    )


@pytest.fixture
def dash_master(tmp_path: Path) -> Iterator[DashMaster]:
    """A started master with stand-in workers (``.worker(run_id)`` gives the run's token)."""
    master = DashMaster(_settings(tmp_path)).start()
    try:
        yield master
    finally:
        master.close()


@pytest.fixture
def real_master(tmp_path: Path) -> Iterator[DashMaster]:
    """A started master with the real LocalExecutor (torchrun workers); use ``tiny_run_spec``."""
    master = DashMaster(_settings(tmp_path), stand_in_workers=False).start()
    try:
        yield master
    finally:
        master.close()


@pytest.fixture
def dash_api(dash_master: DashMaster) -> Iterator[DashboardApi]:
    """A ``DashboardApi`` on ``dash_master`` with its admin token."""
    api = dash_master.api()
    try:
        yield api
    finally:
        api.close()
