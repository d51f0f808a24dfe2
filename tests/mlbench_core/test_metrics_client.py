"""MetricsClient against a real HTTP server (fake_master.FakeMaster) on 127.0.0.1."""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlbench_core.metrics_client import MetricsClient, Outcome
from mlbench_core.wire import MetricBatch, RunResult
from tests.mlbench_core.fake_master import FakeMaster

TOKEN = "worker-token"


@pytest.fixture
def master() -> Iterator[FakeMaster]:
    with FakeMaster(token=TOKEN, run_id=7) as server:
        yield server


def make_client(url: str, tmp_path: Path, **kwargs: Any) -> MetricsClient:
    options: dict[str, Any] = {
        "flush_points": 10,
        "flush_interval_s": 60.0,
        "backoff_s": 0.01,
        "max_backoff_s": 0.05,
        "timeout_s": 2.0,
    }
    options.update(kwargs)
    return MetricsClient(url, 7, TOKEN, 0, spool_dir=tmp_path / "spool", **options)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spool_lines(client: MetricsClient) -> list[dict[str, Any]]:
    lines = []
    for path in (
        client.spool_path,
        client.spool_path.with_name(client.spool_path.name + ".replaying"),
    ):
        if path.exists():
            lines += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return lines


def test_batches_by_size(master: FakeMaster, tmp_path: Path) -> None:
    client = make_client(master.url, tmp_path, flush_points=10, flush_interval_s=60.0)
    for i in range(35):
        client.log("train/loss", float(i), step=i)
    assert master.wait_for(lambda: len(master.points) == 30, timeout=5)
    time.sleep(0.3)  # the 5 left over wait for the interval (60 s) or close()
    assert len(master.points) == 30
    assert all(len(points) == 10 for points in master.batches.values())
    client.close()
    assert sorted(master.stored_values()) == [float(i) for i in range(35)]
    assert len(master.batches) == 4
    assert client.stats.sent_points == 35 and client.stats.sent_batches == 4


def test_batches_by_interval(master: FakeMaster, tmp_path: Path) -> None:
    client = make_client(master.url, tmp_path, flush_points=1000, flush_interval_s=0.2)
    begin = time.monotonic()
    for i in range(3):
        client.log("x", float(i), step=i)
    assert master.wait_for(lambda: len(master.points) == 3, timeout=5)
    elapsed = time.monotonic() - begin
    assert 0.15 <= elapsed < 2.0
    assert len(master.batches) == 1  # one interval, one batch
    client.close()


def test_points_match_the_wire_contract(master: FakeMaster, tmp_path: Path) -> None:
    client = make_client(master.url, tmp_path)
    client.log("val/accuracy", 0.5, step=3, epoch=1.5, time=1234.5)
    client.close()
    assert master.points == [
        {"name": "val/accuracy", "rank": 0, "step": 3, "epoch": 1.5, "time": 1234.5, "value": 0.5}
    ]
    (batch_id,) = master.batches
    MetricBatch(batch_id=batch_id, points=master.points)  # a valid id per the contract
    assert len(batch_id) == 32


def test_retries_5xx_then_stores_once(master: FakeMaster, tmp_path: Path) -> None:
    master.fail_next = 3
    client = make_client(master.url, tmp_path, max_attempts=5)
    for i in range(5):
        client.log("x", float(i), step=i)
    client.close()
    assert sorted(master.stored_values()) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert master.metric_requests == 4
    assert client.stats.retries == 3
    assert client.stats.spooled_batches == 0


@pytest.mark.parametrize("failure", ["drop_after_store", "error_after_store"])
def test_lost_answer_is_retried_with_same_id_and_stored_once(
    master: FakeMaster, tmp_path: Path, failure: str
) -> None:
    setattr(master, failure, 1)
    client = make_client(master.url, tmp_path, flush_points=4)
    for i in range(4):
        client.log("x", float(i), step=i)
    client.close()
    metric_events = [e for e in master.events if e[0] == "metrics"]
    assert len(metric_events) == 2
    assert metric_events[0][1] == metric_events[1][1]  # the retry reused the batch id
    assert [e[3] for e in metric_events] == [False, True]  # the master saw a duplicate
    assert sorted(master.stored_values()) == [0.0, 1.0, 2.0, 3.0]  # each point exactly once
    assert client.stats.retries == 1


def test_master_down_spools_then_replays_once_on_flush(tmp_path: Path) -> None:
    port = free_port()
    client = make_client(
        f"http://127.0.0.1:{port}", tmp_path, flush_points=5, max_attempts=2, flush_interval_s=0.05
    )
    for i in range(12):
        client.log("x", float(i), step=i)
    assert client.flush(timeout_s=10)
    lines = spool_lines(client)
    assert sum(len(line["points"]) for line in lines) == 12
    ids = [line["batch_id"] for line in lines]

    master = FakeMaster(token=TOKEN, run_id=7, port=port).start()
    try:
        for i in range(12, 15):
            client.log("x", float(i), step=i)
        assert client.flush(timeout_s=10)
        assert sorted(master.stored_values()) == [float(i) for i in range(15)]
        assert set(ids) <= set(master.batches)  # replayed with their original ids
        assert spool_lines(client) == []
        client.close()
        assert len(master.points) == 15
        # While the master counted as down, the new points queued behind the spool too.
        assert client.stats.replayed_batches == client.stats.spooled_batches >= len(ids)
    finally:
        master.stop()


def test_master_down_until_close_replays_on_close(tmp_path: Path) -> None:
    port = free_port()
    client = make_client(f"http://127.0.0.1:{port}", tmp_path, flush_points=5, max_attempts=2)
    for i in range(9):
        client.log("x", float(i), step=i)
    client.flush(timeout_s=10)
    assert spool_lines(client)
    master = FakeMaster(token=TOKEN, run_id=7, port=port).start()
    try:
        client.close()
        assert sorted(master.stored_values()) == [float(i) for i in range(9)]
        assert not client.spool_path.exists() or client.spool_path.stat().st_size == 0
    finally:
        master.stop()


def test_spool_survives_the_client_and_a_new_client_replays_it(tmp_path: Path) -> None:
    """A worker that could not reach the master leaves a spool; the next client delivers it."""
    port = free_port()
    first = make_client(f"http://127.0.0.1:{port}", tmp_path, max_attempts=1)
    first.log("x", 1.0, step=1)
    first.status("running")
    first.close(timeout_s=2)
    kinds = ["report" if "report" in line else "batch" for line in spool_lines(first)]
    assert kinds == ["batch", "report"]

    master = FakeMaster(token=TOKEN, run_id=7, port=port).start()
    try:
        second = make_client(master.url, tmp_path)
        second.close()
        assert master.stored_values() == [1.0]
        assert [s["state"] for s in master.statuses] == ["running"]
        assert [e[0] for e in master.events] == ["metrics", "status"]  # order kept
    finally:
        master.stop()


def test_max_pending_overflows_to_spool_and_nothing_is_lost(
    master: FakeMaster, tmp_path: Path
) -> None:
    master.gate = threading.Event()  # the master hangs: the sender is stuck in one request
    client = make_client(master.url, tmp_path, flush_points=10, max_pending=20, timeout_s=10.0)
    client.log("x", 0.0, step=0)
    client.flush(timeout_s=0.2)  # the sender is now inside a request for point 0
    for i in range(1, 101):
        client.log("x", float(i), step=i)
    # 20 points stay in memory; the rest went to disk in chunks of 10.
    assert client._pending_points <= 20
    spooled = sum(len(line["points"]) for line in spool_lines(client))
    assert spooled >= 70
    master.gate.set()
    client.close()
    assert sorted(master.stored_values()) == [float(i) for i in range(101)]


def test_non_finite_values_are_dropped_and_counted(master: FakeMaster, tmp_path: Path) -> None:
    client = make_client(master.url, tmp_path)
    for value in (math.nan, math.inf, -math.inf, 2.0):
        client.log("x", value, step=1)
    client.log("bad name with spaces", 1.0, step=1)
    client.log("x", 1.0, step=-1)
    client.close()
    assert master.stored_values() == [2.0]
    assert client.stats.dropped_nonfinite == 3
    assert client.stats.dropped_invalid == 2


def test_4xx_rejection_is_dropped_counted_and_not_retried(
    master: FakeMaster, tmp_path: Path
) -> None:
    master.reject_status = 409
    client = make_client(master.url, tmp_path, flush_points=5)
    for i in range(5):
        client.log("x", float(i), step=i)
    client.close()
    assert master.metric_requests == 1
    assert client.stats.dropped_rejected == 5
    assert client.stats.retries == 0
    assert spool_lines(client) == []


def test_429_is_retried(master: FakeMaster, tmp_path: Path) -> None:
    master.fail_next = 1
    client = make_client(master.url, tmp_path)
    client.log("x", 1.0, step=1)
    client.close()
    assert master.stored_values() == [1.0]
    assert client.stats.retries == 1


def test_bad_token_is_a_rejection(master: FakeMaster, tmp_path: Path) -> None:
    client = MetricsClient(master.url, 7, "wrong", 0, spool_dir=tmp_path)
    client.log("x", 1.0, step=1)
    report = client.status("running")
    client.close()
    assert master.points == [] and master.statuses == []
    assert client.stats.dropped_rejected == 1 and client.stats.rejected_reports == 1
    assert report is not None and report.outcome is Outcome.rejected


def test_status_and_result_come_after_earlier_points(master: FakeMaster, tmp_path: Path) -> None:
    master.fail_next = 2  # retries on the way must not reorder anything
    client = make_client(master.url, tmp_path, flush_points=10, flush_interval_s=60.0)
    for i in range(25):
        client.log("x", float(i), step=i)
    result = client.result(RunResult(goal_reached=True, final_value=0.97))
    for i in range(25, 28):
        client.log("x", float(i), step=i)
    status = client.status("succeeded")
    assert result is not None and status is not None
    assert status.wait(timeout=10)
    assert result.outcome is Outcome.sent
    kinds = [e[0] for e in master.events]
    assert kinds.index("result") > max(i for i, k in enumerate(kinds[:4]) if k == "metrics")
    result_event = next(e for e in master.events if e[0] == "result")
    status_event = next(e for e in master.events if e[0] == "status")
    assert result_event[1] == 25  # all 25 earlier points were stored before the result
    assert status_event[2] == 28  # and all 28 before the final status
    assert master.result is not None and master.result["final_value"] == 0.97
    client.close()


def test_close_flushes_partial_batches(master: FakeMaster, tmp_path: Path) -> None:
    client = make_client(master.url, tmp_path, flush_points=1000, flush_interval_s=3600.0)
    for i in range(7):
        client.log("x", float(i), step=i)
    time.sleep(0.1)
    assert master.points == []
    with client:
        pass
    assert len(master.points) == 7


def test_log_never_blocks_or_raises_when_the_master_hangs(tmp_path: Path) -> None:
    # A listening socket that never accepts: connections hang instead of being refused.
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    port = hole.getsockname()[1]
    try:
        client = make_client(
            f"http://127.0.0.1:{port}",
            tmp_path,
            flush_points=100,
            max_pending=1000,
            timeout_s=0.5,
            flush_interval_s=0.01,
        )
        worst = 0.0
        begin = time.perf_counter()
        for i in range(20_000):
            t0 = time.perf_counter()
            client.log("x", float(i), step=i)
            worst = max(worst, time.perf_counter() - t0)
        total = time.perf_counter() - begin
        assert total < 2.0, f"20k log() calls took {total:.2f}s"
        assert worst < 0.25, f"one log() call took {worst:.3f}s"
        t0 = time.perf_counter()
        client.close(timeout_s=1.0)
        assert time.perf_counter() - t0 < 4.0
        spooled = sum(len(line["points"]) for line in spool_lines(client))
        assert spooled == 20_000  # nothing lost: all of it is on disk
    finally:
        hole.close()


def test_log_never_raises_on_garbage(master: FakeMaster, tmp_path: Path) -> None:
    client = make_client(master.url, tmp_path)
    client.log("x", "not a number", step=1)  # type: ignore[arg-type]
    client.log("x", 1.0, step="3")  # type: ignore[arg-type]
    client.log(None, 1.0, step=1)  # type: ignore[arg-type]
    client.close()
    assert master.stored_values() == [1.0]


def test_sender_thread_errors_do_not_escape(
    master: FakeMaster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(master.url, tmp_path, flush_points=2)
    real = client._send_line
    calls = {"n": 0}

    def flaky(line: dict[str, Any], attempts: int) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("bug in the sender")
        return real(line, attempts)

    monkeypatch.setattr(client, "_send_line", flaky)
    for i in range(4):
        client.log("x", float(i), step=i)
    client.close()
    assert client._thread.is_alive() is False
    assert sorted(master.stored_values()) == [0.0, 1.0, 2.0, 3.0]  # the failed batch was kept


def test_run_state(master: FakeMaster, tmp_path: Path) -> None:
    client = make_client(master.url, tmp_path)
    assert client.run_state() == "starting"
    master.state = "succeeded"
    assert client.run_state() == "succeeded"
    client.close()
    gone = make_client(f"http://127.0.0.1:{free_port()}", tmp_path / "b")
    assert gone.run_state() is None
    gone.close(timeout_s=1)


def test_invalid_constructor_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="flush_points"):
        MetricsClient("http://x", 1, "t", 0, spool_dir=tmp_path, flush_points=0)
    with pytest.raises(ValueError, match="max_pending"):
        MetricsClient("http://x", 1, "t", 0, spool_dir=tmp_path, flush_points=10, max_pending=5)
