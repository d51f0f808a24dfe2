"""Servers the bench scripts measure, each in its own process: the mlbench master (through
``hold_master.py``) and an MLflow tracking server; plus the peak memory of a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from common import ROOT
from hold_master import ADMIN_TOKEN

from tests.conftest import free_port


@dataclass
class Served:
    """A server process: where it listens and its PID."""

    url: str
    pid: int
    data_dir: Path

    def peak_rss_mib(self) -> float:
        """The process's high-water mark of resident memory (``VmHWM``), in MiB."""
        return peak_rss_mib(self.pid)

    def tree_peak_rss_mib(self) -> float:
        """The sum of the peaks of the process and its descendants (an upper bound of the
        tree's peak; MLflow's server runs uvicorn and a job consumer as children)."""
        import psutil

        pids = [self.pid, *(child.pid for child in psutil.Process(self.pid).children(True))]
        return sum(peak_rss_mib(pid) for pid in pids)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def current_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text()[-3000:]
            raise RuntimeError(f"{url}: server exited {proc.returncode}:\n{tail}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url}: not healthy after {timeout_s} s:\n{log.read_text()[-3000:]}")


@contextmanager
def _process(
    argv: list[str],
    health_url: str,
    workdir: Path,
    timeout_s: float,
    env: dict[str, str] | None = None,
) -> Iterator[int]:
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    try:
        _wait_healthy(health_url, proc, log, timeout_s)
        yield proc.pid
    finally:
        if proc.poll() is None:
            # The whole session: MLflow's server starts its workers as children.
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@contextmanager
def mlbench_master(
    database_url: str | None = None, *, port: int | None = None, data_dir: Path | None = None
) -> Iterator[Served]:
    """The mlbench master (SQLite in ``data_dir``, a temporary folder by default, unless
    ``database_url``); pass the same ``port`` and ``data_dir`` to start it again later."""
    with tempfile.TemporaryDirectory(prefix="mlbench-bench-") as tmp:
        folder = data_dir or Path(tmp)
        port = port or free_port()
        argv = [sys.executable, str(ROOT / "bench" / "hold_master.py"), "--port", str(port)]
        argv += ["--data-dir", str(folder)]
        if database_url:
            argv += ["--database-url", database_url]
        url = f"http://127.0.0.1:{port}"
        with _process(argv, f"{url}/api/v1/health", folder, 60) as pid:
            yield Served(url, pid, folder)


def new_mlbench_run(served: Served, name: str) -> tuple[int, str]:
    """Create a run; returns its id and worker token."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    spec = {"name": name, "benchmark": "digits-mlp", "workers": 1}
    response = httpx.post(f"{served.url}/api/v1/runs", json=spec, headers=headers, timeout=30)
    response.raise_for_status()
    run_id = response.json()["id"]
    token_file = served.data_dir / "tokens" / str(run_id)
    deadline = time.monotonic() + 10
    while not token_file.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run_id}: the master never launched it")
        time.sleep(0.02)
    return run_id, token_file.read_text()


def stored_points(url: str, run_id: int, token: str) -> int:
    """Points the master holds for a run (its per-series counts)."""
    response = httpx.get(
        f"{url}/api/v1/runs/{run_id}/metrics/names", headers={"Authorization": f"Bearer {token}"}
    )
    response.raise_for_status()
    return sum(entry["count"] for entry in response.json())


@contextmanager
def mlflow_server() -> Iterator[Served]:
    """An MLflow tracking server with a local SQLite store and one worker (as our master)."""
    with tempfile.TemporaryDirectory(prefix="mlflow-bench-") as tmp:
        port = free_port()
        mlflow = Path(sys.executable).with_name("mlflow")
        argv = [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--backend-store-uri", f"sqlite:///{tmp}/mlflow.db"]
        argv += ["--artifacts-destination", f"{tmp}/artifacts", "--workers", "1"]
        url = f"http://127.0.0.1:{port}"
        # A metrics store only: no job runner (it starts eight more processes on 2 cores).
        env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with _process(argv, f"{url}/health", Path(tmp), 120, env) as pid:
            yield Served(url, pid, Path(tmp))


def new_mlflow_run(served: Served, name: str) -> str:
    """Create an experiment and a run in it; returns the run id."""
    api = f"{served.url}/api/2.0/mlflow"
    response = httpx.post(f"{api}/experiments/create", json={"name": name}, timeout=30)
    response.raise_for_status()
    experiment = response.json()["experiment_id"]
    response = httpx.post(
        f"{api}/runs/create",
        json={"experiment_id": experiment, "start_time": int(time.time() * 1000)},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["run"]["info"]["run_id"]


@contextmanager
def fresh_postgres(server_url: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of ``server_url``; dropped afterwards."""
    import psycopg

    name = f"mlbench_bench_{os.getpid()}_{int(time.time())}"
    admin = psycopg.connect(server_url, autocommit=True)
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        base, _, _ = server_url.rpartition("/")
        try:
            yield f"{base}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()
