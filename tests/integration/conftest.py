"""A real master (embedded uvicorn, real LocalExecutor) on a free port, SQLite or PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from master.server import EmbeddedMaster
from master.settings import Settings
from tests.conftest import free_port
from tests.pg import fresh_database


@dataclass
class LiveMaster:
    url: str
    settings: Settings
    http: httpx.Client

    def create(self, **spec: Any) -> dict[str, Any]:
        response = self.http.post("/api/v1/runs", json=spec)
        assert response.status_code == 201, response.text
        return response.json()

    def get(self, run_id: int) -> dict[str, Any]:
        response = self.http.get(f"/api/v1/runs/{run_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait(self, run_id: int, states: set[str], timeout_s: float = 180.0) -> dict[str, Any]:
        return wait_for_state(self.http, run_id, states, timeout_s)


def long_run_spec(name: str) -> dict[str, Any]:
    """A digits run with an unreachable goal: it trains until something ends it."""
    return {
        "name": name,
        "benchmark": "digits-mlp",
        "workers": 2,
        "goal": {"kind": "custom", "value": 1.5},
        "overrides": {"epochs": 10000},
    }


def all_points(http: httpx.Client, run_id: int) -> list[dict[str, Any]]:
    """Every stored point of the run, read through the cursor API page by page."""
    points: list[dict[str, Any]] = []
    cursor = 0
    while True:
        page = http.get(f"/api/v1/runs/{run_id}/metrics", params={"cursor": cursor})
        assert page.status_code == 200, page.text
        body = page.json()
        points += body["points"]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return points


def wait_for_state(
    http: httpx.Client, run_id: int, states: set[str], timeout_s: float
) -> dict[str, Any]:
    """Poll the run until its state is one of ``states``; fail the test after ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while True:
        response = http.get(f"/api/v1/runs/{run_id}")
        assert response.status_code in (200, 404), response.text  # 404: not submitted yet
        run = response.json()
        if response.status_code == 200 and run["state"] in states:
            return run
        if time.monotonic() > end:
            raise AssertionError(f"run {run_id} not in {states} after {timeout_s}s: {run}")
        time.sleep(0.25)


def start_live_master(
    tmp_path: Path, database_url: str | None, **settings_: Any
) -> Iterator[LiveMaster]:
    """An embedded master with the real executors; ``settings_`` are further settings."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        port=free_port(),
        admin_token="integration-admin-token",
        stop_grace_s=5.0,
        **settings_,
    )
    master = EmbeddedMaster(settings).start()
    http = httpx.Client(
        base_url=master.url, headers={"Authorization": "Bearer integration-admin-token"}, timeout=30
    )
    try:
        yield LiveMaster(master.url, settings, http)
    finally:
        http.close()
        master.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def live_master(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveMaster]:
    if request.param == "sqlite":
        yield from start_live_master(tmp_path, None)
        return
    with fresh_database() as url:
        yield from start_live_master(tmp_path, url)


@pytest.fixture
def sqlite_master(tmp_path: Path) -> Iterator[LiveMaster]:
    yield from start_live_master(tmp_path, None)
