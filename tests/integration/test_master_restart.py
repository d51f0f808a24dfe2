"""A master that dies does not take its runs along: the next one re-attaches or fails them."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import free_port
from tests.integration.conftest import all_points, long_run_spec
from tests.served import ServedMaster

pytestmark = pytest.mark.slow


@pytest.fixture
def workers_cleanup() -> Iterator[list[psutil.Process]]:
    """Processes a test leaves behind on purpose are killed whatever the test's outcome."""
    procs: list[psutil.Process] = []
    try:
        yield procs
    finally:
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                for child in proc.children(recursive=True):
                    child.kill()
                proc.kill()


def _launcher(run_dir: Path) -> psutil.Process:
    spec = str(run_dir / "spec.json")
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "torch.distributed.run" in cmd and spec in cmd:
            return proc
    raise AssertionError(f"no launcher for {spec}")


def _long_run(master: ServedMaster, name: str) -> int:
    response = master.http.post("/api/v1/runs", json=long_run_spec(name))
    assert response.status_code == 201, response.text
    run_id = response.json()["id"]
    master.wait(run_id, {"running"})
    return run_id


def _crash_during_run(
    data_dir: Path, port: int, name: str, cleanup: list[psutil.Process]
) -> tuple[int, psutil.Process]:
    """Start a long run on a served master, then SIGKILL the master; returns run and launcher."""
    first = ServedMaster(data_dir, port)
    try:
        run_id = _long_run(first, name)
        end = time.monotonic() + 60
        while not first.http.get(f"/api/v1/runs/{run_id}/metrics/names").json():
            assert time.monotonic() < end, "no metric reached the first master"
            time.sleep(0.2)  # training is under way, not still loading its data
        launcher = _launcher(data_dir / "runs" / str(run_id))
        cleanup.append(launcher)
        first.crash()
    finally:
        first.close()
    return run_id, launcher


def test_new_master_reattaches_to_live_workers_and_can_stop_them(
    tmp_path: Path, workers_cleanup: list[psutil.Process]
) -> None:
    port = free_port()
    run_id, launcher = _crash_during_run(tmp_path, port, "survivor", workers_cleanup)
    crashed_at = time.time()
    assert launcher.is_running(), "the workers must outlive a crashed master"
    time.sleep(4)  # the workers train on and spool what they log

    restarted_at = time.time()
    second = ServedMaster(tmp_path, port)
    try:
        time.sleep(3)  # the workers' spooled points reach the new master meanwhile
        assert second.run(run_id)["state"] == "running"
        response = second.http.post(f"/api/v1/runs/{run_id}/stop")
        assert response.status_code == 202, response.text
        run = second.wait(run_id, {"stopped", "failed", "succeeded"}, timeout_s=60)
        assert run["state"] == "stopped"
        launcher.wait(timeout=30)
        points = all_points(second.http, run_id)
    finally:
        second.close()

    # Exactly once: no point twice (a copy would match in every field, wall time included), no
    # step missing from the loss curve, and what was logged while no master was there arrived.
    keys = Counter((p["name"], p["rank"], p["step"], p["time"], p["value"]) for p in points)
    assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1][:5]
    steps = sorted(p["step"] for p in points if p["name"] == "train/loss")
    gaps = {b - a for a, b in itertools.pairwise(steps)}
    assert len(gaps) == 1, f"steps missing from train/loss: gaps {sorted(gaps)}"
    assert any(crashed_at < p["time"] < restarted_at for p in points)
    closed = [
        line
        for line in (tmp_path / "runs" / str(run_id) / "workers.log").read_text().splitlines()
        if "metrics client closed" in line
    ]
    assert len(closed) == 2 and all("dropped_rejected=0," in line for line in closed), closed
    assert any("spooled_batches=0," not in line for line in closed), "nothing was spooled"


def test_new_master_fails_a_run_whose_workers_died_with_the_old_one(
    tmp_path: Path, workers_cleanup: list[psutil.Process]
) -> None:
    port = free_port()
    run_id, launcher = _crash_during_run(tmp_path, port, "orphan", workers_cleanup)
    tree = [launcher, *launcher.children(recursive=True)]
    for proc in tree:
        proc.kill()
    psutil.wait_procs(tree, timeout=30)

    second = ServedMaster(tmp_path, port)
    try:
        run = second.run(run_id)
        assert run["state"] == "failed"
        assert "master restarted" in run["reason"]
        assert run["transitions"][-1]["reason"] == run["reason"]
    finally:
        second.close()
