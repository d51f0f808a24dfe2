"""Routes /runs/{id}/metrics: ingest, cursor reads, downsampling, names, export."""

from __future__ import annotations

import csv
import io
import json
import math
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from master.settings import Settings
from tests.master.conftest import API, Master, RecordingExecutor, bearer, start_master


def point(name: str = "train/loss", step: int = 0, value: float = 1.0, **more: Any) -> dict:
    return {"name": name, "step": step, "time": 1_700_000_000.0 + step, "value": value, **more}


def batch(points: list[dict], batch_id: str | None = None) -> dict:
    return {"batch_id": batch_id or uuid.uuid4().hex, "points": points}


def post(master: Master, run_id: int, body: dict | str, headers: dict | None = None):
    kwargs: dict[str, Any] = {"headers": headers if headers is not None else master.worker(run_id)}
    if isinstance(body, str):
        kwargs["content"] = body
        kwargs["headers"] = {**kwargs["headers"], "Content-Type": "application/json"}
    else:
        kwargs["json"] = body
    return master.client.post(f"{API}/runs/{run_id}/metrics", **kwargs)


def read(master: Master, run_id: int, **params: Any) -> dict:
    response = master.client.get(f"{API}/runs/{run_id}/metrics", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_ingest_and_read_back(master: Master) -> None:
    run_id = master.create()["id"]
    points = [point(step=i, value=0.5 * i, epoch=i / 10, rank=i % 2) for i in range(10)]
    response = post(master, run_id, batch(points))
    assert response.status_code == 200
    assert response.json() == {"stored": 10, "duplicate": False}

    page = read(master, run_id)
    assert page["points"] == [
        {k: p.get(k, 0) for k in ("name", "rank", "step", "epoch", "time", "value")} for p in points
    ]
    assert page["next_cursor"] > 0 and page["has_more"] is False


def test_repeated_batch_id_is_stored_once(master: Master) -> None:
    run_id = master.create()["id"]
    body = batch([point(step=1), point(step=2)], batch_id="retry-me-123")
    assert post(master, run_id, body).json() == {"stored": 2, "duplicate": False}
    assert post(master, run_id, body).json() == {"stored": 0, "duplicate": True}
    assert len(read(master, run_id)["points"]) == 2
    # The same batch id in another run is another batch.
    other = master.create()["id"]
    assert post(master, other, body).json() == {"stored": 2, "duplicate": False}


def test_cursor_reads_return_each_point_exactly_once(master: Master) -> None:
    run_id = master.create()["id"]
    seen: list[float] = []
    cursor = 0
    value = 0
    for round_ in range(4):
        for _ in range(3):
            post(master, run_id, batch([point(step=value + i, value=value + i) for i in range(7)]))
            value += 7
        while True:  # read everything new, 5 at a time
            page = read(master, run_id, cursor=cursor, limit=5)
            seen.extend(p["value"] for p in page["points"])
            assert page["next_cursor"] >= cursor
            cursor = page["next_cursor"]
            if not page["has_more"]:
                break
        assert seen == list(range(value)), f"round {round_}"
    empty = read(master, run_id, cursor=cursor)
    assert empty == {"points": [], "next_cursor": cursor, "has_more": False}


def test_read_filters_by_name_and_rank(master: Master) -> None:
    run_id = master.create()["id"]
    post(
        master,
        run_id,
        batch([point(n, step=s, rank=r) for n in ("a", "b", "c") for r in (0, 1) for s in (1, 2)]),
    )
    page = read(master, run_id, name=["a", "c"], rank=1)
    assert {(p["name"], p["rank"]) for p in page["points"]} == {("a", 1), ("c", 1)}
    assert len(page["points"]) == 4


def test_downsampling_keeps_first_last_min_max_per_series(master: Master) -> None:
    run_id = master.create()["id"]
    values = {
        0: [math.sin(i / 50) for i in range(1000)],
        1: [math.cos(i / 70) for i in range(1000)],
    }
    values[0][333] = -5.0  # a spike down and one up, in the middle
    values[0][777] = 9.0
    for start in range(0, 1000, 250):
        pts = [
            point("loss", step=s, value=values[r][s], rank=r)
            for r in (0, 1)
            for s in range(start, start + 250)
        ]
        post(master, run_id, batch(pts))
    post(master, run_id, batch([point("lr", step=s, value=0.1) for s in range(10)]))

    full = read(master, run_id)
    page = read(master, run_id, max_points=40)
    assert page["next_cursor"] == full["next_cursor"]  # the cursor moves past all points read
    by_series: dict[tuple[str, int], list[dict]] = {}
    for p in page["points"]:
        by_series.setdefault((p["name"], p["rank"]), []).append(p)
    assert len(by_series[("lr", 0)]) == 10  # short series are left alone
    for rank in (0, 1):
        kept = by_series[("loss", rank)]
        assert 4 < len(kept) <= 40
        steps = [p["step"] for p in kept]
        assert steps[0] == 0 and steps[-1] == 999  # first and last
        kept_values = [p["value"] for p in kept]
        assert min(kept_values) == min(values[rank]) and max(kept_values) == max(values[rank])
    # Points still come in id order.
    assert [p["step"] for p in page["points"] if p["name"] == "loss" and p["rank"] == 0] == sorted(
        p["step"] for p in by_series[("loss", 0)]
    )

    response = master.client.get(f"{API}/runs/{run_id}/metrics", params={"max_points": 3})
    assert response.status_code == 422


@pytest.fixture
def small_reads(tmp_path: Path, database_url: str | None) -> Iterator[Master]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        admin_token="t",
        max_points_per_read=7,
    )
    yield from start_master(settings, RecordingExecutor())


def test_limit_is_capped_by_max_points_per_read(small_reads: Master) -> None:
    master = small_reads
    master.admin = bearer("t")
    run_id = master.create()["id"]
    post(master, run_id, batch([point(step=i) for i in range(20)]))
    page = read(master, run_id, limit=1000)
    assert len(page["points"]) == 7 and page["has_more"] is True
    assert len(read(master, run_id)["points"]) == 7


def test_metric_names(master: Master) -> None:
    run_id = master.create()["id"]
    post(
        master,
        run_id,
        batch([point("val/accuracy", step=1, rank=0), point("train/loss", step=1, rank=1)]),
    )
    post(master, run_id, batch([point("train/loss", step=s, rank=0) for s in range(3)]))
    response = master.client.get(f"{API}/runs/{run_id}/metrics/names")
    assert response.json() == [
        {"name": "train/loss", "ranks": [0, 1], "count": 4},
        {"name": "val/accuracy", "ranks": [0], "count": 1},
    ]
    assert master.client.get(f"{API}/runs/404/metrics/names").status_code == 404


def test_export_csv_and_json(master: Master) -> None:
    run_id = master.create()["id"]
    pts = [point("loss", step=s, value=1 / (s + 3), epoch=s / 7, rank=s % 2) for s in range(12_000)]
    for start in range(0, len(pts), 5_000):
        post(master, run_id, batch(pts[start : start + 5_000]))

    response = master.client.get(f"{API}/runs/{run_id}/metrics/export", params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="run-{run_id}-metrics.csv"' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["name", "rank", "step", "epoch", "time", "value"]
    assert len(rows) == 1 + len(pts)
    for row, p in zip(rows[1:], pts, strict=True):
        assert row[0] == p["name"] and int(row[1]) == p["rank"] and int(row[2]) == p["step"]
        assert float(row[3]) == p["epoch"] and float(row[4]) == p["time"]
        assert float(row[5]) == p["value"]  # exact round trip

    response = master.client.get(f"{API}/runs/{run_id}/metrics/export", params={"format": "json"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    exported = json.loads(response.text)
    assert exported == [
        {k: p[k] for k in ("name", "rank", "step", "epoch", "time", "value")} for p in pts
    ]

    empty = master.create()["id"]
    assert master.client.get(f"{API}/runs/{empty}/metrics/export?format=json").json() == []
    assert (
        master.client.get(f"{API}/runs/{empty}/metrics/export").text
        == "name,rank,step,epoch,time,value\r\n"
    )
    assert master.client.get(f"{API}/runs/999/metrics/export").status_code == 404
    assert master.client.get(f"{API}/runs/{empty}/metrics/export?format=xml").status_code == 422


def test_bad_batches_are_rejected_with_readable_messages(master: Master) -> None:
    run_id = master.create()["id"]
    nan = (
        '{"batch_id": "batch-nan-1",'
        ' "points": [{"name": "loss", "step": 1, "time": 1.0, "value": NaN}]}'
    )
    response = post(master, run_id, nan)
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == "Input should be a finite number"
    assert response.json()["detail"][0]["loc"] == ["body", "points", 0, "value"]

    response = post(master, run_id, batch([]))
    assert response.status_code == 422
    assert "at least 1 item" in response.json()["detail"][0]["msg"]

    response = post(master, run_id, batch([point("bad name!")]))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "points", 0, "name"]

    response = post(master, run_id, {"batch_id": "short", "points": [point()]})
    assert response.status_code == 422
    assert read(master, run_id)["points"] == []  # nothing stored by any of these


def test_bodies_are_checked_in_one_pass_with_fastapi_error_shape(master: Master) -> None:
    """The body is parsed and validated from its bytes (``json_body``): broken JSON, unknown
    keys and wrong types get FastAPI's 422 list, with nothing stored."""
    run_id = master.create()["id"]
    response = post(master, run_id, '{"batch_id": "broken-json-1", "points": [')
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
    assert response.json()["detail"][0]["loc"][0] == "body"

    response = post(master, run_id, batch([point(colour="red")]))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "points", 0, "colour"]
    assert response.json()["detail"][0]["type"] == "extra_forbidden"

    response = post(master, run_id, batch([point(step=-1), {**point(), "step": "two"}]))
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [
        ["body", "points", 0, "step"],
        ["body", "points", 1, "step"],
    ]
    assert "input" not in response.json()["detail"][0]  # batches are not echoed back
    assert read(master, run_id)["points"] == []


def test_a_strangers_body_is_not_parsed(master: Master) -> None:
    """Authentication comes before the body: without a token even broken JSON is a 401."""
    run_id = master.create()["id"]
    assert post(master, run_id, "{not json", headers={}).status_code == 401


def test_openapi_documents_the_batch_body(master: Master) -> None:
    schema = master.client.get("/openapi.json").json()
    body = schema["paths"][f"{API}/runs/{{run_id}}/metrics"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/MetricBatch"
    components = schema["components"]["schemas"]
    point_ref = components["MetricBatch"]["properties"]["points"]["items"]["$ref"]
    assert point_ref == "#/components/schemas/MetricPoint"
    assert components["MetricPoint"]["required"] == ["name", "step", "time", "value"]


def test_ingest_auth(master: Master) -> None:
    a, b = master.create()["id"], master.create()["id"]
    body = batch([point()])
    assert post(master, a, body, headers={}).status_code == 401
    assert post(master, a, body, headers=bearer("forged")).status_code == 401
    response = post(master, a, body, headers=master.admin)
    assert response.status_code == 403
    assert (
        response.json()["detail"]
        == f"this route takes the worker token of run {a}, not the admin token"
    )
    response = post(master, a, body, headers=master.worker(b))
    assert response.status_code == 403
    assert response.json()["detail"] == f"this worker token belongs to another run, not to run {a}"


def test_reads_of_unknown_runs_are_404(master: Master) -> None:
    response = master.client.get(f"{API}/runs/77/metrics")
    assert response.status_code == 404 and response.json() == {"detail": "run 77 does not exist"}


def test_metrics_after_the_grace_period_conflict(master: Master) -> None:
    run_id = master.create()["id"]
    master.executor.exit(run_id, 1, "crash")
    # Within the grace period (60 s) late points are still taken.
    assert post(master, run_id, batch([point()])).status_code == 200

    master.settings.metrics_grace_s = 0.0
    response = post(master, run_id, batch([point()]))
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert detail.startswith(f"run {run_id} ended (failed) at ")
    assert detail.endswith("more than 0 s ago; it takes no more metrics")
