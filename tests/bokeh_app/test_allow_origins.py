"""The standalone dashboard as the Helm chart runs it: MLBENCH_DASHBOARD_ALLOW_ORIGINS lets an
Ingress host open websockets (localhost still can, for port-forwards; nothing else can), and
/healthz answers the probes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from bokeh_app.common.settings import DashboardSettings
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_setting_is_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLBENCH_DASHBOARD_ALLOW_ORIGINS", " mlbench.example.com, ,a.b:8443 ,")
    assert DashboardSettings().allowed_origins == ["mlbench.example.com", "a.b:8443"]
    monkeypatch.delenv("MLBENCH_DASHBOARD_ALLOW_ORIGINS")
    assert DashboardSettings().allowed_origins == []


async def _handshake(port: int, origin: str) -> int:
    """HTTP status of a websocket handshake on the Runs view from ``origin`` (101 = accepted)."""
    request = HTTPRequest(f"ws://127.0.0.1:{port}/runs/ws", headers={"Origin": origin})
    try:
        conn = await asyncio.wait_for(websocket_connect(request), 20)
    except HTTPClientError as exc:
        return exc.code
    conn.close()
    return 101


def test_standalone_dashboard_allows_the_configured_origins(tmp_path: Path) -> None:
    port = free_port()
    env = dict(
        os.environ,
        MLBENCH_API_URL="http://127.0.0.1:9",
        MLBENCH_DASHBOARD_HOST="127.0.0.1",
        MLBENCH_DASHBOARD_PORT=str(port),
        MLBENCH_DASHBOARD_ALLOW_ORIGINS="mlbench.example.com,tls.example.com:8443",
        MLBENCH_DATA_DIR=str(tmp_path),
        PYTHONPATH=str(ROOT),
    )
    env.pop("MLBENCH_ADMIN_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bokeh_app.server"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "the dashboard exited"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/runs", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the dashboard did not come up"
            time.sleep(0.2)

        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)  # the probes' route
        assert health.status_code == 200 and health.json() == {"status": "ok"}

        async def statuses() -> dict[str, int]:
            origins = [
                "https://mlbench.example.com",  # the Ingress host, default port
                "http://mlbench.example.com",
                "https://tls.example.com:8443",
                f"http://localhost:{port}",  # kubectl port-forward
                "https://evil.example.com",
                "https://mlbench.example.com:8443",  # listed without a port: 80/443 only
            ]
            return {origin: await _handshake(port, origin) for origin in origins}

        got = asyncio.run(statuses())
        assert got == {
            "https://mlbench.example.com": 101,
            "http://mlbench.example.com": 101,
            "https://tls.example.com:8443": 101,
            f"http://localhost:{port}": 101,
            "https://evil.example.com": 403,
            "https://mlbench.example.com:8443": 403,
        }
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
