"""A finished run with N points per metric, stored in a real master without going through the
API (minutes for millions of points otherwise): the seeding that ``dashboard_open.py`` and
``dashboard_draw.py`` share.

Points go in with bulk inserts (COPY on PostgreSQL), together with the per-series counts and
tiles that ingest would write for them (the master's tests check that tiles built batch by
batch equal tiles built at once), so the master reads them exactly as if a worker had sent them.
"""

from __future__ import annotations

import time
import uuid

import httpx
import numpy as np
from hold_master import HoldExecutor  # the same worker stand-in (bench/ is on sys.path)
from sqlalchemy import Engine, insert, select

from master.models import MetricPoint
from master.services import series

METRICS = ("train/loss", "val/accuracy", "train/samples_per_s")  # one per plot of the Run view
GROUPS = {"train/loss": "loss", "val/accuracy": "quality", "train/samples_per_s": "throughput"}
"""The Run view's plot of each metric (``bokeh_app.views.run_data.group_names``)."""
POINTS = MetricPoint.__table__
COLUMNS = ("run_id", "name", "rank", "step", "epoch", "time", "value")


def curve(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    step = np.arange(n)
    if name == "train/loss":
        values = 2.3 * np.exp(-step / (n / 8)) + 0.05 + 0.02 * rng.standard_normal(n)
        values[rng.integers(0, n, 20)] += 1.5  # spikes a plot must not lose
        return values
    if name == "val/accuracy":
        return 0.97 - 0.87 * np.exp(-step / (n / 6)) + 0.003 * rng.standard_normal(n)
    return 5_000 + 300 * np.sin(step / 5_000) + 50 * rng.standard_normal(n)


def bulk_store(
    engine: Engine, run_id: int, n: int, names: tuple[str, ...] | list[str] = METRICS
) -> None:
    """Points of ``names`` (rank 0, one step apart, 20 steps/s, 1000 steps/epoch), plus their
    series counts and tiles, in one transaction per metric."""
    rng = np.random.default_rng(7)
    t0 = time.time() - n / 20
    for name in names:
        step = np.arange(n, dtype=np.int64)
        columns = {"step": step, "time": t0 + step / 20, "epoch": step / 1000}
        columns["value"] = curve(name, n, rng)
        rows = zip(
            [run_id] * n,
            [name] * n,
            [0] * n,
            step.tolist(),
            columns["epoch"].tolist(),
            columns["time"].tolist(),
            columns["value"].tolist(),
            strict=True,
        )
        with engine.begin() as conn:
            dbapi = conn.connection.dbapi_connection
            assert dbapi is not None
            if engine.dialect.name == "postgresql":
                with (
                    dbapi.cursor() as cursor,
                    cursor.copy(f"COPY metric_points ({', '.join(COLUMNS)}) FROM STDIN") as copy,
                ):
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" * len(COLUMNS))
                dbapi.cursor().executemany(
                    f"INSERT INTO metric_points ({', '.join(COLUMNS)}) VALUES ({marks})", rows
                )
            ids = conn.execute(
                select(POINTS.c.id)
                .where(POINTS.c.run_id == run_id, POINTS.c.name == name)
                .order_by(POINTS.c.id)
            ).scalars()
            id_array = np.fromiter(ids, dtype=np.int64, count=n)
            conn.execute(
                insert(series.TILES), series.tile_rows(run_id, name, 0, 0, columns, id_array)
            )
            conn.execute(
                insert(series.SERIES), [{"run_id": run_id, "name": name, "rank": 0, "count": n}]
            )
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE metric_points")


def seed_run(
    url: str,
    token: str,
    executor: HoldExecutor,
    engine: Engine,
    points: int,
    names: tuple[str, ...] | list[str] = METRICS,
) -> int:
    """A digits-mlp run that ran and succeeded with ``points`` points of each of ``names`` (and
    a result), on the master at ``url`` whose admin token is ``token``; returns its id."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        spec = {"name": f"open-{uuid.uuid4().hex[:6]}", "benchmark": "digits-mlp"}
        response = http.post("/api/v1/runs", json={**spec, "workers": 2})
        response.raise_for_status()
        run_id = response.json()["id"]
        worker = {"Authorization": f"Bearer {executor.launches[-1].token}"}
        http.post(f"/api/v1/runs/{run_id}/status", json={"state": "running"}, headers=worker)
        bulk_store(engine, run_id, points, names)
        result = {
            "goal_reached": True,
            "goal_metric": "val/accuracy",
            "goal_value": 0.96,
            "time_to_goal_s": 40_000.0,
            "total_time_s": points / 20,
            "steps": points,
            "phases": {"data": 1, "forward": 3, "backward": 5, "communication": 2},
        }
        http.put(f"/api/v1/runs/{run_id}/result", json=result, headers=worker)
        http.post(f"/api/v1/runs/{run_id}/status", json={"state": "succeeded"}, headers=worker)
    return run_id
