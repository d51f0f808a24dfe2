"""Metrics ingest: mlbench's batched MetricsClient vs. one HTTP request per metric.

The predecessor (EPFL mlbench) posted every metric value in its own request, from the training
loop. This script runs both against the same real master (uvicorn, SQLite by default) in one
process and prints throughput, the cost the training thread sees per logged point, and ratios.

    .venv/bin/python bench/metrics_ingest.py [--points 50000] [--baseline-points 2000]
                                              [--database-url postgresql://.../empty_db]

Use an empty database for --database-url: the master migrates it and the runs stay there.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from master.app import create_app
from master.executors.base import Executor, Launch
from master.settings import Settings
from mlbench_core.metrics_client import MetricsClient


class HoldExecutor(Executor):
    """Starts no workers: this script plays the worker and needs the run's token."""

    kind = "local"

    def __init__(self) -> None:
        super().__init__(on_exit=lambda _exit: None)
        self.launches: list[Launch] = []

    def start(self, launch: Launch) -> dict[str, Any]:
        self.launches.append(launch)
        return {}

    def stop(self, run_id: int, ref: dict[str, Any]) -> None:
        return None

    def reattach(self, run_id: int, ref: dict[str, Any]) -> bool:
        return False


def _serve(settings: Settings, executor: HoldExecutor) -> uvicorn.Server:
    app = create_app(settings, executors={"local": executor})
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server


def _new_run(http: httpx.Client, executor: HoldExecutor, name: str) -> Launch:
    spec = {"name": name, "benchmark": "digits-mlp", "workers": 1}
    response = http.post("/api/v1/runs", json=spec)
    response.raise_for_status()
    return executor.launches[-1]


def _stored(http: httpx.Client, run_id: int) -> int:
    names = http.get(f"/api/v1/runs/{run_id}/metrics/names").json()
    return sum(entry["count"] for entry in names)


def bench_batched(url: str, launch: Launch, points: int, spool: Path) -> tuple[float, float]:
    client = MetricsClient(url, launch.run_id, launch.token, 0, spool_dir=spool)
    start = time.perf_counter()
    for step in range(points):
        client.log("bench/loss", 1.0 / (step + 1), step=step)
    logged = time.perf_counter() - start
    client.close(timeout_s=300)
    return logged, time.perf_counter() - start


def bench_per_point(url: str, launch: Launch, points: int) -> float:
    headers = {"Authorization": f"Bearer {launch.token}"}
    path = f"/api/v1/runs/{launch.run_id}/metrics"
    with httpx.Client(base_url=url, headers=headers) as http:
        start = time.perf_counter()
        for step in range(points):
            point = {
                "name": "bench/loss",
                "step": step,
                "time": time.time(),
                "value": 1.0 / (step + 1),
            }
            http.post(path, json={"batch_id": f"b{step:08d}", "points": [point]}).raise_for_status()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=50_000)
    parser.add_argument("--baseline-points", type=int, default=2_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp), database_url=args.database_url, port=args.port, admin_token="bench"
        )
        executor = HoldExecutor()
        server = _serve(settings, executor)
        url = f"http://127.0.0.1:{args.port}"
        try:
            with httpx.Client(base_url=url, headers={"Authorization": "Bearer bench"}) as http:
                batched_run = _new_run(http, executor, "bench-batched")
                logged_s, total_s = bench_batched(
                    url, batched_run, args.points, Path(tmp) / "spool"
                )
                assert _stored(http, batched_run.run_id) == args.points, "batched points lost"

                base_run = _new_run(http, executor, "bench-per-point")
                base_s = bench_per_point(url, base_run, args.baseline_points)
                assert _stored(http, base_run.run_id) == args.baseline_points
        finally:
            server.should_exit = True

    db = "postgresql" if args.database_url else "sqlite"
    batched_rate = args.points / total_s
    base_rate = args.baseline_points / base_s
    batched_cost_us = 1e6 * logged_s / args.points
    base_cost_us = 1e6 * base_s / args.baseline_points
    print(f"metrics ingest into a real master ({db})")
    rows = [
        ("mlbench MetricsClient (batched)", args.points, batched_rate, batched_cost_us),
        ("baseline: one request per point", args.baseline_points, base_rate, base_cost_us),
    ]
    print(f"{'':34}{'points':>9}{'points/s':>12}{'µs/point in training loop':>28}")
    for label, count, rate, cost in rows:
        print(f"{label:34}{count:>9}{rate:>12.0f}{cost:>28.2f}")
    print(
        f"ratio: {batched_rate / base_rate:.1f}x the throughput, "
        f"{base_cost_us / batched_cost_us:.0f}x less time per logged point in the training loop"
    )


if __name__ == "__main__":
    main()
