"""Route /runs/{id}/metrics/series: whole-series plot reads (full resolution or M4), zoom,
ranks, reads as of a point id; and the per-series counts and tiles that ingest keeps."""

from __future__ import annotations

import math
import random
import uuid
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from master.models import MetricSeries, MetricTile
from master.services.series import FIELDS, ROLES, tile_rows
from tests.master.conftest import API, Master

T0 = 1_700_000_000.0


def point(name: str, step: int, value: float, rank: int = 0) -> dict[str, Any]:
    # Time and epoch grow with the step, as for points one rank logs while training.
    return {
        "name": name,
        "rank": rank,
        "step": step,
        "epoch": step / 100,
        "time": T0 + step / 2,
        "value": value,
    }


def post(master: Master, run_id: int, points: list[dict[str, Any]], size: int = 10_000) -> None:
    for start in range(0, len(points), size):
        body = {"batch_id": uuid.uuid4().hex, "points": points[start : start + size]}
        response = master.client.post(
            f"{API}/runs/{run_id}/metrics", json=body, headers=master.worker(run_id)
        )
        assert response.status_code == 200, response.text


def series(master: Master, run_id: int, name: str = "loss", **params: Any) -> dict[str, Any]:
    response = master.client.get(
        f"{API}/runs/{run_id}/metrics/series", params={"name": name, **params}
    )
    assert response.status_code == 200, response.text
    return response.json()


def wavy(n: int) -> list[float]:
    values = [math.sin(i / 97) + 0.1 * math.sin(i / 3) for i in range(n)]
    values[n // 3] = -7.0  # spikes that downsampling must keep
    values[2 * n // 3] = 9.0
    return values


def test_small_series_comes_whole(master: Master) -> None:
    run_id = master.create()["id"]
    values = [1 / (s + 1) for s in range(300)]
    post(master, run_id, [point("loss", s, v) for s, v in enumerate(values)])
    body = series(master, run_id)
    assert body["x"] == list(range(300)) and body["y"] == values
    assert body["total"] == 300 and body["downsampled"] is False
    assert body["name"] == "loss" and body["rank"] is None and body["ranks"] == [0]
    assert body["axis"] == "step" and body["last_id"] > 0

    by_time = series(master, run_id, x="time")
    assert by_time["x"] == [T0 + s / 2 for s in range(300)] and by_time["y"] == values
    assert series(master, run_id, x="epoch")["x"] == [s / 100 for s in range(300)]


@pytest.mark.parametrize("n", [1_500, 30_000])  # level-0 tiles too few (points read) / tiles
def test_long_series_is_downsampled_keeping_first_last_and_extremes(master: Master, n: int) -> None:
    run_id = master.create()["id"]
    values = wavy(n)
    post(master, run_id, [point("loss", s, v) for s, v in enumerate(values)], size=3_333)
    body = series(master, run_id, max_points=400)
    assert body["downsampled"] is True and body["total"] == n
    assert 100 < len(body["x"]) <= 400 and len(body["x"]) == len(body["y"])
    assert body["x"] == sorted(body["x"])
    assert body["x"][0] == 0 and body["x"][-1] == n - 1
    assert min(body["y"]) == -7.0 and max(body["y"]) == 9.0
    for x, y in zip(body["x"], body["y"], strict=True):  # real points, not averages
        assert values[int(x)] == y
    # The default asks for 2000 points.
    assert len(series(master, run_id)["x"]) <= 2000


def test_zoom_reads_full_resolution_when_the_range_is_small(master: Master) -> None:
    run_id = master.create()["id"]
    n = 40_000
    values = wavy(n)
    post(master, run_id, [point("loss", s, v) for s, v in enumerate(values)])

    body = series(master, run_id, x_min=10_000.5, x_max=11_200, max_points=2000)
    assert body["downsampled"] is False and body["total"] == 1200
    assert body["x"] == list(range(10_001, 11_201))
    assert body["y"] == values[10_001:11_201]

    # The same range by wall time and by epoch.
    by_time = series(master, run_id, x="time", x_min=T0 + 5_000.25, x_max=T0 + 5_600)
    assert by_time["x"] == [T0 + s / 2 for s in range(10_001, 11_201)]
    by_epoch = series(master, run_id, x="epoch", x_min=100.005, x_max=112)
    assert by_epoch["y"] == values[10_001:11_201]


@pytest.mark.parametrize("axis", ["step", "time", "epoch"])
def test_zoom_on_a_large_range_is_downsampled_within_it(master: Master, axis: str) -> None:
    run_id = master.create()["id"]
    n = 60_000
    values = wavy(n)
    post(master, run_id, [point("loss", s, v) for s, v in enumerate(values)])
    lo, hi = 15_003, 45_001  # contains the spike down (20000) and up (40000)
    to_x = {"step": float, "time": lambda s: T0 + s / 2, "epoch": lambda s: s / 100}[axis]
    body = series(master, run_id, x=axis, x_min=to_x(lo), x_max=to_x(hi), max_points=500)
    assert body["downsampled"] is True
    assert body["total"] == hi - lo + 1  # exact: whole tiles plus the points at both ends
    assert 100 < len(body["x"]) <= 500
    assert to_x(lo) <= body["x"][0] and body["x"][-1] <= to_x(hi)
    assert body["x"][0] == to_x(lo) and body["x"][-1] == to_x(hi)
    assert min(body["y"]) == -7.0 and max(body["y"]) == 9.0


def test_empty_and_missing(master: Master) -> None:
    run_id = master.create()["id"]
    body = series(master, run_id)
    assert body["x"] == [] and body["total"] == 0 and body["last_id"] == 0
    post(master, run_id, [point("loss", s, 1.0) for s in range(10)])
    assert series(master, run_id, name="other")["x"] == []
    assert series(master, run_id, rank=3)["ranks"] == []
    assert series(master, run_id, x_min=100, x_max=200)["total"] == 0

    missing = master.client.get(f"{API}/runs/999/metrics/series", params={"name": "loss"})
    assert missing.status_code == 404 and missing.json() == {"detail": "run 999 does not exist"}
    url = f"{API}/runs/{run_id}/metrics/series"
    for params in (
        {},  # name is required
        {"name": "loss", "max_points": 3},
        {"name": "loss", "max_points": 1_000_000},
        {"name": "loss", "x": "rank"},
    ):
        assert master.client.get(url, params=params).status_code == 422, params
    response = master.client.get(url, params={"name": "loss", "x_min": 5, "x_max": 1})
    assert response.status_code == 422
    assert "x_min (5) is greater than x_max (1)" in response.text


def test_one_rank_or_the_mean_over_ranks(master: Master) -> None:
    run_id = master.create()["id"]
    pts = [point("loss", s, float(s + 10 * r), rank=r) for s in range(50) for r in (0, 1)]
    pts.append(point("loss", 50, 100.0, rank=0))  # rank 1 has not reported step 50 yet
    post(master, run_id, pts)
    rank1 = series(master, run_id, rank=1)
    assert rank1["rank"] == 1 and rank1["ranks"] == [1]
    assert rank1["y"] == [float(s + 10) for s in range(50)]
    mean = series(master, run_id)
    assert mean["rank"] is None and mean["ranks"] == [0, 1] and mean["total"] == 51
    assert mean["x"] == list(range(51))
    assert mean["y"] == [s + 5.0 for s in range(50)] + [100.0]
    assert series(master, run_id, x="time")["x"][:2] == [T0, T0 + 0.5]
    assert series(master, run_id, x_min=10, x_max=12)["y"] == [15.0, 16.0, 17.0]
    # Long multi-rank series are downsampled too.
    post(
        master, run_id, [point("big", s, math.sin(s), rank=r) for s in range(5000) for r in (0, 1)]
    )
    big = series(master, run_id, name="big", max_points=100)
    assert big["downsampled"] is True and big["total"] == 5000 and len(big["x"]) <= 100


def test_until_id_reads_as_of_a_point_and_cursor_reads_continue(master: Master) -> None:
    run_id = master.create()["id"]
    post(master, run_id, [point("loss", s, float(s)) for s in range(20_000)])
    first = series(master, run_id, max_points=200)
    post(master, run_id, [point("loss", s, -float(s)) for s in range(20_000, 20_100)])
    post(master, run_id, [point("acc", s, 0.5) for s in range(10)])
    again = series(master, run_id, max_points=200, until_id=first["last_id"])
    assert again == first  # tiles that hold newer points are not used
    acc = series(master, run_id, name="acc", until_id=first["last_id"])
    assert acc["total"] == 0
    # A cursor read from last_id returns exactly the points stored since.
    page = master.client.get(
        f"{API}/runs/{run_id}/metrics", params={"cursor": first["last_id"], "name": "loss"}
    ).json()
    assert [p["step"] for p in page["points"]] == list(range(20_000, 20_100))
    now = series(master, run_id, max_points=200)
    assert now["total"] == 20_100 and min(now["y"]) == -20_099.0
    assert now["last_id"] == first["last_id"] + 110


def _tiles(master: Master, run_id: int) -> list[dict[str, Any]]:
    with master.client.app.state.mlbench.sessionmaker() as session:  # type: ignore[attr-defined]
        rows = session.execute(
            select(MetricTile.__table__).where(MetricTile.run_id == run_id)
        ).mappings()
        skip = {"max_id"}  # an upper bound at ingest (the batch's newest id)
        return sorted(
            ({k: v for k, v in row.items() if k not in skip} for row in rows),
            key=lambda r: (r["name"], r["rank"], r["level"], r["tile"]),
        )


def test_tiles_built_batch_by_batch_equal_tiles_of_the_whole_series(master: Master) -> None:
    run_id = master.create()["id"]
    rng = random.Random(5)
    values = [rng.choice([0.0, 1.0, 2.0, rng.random()]) for _ in range(9_000)]  # many ties
    pts = [point("loss", s, v, rank=s % 2) for s, v in enumerate(values)]
    start = 0
    while start < len(pts):  # batch sizes that cross tile borders at every level
        size = rng.choice([1, 7, 63, 64, 65, 511, 600, 2_000])
        post(master, run_id, pts[start : start + size])
        start += size
    expected = []
    for rank in (0, 1):
        mine = [p for p in pts if p["rank"] == rank]
        columns = {
            "step": np.array([p["step"] for p in mine], dtype=np.int64),
            **{f: np.array([p[f] for p in mine]) for f in ("time", "epoch", "value")},
        }
        ids = np.zeros(len(mine), dtype=np.int64)
        for row in tile_rows(run_id, "loss", rank, 0, columns, ids):
            row.pop("max_id")
            expected.append(row)
    expected.sort(key=lambda r: (r["name"], r["rank"], r["level"], r["tile"]))
    assert _tiles(master, run_id) == expected
    assert {f"{r}_{f}" for r in ROLES for f in FIELDS} <= set(expected[0])


def test_delete_removes_series_and_tiles(master: Master) -> None:
    run_id = master.create()["id"]
    post(master, run_id, [point("loss", s, 1.0) for s in range(100)])
    master.executor.exit(run_id, 1, "gone")
    assert master.client.delete(f"{API}/runs/{run_id}", headers=master.admin).status_code == 204
    assert _tiles(master, run_id) == []
    with master.client.app.state.mlbench.sessionmaker() as session:  # type: ignore[attr-defined]
        assert (
            session.scalars(select(MetricSeries).where(MetricSeries.run_id == run_id)).all() == []
        )
