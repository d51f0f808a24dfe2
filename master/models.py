"""Database tables (SQLAlchemy 2 typed mappings). Schema changes go through Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from mlbench_core.states import TERMINAL


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite stores no offset, so values come back naive; this type stores UTC and re-attaches
    the zone on read, so API responses always carry ``+00:00``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments INTEGER PRIMARY KEY (a 64-bit rowid anyway).
BigId = BigInteger().with_variant(Integer, "sqlite")

_NON_TERMINAL_SQL = "state NOT IN ({})".format(", ".join(f"'{s.value}'" for s in sorted(TERMINAL)))


# Named constraints, so that later migrations (SQLite batch mode included) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}  # noqa: RUF012


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        # At most one live run per name, enforced by the database so that two concurrent
        # creations cannot both pass the check (partial index: SQLite and PostgreSQL).
        Index(
            "uq_runs_live_name",
            "name",
            unique=True,
            sqlite_where=text(_NON_TERMINAL_SQL),
            postgresql_where=text(_NON_TERMINAL_SQL),
        ),
        Index("ix_runs_state", "state"),
        Index("ix_runs_group", "group"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63))
    benchmark: Mapped[str] = mapped_column(String(128))
    spec: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    executor: Mapped[str] = mapped_column(String(32))
    executor_ref: Mapped[dict[str, Any] | None]
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    exit_code: Mapped[int | None]
    group: Mapped[str | None] = mapped_column(String(63))
    manifest: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    transitions: Mapped[list[RunTransition]] = relationship(
        back_populates="run", order_by="RunTransition.id", passive_deletes=True
    )


class RunTransition(Base):
    """One state change of a run, kept for the run's history."""

    __tablename__ = "run_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")

    run: Mapped[Run] = relationship(back_populates="transitions")


class MetricPoint(Base):
    """One metric sample. Written in bulk with Core inserts, never one ORM object at a time."""

    __tablename__ = "metric_points"
    __table_args__ = (
        Index("ix_metric_points_series", "run_id", "name", "rank", "step"),
        # Cursor reads: WHERE run_id = ? AND id > ? ORDER BY id.
        Index("ix_metric_points_run_cursor", "run_id", "id"),
        # Ids only ever grow (no rowid reuse after a delete), so cursors stay meaningful.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    rank: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(BigInteger)
    epoch: Mapped[float] = mapped_column(Double)
    time: Mapped[float] = mapped_column(Double)
    value: Mapped[float] = mapped_column(Double)


class MetricSeries(Base):
    """Points stored per (run, name, rank) series; kept up to date by every ingest, so the
    names of a run and the size of a series are known without counting points."""

    __tablename__ = "metric_series"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class MetricTile(Base):
    """M4 summary (first, last, min and max point) of consecutive points of one series.

    A series' points are numbered in arrival order (0, 1, ...); tile ``t`` of level ``l``
    holds the points numbered ``t * 2**s`` to ``(t + 1) * 2**s - 1`` with ``s`` the level's
    shift (``master.services.series.LEVEL_SHIFTS``). Plots of millions of points read a few
    thousand tiles instead of every point. ``max_id`` bounds the ids of the tile's points,
    so a read as of a point id knows which tiles it may use.
    """

    __tablename__ = "metric_tiles"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    tile: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    max_id: Mapped[int] = mapped_column(BigInteger)
    first_step: Mapped[int] = mapped_column(BigInteger)
    first_time: Mapped[float] = mapped_column(Double)
    first_epoch: Mapped[float] = mapped_column(Double)
    first_value: Mapped[float] = mapped_column(Double)
    last_step: Mapped[int] = mapped_column(BigInteger)
    last_time: Mapped[float] = mapped_column(Double)
    last_epoch: Mapped[float] = mapped_column(Double)
    last_value: Mapped[float] = mapped_column(Double)
    min_step: Mapped[int] = mapped_column(BigInteger)
    min_time: Mapped[float] = mapped_column(Double)
    min_epoch: Mapped[float] = mapped_column(Double)
    min_value: Mapped[float] = mapped_column(Double)
    max_step: Mapped[int] = mapped_column(BigInteger)
    max_time: Mapped[float] = mapped_column(Double)
    max_epoch: Mapped[float] = mapped_column(Double)
    max_value: Mapped[float] = mapped_column(Double)


class MetricBatch(Base):
    """Ids of the batches already stored, so that a retried batch counts once."""

    __tablename__ = "metric_batches"
    __table_args__ = (UniqueConstraint("run_id", "batch_id", name="uq_metric_batches_run_batch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    batch_id: Mapped[str] = mapped_column(String(64))
    n_points: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Result(Base):
    """The structured outcome of a run (``mlbench_core.wire.RunResult``), one row per run."""

    __tablename__ = "results"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    goal_reached: Mapped[bool]
    goal_metric: Mapped[str | None] = mapped_column(String(128))
    goal_value: Mapped[float | None] = mapped_column(Double)
    time_to_goal_s: Mapped[float | None] = mapped_column(Double)
    final_value: Mapped[float | None] = mapped_column(Double)
    samples_per_s: Mapped[float] = mapped_column(Double)
    total_time_s: Mapped[float] = mapped_column(Double)
    steps: Mapped[int] = mapped_column(BigInteger)
    epochs: Mapped[float] = mapped_column(Double)
    data_s: Mapped[float] = mapped_column(Double)
    forward_s: Mapped[float] = mapped_column(Double)
    backward_s: Mapped[float] = mapped_column(Double)
    communication_s: Mapped[float] = mapped_column(Double)
    optimizer_s: Mapped[float] = mapped_column(Double)
    metrics_s: Mapped[float] = mapped_column(Double)
    epochs_to_goal: Mapped[float | None] = mapped_column(Double)
    best_value: Mapped[float | None] = mapped_column(Double)
    bytes_communicated: Mapped[int] = mapped_column(BigInteger, default=0)
    extra: Mapped[dict[str, Any]]
    received_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
