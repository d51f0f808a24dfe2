"""bench/metrics_ingest.py on tiny sizes: both servers measured, every point stored."""

from __future__ import annotations

from pathlib import Path

from tests.bench.conftest import run_bench


def test_ingest_bench_measures_mlbench_and_mlflow(tmp_path: Path) -> None:
    result = run_bench(
        "metrics_ingest.py", tmp_path, "--points", "12000", "--baseline-points", "1500",
        "--repeats", "1",
    )  # fmt: skip
    labels = [row["label"] for row in result["rows"]]
    assert labels == [
        "mlbench batch endpoint (SQLite)",
        "MLflow log-batch (SQLite)",
        "mlbench MetricsClient.log() end to end",
    ]
    ours, mlflow, client = result["rows"]
    assert ours["unit"] == "points/s" and ours["extra"]["points"] == 12000
    assert mlflow["extra"]["points"] == 1500 and client["extra"]["points"] == 12000
    # The master's memory was read from the kernel while it ran.
    assert 20 < ours["extra"]["master_peak_rss_mib"] < 4000
    assert ours["extra"]["master_peak_rss_mib"] >= ours["extra"]["master_rss_start_mib"]
    assert result["summary"]["ratio"] == ours["value"] / mlflow["value"]
    assert result["params"]["mlflow_batch"] == 1000
