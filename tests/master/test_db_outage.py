"""Which database errors are outages (503, retry) and which are bugs (500): real errors from
real SQLite files and a real PostgreSQL driver, not hand-made exceptions."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from master.db import describe_outage
from tests.conftest import free_port


def _error(url: str, sql: str, **connect_args: object) -> DBAPIError:
    engine = create_engine(url, connect_args=connect_args)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{sql!r} did not fail")


def test_sqlite_read_only_is_an_outage(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    writable = create_engine(f"sqlite:///{db}")
    with writable.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    writable.dispose()
    exc = _error(f"sqlite:///file:{db}?mode=ro&uri=true", "INSERT INTO t VALUES (1)", uri=True)
    assert describe_outage(exc) == "the database is read-only"


def test_sqlite_errors_of_the_request_are_not_outages(tmp_path: Path) -> None:
    exc = _error(f"sqlite:///{tmp_path / 'y.db'}", "SELECT * FROM no_such_table")
    assert describe_outage(exc) is None
    exc = _error(f"sqlite:///{tmp_path / 'z.db'}", "SELEC 1")
    assert describe_outage(exc) is None


def test_postgres_that_cannot_be_reached_is_an_outage() -> None:
    pytest.importorskip("psycopg")
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"
    exc = _error(url, "SELECT 1", connect_timeout=2)
    assert describe_outage(exc) == "the database cannot be reached"


@pytest.mark.postgres
def test_postgres_errors_of_the_request_are_not_outages(postgres_url: str) -> None:
    exc = _error(postgres_url, "SELECT * FROM no_such_table")
    assert describe_outage(exc) is None
    exc = _error(postgres_url, "SET TRANSACTION READ ONLY; CREATE TABLE t (x int)")
    assert describe_outage(exc) == "the database is read-only"
