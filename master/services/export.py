"""Streamed export of all points of a run as CSV or JSON.

The stream reads in keyset pages (``id > last ORDER BY id``), each in its own short session:
the response may take long, and holding one transaction open for it would pin old row
versions on PostgreSQL and the WAL on SQLite. Points stored after the export began are left
out, so the file is a consistent prefix of the run's points.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from master.models import MetricPoint

POINTS = MetricPoint.__table__
COLUMNS = ("name", "rank", "step", "epoch", "time", "value")
CHUNK = 5_000


def iter_chunks(session_factory: Callable[[], Session], run_id: int) -> Iterator[Sequence[Any]]:
    with session_factory() as session:
        upper = session.scalar(select(func.max(POINTS.c.id)).where(POINTS.c.run_id == run_id))
    if upper is None:
        return
    last = 0
    while True:
        with session_factory() as session:
            rows = session.execute(
                select(POINTS.c.id, *(POINTS.c[c] for c in COLUMNS))
                .where(POINTS.c.run_id == run_id, POINTS.c.id > last, POINTS.c.id <= upper)
                .order_by(POINTS.c.id)
                .limit(CHUNK)
            ).all()
        if not rows:
            return
        yield rows
        last = rows[-1].id


def csv_stream(session_factory: Callable[[], Session], run_id: int) -> Iterator[str]:
    yield ",".join(COLUMNS) + "\r\n"
    for rows in iter_chunks(session_factory, run_id):
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        # repr() of a float is the shortest text that reads back to the same value.
        writer.writerows(
            (r.name, r.rank, r.step, repr(r.epoch), repr(r.time), repr(r.value)) for r in rows
        )
        yield buffer.getvalue()


def json_stream(session_factory: Callable[[], Session], run_id: int) -> Iterator[str]:
    """A JSON array of ``{"name", "rank", "step", "epoch", "time", "value"}`` objects."""
    yield "["
    first = True
    for rows in iter_chunks(session_factory, run_id):
        parts = [json.dumps(dict(zip(COLUMNS, row[1:], strict=True))) for row in rows]
        yield ("" if first else ",") + ",".join(parts)
        first = False
    yield "]\n"
