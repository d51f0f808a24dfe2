"""Serve the dashboard's directory apps with a Bokeh server in a background thread.

``mlbench serve`` and the embedded master of ``mlbench run`` start one next to the master; it
can also run alone: ``python -m bokeh_app.server`` (settings from ``MLBENCH_*``, see
``bokeh_app.common.settings``) or ``bokeh serve bokeh_app/runs bokeh_app/run ...``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from types import TracebackType

from bokeh.application import Application
from bokeh.application.handlers import DirectoryHandler
from bokeh.resources import Resources
from bokeh.server.server import Server
from tornado.ioloop import IOLoop
from tornado.web import RedirectHandler, RequestHandler

from bokeh_app.common.background import shutdown_pool
from bokeh_app.common.settings import DashboardSettings
from bokeh_app.views import APP_CONFIG_ATTR, ApiConfig

log = logging.getLogger(__name__)

APP_DIR = Path(__file__).resolve().parent
VIEWS = ("runs", "run", "compare", "nodes")
UNUSED_BUNDLES = ("bokeh-mathjax",)
"""BokehJS bundles no view needs (none shows TeX). A Bokeh server page loads every bundle,
since an app may add any model later; MathJax's is 1.8 MB of JavaScript to fetch and run."""

_live_servers = 0  # the shared API thread pool ends with the last server
_live_lock = threading.Lock()


class _HealthHandler(RequestHandler):
    """``GET /healthz``: the server answers (for probes; opens no Bokeh session)."""

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.write({"status": "ok"})


def _applications(config: ApiConfig) -> dict[str, Application]:
    apps: dict[str, Application] = {}
    for view in VIEWS:
        if not (APP_DIR / view / "main.py").is_file():
            continue  # a view not written yet must not break the others
        app = Application(DirectoryHandler(filename=str(APP_DIR / view)))
        setattr(app, APP_CONFIG_ATTR, config)  # see bokeh_app.views.APP_CONFIG_ATTR
        apps[f"/{view}"] = app
    return apps


def _leave_out_unused_bundles(server: Server) -> None:
    """Make the pages of ``server`` load no ``UNUSED_BUNDLES``."""
    tornado_app = server._tornado
    resources = tornado_app.resources

    def lean(absolute_url: str | bool | None = None) -> Resources:
        full = resources(absolute_url)
        kept = [name for name in full.components if name not in UNUSED_BUNDLES]
        return full.clone(components=kept)

    tornado_app.resources = lean  # type: ignore[method-assign]


class DashboardServer:
    """The four views at ``http://<host>:<port>/{runs,run,compare,nodes}``; ``/`` → ``/runs``.

    Runs a ``bokeh.server.server.Server`` on its own tornado IOLoop (and asyncio loop) in a
    daemon thread, so it lives next to uvicorn's loop without sharing it. ``port=0`` picks a
    free port (read it back from ``.port``/``.url`` after ``start()``).
    """

    def __init__(
        self,
        api_url: str,
        token: str | None,
        host: str = "127.0.0.1",
        port: int = 5006,
        *,
        api_timeout_s: float = 5.0,
        token_file: Path | None = None,
        allow_origins: list[str] | None = None,
        start_timeout_s: float = 30.0,
    ) -> None:
        """``token=None`` with ``token_file``: each session reads the file (the admin token a
        local master writes on its first start)."""
        self.config = ApiConfig(api_url.rstrip("/"), token, api_timeout_s, token_file)
        self.host = host
        self.port = port
        self.allow_origins = allow_origins or []
        self.start_timeout_s = start_timeout_s
        self._loop: IOLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._counted = False

    @property
    def url(self) -> str:
        """Where a browser on this machine opens the Runs view."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}/runs"

    def _origins(self, port: int) -> list[str]:
        # Browsers send the Origin they loaded the page from; Bokeh refuses websockets from
        # any other, so list every name this machine is reached by (plus what the user adds).
        names = {self.host, "localhost", "127.0.0.1"} - {"0.0.0.0", "::", ""}
        return sorted(f"{name}:{port}" for name in names) + list(self.allow_origins)

    def _run(self) -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        loop = IOLoop.current()
        try:
            server = Server(
                _applications(self.config),
                io_loop=loop,
                address=self.host,
                port=self.port,
                allow_websocket_origin=self._origins(self.port),
                extra_patterns=[
                    (r"/", RedirectHandler, {"url": "/runs"}),
                    (r"/healthz", _HealthHandler),
                ],
                num_procs=1,
                # gzip: BokehJS is 2.1 MB of JavaScript, 0.6 MB compressed (~50 ms of CPU per
                # first visit; the versioned static URLs are cached by the browser after it).
                compress_response=True,
            )
            if self.port == 0:  # now bound: allow the real port too
                self.port = server.port or 0
                server._tornado._websocket_origins |= set(self._origins(self.port))
            _leave_out_unused_bundles(server)
            server.start()
        except BaseException as exc:  # reported to start(), which raises it
            self._error = exc
            self._ready.set()
            loop.close(all_fds=True)
            return
        self._server, self._loop = server, loop
        self._ready.set()
        try:
            loop.start()
        finally:
            loop.close(all_fds=True)

    def start(self) -> DashboardServer:
        """Bind and serve; raises (e.g. ``OSError`` for a taken port) if that fails."""
        if self._thread is not None:
            raise RuntimeError("DashboardServer already started")
        self._thread = threading.Thread(target=self._run, name="mlbench-dashboard", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.start_timeout_s):
            raise RuntimeError(f"the dashboard did not start within {self.start_timeout_s}s")
        if self._error is not None:
            self._thread.join(timeout=5)
            raise self._error
        global _live_servers
        with _live_lock:
            _live_servers += 1
            self._counted = True
        log.info("dashboard on %s", self.url)
        return self

    def stop(self) -> None:
        """Close the sessions and the listening socket, end the thread; idempotent."""
        server, loop, thread = self._server, self._loop, self._thread
        self._server = self._loop = None
        if server is not None and loop is not None:

            def shutdown() -> None:
                try:
                    server.stop(wait=False)
                finally:
                    loop.stop()

            loop.add_callback(shutdown)
        if thread is not None:
            thread.join(timeout=30)
            if thread.is_alive():
                log.warning("the dashboard thread did not end within 30s")
        global _live_servers
        with _live_lock:
            if self._counted:
                self._counted = False
                _live_servers -= 1
                last = _live_servers == 0
            else:
                last = False
        if last:
            shutdown_pool()

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main() -> None:
    """``python -m bokeh_app.server``: the dashboard alone, for a master started elsewhere."""
    logging.basicConfig(level=logging.INFO)
    settings = DashboardSettings()
    server = DashboardServer(
        settings.resolved_api_url,
        settings.token(),
        settings.dashboard_host,
        settings.dashboard_port or 5006,
        api_timeout_s=settings.api_timeout_s,
        allow_origins=settings.allowed_origins,
    ).start()
    print(f"dashboard: {server.url} (master {settings.resolved_api_url})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
