"""Engine settings the concurrency rules rely on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from master.db import make_engine, make_sessionmaker, write_transaction


def test_sqlite_engine_creates_its_directory_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "x.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30_000
        assert path.exists()
    finally:
        engine.dispose()


def test_sqlite_write_transaction_takes_the_write_lock_up_front(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    engine = make_engine(f"sqlite:///{path}")
    sessions = make_sessionmaker(engine)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with sessions() as session:
            session.execute(text("SELECT 1"))  # an open read transaction is ended first
            with write_transaction(session):
                session.execute(text("SELECT 1"))  # no write yet, but the lock is held
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
            other.execute("BEGIN IMMEDIATE")  # released at commit
            other.execute("ROLLBACK")
    finally:
        other.close()
        engine.dispose()


def test_write_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    sessions = make_sessionmaker(engine)
    try:
        with sessions() as session:
            with write_transaction(session):
                session.execute(text("CREATE TABLE t (x INTEGER)"))
            with pytest.raises(RuntimeError), write_transaction(session):
                session.execute(text("INSERT INTO t VALUES (1)"))
                raise RuntimeError("boom")
            assert session.execute(text("SELECT count(*) FROM t")).scalar() == 0
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgresql_urls_use_psycopg(postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    engine = make_engine(plain)
    try:
        assert engine.dialect.driver == "psycopg"
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
