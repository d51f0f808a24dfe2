"""The pages ``dashboard_draw.py`` opens, served from their own process: a real master holding a
finished run with N points per metric (``seed_metrics``), the mlbench dashboard next to it as
``mlbench serve`` runs it (``DashboardServer``), and the baseline app on its own Bokeh server.

The baseline is a dashboard that plots every point: the Run view's own three curve plots
(``CurvePlots``: one linked x range, same sizes), each metric's line given all its raw points.
It is built generously: the points are read with one SQL query per metric straight from the
master's database (faster than any API path) and sent as float64 NumPy arrays, which Bokeh
ships as binary websocket buffers (the cheapest encoding it has) inside the first document, as
a plain ``bokeh serve`` app would; its plots draw on a 2D canvas (``--baseline-backend``): in
headless Chromium without a GPU, WebGL runs in software and drew 3 x 1M points in ~54 s
against ~34 s on canvas.

    .venv/bin/python bench/draw_pages.py --points 1000000 --metrics 3

prints one JSON line (``ours``, ``baseline``: page URLs; ``run_id``; ``stored_s``) once all is
up, and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from bokeh.application import Application
from bokeh.application.handlers import FunctionHandler
from bokeh.document import Document
from bokeh.layouts import column
from bokeh.server.server import Server
from seed_metrics import GROUPS, METRICS, HoldExecutor, seed_run
from sqlalchemy import Engine
from tornado.ioloop import IOLoop

from bokeh_app.server import DashboardServer
from bokeh_app.views.run_plots import CurvePlots
from master.server import EmbeddedMaster
from master.settings import Settings
from tests.conftest import free_port

TOKEN = "bench"
QUERY = (
    "SELECT step, value FROM metric_points WHERE run_id = ? AND name = ? AND rank = 0 ORDER BY step"
)


def all_points(engine: Engine, run_id: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Every (step, value) of one series, in step order, as NumPy arrays (the driver's own
    cursor: building a SQLAlchemy Row per point would take 30 times longer)."""
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        cursor.execute(QUERY, (run_id, name))
        table = np.array(cursor.fetchall(), dtype=np.float64).reshape(-1, 2)
    return table[:, 0].copy(), table[:, 1].copy()


def baseline_app(engine: Engine, run_id: int, names: list[str], backend: str) -> Application:
    def make(doc: Document) -> None:
        plots = CurvePlots()
        for plot in plots.plots.values():
            plot.output_backend = backend
        for name in names:
            x, y = all_points(engine, run_id, name)
            plots.curve(GROUPS[name], name).source.data = {"x": x, "y": y}
        doc.add_root(column(*plots.plots.values(), sizing_mode="stretch_width"))
        doc.title = f"baseline: run {run_id}, every point"

    return Application(FunctionHandler(make))


class BaselineServer:
    """One Bokeh server app at ``/baseline`` on its own IOLoop thread (as DashboardServer)."""

    def __init__(self, app: Application, port: int) -> None:
        self.app, self.port = app, port
        self._ready = threading.Event()
        self._server: Server | None = None
        self._loop: IOLoop | None = None
        self._thread = threading.Thread(target=self._run, name="baseline-bokeh", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        loop = IOLoop.current()
        origins = [f"127.0.0.1:{self.port}", f"localhost:{self.port}"]
        server = Server(
            {"/baseline": self.app},
            io_loop=loop,
            address="127.0.0.1",
            port=self.port,
            allow_websocket_origin=origins,
            num_procs=1,
        )
        server.start()
        self._server, self._loop = server, loop
        self._ready.set()
        loop.start()

    def start(self) -> BaselineServer:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the baseline Bokeh server did not start")
        return self

    def stop(self) -> None:
        server, loop = self._server, self._loop
        if server is not None and loop is not None:
            loop.add_callback(lambda: (server.stop(wait=False), loop.stop()))
            self._thread.join(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="per metric")
    parser.add_argument("--metrics", type=int, default=3, choices=(1, 2, 3))
    parser.add_argument(
        "--baseline-metrics", type=int, default=None, help="metrics the baseline plots"
    )
    parser.add_argument(
        "--baseline-backend", choices=("canvas", "webgl"), default="canvas", help="its plots'"
    )
    args = parser.parse_args()
    names = list(METRICS[: args.metrics])
    baseline_names = names[: args.baseline_metrics or args.metrics]

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), port=free_port(), admin_token=TOKEN)
        executor = HoldExecutor()
        master = EmbeddedMaster(settings, executors={"local": executor}).start()
        dashboard = baseline = None
        try:
            engine = master.app.state.mlbench.engine
            began = time.perf_counter()
            run_id = seed_run(master.url, TOKEN, executor, engine, args.points, names)
            stored_s = time.perf_counter() - began
            dashboard = DashboardServer(master.url, TOKEN, port=0, api_timeout_s=60).start()
            app = baseline_app(engine, run_id, baseline_names, args.baseline_backend)
            baseline = BaselineServer(app, free_port()).start()
            ours_url = dashboard.url.removesuffix("/runs") + f"/run?id={run_id}"
            base_url = f"http://127.0.0.1:{baseline.port}/baseline"
            info = {"ours": ours_url, "baseline": base_url, "master": master.url, "run_id": run_id}
            print(json.dumps({**info, "stored_s": stored_s}), flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            if baseline is not None:
                baseline.stop()
            if dashboard is not None:
                dashboard.stop()
            master.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
