"""Engine and sessions for SQLite (default) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from master.settings import normalize_database_url

log = logging.getLogger(__name__)

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

    connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    read_only = False
    if parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database).expanduser()
        read_only = _read_only_file(path)
        if read_only:
            log.warning("%s is read-only: serving reads, refusing writes", path)
            # Immutable: no lock or WAL index files to create beside it, which a read-only
            # directory would refuse; a plain open of a WAL database fails there.
            connect_args["uri"] = True
            url = f"sqlite:///file:{quote(str(path.resolve()))}?mode=ro&immutable=1&uri=true"
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 driver (it skips it for SELECT and DDL, which breaks
        # transactional migrations and repeatable reads); ``_on_begin`` emits it instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not read_only:
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cursor.execute("PRAGMA synchronous=NORMAL")
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


def _read_only_file(path: Path) -> bool:
    """An existing database file, or its directory, that this process may not write (a
    read-only mount, a snapshot); access(2) answers EROFS even for root."""
    return path.exists() and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))


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


# SQLite names its result codes (``sqlite_errorname``, Python 3.11+); PostgreSQL reports SQLSTATE
# classes 08 (connection), 53 (insufficient resources), 57 (operator intervention: shutdown)
# and 25006 (read-only transaction).
_SQLITE_OUTAGES = (
    ("SQLITE_READONLY", "the database is read-only"),
    ("SQLITE_FULL", "the database's disk is full"),
    ("SQLITE_IOERR", "the database's disk failed a read or write"),
    ("SQLITE_BUSY", "the database stayed locked by another writer"),
    ("SQLITE_LOCKED", "the database stayed locked by another writer"),
    ("SQLITE_CANTOPEN", "the database file cannot be opened"),
)


def describe_outage(exc: DBAPIError) -> str | None:
    """One line saying why the database cannot serve this request now, or None when ``exc`` is
    a real error of the request (a constraint, a missing table: a bug) rather than an outage
    worth retrying."""
    sqlite_name = getattr(exc.orig, "sqlite_errorname", None)
    if sqlite_name is not None:
        for prefix, what in _SQLITE_OUTAGES:
            if sqlite_name.startswith(prefix):
                return what
        return None
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    if sqlstate == "25006":
        return "the database is read-only"
    if sqlstate.startswith("53"):
        if "space" in str(exc.orig).lower():
            return "the database's disk is full"
        return "the database server is out of resources"
    if exc.connection_invalidated or sqlstate.startswith(("08", "57")):
        return "the database cannot be reached"
    if isinstance(exc, OperationalError) and not sqlstate:
        return "the database cannot be reached"  # psycopg: no connection, so no SQLSTATE
    return None
