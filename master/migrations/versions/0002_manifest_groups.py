"""Run manifests and groups of repeated runs; richer results.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("group", sa.String(length=63), nullable=True))
        batch.add_column(sa.Column("manifest", sa.JSON(), nullable=True))
    op.create_index("ix_runs_group", "runs", ["group"])
    with op.batch_alter_table("results") as batch:
        batch.add_column(sa.Column("epochs_to_goal", sa.Double(), nullable=True))
        batch.add_column(sa.Column("best_value", sa.Double(), nullable=True))
        batch.add_column(
            sa.Column("bytes_communicated", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("results") as batch:
        batch.drop_column("bytes_communicated")
        batch.drop_column("best_value")
        batch.drop_column("epochs_to_goal")
    op.drop_index("ix_runs_group", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("manifest")
        batch.drop_column("group")
