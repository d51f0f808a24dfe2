"""Workers die or hang in the middle of a 2-worker run (real torchrun, gloo, digits-mlp): the
run fails with a reason naming the rank, no process of the run is left, and every point stored
before the fault is still there."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.integration.conftest import LiveMaster, all_points, long_run_spec, start_live_master

pytestmark = pytest.mark.slow

HEARTBEAT_TIMEOUT_S = 6.0


@pytest.fixture
def master(tmp_path: Path) -> Iterator[LiveMaster]:
    yield from start_live_master(tmp_path, None, heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S)


def _run_processes(spec_path: Path) -> tuple[psutil.Process, dict[int, psutil.Process]]:
    """The run's launcher and its workers by rank."""
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "torch.distributed.run" in cmd and str(spec_path) in cmd:
            workers = {int(c.environ()["RANK"]): c for c in proc.children(recursive=True)}
            return proc, workers
    raise AssertionError(f"no launcher for {spec_path}")


def _training(master: LiveMaster, name: str) -> tuple[int, psutil.Process, dict[int, Any]]:
    run_id = master.create(**long_run_spec(name))["id"]
    master.wait(run_id, {"running"}, timeout_s=120)
    spec = master.settings.data_dir / "runs" / str(run_id) / "spec.json"
    end = time.monotonic() + 60
    while not _points(master, run_id):  # some points are stored before the fault
        assert time.monotonic() < end, "no metric reached the master"
        time.sleep(0.2)
    launcher, workers = _run_processes(spec)
    assert sorted(workers) == [0, 1]
    return run_id, launcher, workers


def _points(master: LiveMaster, run_id: int) -> list[tuple[Any, ...]]:
    return [(p["name"], p["rank"], p["step"], p["value"]) for p in all_points(master.http, run_id)]


def _ended(master: LiveMaster, run_id: int, since: float, within_s: float) -> dict[str, Any]:
    run = master.wait(run_id, {"succeeded", "failed", "stopped"}, timeout_s=within_s)
    assert time.monotonic() - since <= within_s
    return run


def _all_gone(procs: list[psutil.Process], timeout_s: float) -> None:
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    assert not alive, f"processes of the run left behind: {alive}"


def test_a_killed_worker_fails_the_run_naming_its_rank(master: LiveMaster) -> None:
    run_id, launcher, workers = _training(master, "kill-rank1")
    before = _points(master, run_id)
    killed_at = time.monotonic()
    workers[1].kill()

    run = _ended(master, run_id, killed_at, within_s=30)
    assert run["state"] == "failed"
    assert "rank 1" in run["reason"] and "SIGKILL" in run["reason"], run["reason"]
    left_s = max(1.0, 30 - (time.monotonic() - killed_at))
    _all_gone([launcher, *workers.values()], timeout_s=left_s)
    after = _points(master, run_id)
    assert set(before) <= set(after), "points stored before the kill were lost"


def test_a_hung_worker_is_caught_by_its_heartbeat_and_its_processes_end(
    master: LiveMaster,
) -> None:
    run_id, launcher, workers = _training(master, "hang-rank1")
    before = _points(master, run_id)
    hung_at = time.monotonic()
    workers[1].suspend()  # SIGSTOP: alive, holding its sockets, doing nothing
    try:
        run = _ended(master, run_id, hung_at, within_s=HEARTBEAT_TIMEOUT_S + 15)
        assert run["state"] == "failed"
        assert run["reason"].startswith("rank 1: no heartbeat for"), run["reason"]
        # The stop's SIGTERM waits in a stopped process; the SIGKILL after the grace does not.
        _all_gone([launcher, *workers.values()], timeout_s=30)
    finally:
        for proc in workers.values():
            if proc.is_running():
                proc.kill()
    assert set(before) <= set(_points(master, run_id))
    transitions = [t["to_state"] for t in master.get(run_id)["transitions"]]
    assert transitions[-2:] == ["running", "failed"]
