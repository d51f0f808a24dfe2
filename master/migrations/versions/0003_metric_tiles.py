"""Per-series point counts and M4 tiles, for fast names and whole-series plot reads.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROLES = ("first", "last", "min", "max")


def _point_columns() -> list[sa.Column]:
    columns = []
    for role in _ROLES:
        columns.append(sa.Column(f"{role}_step", sa.BigInteger(), nullable=False))
        for field in ("time", "epoch", "value"):
            columns.append(sa.Column(f"{role}_{field}", sa.Double(), nullable=False))
    return columns


def upgrade() -> None:
    op.create_table(
        "metric_series",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_metric_series_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "name", "rank", name=op.f("pk_metric_series")),
    )
    op.create_table(
        "metric_tiles",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("tile", sa.BigInteger(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("max_id", sa.BigInteger(), nullable=False),
        *_point_columns(),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_metric_tiles_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint(
            "run_id", "name", "rank", "level", "tile", name=op.f("pk_metric_tiles")
        ),
    )
    _backfill()


def _backfill() -> None:
    """Count and tile the points stored before this revision, one series at a time."""
    from master.services.series import tile_rows  # the same summaries ingest writes

    bind = op.get_bind()
    meta = sa.MetaData()
    points = sa.Table("metric_points", meta, autoload_with=bind)
    series = sa.Table("metric_series", meta, autoload_with=bind)
    tiles = sa.Table("metric_tiles", meta, autoload_with=bind)
    c = points.c
    found = bind.execute(
        sa.select(c.run_id, c.name, c.rank, sa.func.count()).group_by(c.run_id, c.name, c.rank)
    ).all()
    for run_id, name, rank, count in found:
        bind.execute(
            sa.insert(series), [{"run_id": run_id, "name": name, "rank": rank, "count": count}]
        )
        rows = bind.execute(
            sa.select(c.id, c.step, c.time, c.epoch, c.value)
            .where(c.run_id == run_id, c.name == name, c.rank == rank)
            .order_by(c.id)
        ).all()
        ids = np.fromiter((row[0] for row in rows), np.int64, len(rows))
        columns = {
            "step": np.fromiter((row[1] for row in rows), np.int64, len(rows)),
            **{
                field: np.fromiter((row[i] for row in rows), np.float64, len(rows))
                for i, field in enumerate(("time", "epoch", "value"), start=2)
            },
        }
        bind.execute(sa.insert(tiles), tile_rows(run_id, name, rank, 0, columns, ids))


def downgrade() -> None:
    op.drop_table("metric_tiles")
    op.drop_table("metric_series")
