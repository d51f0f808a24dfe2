"""The heartbeat watchdog: silent or stuck ranks fail a running run, naming the rank; healthy,
finished and non-running ranks never do. Real database (SQLite and PostgreSQL), a test clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from master.services.heartbeats import HeartbeatMonitor
from master.settings import Settings
from mlbench_core.wire import Heartbeat
from tests.master.conftest import API, Master, RecordingExecutor, start_master


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def watched(settings: Settings) -> Iterator[Watched]:
    for master in start_master(settings, RecordingExecutor()):
        state = master.client.app.state.mlbench
        clock = Clock()
        monitor = HeartbeatMonitor(
            state.sessionmaker,
            state.executors,
            timeout_s=10,
            progress_timeout_s=100,
            clock=clock,
        )
        yield master, monitor, clock


Watched = tuple[Master, HeartbeatMonitor, Clock]


def running_run(master: Master, workers: int = 2) -> int:
    run_id = master.create(workers=workers)["id"]
    master.status(run_id, "running")
    return run_id


def beat(monitor: HeartbeatMonitor, run_id: int, rank: int, **fields: object) -> None:
    monitor.record(run_id, Heartbeat(rank=rank, **fields))  # type: ignore[arg-type]


def test_beating_ranks_keep_the_run_running(watched: Watched) -> None:
    master, monitor, clock = watched
    run_id = running_run(master)
    assert monitor.check() == []
    for _ in range(5):
        clock.now += 8
        beat(monitor, run_id, 0, step=10)
        beat(monitor, run_id, 1, step=10)
        assert monitor.check() == []
    assert master.get(run_id)["state"] == "running"
    assert master.executor.stops == []


def test_a_silent_rank_fails_the_run_naming_it_and_stops_the_workers(watched: Watched) -> None:
    master, monitor, clock = watched
    run_id = running_run(master)
    monitor.check()
    beat(monitor, run_id, 0, step=3)
    beat(monitor, run_id, 1, step=3)
    clock.now += 9
    beat(monitor, run_id, 0, step=4)  # rank 1 froze
    assert monitor.check() == []
    clock.now += 2
    assert monitor.check() == [run_id]
    run = master.get(run_id)
    assert run["state"] == "failed"
    assert run["reason"].startswith("rank 1: no heartbeat for 11 s (last at step 3)")
    assert [stop[0] for stop in master.executor.stops] == [run_id]
    assert monitor.check() == []  # reported once


def test_a_rank_never_heard_from_fails_after_the_timeout(watched: Watched) -> None:
    master, monitor, clock = watched
    run_id = running_run(master, workers=3)
    monitor.check()  # the clock of ranks never heard from starts when the run is first seen
    clock.now += 6
    for rank in (0, 1):
        beat(monitor, run_id, rank)
    clock.now += 5
    assert monitor.check() == [run_id]
    assert master.get(run_id)["reason"].startswith("rank 2: no heartbeat for 11 s")


def test_a_beating_rank_without_progress_fails_as_hung(watched: Watched) -> None:
    master, monitor, _clock = watched
    run_id = running_run(master)
    monitor.check()
    for idle in (0.0, 50.0, 99.0):
        beat(monitor, run_id, 0, step=7, idle_s=idle)
        beat(monitor, run_id, 1, step=7)
        assert monitor.check() == []
    beat(monitor, run_id, 0, step=7, idle_s=101.0)
    beat(monitor, run_id, 1, step=7)
    assert monitor.check() == [run_id]
    assert master.get(run_id)["reason"].startswith(
        "rank 0: alive but no training progress for 101 s (stuck at step 7"
    )


def test_a_finished_rank_is_not_waited_for(watched: Watched) -> None:
    master, monitor, clock = watched
    run_id = running_run(master)
    monitor.check()
    beat(monitor, run_id, 1, step=50, final=True)
    for _ in range(4):
        clock.now += 8
        beat(monitor, run_id, 0, step=50)
        assert monitor.check() == []
    assert master.get(run_id)["state"] == "running"


def test_runs_that_are_not_running_are_never_failed(watched: Watched) -> None:
    master, monitor, clock = watched
    starting = master.create()["id"]
    ended = running_run(master)
    master.status(ended, "succeeded")
    monitor.check()
    clock.now += 1000
    assert monitor.check() == []
    assert master.get(starting)["state"] == "starting"
    assert master.get(ended)["state"] == "succeeded"


def test_the_route_records_beats_of_running_runs_and_answers_the_state(master: Master) -> None:
    run_id = master.create()["id"]
    url = f"{API}/runs/{run_id}/heartbeat"
    body = {"rank": 1, "step": 5, "idle_s": 0.5}
    response = master.client.post(url, json=body, headers=master.worker(run_id))
    assert response.status_code == 200 and response.json() == {"state": "starting"}
    monitor = master.client.app.state.mlbench.heartbeats
    assert run_id not in monitor._beats  # only running runs are watched

    master.status(run_id, "running")
    response = master.client.post(url, json=body, headers=master.worker(run_id))
    assert response.json() == {"state": "running"}
    assert monitor._beats[run_id][1].step == 5

    bad = master.client.post(url, json={"rank": -1}, headers=master.worker(run_id))
    assert bad.status_code == 422
    nan = master.client.post(
        url,
        content=b'{"rank": 0, "idle_s": NaN}',
        headers={**master.worker(run_id), "Content-Type": "application/json"},
    )
    assert nan.status_code == 422
    missing = master.client.post(f"{API}/runs/999/heartbeat", json=body, headers=master.admin)
    assert missing.status_code == 403  # the admin token is not a worker's; auth comes first
