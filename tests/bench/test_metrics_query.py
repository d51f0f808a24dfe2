"""bench/metrics_query.py on tiny sizes: the same points read from both servers."""

from __future__ import annotations

from pathlib import Path

from tests.bench.conftest import run_bench


def test_query_bench_reads_both_stores(tmp_path: Path) -> None:
    result = run_bench(
        "metrics_query.py", tmp_path, "--points", "30000", "--repeats", "1",
        "--history-repeats", "1",
    )  # fmt: skip
    rows = {row["label"]: row for row in result["rows"]}
    assert set(rows) == {
        "mlbench series, downsampled to 2000",
        "mlbench cursor read, newest 1000",
        "MLflow bulk-interval, sampled to 2000",
        "MLflow bulk-interval, last 1000 steps",
        "MLflow get-history, all 30,000 points",
    }
    assert all(row["unit"] == "ms" for row in rows.values())
    assert result["summary"]["target"] == "<= 100 ms"
    assert result["summary"]["met"] == (rows["mlbench series, downsampled to 2000"]["value"] <= 100)
