"""Executor exits, the restart reconcile pass, and stops of runs that never started."""

from __future__ import annotations

import threading
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from master.auth import hash_token, new_token
from master.models import Run, RunTransition
from master.services import runs
from master.services.lifecycle import RESTART_GONE
from master.settings import Settings
from tests.master.api.routes.test_results import RESULT
from tests.master.conftest import API, Master, RecordingExecutor, start_master


def sessions_of(master: Master) -> sessionmaker[Session]:
    return master.client.app.state.mlbench.sessionmaker


def insert_queued(
    master: Master, name: str = "never-started", benchmark: str = "digits-mlp"
) -> int:
    """A run as a master that died between creating and starting it would leave it."""
    with sessions_of(master)() as session, session.begin():
        run = Run(
            name=name,
            benchmark=benchmark,
            spec={"name": name, "benchmark": benchmark, "goal": {"kind": "light"}, "workers": 3},
            state="queued",
            reason="created",
            executor="local",
            token_hash=hash_token(new_token()),
        )
        session.add(run)
        session.flush()
        session.add(RunTransition(run_id=run.id, to_state="queued", reason="created"))
        return run.id


def test_exit_zero_with_a_result_succeeds(master: Master) -> None:
    run_id = master.create()["id"]
    master.status(run_id, "running")
    put = master.client.put(
        f"{API}/runs/{run_id}/result", json=RESULT, headers=master.worker(run_id)
    )
    assert put.status_code == 200
    master.executor.exit(run_id, 0, "exited with code 0")
    run = master.get(run_id)
    assert run["state"] == "succeeded" and run["reason"] == "workers exited with code 0"
    assert run["exit_code"] == 0


def test_exit_zero_without_a_result_fails(master: Master) -> None:
    run_id = master.create()["id"]
    master.executor.exit(run_id, 0, "last line: bye")
    run = master.get(run_id)
    assert run["state"] == "failed"
    assert run["reason"] == "workers exited with code 0 without storing a result: last line: bye"


def test_nonzero_and_unknown_exit_codes_fail_with_the_reason(master: Master) -> None:
    a, b = master.create()["id"], master.create()["id"]
    master.status(a, "running")
    master.executor.exit(a, 3, "ValueError: bad shape")
    master.executor.exit(b, None, "")
    assert master.get(a)["reason"] == "workers exited with code 3: ValueError: bad shape"
    assert master.get(b)["reason"] == "workers exited with code unknown: no output"
    assert master.get(a)["exit_code"] == 3 and master.get(b)["exit_code"] is None


def test_first_terminal_state_wins_over_a_later_exit(master: Master) -> None:
    run_id = master.create()["id"]
    master.status(run_id, "running")
    done = master.status(run_id, "succeeded")
    master.executor.exit(run_id, 1, "killed while cleaning up")
    after = master.get(run_id)
    assert after["state"] == "succeeded" and after["transitions"] == done["transitions"]
    assert after["exit_code"] == 1  # recorded, but the state stays


def test_exit_reported_from_another_thread(master: Master) -> None:
    run_id = master.create()["id"]
    thread = threading.Thread(target=master.executor.exit, args=(run_id, 7, "segfault"))
    thread.start()
    thread.join()
    assert master.get(run_id)["state"] == "failed"
    master.executor.exit(123_456, 0, "")  # an unknown run is ignored, nothing raised


def test_stop_of_a_queued_run_ends_it_at_once(master: Master) -> None:
    run_id = insert_queued(master)
    response = master.client.post(f"{API}/runs/{run_id}/stop", headers=master.admin)
    assert response.status_code == 202
    assert response.json()["state"] == "stopped"
    assert response.json()["reason"] == "stopped before it started"
    assert master.executor.stops == []  # there were no workers to ask


def test_transition_refuses_illegal_moves_and_keeps_everything(master: Master) -> None:
    run_id = insert_queued(master)
    with sessions_of(master)() as session, session.begin():
        run = session.get(Run, run_id)
        assert runs.transition(session, run, runs.RunState.succeeded, "nope") is False
        assert run.state == "queued" and run.reason == "created" and run.finished_at is None
        assert runs.transition(session, run, runs.RunState.failed, "gave up") is True
        assert run.finished_at is not None and run.started_at is None
        assert runs.transition(session, run, runs.RunState.running, "too late") is False
    history = master.get(run_id)["transitions"]
    assert [(t["from_state"], t["to_state"], t["reason"]) for t in history] == [
        (None, "queued", "created"),
        ("queued", "failed", "gave up"),
    ]


def test_restart_reattaches_live_runs_and_ends_orphans(settings: Settings) -> None:
    first = RecordingExecutor()
    with contextmanager(start_master)(settings, first) as master:
        starting = master.create()["id"]
        running = master.create()["id"]
        master.status(running, "running")
        stopping = master.create()["id"]
        master.client.post(f"{API}/runs/{stopping}/stop", headers=master.admin)
        ended = master.create()["id"]
        master.executor.exit(ended, 1, "crash")
        queued = insert_queued(master)
    assert first.shut_down

    second = RecordingExecutor()
    second.alive = {running}
    with contextmanager(start_master)(settings, second) as master:
        assert sorted(second.reattached) == [
            (starting, {"pid": 40_000 + starting}),
            (running, {"pid": 40_000 + running}),
            (stopping, {"pid": 40_000 + stopping}),
        ]
        assert master.get(running)["state"] == "running"
        assert (master.get(starting)["state"], master.get(starting)["reason"]) == (
            "failed",
            RESTART_GONE,
        )
        assert master.get(stopping)["state"] == "stopped"
        assert master.get(stopping)["transitions"][-1]["reason"] == RESTART_GONE
        assert master.get(ended)["reason"] == "workers exited with code 1: crash"
        assert master.get(queued)["reason"] == "master restarted before this run was started"
        # The re-attached run is watched again: its exit still lands.
        master.executor.exit(running, 0, "")
        assert master.get(running)["state"] == "failed"


def test_a_failing_executor_stop_is_a_502_and_the_run_stays_stopping(master: Master) -> None:
    run_id = master.create()["id"]
    master.executor.stop_error = "argo server unreachable"
    response = master.client.post(f"{API}/runs/{run_id}/stop", headers=master.admin)
    assert response.status_code == 502
    assert response.json() == {
        "detail": f"executor could not stop run {run_id}: argo server unreachable"
    }
    assert master.get(run_id)["state"] == "stopping"
    master.executor.stop_error = None  # a retry reaches the executor again
    response = master.client.post(f"{API}/runs/{run_id}/stop", headers=master.admin)
    assert response.status_code == 202 and master.executor.stops == [
        (run_id, {"pid": 40_000 + run_id})
    ]


def test_runs_of_benchmarks_no_longer_in_the_catalog_still_list(master: Master) -> None:
    run_id = insert_queued(master, name="old-run", benchmark="retired-benchmark")
    run = master.get(run_id)
    assert run["spec"]["benchmark"] == "retired-benchmark"
    assert run["spec"]["goal"] == {"kind": "light", "value": None}
    assert run["spec"]["workers"] == 3 and run["spec"]["backend"] == "gloo"
    assert master.client.get(f"{API}/runs").json()["items"][0]["id"] == run_id


def test_a_failed_report_while_stopping_ends_the_run_stopped(master: Master) -> None:
    # An Argo workflow's exit handler reports its stopped workflow as failed, and ranks whose
    # peers were killed by the stop report failures: the run still ends as it was asked to.
    run_id = master.create()["id"]
    master.status(run_id, "running")
    stop = master.client.post(f"{API}/runs/{run_id}/stop", headers=master.admin)
    assert stop.json()["state"] == "stopping"
    reported = master.status(run_id, "failed", rank=1, reason="peer closed the connection")
    assert reported["state"] == "stopped"
    assert reported["reason"] == "stopped on request (rank 1: peer closed the connection)"
    assert len(master.executor.stops) == 1  # the stop already went out; nothing more to end
    master.executor.exit(run_id, 1, "workflow mlbench-1-x Failed")
    after = master.get(run_id)
    assert after["state"] == "stopped" and after["exit_code"] == 1
    assert [t["to_state"] for t in after["transitions"]][-2:] == ["stopping", "stopped"]


def test_a_bare_failed_report_while_stopping_names_the_rank(master: Master) -> None:
    run_id = master.create()["id"]
    master.client.post(f"{API}/runs/{run_id}/stop", headers=master.admin)
    assert master.status(run_id, "failed", rank=0)["reason"] == "stopped on request (rank 0 failed)"
