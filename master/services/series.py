"""Whole-series reads for plots: one (name, rank) series downsampled over its full or zoomed
range, fast for millions of points.

Reading a million points costs seconds (scanning them alone takes ~0.3 s in SQLite), so every
ingest also keeps, per series, its point count (``metric_series``) and M4 summaries of fixed
blocks of consecutive points (``metric_tiles``, several block sizes). A plot of the whole series
reads a few thousand tiles (first, last, min and max point of each block) and downsamples
those with M4; a zoomed range with at most ``max_points`` points is read point by point (full
resolution). A range is mapped onto blocks through their first and last points, which assumes
that a series' step, time and epoch grow with the order it was logged in, as they do for points
one rank logs while it trains.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Select, Table, case, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from master.models import MetricPoint, MetricSeries, MetricTile
from master.schemas import SeriesAxis, SeriesPublic
from master.services.downsample import m4_keep
from master.services.runs import ensure_run

POINTS = MetricPoint.__table__
# The columns a point is stored with, in the order ingest passes them around.
POINT_COLUMNS = ("run_id", "name", "rank", "step", "epoch", "time", "value")
SERIES: Table = MetricSeries.__table__  # type: ignore[assignment]
TILES: Table = MetricTile.__table__  # type: ignore[assignment]
# Level l groups 2**LEVEL_SHIFTS[l] consecutive points: 64, 512, 4 Ki, 32 Ki, 256 Ki, 2 Mi.
LEVEL_SHIFTS = (6, 9, 12, 15, 18, 21)
ROLES = ("first", "last", "min", "max")
FIELDS = ("step", "time", "epoch", "value")
# A downsampled read scans at most this many tiles per output point (4 candidates each).
TILES_PER_POINT = 2
# Upper bound of max_points: a plot needs a few thousand; the answer is JSON.
MAX_POINTS = 20_000

Bounds = tuple[float, float]


# ------------------------------------------------------------------------------ ingest side


def tile_rows(
    run_id: int,
    name: str,
    rank: int,
    first_ordinal: int,
    columns: dict[str, np.ndarray],
    ids: np.ndarray,
) -> list[dict[str, Any]]:
    """Tile rows (every level) summarising points numbered ``first_ordinal`` onwards, given
    in arrival order as arrays ``step``, ``time``, ``epoch``, ``value``; ``ids``: each
    point's id or an upper bound of it, ascending."""
    values = columns["value"]
    count = len(values)
    ordinals = first_ordinal + np.arange(count, dtype=np.int64)
    position = np.arange(count)
    rows: list[dict[str, Any]] = []
    whole: dict[str, Any] | None = None  # the batch as one tile, once a level holds it whole
    for level, shift in enumerate(LEVEL_SHIFTS):
        if whole is not None or (ordinals[0] >> shift) == (ordinals[-1] >> shift):
            # One tile holds the whole batch at this level and at every coarser one: the same
            # picks, only the tile number changes (the common case past the finest level).
            if whole is None:
                whole = _whole_batch(columns, ids)
            rows.append(
                {**whole, "tile": int(ordinals[0] >> shift), "level": level, "run_id": run_id}
                | {"name": name, "rank": rank}
            )
            continue
        tile = ordinals >> shift
        change = np.empty(count, dtype=bool)
        change[0] = True
        np.not_equal(tile[1:], tile[:-1], out=change[1:])
        starts = np.flatnonzero(change)
        ends = np.append(starts[1:], count)
        segment = np.repeat(np.arange(len(starts)), ends - starts)
        # Segments keep their index ranges when sorted by segment first; ties: earliest point.
        lowest = np.lexsort((position, values, segment))[starts]
        highest = np.lexsort((position, -values, segment))[starts]
        picks = {"first": starts, "last": ends - 1, "min": lowest, "max": highest}
        block: dict[str, list[Any]] = {
            "tile": tile[starts].tolist(),
            "n": (ends - starts).tolist(),
            "max_id": ids[ends - 1].tolist(),
        }
        for role, index in picks.items():
            for field in FIELDS:
                block[f"{role}_{field}"] = columns[field][index].tolist()
        for i in range(len(starts)):
            row = {k: v[i] for k, v in block.items()}
            row.update(run_id=run_id, name=name, rank=rank, level=level)
            rows.append(row)
    return rows


def _whole_batch(columns: dict[str, np.ndarray], ids: np.ndarray) -> dict[str, Any]:
    """The tile fields of all points of the batch; argmin/argmax take the earliest of ties,
    as the sort of the general case does."""
    values = columns["value"]
    count = len(values)
    picks = {"first": 0, "last": count - 1, "min": int(np.argmin(values))}
    picks["max"] = int(np.argmax(values))
    row: dict[str, Any] = {"n": count, "max_id": int(ids[-1])}
    for role, index in picks.items():
        for field in FIELDS:
            row[f"{role}_{field}"] = columns[field][index].item()
    return row


# Compiled upserts by (dialect, table, columns): building one (the excluded-columns proxies, the
# CASE expressions) cost SQLAlchemy ~2.5 ms a batch, more than the rows themselves.
_UPSERTS: dict[tuple[str, str, tuple[str, ...]], tuple[str, tuple[str, ...] | None]] = {}


def _upsert(
    session: Session, table: Table, rows: list[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Insert ``rows``, folding each into the row of the same ``keys`` if there is one; the
    statement is built once, then run straight through the driver (``executemany``)."""
    connection = session.connection()
    dialect = connection.dialect
    columns = tuple(rows[0])
    cache_key = (dialect.name, table.name, columns)
    compiled = _UPSERTS.get(cache_key)
    if compiled is None:
        statement = _upsert_statement(dialect.name, table, keys)
        sql = statement.compile(dialect=dialect, column_keys=list(columns))
        order = tuple(sql.positiontup or ()) if sql.positional else None
        compiled = _UPSERTS[cache_key] = (str(sql), order)
    text, order = compiled
    params: Any = rows if order is None else [tuple(row[k] for k in order) for row in rows]
    connection.exec_driver_sql(text, params)


def _upsert_statement(dialect: str, table: Table, keys: Sequence[str]) -> Any:
    insert = sqlite_insert if dialect == "sqlite" else pg_insert
    stmt = insert(table)
    new, old = stmt.excluded, table.c
    if table is SERIES:
        updates: dict[str, Any] = {"count": old.count + new.count}
    else:
        updates = {"n": old.n + new.n, "max_id": new.max_id}
        for field in FIELDS:
            updates[f"last_{field}"] = new[f"last_{field}"]
            # Every SET expression sees the row as it was (SQL semantics), so the value
            # comparison below still reads the old minimum while each field is updated.
            updates[f"min_{field}"] = case(
                (new.min_value < old.min_value, new[f"min_{field}"]), else_=old[f"min_{field}"]
            )
            updates[f"max_{field}"] = case(
                (new.max_value > old.max_value, new[f"max_{field}"]), else_=old[f"max_{field}"]
            )
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=updates)


def record(session: Session, run_id: int, rows: Sequence[tuple[Any, ...]]) -> None:
    """Count the batch's points per series and fold them into the tiles; ``rows`` are the
    points as stored, in ``POINT_COLUMNS`` order.

    Call inside the ingest transaction, after the points were inserted: writers of one run are
    serialised there, so the numbering of a series' points is consistent.
    """
    _, names, ranks, steps, epochs, times, values = zip(*rows, strict=True)
    fields = {
        "step": np.array(steps, dtype=np.int64),
        "epoch": np.array(epochs, dtype=np.float64),
        "time": np.array(times, dtype=np.float64),
        "value": np.array(values, dtype=np.float64),
    }
    counts = {
        (name, rank): count
        for name, rank, count in session.execute(
            select(SERIES.c.name, SERIES.c.rank, SERIES.c.count).where(SERIES.c.run_id == run_id)
        )
    }
    max_id = session.scalar(select(func.max(POINTS.c.id)).where(POINTS.c.run_id == run_id)) or 0
    tiles: list[dict[str, Any]] = []
    series = []
    for (name, rank), index in _groups(names, ranks).items():
        columns = fields if index is None else {k: v[index] for k, v in fields.items()}
        size = len(columns["value"])
        ids = np.full(size, max_id, dtype=np.int64)
        tiles += tile_rows(run_id, name, rank, counts.get((name, rank), 0), columns, ids)
        series.append({"run_id": run_id, "name": name, "rank": rank, "count": size})
    _upsert(session, SERIES, series, ("run_id", "name", "rank"))
    _upsert(session, TILES, tiles, ("run_id", "name", "rank", "level", "tile"))


def _groups(names: Sequence[str], ranks: Sequence[int]) -> dict[tuple[str, int], np.ndarray | None]:
    """Positions of each (name, rank) series in arrival order; None: the whole batch."""
    first = (names[0], ranks[0])
    if names.count(first[0]) == len(names) and ranks.count(first[1]) == len(ranks):
        return {first: None}  # the common case: a batch of one series
    positions: dict[tuple[str, int], list[int]] = {}
    for position, key in enumerate(zip(names, ranks, strict=True)):
        positions.setdefault(key, []).append(position)
    return {key: np.array(index) for key, index in positions.items()}


# ------------------------------------------------------------------------------- read side


def _fetch(session: Session, query: Select[Any]) -> list[tuple[Any, ...]]:
    """Rows as plain tuples through the DBAPI cursor: for hundreds of thousands of rows,
    SQLAlchemy's Row objects (and numpy reading them) cost more than the query itself."""
    connection = session.connection()
    compiled = query.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    params: Any = compiled.params
    if compiled.positional:
        params = tuple(params[key] for key in compiled.positiontup or ())
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled), params)
        return cursor.fetchall()
    finally:
        cursor.close()


def _columns(rows: list[tuple[Any, ...]], width: int) -> np.ndarray:
    if not rows:
        return np.empty((0, width))
    return np.array(rows, dtype=np.float64)


class _Reader:
    """Reads of one series as of point ``last_id``, x taken from ``axis``."""

    def __init__(self, session: Session, run_id: int, name: str, axis: SeriesAxis, last_id: int):
        self.session = session
        self.run_id = run_id
        self.name = name
        self.axis = axis
        self.last_id = last_id

    def points(
        self,
        ranks: Sequence[int],
        steps: Bounds,
        xs: Bounds,
        limit: int | None = None,
        strict: tuple[bool, bool] = (False, False),
    ) -> np.ndarray:
        """Raw points as rows (rank, step, x, value) of ``ranks`` with step and x within the
        closed bounds (open at an end flagged in ``strict``), ordered by rank and step."""
        c = POINTS.c
        x = c[self.axis.value]
        rank = c.rank == ranks[0] if len(ranks) == 1 else c.rank.in_(list(ranks))
        # "id + 0": the id bound is a filter, not an index range, so the planner walks the
        # series index (run_id, name, rank, step) instead of (run_id, id) plus a sort.
        query = select(c.rank, c.step, x, c.value).where(
            c.run_id == self.run_id, c.name == self.name, rank, c.id + 0 <= self.last_id
        )
        if steps[0] > -math.inf:
            query = query.where(c.step > steps[0] if strict[0] else c.step >= steps[0])
        if steps[1] < math.inf:
            query = query.where(c.step < steps[1] if strict[1] else c.step <= steps[1])
        if self.axis is not SeriesAxis.step:
            if xs[0] > -math.inf:
                query = query.where(x >= xs[0])
            if xs[1] < math.inf:
                query = query.where(x <= xs[1])
        query = query.order_by(c.rank, c.step)
        if limit is not None:
            query = query.limit(limit)
        return _columns(_fetch(self.session, query), 4)

    def step_range(self, rank: int, xs: Bounds) -> Bounds:
        """Steps whose points may lie in the x range, from the level-0 tiles."""
        if self.axis is SeriesAxis.step:
            # Integer bounds: compared with a float, PostgreSQL casts the column (no index).
            lo = xs[0] if xs[0] == -math.inf else math.ceil(max(xs[0], -(2**62)))
            hi = xs[1] if xs[1] == math.inf else math.floor(min(xs[1], 2**62))
            return lo, hi
        t = TILES.c
        where = [t.run_id == self.run_id, t.name == self.name, t.rank == rank, t.level == 0]
        lo, hi = -math.inf, math.inf
        if xs[0] > -math.inf:
            found = self.session.scalar(
                select(func.min(t.first_step)).where(*where, t[f"last_{self.axis.value}"] >= xs[0])
            )
            lo = math.inf if found is None else found
        if xs[1] < math.inf:
            found = self.session.scalar(
                select(func.max(t.last_step)).where(*where, t[f"first_{self.axis.value}"] <= xs[1])
            )
            hi = -math.inf if found is None else found
        return lo, hi

    def tiles(self, rank: int, steps: Bounds, xs: Bounds, budget: int) -> tuple[int, np.ndarray]:
        """(level, tiles) of the finest level with 1 to ``budget`` tiles wholly inside
        ``steps`` and ``xs`` and no point newer than ``last_id``, in order; (-1, empty) if none has.
        Tile columns: n, then step, time, epoch, value of first, last, min, max."""
        t = TILES.c
        inside = [t.run_id == self.run_id, t.name == self.name, t.rank == rank]
        inside.append(t.max_id <= self.last_id)
        if steps[0] > -math.inf:
            inside.append(t.first_step >= steps[0])
        if steps[1] < math.inf:
            inside.append(t.last_step <= steps[1])
        if self.axis is not SeriesAxis.step:  # whole tiles inside the x range too
            if xs[0] > -math.inf:
                inside.append(t[f"first_{self.axis.value}"] >= xs[0])
            if xs[1] < math.inf:
                inside.append(t[f"last_{self.axis.value}"] <= xs[1])
        counted = self.session.execute(
            select(t.level, func.count()).where(*inside).group_by(t.level)
        )
        usable = sorted(level for level, n in counted if 0 < n <= budget)
        if not usable:
            return -1, np.empty((0, 1 + len(ROLES) * len(FIELDS)))
        columns = [t.n, *(t[f"{role}_{field}"] for role in ROLES for field in FIELDS)]
        query = select(*columns).where(*inside, t.level == usable[0]).order_by(t.tile)
        return usable[0], _columns(_fetch(self.session, query), len(columns))


def _m4(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    if len(x) <= max_points:
        return x, y
    keep = m4_keep(x, y, max_points)
    return x[keep], y[keep]


def read_series(
    session: Session,
    run_id: int,
    name: str,
    *,
    rank: int | None = None,
    axis: SeriesAxis = SeriesAxis.step,
    max_points: int = 2000,
    x_min: float | None = None,
    x_max: float | None = None,
    until_id: int | None = None,
) -> SeriesPublic:
    """The series ``(name, rank)`` on ``axis`` within [x_min, x_max]: every point when the
    range holds at most ``max_points``, else at most that many chosen by M4.

    ``rank`` None: the mean over the ranks at each step (x: the step, or the mean time or
    epoch); a series only one rank logged is that rank's. ``until_id``: read as of that point
    id (an earlier ``last_id`` or ``next_cursor``), so that several series and the cursor
    reads that follow fit together without gaps or repeats.
    """
    ensure_run(session, run_id)
    newest = session.scalar(select(func.max(POINTS.c.id)).where(POINTS.c.run_id == run_id)) or 0
    last_id = newest if until_id is None else min(until_id, newest)
    stored = session.scalars(
        select(SERIES.c.rank)
        .where(SERIES.c.run_id == run_id, SERIES.c.name == name)
        .order_by(SERIES.c.rank)
    ).all()
    ranks = list(stored) if rank is None else [r for r in stored if r == rank]
    xs = (-math.inf if x_min is None else x_min, math.inf if x_max is None else x_max)
    reader = _Reader(session, run_id, name, axis, last_id)

    def answer(x: np.ndarray, y: np.ndarray, total: int) -> SeriesPublic:
        return SeriesPublic(
            name=name,
            rank=rank,
            ranks=ranks,
            axis=axis,
            x=x.tolist(),
            y=y.tolist(),
            total=total,
            downsampled=total > len(x),
            last_id=last_id,
        )

    empty = np.empty(0)
    if not ranks or last_id == 0:
        return answer(empty, empty, 0)
    if len(ranks) > 1:
        return _mean_over_ranks(reader, ranks, xs, max_points, answer)

    only = ranks[0]
    steps = reader.step_range(only, xs)
    if steps[0] > steps[1]:
        return answer(empty, empty, 0)
    few = reader.points([only], steps, xs, limit=max_points + 1)
    if len(few) <= max_points:  # full resolution
        return answer(few[:, 2], few[:, 3], len(few))
    level, tiles = reader.tiles(only, steps, xs, TILES_PER_POINT * max_points)
    if level < 0 or (level == 0 and 4 * len(tiles) < max_points):
        # No usable tiles, or level-0 tiles give fewer points than asked for: the range holds
        # few enough points (< 16 * max_points) to read them all.
        every = reader.points([only], steps, xs)
        x, y = _m4(every[:, 2], every[:, 3], max_points)
        return answer(x, y, len(every))
    # Points before the first and after the last whole tile are read one by one.
    first_step, last_step = int(tiles[0, 1]), int(tiles[-1, 5])
    before = reader.points([only], (steps[0], first_step), xs, strict=(False, True))
    after = reader.points([only], (last_step, steps[1]), xs, strict=(True, False))
    ax = 1 + FIELDS.index(axis.value)
    val = 1 + FIELDS.index("value")
    roles = range(len(ROLES))
    x = np.concatenate([before[:, 2], *(tiles[:, ax + 4 * r] for r in roles), after[:, 2]])
    y = np.concatenate([before[:, 3], *(tiles[:, val + 4 * r] for r in roles), after[:, 3]])
    # Two roles of a tile may be the same point (e.g. the first is the minimum).
    pairs = np.unique(np.stack([x, y], axis=1), axis=0)  # sorted by x
    pairs = pairs[(pairs[:, 0] >= xs[0]) & (pairs[:, 0] <= xs[1])]
    x, y = _m4(pairs[:, 0], pairs[:, 1], max_points)
    return answer(x, y, int(tiles[:, 0].sum()) + len(before) + len(after))


def _mean_over_ranks(
    reader: _Reader,
    ranks: Sequence[int],
    xs: Bounds,
    max_points: int,
    answer: Callable[[np.ndarray, np.ndarray, int], SeriesPublic],
) -> SeriesPublic:
    """The mean over ranks per step cannot come from per-rank tiles: every point is read."""
    steps = (
        reader.step_range(ranks[0], xs) if reader.axis is SeriesAxis.step else (-math.inf, math.inf)
    )
    rows = reader.points(ranks, steps, xs)
    if len(rows) == 0:
        return answer(np.empty(0), np.empty(0), 0)
    unique, inverse, counts = np.unique(rows[:, 1], return_inverse=True, return_counts=True)
    if reader.axis is SeriesAxis.step:
        x = unique
    else:
        x = np.bincount(inverse, weights=rows[:, 2]) / counts
    y = np.bincount(inverse, weights=rows[:, 3]) / counts
    order = np.argsort(x, kind="stable")
    x, y = _m4(x[order], y[order], max_points)
    return answer(x, y, len(unique))
