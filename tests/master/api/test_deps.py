"""Who may read: open by default, any valid token with MLBENCH_AUTH_READS=true."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from master.settings import Settings
from tests.master.conftest import ADMIN_TOKEN, API, Master, RecordingExecutor, bearer, start_master

READ_ROUTES = [
    "/benchmarks",
    "/benchmarks/digits-mlp",
    "/runs",
    "/runs/{id}",
    "/runs/{id}/metrics",
    "/runs/{id}/metrics/names",
    "/runs/{id}/metrics/export",
]


@pytest.fixture
def closed_reads(tmp_path: Path, database_url: str | None) -> Iterator[Master]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        auth_reads=True,
    )
    yield from start_master(settings, RecordingExecutor())


def test_reads_need_a_token_when_auth_reads_is_set(closed_reads: Master) -> None:
    master = closed_reads
    run_id = master.create()["id"]
    for route in READ_ROUTES:
        url = API + route.format(id=run_id)
        response = master.client.get(url)
        assert response.status_code == 401, url
        assert response.headers["www-authenticate"] == "Bearer"
        assert master.client.get(url, headers=bearer("wrong")).status_code == 401, url
        assert master.client.get(url, headers=master.admin).status_code == 200, url
        assert master.client.get(url, headers=master.worker(run_id)).status_code == 200, url
    result = f"{API}/runs/{run_id}/result"
    assert master.client.get(result).status_code == 401
    assert master.client.get(result, headers=master.admin).status_code == 404  # none yet


def test_reads_are_open_by_default_and_ignore_tokens(master: Master) -> None:
    run_id = master.create()["id"]
    for route in READ_ROUTES:
        url = API + route.format(id=run_id)
        assert master.client.get(url).status_code == 200, url
        assert master.client.get(url, headers=bearer("whatever")).status_code == 200, url
