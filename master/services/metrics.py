"""Metric points: batch ingest (exactly once per batch id), cursor reads, names."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from master.db import dialect_name, write_transaction
from master.errors import Conflict, NotFound
from master.models import MetricBatch, MetricPoint, MetricSeries, Run, utcnow
from master.schemas import IngestResult, MetricName, MetricPointPublic, MetricsPage
from master.services import series
from master.services.downsample import downsample_rows
from master.services.runs import ensure_run
from mlbench_core import wire
from mlbench_core.states import RunState

POINTS = MetricPoint.__table__
SERIES = MetricSeries.__table__
# Namespace (first key) of our advisory locks, so they cannot collide with other applications
# that share the PostgreSQL server; the second key is the run id.
_PG_LOCK_NAMESPACE = 0x6D6C62  # "mlb"


def _batch_exists(session: Session, run_id: int, batch_id: str) -> bool:
    found = session.scalar(
        select(MetricBatch.id).where(MetricBatch.run_id == run_id, MetricBatch.batch_id == batch_id)
    )
    return found is not None


def ingest(
    session: Session, run_id: int, batch: wire.MetricBatchDict, grace_s: float
) -> IngestResult:
    """Store one batch in one transaction; a batch id seen before stores nothing."""
    batch_id, points = batch["batch_id"], batch["points"]
    try:
        with write_transaction(session):
            if dialect_name(session) == "postgresql":
                # Cursor reads return ``id > cursor ORDER BY id``. Ids come from a sequence at
                # INSERT time but become visible at COMMIT: if two writers of one run overlap,
                # the one holding the higher ids may commit first, a reader advances its cursor
                # past the lower ids that are still uncommitted, and those points are never
                # read. Serialising the writers of a run (until commit) makes its ids visible
                # in id order. (SQLite has a single writer anyway: BEGIN IMMEDIATE.)
                session.execute(
                    text("SELECT pg_advisory_xact_lock(:ns, :run_id)"),
                    {"ns": _PG_LOCK_NAMESPACE, "run_id": run_id},
                )
            run = session.get(Run, run_id, populate_existing=True)
            if run is None:
                raise NotFound(f"run {run_id} does not exist")
            _refuse_late(run, grace_s)
            if _batch_exists(session, run_id, batch_id):
                return IngestResult(stored=0, duplicate=True)
            session.execute(
                insert(MetricBatch),
                [{"run_id": run_id, "batch_id": batch_id, "n_points": len(points)}],
            )
            rows = point_rows(run_id, points)
            insert_points(session, rows)
            series.record(session, run_id, rows)
    except IntegrityError:
        # A concurrent request with the same batch id won (unique constraint): nothing of ours
        # was kept, theirs was stored once. (With the locks above this is a backstop.)
        duplicate = _batch_exists(session, run_id, batch_id)
        gone = session.get(Run, run_id, populate_existing=True) is None
        session.rollback()
        if duplicate:
            return IngestResult(stored=0, duplicate=True)
        if gone:  # deleted while this batch was being stored (foreign key)
            raise NotFound(f"run {run_id} does not exist") from None
        raise
    return IngestResult(stored=len(points), duplicate=False)


def point_rows(run_id: int, points: Sequence[wire.MetricPointDict]) -> list[tuple[Any, ...]]:
    """Points as tuples in ``series.POINT_COLUMNS`` order, defaults filled in."""
    return [
        (run_id, p["name"], p.get("rank", 0), p["step"], p.get("epoch", 0.0), p["time"], p["value"])
        for p in points
    ]


def insert_points(session: Session, rows: list[tuple[Any, ...]]) -> None:
    """Bulk insert straight through the driver: COPY on PostgreSQL, ``executemany`` on SQLite
    (per-row parameter handling in SQLAlchemy would cost more than the insert)."""
    columns = ", ".join(f'"{name}"' for name in series.POINT_COLUMNS)
    connection = session.connection()
    if dialect_name(session) == "postgresql":
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(f"COPY {POINTS.name} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()
        return
    marks = ", ".join("?" * len(series.POINT_COLUMNS))
    connection.exec_driver_sql(f"INSERT INTO {POINTS.name} ({columns}) VALUES ({marks})", rows)


def _refuse_late(run: Run, grace_s: float) -> None:
    if not RunState(run.state).terminal or run.finished_at is None:
        return
    if utcnow() - run.finished_at > timedelta(seconds=grace_s):
        raise Conflict(
            f"run {run.id} ended ({run.state}) at {run.finished_at:%Y-%m-%d %H:%M:%S} UTC, "
            f"more than {grace_s:g} s ago; it takes no more metrics"
        )


def read_points(
    session: Session,
    run_id: int,
    *,
    names: Sequence[str] = (),
    ranks: Sequence[int] = (),
    cursor: int = 0,
    limit: int,
    max_points: int | None = None,
) -> MetricsPage:
    """Up to ``limit`` points stored after ``cursor``, in id order.

    ``next_cursor`` is the id of the last point read, so repeated reads with it return each
    point exactly once. With ``max_points`` each (name, rank) series of the page is
    downsampled (M4); ``next_cursor`` still moves past every point read.
    """
    ensure_run(session, run_id)
    query = select(
        POINTS.c.id,
        POINTS.c.name,
        POINTS.c.rank,
        POINTS.c.step,
        POINTS.c.epoch,
        POINTS.c.time,
        POINTS.c.value,
    ).where(POINTS.c.run_id == run_id, POINTS.c.id > cursor)
    if names:
        query = query.where(POINTS.c.name.in_(list(names)))
    if ranks:
        query = query.where(POINTS.c.rank.in_(list(ranks)))
    rows = list(session.execute(query.order_by(POINTS.c.id).limit(limit + 1)))
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = rows[-1].id if rows else cursor
    if max_points is not None:
        rows = downsample_rows(rows, max_points)
    points = [
        MetricPointPublic(
            name=r.name, rank=r.rank, step=r.step, epoch=r.epoch, time=r.time, value=r.value
        )
        for r in rows
    ]
    return MetricsPage(points=points, next_cursor=next_cursor, has_more=has_more)


def metric_names(session: Session, run_id: int) -> list[MetricName]:
    """Names with their ranks and counts, from the per-series counts ingest keeps (no scan of
    the points)."""
    ensure_run(session, run_id)
    rows = session.execute(
        select(SERIES.c.name, SERIES.c.rank, SERIES.c.count)
        .where(SERIES.c.run_id == run_id)
        .order_by(SERIES.c.name, SERIES.c.rank)
    )
    names: dict[str, MetricName] = {}
    for name, rank, count in rows:
        entry = names.setdefault(name, MetricName(name=name, ranks=[], count=0))
        entry.ranks.append(rank)
        entry.count += count
    return list(names.values())
