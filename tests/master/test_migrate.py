"""Migrations create the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from master.db import make_engine
from master.migrate import MIGRATIONS_DIR, alembic_config, upgrade
from master.models import Base

TABLES = {"runs", "run_transitions", "metric_points", "metric_batches", "results"}


def _check_schema(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) >= TABLES
            head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []  # models == migrations
    finally:
        engine.dispose()


def test_upgrade_creates_the_schema_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'mlbench.db'}"
    upgrade(url)
    _check_schema(url)
    upgrade(url)  # idempotent: a second start changes nothing
    _check_schema(url)


@pytest.mark.postgres
def test_upgrade_creates_the_schema_on_postgresql(postgres_url: str) -> None:
    upgrade(postgres_url)
    _check_schema(postgres_url)
    upgrade(postgres_url)


def test_migrations_ship_with_the_package() -> None:
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert list((MIGRATIONS_DIR / "versions").glob("0001_*.py"))
