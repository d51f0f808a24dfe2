"""A throw-away PostgreSQL database per test, on the real server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.requires import missing

POSTGRES_URL = os.environ.get(
    "MLBENCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def unavailable(exc: Exception) -> NoReturn:
    """No server to test against: skip on a developer's machine, fail in CI (tests/requires.py)."""
    missing(f"no PostgreSQL server at {POSTGRES_URL}: {type(exc).__name__}: {exc}")


@contextmanager
def fresh_database() -> Iterator[str]:
    """Create ``mlbench_test_<hex>`` on the server, yield its URL, drop it afterwards."""
    admin = create_engine(
        POSTGRES_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    name = f"mlbench_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # server missing on this machine: say which one
        admin.dispose()
        unavailable(exc)
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
