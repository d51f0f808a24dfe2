"""A real 2-process gloo run through a real master: goal, stored points, states, result, stop."""

from __future__ import annotations

from pathlib import Path

import httpx
import psutil
import pytest

from master.server import EmbeddedMaster
from master.settings import Settings
from tests.conftest import free_port
from tests.integration.conftest import LiveMaster, long_run_spec, wait_for_state

pytestmark = pytest.mark.slow


def test_digits_run_reaches_goal_and_everything_is_stored(live_master: LiveMaster) -> None:
    created = live_master.create(name="digits-int", benchmark="digits-mlp", workers=2, seed=3)
    assert created["state"] in ("queued", "starting")

    run = live_master.wait(created["id"], {"succeeded", "failed", "stopped"})
    assert run["state"] == "succeeded", run["reason"]
    path = [t["to_state"] for t in run["transitions"]]
    assert path == ["queued", "starting", "running", "succeeded"]
    assert all(t["at"] for t in run["transitions"])
    assert run["started_at"] and run["finished_at"]

    result = live_master.http.get(f"/api/v1/runs/{run['id']}/result").json()
    assert result["goal_reached"] is True
    assert result["goal_metric"] == "val/accuracy"
    assert result["final_value"] >= 0.96
    assert 0 < result["time_to_goal_s"] <= result["total_time_s"]
    assert result["samples_per_s"] > 0
    phases = result["phases"]
    assert phases["forward"] > 0 and phases["backward"] > 0 and phases["communication"] > 0
    assert sum(phases.values()) <= result["total_time_s"] * 1.01

    names = {
        n["name"]: n for n in live_master.http.get(f"/api/v1/runs/{run['id']}/metrics/names").json()
    }
    assert {"train/loss", "val/accuracy", "progress"} <= set(names)
    accuracy = live_master.http.get(
        f"/api/v1/runs/{run['id']}/metrics", params={"name": "val/accuracy", "rank": 0}
    ).json()["points"]
    assert accuracy and accuracy[-1]["value"] == pytest.approx(result["final_value"])
    manifest = live_master.http.get(f"/api/v1/runs/{run['id']}/manifest").json()
    assert manifest["spec"]["name"] == "digits-int" and manifest["seed"] == 3
    assert manifest["settings"]["batch_size"] == 32 and len(manifest["devices"]) == 2
    steps = [p["step"] for p in accuracy]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)  # each point stored once


def _workers_of_this_process() -> list[psutil.Process]:
    """The launcher and worker processes the embedded master started."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(proc.cmdline())
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            continue  # an exited child of another test, not yet reaped by its owner
        if "torch.distributed.run" in cmd or "worker.main" in cmd:
            found.append(proc)
    return found


def _launcher_and_workers() -> tuple[psutil.Process, list[psutil.Process]]:
    procs = _workers_of_this_process()
    launchers = [p for p in procs if "torch.distributed.run" in " ".join(p.cmdline())]
    assert len(launchers) == 1, [p.cmdline() for p in procs]
    workers = [p for p in procs if p not in launchers]
    assert len(workers) == 2, [p.cmdline() for p in procs]
    return launchers[0], workers


def test_stop_ends_every_process_and_stores_stopped(sqlite_master: LiveMaster) -> None:
    created = sqlite_master.create(**long_run_spec("digits-stop"))
    sqlite_master.wait(created["id"], {"running"}, timeout_s=120)
    procs = _workers_of_this_process()
    assert len(procs) >= 3, [p.cmdline() for p in procs]  # launcher + 2 workers

    response = sqlite_master.http.post(f"/api/v1/runs/{created['id']}/stop")
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "stopping"

    run = sqlite_master.wait(created["id"], {"stopped", "failed", "succeeded"}, timeout_s=60)
    assert run["state"] == "stopped"
    assert [t["to_state"] for t in run["transitions"]][-2:] == ["stopping", "stopped"]
    _, alive = psutil.wait_procs(procs, timeout=10)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], "orphaned worker processes"

    again = sqlite_master.http.post(f"/api/v1/runs/{created['id']}/stop")
    assert again.status_code == 409


def test_a_killed_launcher_leaves_no_orphan_workers(sqlite_master: LiveMaster) -> None:
    # torchrun starts each worker in a session of its own: a launcher killed outright would
    # leave them training forever unless the executor ends them itself.
    created = sqlite_master.create(**long_run_spec("launcher-kill"))
    sqlite_master.wait(created["id"], {"running"}, timeout_s=120)
    launcher, workers = _launcher_and_workers()
    launcher.kill()

    run = sqlite_master.wait(created["id"], {"succeeded", "failed", "stopped"}, timeout_s=60)
    assert run["state"] == "failed"
    assert "SIGKILL" in run["reason"]
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, "workers outlived their launcher"


def test_master_shutdown_stops_its_runs_and_records_why(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, port=free_port(), admin_token="t")
    with EmbeddedMaster(settings) as master:
        http = httpx.Client(base_url=master.url, headers={"Authorization": "Bearer t"})
        run_id = http.post("/api/v1/runs", json=long_run_spec("shutdown")).json()["id"]
        wait_for_state(http, run_id, {"running"}, timeout_s=120)
        procs = _workers_of_this_process()
        http.close()
    _, alive = psutil.wait_procs(procs, timeout=15)
    assert not alive, "processes outlived the master that started them"

    with EmbeddedMaster(settings.model_copy(update={"port": free_port()})) as master:
        run = httpx.get(f"{master.url}/api/v1/runs/{run_id}").json()
    assert run["state"] == "stopped"
    assert [t["reason"] for t in run["transitions"]][-2] == "the master shut down"
