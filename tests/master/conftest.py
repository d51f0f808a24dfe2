"""Fixtures for the master: settings on a temp dir, a real database (SQLite file or a fresh
PostgreSQL database), and the app with a recording executor in place of process launching."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from master.app import create_app
from master.executors.base import Executor, Exit, Launch
from master.settings import Settings
from tests.pg import POSTGRES_URL, unavailable

ADMIN_TOKEN = "test-admin-token"
API = "/api/v1"


class RecordingExecutor(Executor):
    """Test double for the process-launching boundary only: records what the master asks
    for and lets a test report an exit the way a real executor's watcher thread would."""

    kind = "local"

    def __init__(self) -> None:
        super().__init__(on_exit=self._relay)
        self.app: FastAPI | None = None
        self.launches: dict[int, Launch] = {}
        self.stops: list[tuple[int, dict[str, Any]]] = []
        self.reattached: list[tuple[int, dict[str, Any]]] = []
        self.alive: set[int] = set()
        self.start_error: str | None = None
        self.stop_error: str | None = None
        self.shut_down = False

    def _relay(self, exit: Exit) -> None:
        assert self.app is not None, "executor not bound to an app"
        self.app.state.on_exit(exit)

    def start(self, launch: Launch) -> dict[str, Any]:
        if self.start_error:
            raise RuntimeError(self.start_error)
        self.launches[launch.run_id] = launch
        return {"pid": 40_000 + launch.run_id}

    def stop(self, run_id: int, ref: dict[str, Any]) -> None:
        if self.stop_error:
            raise RuntimeError(self.stop_error)
        self.stops.append((run_id, ref))

    def reattach(self, run_id: int, ref: dict[str, Any]) -> bool:
        self.reattached.append((run_id, ref))
        return run_id in self.alive

    def shutdown(self) -> None:
        self.shut_down = True

    def exit(self, run_id: int, exit_code: int | None, reason: str = "") -> None:
        self._on_exit(Exit(run_id=run_id, exit_code=exit_code, reason=reason))


def spec(**overrides: Any) -> dict[str, Any]:
    """A valid RunSpec body (digits-mlp, 2 workers); keyword arguments replace fields."""
    body: dict[str, Any] = {"name": f"run-{uuid.uuid4().hex[:8]}", "benchmark": "digits-mlp"}
    body.update(overrides)
    return body


@dataclass
class Master:
    """A started app (lifespan ran) with its client, executor and settings."""

    client: TestClient
    executor: RecordingExecutor
    settings: Settings
    admin: dict[str, str] = field(default_factory=lambda: bearer(ADMIN_TOKEN))

    def create(self, **overrides: Any) -> dict[str, Any]:
        response = self.client.post(f"{API}/runs", json=spec(**overrides), headers=self.admin)
        assert response.status_code == 201, response.text
        return response.json()

    def worker(self, run_id: int) -> dict[str, str]:
        return bearer(self.executor.launches[run_id].token)

    def status(self, run_id: int, state: str, rank: int = 0, reason: str = "") -> dict[str, Any]:
        body = {"state": state, "rank": rank, "reason": reason}
        response = self.client.post(
            f"{API}/runs/{run_id}/status", json=body, headers=self.worker(run_id)
        )
        assert response.status_code == 200, response.text
        return response.json()

    def get(self, run_id: int) -> dict[str, Any]:
        response = self.client.get(f"{API}/runs/{run_id}")
        assert response.status_code == 200, response.text
        return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read MLBENCH_* from the environment; tests must not see the developer's."""
    for key in list(os.environ):
        if key.startswith("MLBENCH_") and not key.startswith("MLBENCH_TEST_"):
            monkeypatch.delenv(key)


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A URL whose connections work in a new, empty schema ``mlbench_test_<hex>`` of the real
    PostgreSQL server (via search_path); dropped afterwards. Much faster than a database per
    test; tests/master/test_migrate.py covers a truly fresh database."""
    admin = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    schema = f"mlbench_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # no server on this machine: say which one was tried
        admin.dispose()
        unavailable(exc)
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None = the default SQLite file in the data dir; else a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_schema() as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        public_url="http://master.test:8000",
    )


def start_master(settings: Settings, executor: RecordingExecutor) -> Iterator[Master]:
    app = create_app(settings, executors={"local": executor})
    executor.app = app
    with TestClient(app) as client:
        yield Master(client, executor, settings)


@pytest.fixture
def master(settings: Settings) -> Iterator[Master]:
    yield from start_master(settings, RecordingExecutor())
