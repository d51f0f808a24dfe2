"""Figure 3: reading one metric of 1,000,000 points from mlbench's master and from an MLflow
tracking server holding the same points.

Reads timed (each server in its own process, SQLite store, one worker; medians of interleaved
repetitions, the client's JSON decoding included):

* mlbench ``GET /runs/{id}/metrics/series?max_points=2000``: the whole series downsampled (M4
  over the tiles kept at ingest), what the dashboard draws. Target: <= 100 ms.
* mlbench ``GET /runs/{id}/metrics?cursor=...``: the newest 1,000 points (an incremental read).
* MLflow ``GET /metrics/get-history``: its metric-history endpoint; it has no downsampling or
  "since" parameter, so a plot of the metric reads every point, page by page (25,000 each).
* MLflow ``GET /ajax-api/.../get-history-bulk-interval``: the sampled read its own UI uses, with
  ``max_results=2000`` (whole series) and with the last 1,000 steps (newest points).

Both stores are filled directly (bulk inserts into each one's own tables, mlbench's tiles
included, as its ingest writes them): through the APIs that would take minutes (mlbench) to
hours (MLflow, ~1,000 points/s) and ingest is figure 2's subject.

    .venv/bin/python bench/metrics_query.py [--points 1000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from typing import Any

import common
import httpx
from seed_metrics import bulk_store
from servers import Served, mlbench_master, mlflow_server, new_mlbench_run, new_mlflow_run

from master.db import make_engine

NAME = "train/loss"
PAGE = 25_000  # MLflow's largest get-history page


def seed_mlflow(served: Served, run_id: str, n: int) -> None:
    start_ms = int(time.time() * 1000) - n * 50
    rows = ((NAME, 1.0 / (s + 1), start_ms + 50 * s, run_id, s, 0) for s in range(n))
    with sqlite3.connect(served.data_dir / "mlflow.db") as db:
        db.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.execute(
            "INSERT OR REPLACE INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid)"
            " VALUES (?, ?, ?, ?, 0, ?)",
            (NAME, 1.0 / n, start_ms + 50 * (n - 1), n - 1, run_id),
        )


def timed_get(http: httpx.Client, url: str, params: dict[str, Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    response = http.get(url, params=params)
    response.raise_for_status()
    body = response.json()
    return time.perf_counter() - start, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--max-points", type=int, default=2000)
    parser.add_argument("--newest", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--history-repeats", type=int, default=2, help="MLflow full reads")
    common.add_output_args(parser)
    args = parser.parse_args()
    n, newest = args.points, args.newest

    with mlbench_master() as master, mlflow_server() as mlflow:
        run_id, token = new_mlbench_run(master, "query")
        engine = make_engine(f"sqlite:///{master.data_dir / 'mlbench.db'}")
        bulk_store(engine, run_id, n, [NAME])
        engine.dispose()
        mlflow_run = new_mlflow_run(mlflow, "query")
        seed_mlflow(mlflow, mlflow_run, n)
        print(f"seeded {n:,} points in each store", flush=True)

        ours = httpx.Client(
            base_url=master.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=300,
        )
        theirs = httpx.Client(base_url=mlflow.url, timeout=600)
        bulk = "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"
        path = f"/api/v1/runs/{run_id}/metrics"
        probe = ours.get(f"{path}/series", params={"name": NAME, "max_points": 4})
        last_id = probe.json()["last_id"]

        def our_downsampled() -> float:
            params = {"name": NAME, "max_points": args.max_points}
            seconds, body = timed_get(ours, f"{path}/series", params)
            assert 0 < len(body["x"]) <= args.max_points and body["total"] == n, body["total"]
            return seconds

        def our_newest() -> float:
            seconds, body = timed_get(ours, path, {"name": NAME, "cursor": last_id - newest})
            assert len(body["points"]) == newest and body["points"][-1]["step"] == n - 1
            return seconds

        def their_sampled() -> float:
            params = {"run_ids": mlflow_run, "metric_key": NAME, "max_results": args.max_points}
            seconds, body = timed_get(theirs, bulk, params)
            assert 0 < len(body["metrics"]) <= args.max_points
            return seconds

        def their_newest() -> float:
            params = {"run_ids": mlflow_run, "metric_key": NAME, "max_results": newest}
            params |= {"start_step": n - newest, "end_step": n - 1}
            seconds, body = timed_get(theirs, bulk, params)
            assert len(body["metrics"]) == newest
            return seconds

        def their_history() -> float:
            total, read, token_ = 0.0, 0, None
            while True:
                params = {"run_id": mlflow_run, "metric_key": NAME, "max_results": PAGE}
                if token_:
                    params["page_token"] = token_
                seconds, body = timed_get(theirs, "/api/2.0/mlflow/metrics/get-history", params)
                total += seconds
                read += len(body.get("metrics", []))
                token_ = body.get("next_page_token")
                if not token_:
                    break
            assert read == n, read
            return total

        fast = common.interleave(
            {
                "ours_down": our_downsampled,
                "ours_new": our_newest,
                "mlflow_down": their_sampled,
                "mlflow_new": their_newest,
            },
            repeats=args.repeats,
        )
        history = common.interleave({"history": their_history}, args.history_repeats, warmup=0)

    ms = {key: [1000 * s for s in values] for key, values in (fast | history).items()}
    row = _row
    rows = [
        row(f"mlbench series, downsampled to {args.max_points}", "ours", ms["ours_down"]),
        row(f"mlbench cursor read, newest {newest}", "ours", ms["ours_new"]),
        row(f"MLflow bulk-interval, sampled to {args.max_points}", "baseline", ms["mlflow_down"]),
        row(f"MLflow bulk-interval, last {newest} steps", "baseline", ms["mlflow_new"]),
        row(f"MLflow get-history, all {n:,} points", "baseline", ms["history"]),
    ]
    common.print_rows(rows)
    ours_ms = rows[0].value
    summary = common.Summary(
        f"downsampled read latency, MLflow sampled / mlbench ({ours_ms:.1f} ms)",
        rows[2].value / ours_ms,
        "<= 100 ms",
        ours_ms <= 100,
    )
    params = {k: v for k, v in vars(args).items() if k not in ("results_dir", "no_save")}
    title = "Metric query: one metric of 1M points"
    common.save(args, "metrics_query", title, params, rows, summary)


def _row(label: str, role: str, values_ms: list[float]) -> common.Row:
    extra = {"rounds_ms": [round(v, 2) for v in values_ms]}
    return common.Row(label, role, common.median(values_ms), "ms", extra)


if __name__ == "__main__":
    main()
