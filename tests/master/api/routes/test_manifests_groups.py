"""Run manifests and groups of repeated runs, through the API."""

from __future__ import annotations

from typing import Any

import pytest

from tests.master.conftest import API, Master

MANIFEST: dict[str, Any] = {
    "spec": {"name": "m", "benchmark": "digits-mlp"},
    "settings": {"lr": 0.1, "epochs": 30},
    "seed": 7,
    "world_size": 2,
    "backend": "gloo",
    "packages": {"python": "3.11.7", "torch": "2.13.0"},
    "git_commit": "abc123",
    "host": {"hostname": "box", "cpu_count": 2},
    "devices": ["box cpu (x86_64)", "box cpu (x86_64)"],
}


def test_manifest_put_get_and_who_may_write_it(master: Master) -> None:
    run_id = master.create()["id"]
    url = f"{API}/runs/{run_id}/manifest"
    missing = master.client.get(url)
    assert missing.status_code == 404 and "no manifest yet" in missing.json()["detail"]

    assert master.client.put(url, json=MANIFEST).status_code == 401
    assert master.client.put(url, json=MANIFEST, headers=master.admin).status_code == 403
    other = master.create(name="other")["id"]
    assert master.client.put(url, json=MANIFEST, headers=master.worker(other)).status_code == 403

    stored = master.client.put(url, json=MANIFEST, headers=master.worker(run_id))
    assert stored.status_code == 200
    assert master.client.get(url).json() == MANIFEST

    bad = master.client.put(url, json={**MANIFEST, "world_size": 0}, headers=master.worker(run_id))
    assert bad.status_code == 422
    assert master.client.get(url).json() == MANIFEST  # the stored one is untouched


def _finish(master: Master, run_id: int, reached: bool, seconds: float | None) -> None:
    result = {"goal_reached": reached, "time_to_goal_s": seconds, "samples_per_s": 10.0}
    response = master.client.put(
        f"{API}/runs/{run_id}/result", json=result, headers=master.worker(run_id)
    )
    assert response.status_code == 200, response.text
    master.status(run_id, "running")
    master.status(run_id, "succeeded")


def test_group_summary_is_the_mlperf_olympic_mean(master: Master) -> None:
    times = {"r0": 10.0, "r1": 30.0, "r2": 12.0, "r3": 14.0, "r4": None}
    ids = {}
    for i, (name, seconds) in enumerate(times.items()):
        ids[name] = master.create(name=name, group="sweep", seed=i)["id"]
        _finish(master, ids[name], seconds is not None, seconds)
    live = master.create(name="still-running", group="sweep", seed=9)["id"]
    master.create(name="elsewhere", group="other")

    summary = master.client.get(f"{API}/groups/sweep").json()
    assert [r["id"] for r in summary["runs"]] == [*ids.values(), live]
    assert [r["seed"] for r in summary["runs"]] == [0, 1, 2, 3, 4, 9]
    ttg = summary["time_to_goal"]
    assert ttg["runs"] == 5 and ttg["reached"] == 4  # the live run is not counted yet
    assert ttg["olympic_mean_s"] == pytest.approx((12.0 + 14.0) / 2)  # 10 and 30 dropped
    assert ttg["mean_s"] == pytest.approx((10.0 + 30.0 + 12.0 + 14.0) / 4)
    assert ttg["min_s"] == 10.0 and ttg["max_s"] == 30.0

    listed = master.client.get(f"{API}/runs", params={"group": "sweep"}).json()
    assert listed["total"] == 6 and {r["group"] for r in listed["items"]} == {"sweep"}


def test_group_errors(master: Master) -> None:
    assert master.client.get(f"{API}/groups/nothing-here").status_code == 404
    assert master.client.get(f"{API}/groups/Bad_Name").status_code == 422
    bad_spec = master.client.post(
        f"{API}/runs", json={"name": "x", "benchmark": "digits-mlp", "group": "No Spaces"},
        headers=master.admin,
    )  # fmt: skip
    assert bad_spec.status_code == 422
