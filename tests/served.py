"""``mlbench serve`` as a separate process: what a user runs, and what a test can SIGKILL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.integration.conftest import wait_for_state

MLBENCH = str(Path(sys.executable).parent / "mlbench")
TOKEN = "served-admin-token"


class ServedMaster:
    """``mlbench serve`` as a separate process, so the test can SIGKILL it like a crash."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        env: dict[str, str] | None = None,
        dashboard_port: int = 0,
        log_path: Path | None = None,
    ) -> None:
        """``dashboard_port`` 0: no dashboard; ``log_path``: the server's output goes there."""
        self.env = dict(os.environ, MLBENCH_DATA_DIR=str(data_dir), MLBENCH_ADMIN_TOKEN=TOKEN)
        self.env.pop("MLBENCH_DATABASE_URL", None)
        self.env.update(env or {})
        self.env["MLBENCH_API_URL"] = f"http://127.0.0.1:{port}"
        self.env["MLBENCH_DASHBOARD_PORT"] = str(dashboard_port)
        self.url = f"http://127.0.0.1:{port}"
        self.dashboard_url = f"http://127.0.0.1:{dashboard_port}" if dashboard_port else None
        command = [MLBENCH, "serve", "--port", str(port)]
        if dashboard_port:
            command += ["--dashboard-port", str(dashboard_port)]
        self._log = log_path.open("ab") if log_path else None
        output = self._log or subprocess.DEVNULL
        self.proc = subprocess.Popen(command, env=self.env, stdout=output, stderr=output)
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )
        end = time.monotonic() + 60
        while time.monotonic() < end and self.proc.poll() is None:
            try:
                if self.http.get("/api/v1/health").status_code == 200 and self._dashboard_up():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.close()
        raise AssertionError("mlbench serve did not come up")

    def _dashboard_up(self) -> bool:
        if self.dashboard_url is None:
            return True
        return httpx.get(f"{self.dashboard_url}/runs", timeout=10).status_code == 200

    def run(self, run_id: int) -> dict[str, Any]:
        return self.http.get(f"/api/v1/runs/{run_id}").json()

    def wait(self, run_id: int, states: set[str], timeout_s: float = 120) -> dict[str, Any]:
        return wait_for_state(self.http, run_id, states, timeout_s)

    def __enter__(self) -> ServedMaster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def crash(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)

    def close(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        if self._log is not None:
            self._log.close()
