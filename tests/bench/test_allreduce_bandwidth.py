"""bench/allreduce_bandwidth.py on small messages: task 0a, the plain loop and memcpy."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.conftest import run_bench

pytestmark = pytest.mark.slow


def test_allreduce_bandwidth_reports_every_size(tmp_path: Path) -> None:
    payload = run_bench(
        "allreduce_bandwidth.py",
        tmp_path,
        *("--min-bytes", "4096", "--max-bytes", "65536", "--iters", "3", "--max-iters", "20"),
        *("--repeats", "2", "--warmup", "0"),
    )
    rows = {row["role"]: row for row in payload["rows"]}
    assert set(rows) == {"ours", "baseline", "ceiling"}
    sizes = [4096, 8192, 16384, 32768, 65536]
    for row in rows.values():
        assert row["unit"] == "GB/s"
        assert row["extra"]["bytes"] == sizes
    ours = rows["ours"]["extra"]
    assert len(ours["busbw_gbps"]) == len(ours["fraction_of_ceiling"]) == len(sizes)
    assert all(value > 0 for value in ours["busbw_gbps"] + rows["ceiling"]["extra"]["gbps"])
    assert ours["fraction_of_ceiling"][-1] == pytest.approx(
        rows["ours"]["value"] / rows["ceiling"]["value"]
    )
    summary = payload["summary"]
    assert summary["ratio"] == pytest.approx(rows["ours"]["value"] / rows["baseline"]["value"])
    assert summary["met"] is (summary["ratio"] >= 0.95)
    assert "of the memcpy ceiling" in payload["notes"]
