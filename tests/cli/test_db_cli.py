"""``mlbench db upgrade``: migrates and exits (the chart's initContainer), in a subprocess."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from master.db import make_engine
from tests.served import MLBENCH

TABLES = {"runs", "run_transitions", "metric_points", "metric_batches", "results"}


def _db_upgrade(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("MLBENCH_")} | env
    return subprocess.run(
        [MLBENCH, "db", "upgrade", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _revision(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) >= TABLES
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        engine.dispose()


def test_upgrades_a_fresh_sqlite_database_and_is_idempotent(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for _ in range(2):
        done = _db_upgrade({"MLBENCH_DATA_DIR": str(data)})
        assert done.returncode == 0, done.stderr
        assert "is at revision" in done.stdout
    revision = _revision(f"sqlite:///{data / 'mlbench.db'}")
    assert done.stdout.strip().endswith(f"revision {revision}")


def test_unreachable_database_fails_with_one_line_and_no_password() -> None:
    url = "postgresql://mlbench:s3cret-pw@127.0.0.1:1/mlbench"
    started = time.monotonic()
    done = _db_upgrade({"MLBENCH_DATABASE_URL": url}, "--wait", "3")
    assert done.returncode == 1
    assert time.monotonic() - started >= 2  # it retried before giving up
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "unreachable" in lines[0], done.stderr
    assert "s3cret-pw" not in done.stderr + done.stdout


def test_bad_setting_is_one_readable_line(tmp_path: Path) -> None:
    done = _db_upgrade({"MLBENCH_DATA_DIR": str(tmp_path), "MLBENCH_PORT": "-3"})
    assert done.returncode == 1
    assert done.stderr.startswith("error: setting port"), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.postgres
def test_upgrades_postgresql(postgres_url: str) -> None:
    done = _db_upgrade({"MLBENCH_DATABASE_URL": postgres_url, "MLBENCH_DATA_DIR": "/nonexistent"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f"revision {_revision(postgres_url)}")
