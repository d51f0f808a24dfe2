"""Metric ingest under concurrency, and the M4 downsampling helper."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from master.services import metrics
from master.services.downsample import m4_keep
from mlbench_core.wire import METRIC_BATCH, MetricBatch, MetricBatchDict, MetricPoint
from tests.master.conftest import Master


def sessions_of(master: Master) -> sessionmaker[Session]:
    return master.client.app.state.mlbench.sessionmaker


def make_batch(values: range, batch_id: str | None = None) -> MetricBatchDict:
    """A batch as the route hands it to the service: validated into plain dicts."""
    batch = MetricBatch(
        batch_id=batch_id or uuid.uuid4().hex,
        points=[MetricPoint(name="loss", step=v, time=float(v), value=float(v)) for v in values],
    )
    return METRIC_BATCH.validate_json(batch.model_dump_json())


def test_concurrent_ingest_keeps_cursor_reads_exactly_once(master: Master) -> None:
    """Writers commit concurrently while a reader follows with its cursor: every point must
    reach the reader once (on PostgreSQL this relies on the per-run advisory lock)."""
    run_id = master.create()["id"]
    sessions = sessions_of(master)
    writers, batches, size, readers = 6, 20, 50, 2
    done = threading.Event()
    errors: list[BaseException] = []
    seen: list[list[float]] = [[] for _ in range(readers)]

    def write(worker: int) -> None:
        try:
            for b in range(batches):
                start = (worker * batches + b) * size
                with sessions() as session:
                    metrics.ingest(session, run_id, make_batch(range(start, start + size)), 60)
        except BaseException as exc:
            errors.append(exc)

    def follow(reader: int) -> None:
        cursor = 0
        while True:
            finished = done.is_set()  # read once more after the writers are done
            with sessions() as session:
                page = metrics.read_points(session, run_id, cursor=cursor, limit=97)
            seen[reader].extend(p.value for p in page.points)
            cursor = page.next_cursor
            if finished and not page.has_more:
                return
            # Poll like a client does; a loop that never sleeps starves the writer threads
            # of the GIL (convoy effect) and only measures that.
            time.sleep(0)

    followers = [threading.Thread(target=follow, args=(r,)) for r in range(readers)]
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in followers + threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    for thread in followers:
        thread.join()
    assert not errors, errors
    expected = [float(v) for v in range(writers * batches * size)]
    for values in seen:
        assert len(values) == len(expected)  # nothing read twice ...
        assert sorted(values) == expected  # ... and nothing skipped


def test_a_slow_commit_does_not_let_a_reader_skip_its_points(master: Master) -> None:
    """The race the PostgreSQL advisory lock exists for, made deterministic: writer A holds
    the lower ids and is slow to commit; writer B takes higher ids a moment later; a reader
    in between must not move its cursor past A's points."""
    run_id = master.create()["id"]
    sessions = sessions_of(master)
    engine = master.client.app.state.mlbench.engine

    def slow_commit(_conn: object) -> None:  # fault injection: delay A's COMMIT
        if threading.current_thread().name == "writer-a":
            time.sleep(0.4)

    event.listen(engine, "commit", slow_commit)
    try:

        def write(values: range) -> None:
            with sessions() as session:
                metrics.ingest(session, run_id, make_batch(values), 60)

        a = threading.Thread(target=write, args=(range(0, 100),), name="writer-a")
        b = threading.Thread(target=write, args=(range(100, 200),), name="writer-b")
        a.start()
        time.sleep(0.1)  # A has inserted (ids taken) and waits before its COMMIT
        b.start()
        time.sleep(0.15)  # without the lock, B has committed by now
        with sessions() as session:
            first = metrics.read_points(session, run_id, cursor=0, limit=1000)
        a.join()
        b.join()
    finally:
        event.remove(engine, "commit", slow_commit)
    with sessions() as session:
        rest = metrics.read_points(session, run_id, cursor=first.next_cursor, limit=1000)
    values = sorted(p.value for p in first.points + rest.points)
    assert values == [float(v) for v in range(200)]


def test_the_same_batch_sent_concurrently_is_stored_once(master: Master) -> None:
    run_id = master.create()["id"]
    sessions = sessions_of(master)
    batch = make_batch(range(50), batch_id="the-one-batch")
    results = []
    barrier = threading.Barrier(8)

    def send() -> None:
        barrier.wait()
        with sessions() as session:
            results.append(metrics.ingest(session, run_id, batch, 60))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.duplicate for r in results) == [False] + [True] * 7
    assert sum(r.stored for r in results) == 50
    with sessions() as session:
        assert len(metrics.read_points(session, run_id, limit=1000).points) == 50


def test_m4_keep_bounds_and_extremes() -> None:
    rng = np.random.default_rng(0)
    steps = rng.permutation(10_000).astype(np.int64)  # arrival order is not step order
    values = rng.normal(size=10_000)
    for max_points in (4, 5, 50, 1001):
        keep = m4_keep(steps, values, max_points)
        assert len(keep) <= max_points
        assert list(keep) == sorted(set(keep.tolist()))
        assert int(np.argmin(steps)) in keep and int(np.argmax(steps)) in keep
        assert int(np.argmin(values)) in keep and int(np.argmax(values)) in keep
    small = m4_keep(steps[:10], values[:10], 10)
    assert small.tolist() == list(range(10))
