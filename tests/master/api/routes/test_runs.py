"""Routes /runs: create, list, read, stop, delete, status reports."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from master.models import Run
from tests.master.conftest import API, Master, bearer, spec


def _detail_msgs(response) -> str:
    return " | ".join(error["msg"] for error in response.json()["detail"])


def test_create_starts_the_run_and_hands_the_executor_a_token(master: Master) -> None:
    run = master.create(name="digits-2w", workers=3, overrides={"lr": 0.2})

    assert run["state"] == "starting"
    assert run["spec"]["workers"] == 3 and run["spec"]["overrides"] == {"lr": 0.2}
    assert run["spec"]["backend"] == "gloo"  # defaults filled in
    assert [(t["from_state"], t["to_state"]) for t in run["transitions"]] == [
        (None, "queued"),
        ("queued", "starting"),
    ]
    assert run["started_at"] is not None and run["finished_at"] is None
    assert run["created_at"].endswith("Z")  # UTC
    launch = master.executor.launches[run["id"]]
    assert launch.api_url == "http://master.test:8000"
    assert launch.spec.name == "digits-2w"
    # Only the hash of the worker token is stored.
    with master.client.app.state.mlbench.sessionmaker() as session:
        stored = session.scalar(select(Run).where(Run.id == run["id"]))
        assert stored.token_hash == hashlib.sha256(launch.token.encode()).hexdigest()
        assert stored.executor_ref == {"pid": 40_000 + run["id"]}


def test_create_needs_the_admin_token(master: Master) -> None:
    response = master.client.post(f"{API}/runs", json=spec())
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "missing bearer token" in response.json()["detail"]

    response = master.client.post(f"{API}/runs", json=spec(), headers=bearer("nope"))
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid token"}

    run = master.create()
    response = master.client.post(f"{API}/runs", json=spec(), headers=master.worker(run["id"]))
    assert response.status_code == 403
    assert "needs the admin token" in response.json()["detail"]


def test_create_rejects_bad_specs_with_readable_messages(master: Master) -> None:
    def post(**overrides: object):
        return master.client.post(f"{API}/runs", json=spec(**overrides), headers=master.admin)

    response = post(benchmark="imagenet-9000")
    assert response.status_code == 422
    assert "unknown benchmark 'imagenet-9000'" in _detail_msgs(response)
    assert "digits-mlp" in _detail_msgs(response)  # lists the known ones

    response = post(overrides={"learning_rate": 0.1})
    assert response.status_code == 422
    assert "'learning_rate' not a setting of 'digits-mlp'" in _detail_msgs(response)

    response = post(name="Bad_Name")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "name"]

    response = post(workers=0)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "workers"]
    assert "greater than or equal to 1" in _detail_msgs(response)

    response = post(executor="argo")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "executor"]
    assert "executor 'argo' is not configured on this master (configured: local)" in (
        _detail_msgs(response)
    )
    assert master.client.get(f"{API}/runs").json()["total"] == 0  # nothing stored


def test_duplicate_live_name_conflicts_until_the_run_ended(master: Master) -> None:
    first = master.create(name="same")
    response = master.client.post(f"{API}/runs", json=spec(name="same"), headers=master.admin)
    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"run {first['id']} named 'same' is still starting; stop it or pick another name"
    )

    master.executor.exit(first["id"], 1, "boom")
    second = master.create(name="same")
    assert second["id"] != first["id"]


def test_executor_start_failure_keeps_the_run_as_failed(master: Master) -> None:
    master.executor.start_error = "torchrun not found\nsecond line"
    run = master.create()
    assert run["state"] == "failed"
    assert run["reason"] == "executor could not start the run: torchrun not found"
    assert run["finished_at"] is not None


def test_list_pages_newest_first_and_filters_by_state(master: Master) -> None:
    ids = [master.create()["id"] for _ in range(5)]
    master.executor.exit(ids[0], 2, "crash")
    master.status(ids[1], "running")

    page = master.client.get(f"{API}/runs", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 1
    assert [r["id"] for r in page["items"]] == [ids[3], ids[2]]

    page = master.client.get(f"{API}/runs", params={"state": ["failed", "running"]}).json()
    assert page["total"] == 2
    assert [r["id"] for r in page["items"]] == [ids[1], ids[0]]

    page = master.client.get(f"{API}/runs", params={"state": "succeeded"}).json()
    assert page == {"items": [], "total": 0, "limit": 50, "offset": 0}

    assert master.client.get(f"{API}/runs", params={"state": "bogus"}).status_code == 422
    assert master.client.get(f"{API}/runs", params={"limit": 0}).status_code == 422
    assert master.client.get(f"{API}/runs", params={"offset": -1}).status_code == 422


def test_get_unknown_run_is_404(master: Master) -> None:
    response = master.client.get(f"{API}/runs/999")
    assert response.status_code == 404
    assert response.json() == {"detail": "run 999 does not exist"}


def test_stop_goes_through_stopping_to_stopped(master: Master) -> None:
    run = master.create()
    response = master.client.post(f"{API}/runs/{run['id']}/stop", headers=master.admin)
    assert response.status_code == 202
    assert response.json()["state"] == "stopping"
    assert master.executor.stops == [(run["id"], {"pid": 40_000 + run["id"]})]

    # Repeating the stop sends it again and stays stopping.
    response = master.client.post(f"{API}/runs/{run['id']}/stop", headers=master.admin)
    assert response.status_code == 202 and response.json()["state"] == "stopping"
    assert len(master.executor.stops) == 2

    master.executor.exit(run["id"], -15, "terminated by SIGTERM")
    ended = master.get(run["id"])
    assert ended["state"] == "stopped"
    assert ended["reason"] == "stopped on request (terminated by SIGTERM)"
    assert ended["exit_code"] == -15

    response = master.client.post(f"{API}/runs/{run['id']}/stop", headers=master.admin)
    assert response.status_code == 409
    assert response.json()["detail"] == f"run {run['id']} already ended (stopped); nothing to stop"


def test_stop_auth_and_unknown_run(master: Master) -> None:
    run = master.create()
    assert master.client.post(f"{API}/runs/{run['id']}/stop").status_code == 401
    response = master.client.post(f"{API}/runs/{run['id']}/stop", headers=master.worker(run["id"]))
    assert response.status_code == 403
    response = master.client.post(f"{API}/runs/12345/stop", headers=master.admin)
    assert response.status_code == 404


def test_delete_only_ended_runs_and_everything_of_them(master: Master) -> None:
    run = master.create()
    run_id = run["id"]
    worker = master.worker(run_id)
    batch = {
        "batch_id": "batch-0001",
        "points": [{"name": "loss", "step": 1, "time": 1.0, "value": 2.0}],
    }
    assert (
        master.client.post(f"{API}/runs/{run_id}/metrics", json=batch, headers=worker).status_code
        == 200
    )

    response = master.client.delete(f"{API}/runs/{run_id}", headers=master.admin)
    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"run {run_id} is starting; only ended runs can be deleted (stop it first)"
    )
    assert master.client.delete(f"{API}/runs/{run_id}").status_code == 401
    assert master.client.delete(f"{API}/runs/{run_id}", headers=worker).status_code == 403

    master.executor.exit(run_id, 1, "crash")
    response = master.client.delete(f"{API}/runs/{run_id}", headers=master.admin)
    assert response.status_code == 204 and response.content == b""
    assert master.client.get(f"{API}/runs/{run_id}").status_code == 404
    assert master.client.get(f"{API}/runs/{run_id}/metrics").status_code == 404
    assert master.client.delete(f"{API}/runs/{run_id}", headers=master.admin).status_code == 404


def test_status_reports_map_onto_the_run(master: Master) -> None:
    run_id = master.create()["id"]
    assert master.status(run_id, "running", rank=1)["state"] == "starting"  # only rank 0 counts
    running = master.status(run_id, "running", rank=0)
    assert running["state"] == "running" and running["reason"] == "rank 0 reported running"
    assert master.status(run_id, "succeeded", rank=1)["state"] == "running"

    failed = master.status(run_id, "failed", rank=1, reason="CUDA out of memory")
    assert failed["state"] == "failed" and failed["reason"] == "rank 1: CUDA out of memory"
    assert (run_id, {"pid": 40_000 + run_id}) in master.executor.stops  # the rest is ended

    # The first terminal state wins: later reports change nothing.
    after = master.status(run_id, "succeeded", rank=0)
    assert after["state"] == "failed" and after["transitions"] == failed["transitions"]
    assert [t["to_state"] for t in after["transitions"]] == [
        "queued",
        "starting",
        "running",
        "failed",
    ]
    assert after["transitions"][-1]["reason"] == "rank 1: CUDA out of memory"


def test_status_success_from_rank_zero_and_admin_reports(master: Master) -> None:
    run_id = master.create()["id"]
    master.status(run_id, "running")
    done = master.status(run_id, "succeeded", reason="goal reached")
    assert done["state"] == "succeeded" and done["reason"] == "rank 0: goal reached"
    assert done["finished_at"] is not None

    other = master.create()["id"]
    response = master.client.post(
        f"{API}/runs/{other}/status",
        json={"state": "failed", "reason": "marked by hand"},
        headers=master.admin,
    )
    assert response.status_code == 200 and response.json()["reason"] == "rank 0: marked by hand"


def test_status_auth_and_validation(master: Master) -> None:
    a, b = master.create()["id"], master.create()["id"]
    url = f"{API}/runs/{a}/status"
    assert master.client.post(url, json={"state": "running"}).status_code == 401
    response = master.client.post(url, json={"state": "running"}, headers=master.worker(b))
    assert response.status_code == 403
    assert response.json()["detail"] == f"this worker token belongs to another run, not to run {a}"
    response = master.client.post(url, json={"state": "exploded"}, headers=master.worker(a))
    assert response.status_code == 422
    response = master.client.post(
        f"{API}/runs/999/status", json={"state": "running"}, headers=master.admin
    )
    assert response.status_code == 404
