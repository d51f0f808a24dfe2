"""Opening the Run view of a run with 1,000,000 points per metric: mlbench vs. a naive dashboard.

mlbench's view reads each curve with ``GET /runs/{id}/metrics/series``: the master downsamples
it (M4) from per-series tiles that ingest keeps, so a curve costs a few thousand tile rows, not
a million points. The baseline is what a dashboard without that does: read every point through
the paged cursor API (``GET /runs/{id}/metrics?cursor=``) and plot them all. Both run against
the same real master (uvicorn over HTTP, SQLite by default) in one process; "open" is the time
from nothing to a document ready to send to the browser: the reads, building the document
(``build_run`` + ``load()`` for mlbench) and serialising it (``Document.to_json``).

    .venv/bin/python bench/dashboard_open.py [--points 1000000] [--repeat 5]
                                             [--database-url postgresql://.../empty_db]

The run's points are stored with bulk inserts (minutes through the API otherwise), together
with the per-series counts and tiles that ingest would write for them (``seed_metrics.py``,
shared with ``dashboard_draw.py``). Use an empty database for --database-url: the master
migrates it and the run stays there.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from bokeh.document import Document
from bokeh.plotting import figure
from hold_master import HoldExecutor  # the same worker stand-in (bench/ is on sys.path)
from seed_metrics import METRICS, seed_run

from bokeh_app.common.api import DashboardApi
from bokeh_app.views.run import build_run
from master.server import EmbeddedMaster
from master.settings import Settings
from tests.conftest import free_port


def open_mlbench(url: str, run_id: int) -> tuple[float, float, int]:
    """(seconds to fetch and build, seconds to serialise, points in the document)."""
    api = DashboardApi(url, "bench", timeout_s=120)
    try:
        start = time.perf_counter()
        doc = Document()
        view = build_run(doc, api, {"id": [str(run_id)]})
        doc.add_root(view.root)
        view.load()
        built = time.perf_counter()
        doc.to_json()
        points = sum(len(c.source.data["x"]) for c in view.curves.curves.values())
        assert view.state.text == "succeeded" and points > 0, view.message.text
        return built - start, time.perf_counter() - built, points
    finally:
        api.close()


def open_naive(url: str, run_id: int) -> tuple[float, float, int]:
    """Every point of the same metrics through cursor pages, then one line per metric."""
    with httpx.Client(base_url=url, timeout=300) as http:
        start = time.perf_counter()
        data: dict[str, tuple[list[float], list[float]]] = {m: ([], []) for m in METRICS}
        cursor = 0
        while True:
            params = {"cursor": cursor, "name": list(METRICS)}
            page = http.get(f"/api/v1/runs/{run_id}/metrics", params=params).json()
            for p in page["points"]:
                xs, ys = data[p["name"]]
                xs.append(p["step"])
                ys.append(p["value"])
            cursor = page["next_cursor"]
            if not page["has_more"]:
                break
        doc = Document()
        for name, (xs, ys) in data.items():
            plot = figure(title=name, output_backend="webgl", height=260)
            plot.line(xs, ys)
            doc.add_root(plot)
        built = time.perf_counter()
        doc.to_json()
        return built - start, time.perf_counter() - built, sum(len(x) for x, _ in data.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="per metric")
    parser.add_argument("--repeat", type=int, default=5, help="opens of the mlbench view")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            database_url=args.database_url,
            port=free_port(),
            admin_token="bench",
        )
        executor = HoldExecutor()
        master = EmbeddedMaster(settings, executors={"local": executor}).start()
        url = master.url
        try:
            began = time.perf_counter()
            engine = master.app.state.mlbench.engine
            run_id = seed_run(url, "bench", executor, engine, args.points)
            stored_s = time.perf_counter() - began
            mine = [open_mlbench(url, run_id) for _ in range(args.repeat)]
            naive = open_naive(url, run_id)
        finally:
            master.stop()

    db = "postgresql" if args.database_url else "sqlite"
    total = [fetch + doc for fetch, doc, _ in mine]
    middle = sorted(range(len(mine)), key=lambda i: total[i])[len(mine) // 2]
    median = statistics.median(total)
    print(
        f"Run view open: {len(METRICS)} metrics x {args.points:,} points ({db}; "
        f"stored in {stored_s:.0f} s)"
    )
    print(f"{'':40}{'reads+build s':>14}{'serialise s':>12}{'total s':>9}{'points sent':>13}")
    rows = [
        ("mlbench, first open", *mine[0], total[0]),
        (f"mlbench, median of {len(mine)}", *mine[middle], total[middle]),
        ("baseline: every point via cursor", *naive, naive[0] + naive[1]),
    ]
    for label, fetch, doc, points, seconds in rows:
        print(f"{label:40}{fetch:>14.3f}{doc:>12.3f}{seconds:>9.3f}{points:>13,}")
    ratio = (naive[0] + naive[1]) / median
    verdict = "met" if max(total) < 2.0 else "NOT met"
    print(f"ratio: {ratio:.0f}x faster to open than the baseline; target < 2 s: {verdict}")


if __name__ == "__main__":
    main()
