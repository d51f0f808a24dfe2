"""Figure 2 (and the master's half of figure 6): metric points/s stored through mlbench's batch
endpoint against an MLflow tracking server, and the master's peak memory meanwhile.

Both servers run in their own process on this machine with a local SQLite store and one worker
(mlbench also on PostgreSQL with ``--postgres-url``). The same client code sends the same points
to each: the points are cut into each server's largest batch (mlbench: 10,000 points per
``POST /runs/{id}/metrics``; MLflow: 1,000 metrics per ``POST /runs/log-batch``, its limit),
encoded as its JSON before the clock starts, and posted one request after the other on one
keep-alive connection; the time runs until the last response (every point stored). Repetitions
alternate between the servers and the medians are compared.

A third row sends through mlbench's own ``MetricsClient`` (``log()`` from the training thread,
batches sent by its background thread) to show the rate a worker really reaches.

    .venv/bin/python bench/metrics_ingest.py [--points 500000] [--baseline-points 20000]
        [--repeats 3] [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import httpx
from servers import (
    Served,
    fresh_postgres,
    mlbench_master,
    mlflow_server,
    new_mlbench_run,
    new_mlflow_run,
    stored_points,
)

from mlbench_core.metrics_client import MetricsClient
from mlbench_core.wire import MAX_BATCH_POINTS

MLFLOW_BATCH = 1000  # MLflow's limit of metrics per log-batch request
Point = tuple[str, int, float, float]  # name, step, time, value


def make_points(n: int) -> list[Point]:
    t0 = time.time()
    return [("train/loss", step, t0 + step * 1e-3, 1.0 / (step + 1)) for step in range(n)]


def mlbench_bodies(points: list[Point]) -> list[bytes]:
    return [
        json.dumps(
            {
                "batch_id": uuid.uuid4().hex,
                "points": [
                    {"name": n, "step": s, "time": t, "value": v}
                    for n, s, t, v in points[i : i + MAX_BATCH_POINTS]
                ],
            }
        ).encode()
        for i in range(0, len(points), MAX_BATCH_POINTS)
    ]


def mlflow_bodies(run_id: str, points: list[Point]) -> list[bytes]:
    return [
        json.dumps(
            {
                "run_id": run_id,
                "metrics": [
                    {"key": n, "value": v, "timestamp": int(t * 1000), "step": s}
                    for n, s, t, v in points[i : i + MLFLOW_BATCH]
                ],
            }
        ).encode()
        for i in range(0, len(points), MLFLOW_BATCH)
    ]


def post_all(url: str, bodies: list[bytes], headers: dict[str, str]) -> float:
    """The shared client: post every body in order; seconds until the last was answered."""
    headers = {**headers, "Content-Type": "application/json"}
    with httpx.Client(headers=headers, timeout=300) as http:
        start = time.perf_counter()
        for body in bodies:
            http.post(url, content=body).raise_for_status()
        return time.perf_counter() - start


def mlbench_round(served: Served, points: list[Point]) -> Callable[[], float]:
    def once() -> float:
        run_id, token = new_mlbench_run(served, f"ingest-{uuid.uuid4().hex[:8]}")
        bodies = mlbench_bodies(points)
        url = f"{served.url}/api/v1/runs/{run_id}/metrics"
        seconds = post_all(url, bodies, {"Authorization": f"Bearer {token}"})
        stored = stored_points(served.url, run_id, token)
        assert stored == len(points), f"mlbench stored {stored} of {len(points)} points"
        return len(points) / seconds

    return once


def mlflow_round(served: Served, points: list[Point]) -> Callable[[], float]:
    def once() -> float:
        run_id = new_mlflow_run(served, f"ingest-{uuid.uuid4().hex[:8]}")
        bodies = mlflow_bodies(run_id, points)
        seconds = post_all(f"{served.url}/api/2.0/mlflow/runs/log-batch", bodies, {})
        response = httpx.get(
            f"{served.url}/api/2.0/mlflow/metrics/get-history",
            params={"run_id": run_id, "metric_key": points[0][0], "max_results": 25_000},
            timeout=120,
        )
        response.raise_for_status()
        # MLflow's first page only; equal to the count when all points fit one page.
        assert len(response.json()["metrics"]) == min(len(points), 25_000)
        return len(points) / seconds

    return once


def client_round(served: Served, points: list[Point], spool: Path) -> Callable[[], float]:
    def once() -> float:
        run_id, token = new_mlbench_run(served, f"client-{uuid.uuid4().hex[:8]}")
        client = MetricsClient(
            served.url, run_id, token, 0, spool_dir=spool, flush_points=MAX_BATCH_POINTS
        )
        start = time.perf_counter()
        for name, step, _t, value in points:
            client.log(name, value, step=step)
        client.close(timeout_s=600)
        seconds = time.perf_counter() - start
        assert stored_points(served.url, run_id, token) == len(points)
        return len(points) / seconds

    return once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=500_000, help="points per mlbench round")
    parser.add_argument("--baseline-points", type=int, default=20_000, help="per MLflow round")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postgres-url", default=None, help="also measure mlbench on PostgreSQL")
    common.add_output_args(parser)
    args = parser.parse_args()

    ours_points = make_points(args.points)
    base_points = make_points(args.baseline_points)
    rows: list[common.Row] = []
    with (
        tempfile.TemporaryDirectory() as spool,
        mlbench_master() as master,
        mlflow_server() as mlflow,
    ):
        start_rss = master.peak_rss_mib()
        samples = common.interleave(
            {
                "mlbench": mlbench_round(master, ours_points),
                "mlflow": mlflow_round(mlflow, base_points),
                "client": client_round(master, ours_points, Path(spool)),
            },
            repeats=args.repeats,
        )
        master_peak = master.peak_rss_mib()
        mlflow_peak = mlflow.tree_peak_rss_mib()
    rows.append(_row("mlbench batch endpoint (SQLite)", "ours", samples["mlbench"], args.points))
    rows[-1].extra.update(master_rss_start_mib=start_rss, master_peak_rss_mib=master_peak)
    rows.append(
        _row("MLflow log-batch (SQLite)", "baseline", samples["mlflow"], args.baseline_points)
    )
    rows[-1].extra["server_tree_peak_rss_mib"] = mlflow_peak
    rows.append(
        _row("mlbench MetricsClient.log() end to end", "ours", samples["client"], args.points)
    )
    if args.postgres_url:
        with fresh_postgres(args.postgres_url) as url, mlbench_master(url) as master:
            pg = common.interleave({"pg": mlbench_round(master, ours_points)}, args.repeats)
            peak = master.peak_rss_mib()
        rows.append(_row("mlbench batch endpoint (PostgreSQL)", "ours", pg["pg"], args.points))
        rows[-1].extra["master_peak_rss_mib"] = peak

    common.print_rows(rows)
    ours, base = rows[0].value, rows[1].value
    met = ours >= 100_000 and ours >= 10 * base
    summary = common.Summary(
        "ingest points/s, mlbench (SQLite) / MLflow",
        ours / base,
        ">= 100,000 points/s and >= 10x",
        met,
    )
    params = vars(args) | {"mlbench_batch": MAX_BATCH_POINTS, "mlflow_batch": MLFLOW_BATCH}
    params.pop("results_dir")
    params.pop("postgres_url")
    common.save(args, "metrics_ingest", "Metric ingest", params, rows, summary)


def _row(label: str, role: str, rates: list[float], points: int) -> common.Row:
    extra: dict[str, Any] = {"rounds_points_per_s": [round(r) for r in rates], "points": points}
    return common.Row(label, role, common.median(rates), "points/s", extra)


if __name__ == "__main__":
    main()
