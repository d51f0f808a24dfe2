"""The dashboard next to the master: ``mlbench run``'s embedded master and ``mlbench serve``."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.served import MLBENCH, ServedMaster


def _env(tmp_path: Path, port: int, dashboard_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        MLBENCH_DATA_DIR=str(tmp_path / "data"),
        MLBENCH_API_URL=f"http://127.0.0.1:{port}",
        MLBENCH_DASHBOARD_PORT=str(dashboard_port),
        COLUMNS="120",
    )
    env.pop("MLBENCH_ADMIN_TOKEN", None)
    env.pop("MLBENCH_DATABASE_URL", None)
    return env


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_main_job_serves_the_dashboard_while_it_runs(tmp_path: Path) -> None:
    port, dashboard_port = free_port(), free_port()
    proc = subprocess.Popen(
        [MLBENCH, "run", "digits-mlp", "--workers", "2"],
        env=_env(tmp_path, port, dashboard_port),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{dashboard_port}/runs"
    try:
        assert proc.stderr is not None
        seen: list[str] = []
        for line in proc.stderr:  # the URL comes right after the embedded master's line
            seen.append(line)
            if line.startswith("dashboard:"):
                break
        assert seen and seen[-1].strip() == f"dashboard: {url}", "".join(seen)
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200 and "bokeh" in page.text
        stdout, rest = proc.communicate(timeout=240)
        stderr = "".join(seen) + rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 0, stdout + stderr
    assert stderr.count("dashboard:") == 1
    assert "succeeded" in stdout
    assert not _listening(dashboard_port), "the dashboard ends with the command"


@pytest.mark.slow
def test_run_without_a_free_dashboard_port_still_runs(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        done = subprocess.run(
            [MLBENCH, "run", "allreduce", "-n", "2", "--goal", "light", "--set", "max_iters=2",
             "--set", "min_iters=1", "--set", "max_elements=1024"],
            env=_env(tmp_path, port, taken),
            capture_output=True,
            text=True,
            timeout=240,
        )  # fmt: skip
    assert "dashboard:" not in done.stderr
    assert done.returncode == 0, done.stdout + done.stderr


def test_serve_starts_the_dashboard_and_port_zero_disables_it(tmp_path: Path) -> None:
    dashboard_port = free_port()
    with ServedMaster(tmp_path / "data", free_port(), dashboard_port=dashboard_port) as master:
        page = httpx.get(f"http://127.0.0.1:{dashboard_port}/runs", timeout=30)
        assert page.status_code == 200 and "bokeh" in page.text
        assert master.http.get("/api/v1/health").status_code == 200
    end = time.monotonic() + 10
    while _listening(dashboard_port) and time.monotonic() < end:
        time.sleep(0.1)
    assert not _listening(dashboard_port)

    with ServedMaster(tmp_path / "data2", free_port()) as master:  # dashboard_port=0
        assert master.dashboard_url is None
        assert master.http.get("/api/v1/health").status_code == 200
