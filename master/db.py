"""Engine and sessions for SQLite (default) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from master.settings import normalize_database_url

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option a write transaction sets on its connection; on SQLite it turns the BEGIN
# into BEGIN IMMEDIATE (see ``write_transaction``).
_WRITE_OPTION = "mlbench_write"
# One writer at a time per SQLite engine, queued on a lock: SQLite allows a single writer
# anyway, and its busy handler waits by sleeping in growing steps, which under contention
# costs far more than the writes. busy_timeout still covers writers in other processes.
_SQLITE_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.RLock] = (
    weakref.WeakKeyDictionary()
)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the settings our concurrency rules rely on."""
    url = normalize_database_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **kwargs)

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 driver (it skips it for SELECT and DDL, which breaks
        # transactional migrations and repeatable reads); ``_on_begin`` emits it instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A deferred transaction that reads and then writes fails at once with SQLITE_BUSY when
        # another writer committed in between (busy_timeout cannot help: its snapshot is stale).
        # Write transactions therefore take the write lock up front and queue on busy_timeout.
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    _SQLITE_WRITE_LOCKS[engine] = threading.RLock()
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    # Objects stay readable after commit (routes serialise them afterwards); code that needs
    # fresh rows re-reads them with populate_existing inside its own transaction.
    return sessionmaker(bind=engine, expire_on_commit=False)


def dialect_name(session: Session) -> str:
    """sqlite or postgresql: the few places that differ by backend ask this."""
    bind = session.get_bind()
    return bind.dialect.name


@contextmanager
def write_transaction(session: Session) -> Iterator[Session]:
    """Run the block as one write transaction, committed at the end, rolled back on error.

    Any read transaction the session still has open (e.g. from the auth check) is ended first,
    so that on SQLite the write starts with BEGIN IMMEDIATE and on PostgreSQL row locks taken in
    the block see the newest committed data.
    """
    if session.in_transaction():
        session.commit()
    bind = session.get_bind()
    lock = _SQLITE_WRITE_LOCKS.get(bind) if isinstance(bind, Engine) else None
    if lock is not None:
        lock.acquire()
    try:
        session.connection(execution_options={_WRITE_OPTION: True})
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        if lock is not None:
            lock.release()
