"""A real master for the security tests: the app from ``create_app`` served by uvicorn on a free
port (its lifespan runs: migrations, admin token), with the recording executor of the master's
own tests in place of process launching, so creating runs is harmless and their worker tokens
are known to the test."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, inspect

from master.server import EmbeddedMaster
from master.settings import Settings
from tests.conftest import free_port
from tests.master.conftest import RecordingExecutor, bearer, fresh_schema

API = "/api/v1"
MANIFEST = {
    "spec": {},
    "settings": {},
    "seed": 0,
    "world_size": 2,
    "backend": "gloo",
    "packages": {},
    "host": {},
    "devices": ["cpu", "cpu"],
}
"""A valid ``Manifest`` body of a 2-rank gloo run."""
ADMIN_TOKEN = "security-admin-token-0123456789abcdefghijklmnop"


@dataclass
class SecureMaster:
    """A started master with its URL, executor and an admin HTTP client."""

    url: str
    settings: Settings
    executor: RecordingExecutor
    http: httpx.Client

    @property
    def admin(self) -> dict[str, str]:
        return bearer(ADMIN_TOKEN)

    def create(self, **overrides: Any) -> int:
        """A new run (digits-mlp, launched by the recording executor): its id."""
        body = {"name": f"sec-{uuid.uuid4().hex[:10]}", "benchmark": "digits-mlp", **overrides}
        response = self.http.post(f"{API}/runs", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    def token(self, run_id: int) -> str:
        """The plain worker token the master handed the executor for ``run_id``."""
        return self.executor.launches[run_id].token

    def worker(self, run_id: int) -> dict[str, str]:
        return bearer(self.token(run_id))


@contextmanager
def secure_master(data_dir: Path, **settings: Any) -> Iterator[SecureMaster]:
    """Serve a master over real HTTP until the block ends; always stops it."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "admin_token": ADMIN_TOKEN,
        "port": free_port(),
        **settings,
    }
    config = Settings(**values)
    executor = RecordingExecutor()
    embedded = EmbeddedMaster(config, executors={"local": executor})
    executor.app = embedded.app
    embedded.start()
    try:
        with httpx.Client(base_url=embedded.url, timeout=30) as http:
            yield SecureMaster(embedded.url, config, executor, http)
    finally:
        embedded.stop()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read MLBENCH_* from the environment; tests must not see the developer's."""
    for key in list(os.environ):
        if key.startswith("MLBENCH_") and not key.startswith("MLBENCH_TEST_"):
            monkeypatch.delenv(key)


# ---------------------------------------------------------------- the hostile-input tests' master

LIMIT = 64 * 1024  # Settings.max_body_bytes of these masters: small, so tests send little

HOSTILE_NAMES = [
    "🐍-run",  # emoji
    "\u202eevil",  # right-to-left override
    "e\u0301",  # combining accent
    "a\x00b",  # NUL byte
    "x" * 10_000,  # very long
    "../../etc/passwd",
    "a/b",  # a valid metric name (train/loss), not a valid run name
    "C:\\x",
    "'; DROP TABLE runs; --",
    "",
]

FREE_TEXT = [
    "🐍 \u202eabc\u202c e\u0301 \u05e9\u05dc\u05d5\u05dd",  # emoji, RTL override, combining, Hebrew
    "'; DROP TABLE runs; --",
    "../../etc/passwd",
    'C:\\x "quoted" \\u0000 literal',
    "line one\nline two\ttab",
]


@dataclass
class Seeded:
    """A master holding one run with points and a result, which no hostile request may change."""

    master: SecureMaster
    run_id: int
    database_url: str

    def snapshot(self) -> dict[str, Any]:
        http, run_id = self.master.http, self.run_id
        run = http.get(f"{API}/runs/{run_id}").json()
        return {
            "run": {key: run[key] for key in ("id", "name", "state", "reason", "spec")},
            "points": http.get(f"{API}/runs/{run_id}/metrics").json()["points"],
            "names": http.get(f"{API}/runs/{run_id}/metrics/names").json(),
            "result": http.get(f"{API}/runs/{run_id}/result").json(),
        }

    def assert_intact(self, before: dict[str, Any]) -> None:
        """The master answers, the seeded run reads back unchanged and no table is gone."""
        assert self.master.http.get(f"{API}/health").status_code == 200
        assert self.snapshot() == before
        engine = create_engine(self.database_url)
        try:
            tables = set(inspect(engine).get_table_names())
        finally:
            engine.dispose()
        assert {"runs", "run_transitions", "metric_points", "results"} <= tables

    def post_raw(self, path: str, body: str | bytes, headers: dict[str, str]) -> httpx.Response:
        return self.master.http.post(
            f"{API}{path}", content=body, headers={**headers, "Content-Type": "application/json"}
        )

    def run_ids(self) -> list[int]:
        page = self.master.http.get(f"{API}/runs", params={"limit": 500}).json()
        return sorted(item["id"] for item in page["items"])


def seed_run(master: SecureMaster) -> int:
    run_id = master.create(name="keep-me")
    points = [
        {"name": "train/loss", "step": i, "time": 1.7e9 + i, "value": 1.0 / (i + 1)}
        for i in range(20)
    ]
    response = master.http.post(
        f"{API}/runs/{run_id}/metrics",
        json={"batch_id": "seed-batch-0001", "points": points},
        headers=master.worker(run_id),
    )
    assert response.status_code == 200, response.text
    response = master.http.put(
        f"{API}/runs/{run_id}/result",
        json={"goal_reached": True, "final_value": 0.05, "extra": {"note": "seed"}},
        headers=master.worker(run_id),
    )
    assert response.status_code == 200, response.text
    return run_id


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seeded]:
    """One master per database for the whole module (starting one costs more than the cases)."""
    data_dir = tmp_path_factory.mktemp("hostile") / "data"
    if request.param == "sqlite":
        with secure_master(data_dir, max_body_bytes=LIMIT) as master:
            yield Seeded(master, seed_run(master), master.settings.resolved_database_url)
        return
    with (
        fresh_schema() as url,
        secure_master(data_dir, database_url=url, max_body_bytes=LIMIT) as m,
    ):
        yield Seeded(m, seed_run(m), m.settings.resolved_database_url)


def fresh_run(seeded: Seeded) -> tuple[int, dict[str, str]]:
    run_id = seeded.master.create()
    return run_id, {**seeded.master.worker(run_id), "Content-Type": "application/json"}


def batch_bytes(size: int) -> bytes:
    """A valid one-point batch padded with JSON whitespace to exactly ``size`` bytes."""
    body = json.dumps(
        {
            "batch_id": uuid.uuid4().hex,
            "points": [{"name": "pad", "step": 0, "time": 1.0, "value": 2.0}],
        }
    ).encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


def chunks(body: bytes, size: int = 4096) -> Iterator[bytes]:
    """An iterator body: httpx sends it chunked, without Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def messages(response: httpx.Response) -> str:
    detail = response.json()["detail"]
    return detail if isinstance(detail, str) else " | ".join(e["msg"] for e in detail)


# ---------------------------------------------------------------- helpers for case tables


def check_cases(cases: list[tuple[str, Any]], check: Any) -> None:
    """Run ``check(case)`` for every case and report all that failed at once, by label."""
    failures = []
    for label, case in cases:
        try:
            check(case)
        except AssertionError as exc:
            failures.append(f"{label}: {exc}")
    assert not failures, "\n".join(failures)


def expect_422(response: httpx.Response, loc: list[Any], needle: str) -> None:
    assert response.status_code == 422, f"{response.status_code} {response.text[:300]}"
    detail = response.json()["detail"]
    assert detail[0]["loc"] == loc, detail
    assert needle in messages(response), detail


def run_spec(**fields: Any) -> dict[str, Any]:
    """A valid RunSpec body with a fresh name; keyword arguments replace fields."""
    return {"name": f"h-{uuid.uuid4().hex[:10]}", "benchmark": "digits-mlp", **fields}
