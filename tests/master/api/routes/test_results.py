"""Routes /runs/{id}/result."""

from __future__ import annotations

from typing import Any

from tests.master.conftest import API, Master

RESULT: dict[str, Any] = {
    "goal_reached": True,
    "goal_metric": "val/accuracy",
    "goal_value": 0.96,
    "time_to_goal_s": 12.5,
    "final_value": 0.971,
    "samples_per_s": 5321.0,
    "total_time_s": 20.25,
    "steps": 800,
    "epochs": 8.0,
    "epochs_to_goal": 5.0,
    "best_value": 0.975,
    "bytes_communicated": 3 * 2**40,  # beyond 32 bits: the column must be a BIGINT
    "phases": {
        "data": 1.0,
        "forward": 2.0,
        "backward": 3.0,
        "communication": 4.0,
        "optimizer": 0.5,
        "metrics": 0.25,
    },
    "extra": {"peak_bus_gbps": 3.5, "device": "cpu", "pinned": False},
}


def test_put_then_get_and_replace(master: Master) -> None:
    run_id = master.create()["id"]
    url = f"{API}/runs/{run_id}/result"
    response = master.client.get(url)
    assert response.status_code == 404
    assert response.json() == {"detail": f"run {run_id} has no result yet"}

    response = master.client.put(url, json=RESULT, headers=master.worker(run_id))
    assert response.status_code == 200
    assert response.json() == {**RESULT, "run_id": run_id}
    assert master.client.get(url).json() == {**RESULT, "run_id": run_id}

    second = {**RESULT, "goal_reached": False, "time_to_goal_s": None, "extra": {}}
    master.client.put(url, json=second, headers=master.worker(run_id))
    assert master.client.get(url).json() == {**second, "run_id": run_id}


def test_result_defaults_and_validation(master: Master) -> None:
    run_id = master.create()["id"]
    url = f"{API}/runs/{run_id}/result"
    response = master.client.put(url, json={"goal_reached": False}, headers=master.worker(run_id))
    assert response.status_code == 200
    assert response.json()["phases"] == {
        "data": 0.0,
        "forward": 0.0,
        "backward": 0.0,
        "communication": 0.0,
        "optimizer": 0.0,
        "metrics": 0.0,
    }
    bad = {**RESULT, "total_time_s": -1}
    response = master.client.put(url, json=bad, headers=master.worker(run_id))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "total_time_s"]
    assert master.client.get(url).json()["goal_reached"] is False  # unchanged


def test_result_auth_and_unknown_run(master: Master) -> None:
    a, b = master.create()["id"], master.create()["id"]
    url = f"{API}/runs/{a}/result"
    assert master.client.put(url, json=RESULT).status_code == 401
    assert master.client.put(url, json=RESULT, headers=master.admin).status_code == 403
    assert master.client.put(url, json=RESULT, headers=master.worker(b)).status_code == 403
    assert master.client.get(f"{API}/runs/999/result").status_code == 404
