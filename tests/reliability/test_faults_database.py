"""The database fails under the master: PostgreSQL stopped and started during ingest, a full
disk, a read-only data dir. Writes get a retryable 503 that says why, reads go on where the
database can serve them, and once it recovers every point is stored exactly once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from mlbench_core.metrics_client import MetricsClient
from tests.reliability.machinery import private_postgres, small_disk
from tests.reliability.recording_master import Served, batch, served

pytestmark = pytest.mark.slow


def _log_until(client: MetricsClient, stop: threading.Event, logged: list[int]) -> None:
    step = 0
    while not stop.is_set():
        for _ in range(50):
            client.log("load/x", float(step), step=step)
            step += 1
        logged[0] = step
        time.sleep(0.01)


def _wait_healthy(master: Served, timeout_s: float = 30) -> None:
    end = time.monotonic() + timeout_s
    while master.http.get("/api/v1/health").status_code != 200:
        assert time.monotonic() < end, "the master did not recover with its database"
        time.sleep(0.1)


def test_postgres_outage_during_ingest_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    with private_postgres() as pg, served(tmp_path / "data", pg.url) as master:
        run_id, token = master.running_run()
        client = MetricsClient(
            master.url,
            run_id,
            token,
            0,
            spool_dir=tmp_path / "spool",
            flush_points=200,
            flush_interval_s=0.05,
            backoff_s=0.1,
            max_backoff_s=0.5,
        )
        stop, logged = threading.Event(), [0]
        logger = threading.Thread(target=_log_until, args=(client, stop, logged))
        logger.start()
        try:
            time.sleep(1.5)
            pg.stop("fast")  # in-flight transactions are cut off, new connections refused
            held = batch(10**9, 100)  # a batch of our own, sent while the database is down
            refused = master.post_batch(run_id, token, held)
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"] == "1"
            assert "database cannot be reached" in refused.json()["detail"]
            assert master.http.get("/api/v1/health").status_code == 503
            time.sleep(2.0)
            pg.start()
            _wait_healthy(master)
            time.sleep(1.5)
        finally:
            stop.set()
            logger.join()
            client.close(timeout_s=60)

        # The client retried through the outage: each logged point is stored exactly once.
        assert client.stats.dropped_rejected == 0
        assert not client.spool_path.exists() or client.spool_path.stat().st_size == 0
        assert client.stats.retries > 0, "the outage never reached the client"
        steps = Counter(p["step"] for p in master.stored(run_id) if p["step"] < 10**9)
        assert len(steps) == logged[0] and set(steps) == set(range(logged[0]))
        assert max(steps.values()) == 1, "a point was stored twice"

        # The refused batch, sent again, is stored once; a third copy is a duplicate.
        first = master.post_batch(run_id, token, held)
        assert first.status_code == 200 and first.json() == {"stored": 100, "duplicate": False}
        again = master.post_batch(run_id, token, held)
        assert again.json() == {"stored": 0, "duplicate": True}
        assert len(master.stored(run_id)) == logged[0] + 100


def test_a_full_disk_refuses_writes_clearly_and_keeps_serving_reads(tmp_path: Path) -> None:
    with small_disk(tmp_path / "data", "4m") as disk, served(disk.path) as master:
        run_id, token = master.running_run()
        stored, refused = 0, None
        for i in range(400):
            response = master.post_batch(run_id, token, batch(i * 2000, 2000))
            if response.status_code != 200:
                refused = response
                break
            stored += 2000
        assert refused is not None, "the disk never filled up"
        assert refused.status_code == 503, refused.text
        assert "disk is full" in refused.json()["detail"]
        assert refused.headers["Retry-After"] == "1"
        assert stored > 0

        # Reads keep working, and what was stored before is all there.
        assert master.http.get("/api/v1/health").status_code == 200
        assert master.http.get(f"/api/v1/runs/{run_id}").json()["state"] == "running"
        names = master.http.get(f"/api/v1/runs/{run_id}/metrics/names").json()
        assert names == [{"name": "load/x", "ranks": [0], "count": stored}]
        series = master.http.get(
            f"/api/v1/runs/{run_id}/metrics/series", params={"name": "load/x", "max_points": 100}
        )
        assert series.status_code == 200

        # Space freed: the same batch goes through, and nothing was lost on the way.
        disk.resize("64m")
        retry = master.post_batch(run_id, token, batch(stored, 2000))
        assert retry.status_code == 200, retry.text
        points = master.stored(run_id)
        assert sorted(p["step"] for p in points) == list(range(stored + 2000))


def test_a_read_only_data_dir_refuses_writes_and_keeps_serving_reads(tmp_path: Path) -> None:
    # Linux will not remount a file system read-only while files on it are open for writing,
    # so the master meets the read-only data dir at its start (a volume mounted read-only, a
    # snapshot being inspected); a disk that fails under a live master is the case above.
    with small_disk(tmp_path / "data", "64m") as disk:
        with served(disk.path) as master:
            run_id, token = master.running_run()
            for i in range(3):
                assert master.post_batch(run_id, token, batch(i * 500, 500)).status_code == 200
        disk.read_only(True)
        try:
            with served(disk.path) as master:
                held = batch(1500, 500)
                refused = master.post_batch(run_id, token, held)
                assert refused.status_code == 503, refused.text
                assert "read-only" in refused.json()["detail"]
                create = master.http.post(
                    "/api/v1/runs", json={"name": "while-ro", "benchmark": "digits-mlp"}
                )
                assert create.status_code == 503, create.text
                assert "read-only" in create.json()["detail"]

                assert master.http.get("/api/v1/health").status_code == 200
                listed = master.http.get("/api/v1/runs").json()["items"]
                assert [r["id"] for r in listed] == [run_id]
                assert sorted(p["step"] for p in master.stored(run_id)) == list(range(1500))
        finally:
            disk.read_only(False)
        with served(disk.path) as master:
            stored = master.post_batch(run_id, token, held)
            assert stored.status_code == 200, stored.text
            assert sorted(p["step"] for p in master.stored(run_id)) == list(range(2000))
