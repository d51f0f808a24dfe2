"""DashboardServer: serves the views over HTTP and websocket, and stops without leftovers."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest
from bokeh.client import pull_session

from bokeh_app.server import DashboardServer
from tests.bokeh_app.conftest import DashMaster
from tests.conftest import free_port


def _port_free(port: int) -> bool:
    """Nothing listens and a server can bind it again (SO_REUSEADDR, as servers do: the closed
    connections of the test's own session may linger in TIME_WAIT)."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _dashboard_threads() -> list[str]:
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith(("mlbench-dashboard", "mlb-dashboard-api"))
    ]


def test_serves_the_runs_page_and_stops_cleanly(dash_master: DashMaster) -> None:
    run = dash_master.create(name="served-run")
    port = free_port()
    server = DashboardServer(dash_master.url, dash_master.token, port=port).start()
    try:
        assert server.url == f"http://127.0.0.1:{port}/runs"
        response = httpx.get(server.url, timeout=30)
        assert response.status_code == 200
        assert "text/html" in response.headers["content-type"]
        assert "bokeh" in response.text and "<script" in response.text
        root = httpx.get(f"http://127.0.0.1:{port}/", timeout=30)
        assert root.status_code == 301 and root.headers["location"] == "/runs"

        # A real session over the websocket: the document builds, its data arrives.
        with pull_session(url=server.url) as session:
            table = session.document.select_one({"css_classes": ["mlb-runs-table"]})
            assert table is not None
            assert session.document.select_one({"css_classes": ["mlb-banner"]}) is not None
        assert run["id"]  # (the table fills through the pool; test_runs_view checks data)
    finally:
        server.stop()
    assert _port_free(port)
    assert _dashboard_threads() == []
    server.stop()  # idempotent


def test_port_zero_picks_one_and_taken_port_raises() -> None:
    with DashboardServer("http://127.0.0.1:9", None, port=0) as server:
        assert server.port > 0
        assert httpx.get(server.url, timeout=30).status_code == 200
        with pytest.raises(OSError):
            DashboardServer("http://127.0.0.1:9", None, port=server.port).start()
    assert _port_free(server.port)
    assert _dashboard_threads() == []
