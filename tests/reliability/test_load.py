"""Load through the same code as ``bench/load.py``: 32 worker processes each post 200-point
batches on a fixed schedule (open loop, no retries) to a real master on SQLite and on
PostgreSQL while a dashboard process runs the Run and Runs views' reads.

Asserted: no failed request (ingest and dashboard), every planned request made, every point
stored exactly once (count, exact value sum and order-free hash of every point read back
through the cursor API, and the per-series counts), p99 ingest latency < 500 ms measured from
each batch's planned send time.

The issue asks for 5 batches/s per worker (32,000 points/s) for 60 s. On the 2-core machines
CI runs on, the master (one process, one GIL) sustains about a quarter of that next to its 32
clients (docs/reliability.md, "Load"; bench/README.md), so CI runs the issue's shape and
duration at 0.5 batches/s per worker (3,200 points/s): about half of what PostgreSQL holds on
an idle machine, because CI's shared virtual machines have run the whole suite 1.7 times
slower than an idle one. The full 60 s matters as much: one stall of the host moves the p99
of a short run (a 0.8 s stall is 1% of 30 s of batches, 1.1 s is needed at 60 s). On failure
the message carries the machine's CPU census (bench/cpu_census.py): what else ran, I/O wait
and the time the host stole. ``MLBENCH_LOAD_RATE`` and ``MLBENCH_LOAD_DURATION_S`` set the
issue's figures (``MLBENCH_LOAD_RATE=5``) on a larger machine.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from tests.bench.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import load
from servers import mlbench_master

DURATION_S = float(os.environ.get("MLBENCH_LOAD_DURATION_S", "60"))
RATE = float(os.environ.get("MLBENCH_LOAD_RATE", "0.5"))
PARAMS = load.LoadParams(workers=32, points=200, rate=RATE, duration_s=DURATION_S)


def check(result: dict[str, Any]) -> None:
    """The issue's four conditions, each with what was measured in the message."""
    summary = {k: result[k] for k in ("requests", "failures", "statuses", "failure_examples")}
    batches = round(RATE * DURATION_S)
    assert result["requests"] == result["planned_requests"] == 32 * batches
    assert result["failures"] == 0, summary
    dashboard = result["dashboard"]
    assert dashboard["calls"] > 0 and "runs/{id}/metrics/series" in dashboard["by_call_ms"]
    assert dashboard["failures"] == 0, dashboard["failure_examples"]
    expected = 32 * 200 * batches
    assert result["points_expected"] == expected
    assert result["points_stored"] == expected, result["mismatched_runs"]
    assert result["checksum_stored"] == result["checksum_expected"]
    assert result["exactly_once"]
    # A latency bound on a shared machine: the census says what else took the CPU meanwhile.
    assert result["latency_ms"]["p99"] < 500, (
        result["latency_ms"],
        result["service_ms"],
        result["machine"],
    )


@pytest.mark.slow
def test_load_on_sqlite() -> None:
    check(load.load_on("sqlite", PARAMS))


@pytest.mark.slow
@pytest.mark.postgres
def test_load_on_postgresql(postgres_url: str) -> None:
    with mlbench_master(postgres_url) as served:
        check(load.run_load(PARAMS, served, "postgresql"))


def test_checksum_tells_lost_doubled_and_altered_points_apart() -> None:
    """The read-back comparison can fail: one point lost, doubled or changed moves it."""
    expected = load.lw.expected_checksum(worker=3, rank=1, total_points=400)
    stored = load.lw.expected_checksum(worker=3, rank=1, total_points=400)
    assert stored == expected
    lost = load.lw.expected_checksum(worker=3, rank=1, total_points=399)
    assert lost != expected
    doubled = load.lw.expected_checksum(worker=3, rank=1, total_points=400)
    name, step = load.lw.point_key(3, 7)
    doubled.add(name, 1, step, load.lw.point_value(3, 7))
    assert doubled.count != expected.count and doubled.hash_sum != expected.hash_sum
    altered = load.lw.Checksum()
    for i in range(400):
        name, step = load.lw.point_key(3, i)
        value = load.lw.point_value(3, i) + (1 / 1024 if i == 123 else 0.0)
        altered.add(name, 1, step, value)
    assert altered.count == expected.count and altered != expected
    # Two points swapping values keeps count and sum but not the hash.
    swapped = load.lw.Checksum()
    for i in range(400):
        name, step = load.lw.point_key(3, i)
        j = {5: 6, 6: 5}.get(i, i)
        swapped.add(name, 1, step, load.lw.point_value(3, j))
    assert swapped.value_sum == expected.value_sum and swapped.hash_sum != expected.hash_sum
