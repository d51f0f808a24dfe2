"""Revision 0003 counts and tiles the metric points stored before it (SQLite, PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import insert, select

from master.db import make_engine, make_sessionmaker
from master.migrate import upgrade
from master.models import MetricPoint, MetricSeries, MetricTile, Run, utcnow
from master.services.series import read_series, tile_rows


def _check_backfill(url: str) -> None:
    upgrade(url, "0002")
    engine = make_engine(url)
    try:
        now = utcnow()
        run = {
            "name": "old",
            "benchmark": "digits-mlp",
            "spec": {},
            "state": "succeeded",
            "reason": "",
            "executor": "local",
            "token_hash": "0" * 64,
            "created_at": now,
            "updated_at": now,
        }
        points = [
            {"name": name, "rank": rank, "step": s, "epoch": s / 10, "time": 1e9 + s, "value": v}
            for s in range(3_000)
            for name, rank, v in (
                ("loss", 0, float(s % 17)),
                ("loss", 1, -s * 0.5),
                ("acc", 0, 1.0),
            )
        ]
        with engine.begin() as conn:
            # Only the tables of revision 0002 exist here.
            run_id = conn.execute(insert(Run.__table__).values(**run)).inserted_primary_key[0]
            conn.execute(insert(MetricPoint.__table__), [{"run_id": run_id, **p} for p in points])
        upgrade(url)
        with engine.connect() as conn:
            counts = conn.execute(
                select(MetricSeries.name, MetricSeries.rank, MetricSeries.count).order_by(
                    MetricSeries.name, MetricSeries.rank
                )
            ).all()
            assert [tuple(c) for c in counts] == [
                ("acc", 0, 3000),
                ("loss", 0, 3000),
                ("loss", 1, 3000),
            ]
            stored = (
                conn.execute(
                    select(MetricTile.__table__).where(
                        MetricTile.name == "loss", MetricTile.rank == 0
                    )
                )
                .mappings()
                .all()
            )
        mine = [p for p in points if p["name"] == "loss" and p["rank"] == 0]
        columns = {
            "step": np.array([p["step"] for p in mine], dtype=np.int64),
            **{f: np.array([p[f] for p in mine]) for f in ("time", "epoch", "value")},
        }
        expected = tile_rows(run_id, "loss", 0, 0, columns, np.zeros(len(mine), dtype=np.int64))
        drop = {"max_id"}

        def key(r):
            return (r["level"], r["tile"])

        assert sorted(
            ({k: v for k, v in r.items() if k not in drop} for r in stored), key=key
        ) == sorted(({k: v for k, v in r.items() if k not in drop} for r in expected), key=key)
        assert all(r["max_id"] > 0 for r in stored)
        with make_sessionmaker(engine)() as session:
            body = read_series(session, run_id, "loss", rank=1, max_points=100)
        assert body.total == 3000 and body.downsampled and min(body.y) == -1499.5
    finally:
        engine.dispose()


def test_backfill_on_sqlite(tmp_path: Path) -> None:
    _check_backfill(f"sqlite:///{tmp_path / 'mlbench.db'}")


@pytest.mark.postgres
def test_backfill_on_postgresql(postgres_url: str) -> None:
    _check_backfill(postgres_url)
