"""A master served for real (uvicorn on a free port) whose executor only records launches."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from master.server import EmbeddedMaster
from master.settings import Settings
from tests.conftest import free_port
from tests.integration.conftest import all_points
from tests.master.conftest import RecordingExecutor, bearer

ADMIN = "reliability-admin-token"


@dataclass
class Served:
    """An embedded master (real uvicorn) whose executor only records launches."""

    url: str
    http: httpx.Client
    executor: RecordingExecutor

    def running_run(self) -> tuple[int, str]:
        """A new run in state running; returns its id and worker token."""
        body = {"name": f"r-{uuid.uuid4().hex[:8]}", "benchmark": "digits-mlp", "workers": 2}
        created = self.http.post("/api/v1/runs", json=body)
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        token = self.executor.launches[run_id].token
        report = self.http.post(
            f"/api/v1/runs/{run_id}/status", json={"state": "running"}, headers=bearer(token)
        )
        assert report.status_code == 200, report.text
        return run_id, token

    def post_batch(self, run_id: int, token: str, batch: dict[str, Any]) -> httpx.Response:
        return self.http.post(f"/api/v1/runs/{run_id}/metrics", json=batch, headers=bearer(token))

    def stored(self, run_id: int) -> list[dict[str, Any]]:
        """Every stored point of the run, read with cursors."""
        return all_points(self.http, run_id)


def batch(first_step: int, n: int, name: str = "load/x") -> dict[str, Any]:
    """A batch with a fresh id of points ``first_step .. first_step + n - 1`` (value = step)."""
    points = [
        {"name": name, "step": s, "time": 1.7e9 + s, "value": float(s)}
        for s in range(first_step, first_step + n)
    ]
    return {"batch_id": str(uuid.uuid4()), "points": points}


@contextmanager
def served(data_dir: Path, database_url: str | None = None, **settings: Any) -> Iterator[Served]:
    executor = RecordingExecutor()
    config = Settings(
        data_dir=data_dir,
        database_url=database_url,
        port=free_port(),
        admin_token=ADMIN,
        **settings,
    )
    master = EmbeddedMaster(config, executors={"local": executor})
    executor.app = master.app
    master.start()
    http = httpx.Client(base_url=master.url, headers=bearer(ADMIN), timeout=30)
    try:
        yield Served(master.url, http, executor)
    finally:
        http.close()
        master.stop()
