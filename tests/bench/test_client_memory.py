"""bench/client_memory.py on a short outage: memory traced, every point delivered after."""

from __future__ import annotations

from pathlib import Path

from tests.bench.conftest import run_bench


def test_client_memory_bench_loses_no_point(tmp_path: Path) -> None:
    result = run_bench(
        "client_memory.py", tmp_path, "--down-s", "4", "--rate", "4000", "--max-pending", "2000"
    )
    ours, base = result["rows"]
    assert (ours["role"], base["role"]) == ("ours", "baseline")
    for row in (ours, base):
        assert row["extra"]["points_logged"] > 4000
        assert row["extra"]["points_stored"] == row["extra"]["points_logged"]
        assert row["extra"]["rss_peak_mib"] >= row["extra"]["rss_start_mib"] > 10
