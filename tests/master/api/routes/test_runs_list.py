"""GET /runs as a table of runs reads it: progress, result summary, benchmark filter."""

from __future__ import annotations

from typing import Any

from tests.master.api.routes.test_results import RESULT
from tests.master.conftest import API, Master


def _post_points(master: Master, run_id: int, points: list[dict[str, Any]], batch: str) -> None:
    body = {"batch_id": batch, "points": points}
    response = master.client.post(
        f"{API}/runs/{run_id}/metrics", json=body, headers=master.worker(run_id)
    )
    assert response.status_code == 200, response.text


def test_list_items_carry_progress_and_result(master: Master) -> None:
    fresh, training, done = (master.create()["id"] for _ in range(3))
    master.status(training, "running")
    _post_points(
        master,
        training,
        [
            {
                "name": "train/loss",
                "rank": r,
                "step": s,
                "epoch": s / 10,
                "time": 100.0 + s,
                "value": 1,
            }
            for s in range(0, 40, 10)
            for r in (0, 1)
        ],
        "batch-training-1",
    )
    _post_points(
        master,
        done,
        [{"name": "val/accuracy", "step": 7, "epoch": 2.0, "time": 50.0, "value": 0.9}],
        "batch-done-0001",
    )
    response = master.client.put(
        f"{API}/runs/{done}/result", json=RESULT, headers=master.worker(done)
    )
    assert response.status_code == 200, response.text

    items = {r["id"]: r for r in master.client.get(f"{API}/runs").json()["items"]}
    assert items[fresh]["progress"] is None and items[fresh]["result"] is None
    assert items[training]["progress"] == {"step": 30, "epoch": 3.0, "time": 130.0}
    assert items[training]["result"] is None
    assert items[done]["progress"] == {"step": 7, "epoch": 2.0, "time": 50.0}
    assert items[done]["result"] == {
        "goal_reached": True,
        "time_to_goal_s": 12.5,
        "final_value": 0.971,
        "total_time_s": 20.25,
        "epochs": 8.0,
    }
    # The single-run read is unchanged: transitions, no listing extras.
    one = master.get(training)
    assert "progress" not in one and one["transitions"]


def test_list_filters_by_benchmark(master: Master) -> None:
    digits = master.create()["id"]
    bench = master.create(benchmark="allreduce", workers=2)["id"]
    page = master.client.get(f"{API}/runs", params={"benchmark": "allreduce"}).json()
    assert [r["id"] for r in page["items"]] == [bench] and page["total"] == 1
    page = master.client.get(f"{API}/runs", params={"benchmark": "digits-mlp"}).json()
    assert [r["id"] for r in page["items"]] == [digits]
    page = master.client.get(f"{API}/runs", params={"benchmark": "nope"}).json()
    assert page["items"] == [] and page["total"] == 0
