"""No token ever lands in a log, an output stream or a file the master or a worker writes.

Three places are checked, each for real:

- A master served by uvicorn in this process with every logger at DEBUG (more than the master
  ever logs: ``mlbench serve`` runs uvicorn at warning without access log), the access log on,
  SQLAlchemy echoing every statement, the workers' own metrics client (with heartbeats) sending
  with a valid and with a wrong token, and every kind of refused request. The log records, the
  process's stdout/stderr, the data dir (database included) and the clients' spool must hold no
  plain token: not the admin's, not a worker's, not a wrong one a client sent. (SQL echo does
  show the stored SHA-256 of worker tokens; a hash does not authenticate, so it is no secret in
  a log; the API never shows it, see test_auth_matrix.)
- ``mlbench serve`` as a separate process running a real two-worker run: its output, the
  workers' log, the database file and everything else under the data dir. The worker token is
  read from the environment of the running worker processes, where the master put it.
- The ``mlbench`` CLI given ``--token``: whatever goes wrong, its output never repeats it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import uvicorn

from master.app import create_app
from master.settings import Settings
from mlbench_core.metrics_client import MetricsClient
from mlbench_core.wire import Manifest, RunResult
from tests.conftest import free_port
from tests.master.conftest import RecordingExecutor
from tests.security.conftest import ADMIN_TOKEN, API, bearer, secure_master
from tests.served import TOKEN as SERVED_TOKEN
from tests.served import ServedMaster

MLBENCH = str(Path(sys.executable).parent / "mlbench")
WRONG_TOKENS = (
    "wrong-token-Zq8vB2kLm0PxY7rT",
    "X" + ADMIN_TOKEN[1:],  # the admin token with its first character changed
    ADMIN_TOKEN[:-1] + "X",  # ... and with its last
)


class _Collect(logging.Handler):
    """Every record of every logger, fully formatted (arguments, exception and stack)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record) + " " + repr(record.args))


@pytest.fixture
def all_logs() -> Iterator[_Collect]:
    """Every logger at DEBUG (SQLAlchemy's included, which it holds at WARNING unless asked)
    with a collecting handler; loggers that do not propagate get the handler too."""
    handler = _Collect()
    root = logging.getLogger()
    loggers = [root] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    levels = {logger: logger.level for logger in loggers}
    quiet = [logger for logger in loggers if not logger.propagate]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    for logger in [root, *quiet]:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in [root, *quiet]:
            logger.removeHandler(handler)
        for logger, level in levels.items():
            logger.setLevel(level)


def _serve_verbosely(
    settings: Settings, executor: RecordingExecutor
) -> tuple[uvicorn.Server, threading.Thread]:
    """The master's app under uvicorn at DEBUG with the access log, logging through the root
    logger (no uvicorn log config), in a thread; started before returning."""
    app = create_app(settings, executors={"local": executor})
    executor.app = app
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=settings.port,
        log_level="debug",
        access_log=True,
        log_config=None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="verbose-master", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "master did not start"
        time.sleep(0.02)
    return server, thread


def _exercise(url: str, executor: RecordingExecutor, spool: Path) -> list[str]:
    """Every path a token travels: accepted, refused, worker client, exit. Returns the plain
    worker tokens the master handed out."""
    admin = bearer(ADMIN_TOKEN)
    with httpx.Client(base_url=url, timeout=30) as http:
        ids = []
        for name in ("logs-a", "logs-b"):
            created = http.post(
                f"{API}/runs", json={"name": name, "benchmark": "digits-mlp"}, headers=admin
            )
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        own, other = ids
        tokens = [executor.launches[run_id].token for run_id in ids]
        worker = bearer(tokens[0])
        base = f"{API}/runs/{own}"
        for path, body in (
            ("/status", {"state": "running", "rank": 0}),
            ("/heartbeat", {"rank": 0, "step": 1, "idle_s": 0.1}),
        ):
            assert http.post(base + path, json=body, headers=worker).status_code == 200
        refused = [
            (base + "/metrics", bearer(tokens[1]), 403),  # another run's worker
            (base + "/metrics", admin, 403),  # the admin on a worker route
            (f"{API}/runs", worker, 403),  # a worker on an admin route
            (base + "/stop", {}, 401),
        ] + [(base + "/stop", bearer(wrong), 401) for wrong in WRONG_TOKENS]
        for target, headers, status in refused:
            assert http.post(target, json={}, headers=headers).status_code == status
        bad_body = http.post(base + "/status", json={"state": "?"}, headers=worker)
        assert bad_body.status_code == 422
    # The workers' own client, as a training process uses it: with the right token and a
    # wrong one (refused: it warns and spools), heartbeats included.
    manifest = Manifest(
        spec={}, settings={}, seed=0, world_size=2, backend="gloo", packages={}, host={},
        devices=["cpu"],
    )  # fmt: skip
    for token in (tokens[0], WRONG_TOKENS[0]):
        client = MetricsClient(
            url, own, token, rank=0, spool_dir=spool, flush_interval_s=0.05, heartbeat_s=0.05,
            max_attempts=1, backoff_s=0.01,
        )  # fmt: skip
        for step in range(20):
            client.log("loss", 1.0 / (step + 1), step=step)
        client.manifest(manifest)
        client.result(RunResult(goal_reached=False, steps=20))
        client.flush(timeout_s=10)
        time.sleep(0.2)  # a few heartbeats
        client.close(timeout_s=10)
    executor.exit(own, 1, "workers exited with code 1")
    executor.exit(other, 0, "")
    return tokens


def _secrets_in(texts: dict[str, str], secrets: list[str]) -> list[str]:
    """Where a secret shows, whole or in part (its first or last 12 characters)."""
    return [
        f"{secret[:6]}... in {where}"
        for where, text in texts.items()
        for secret in secrets
        if any(part in text for part in (secret, secret[:12], secret[-12:]))
    ]


def _files(root: Path) -> dict[str, str]:
    """Every file under ``root`` (database included), as text."""
    return {
        str(path): path.read_bytes().decode("utf-8", "replace")
        for path in root.rglob("*")
        if path.is_file()
    }


def test_no_token_in_debug_logs_output_or_files(
    tmp_path: Path, all_logs: _Collect, capfd: pytest.CaptureFixture[str]
) -> None:
    data_dir, spool = tmp_path / "data", tmp_path / "spool"
    settings = Settings(data_dir=data_dir, admin_token=ADMIN_TOKEN, port=free_port())
    executor = RecordingExecutor()
    server, thread = _serve_verbosely(settings, executor)
    try:
        tokens = _exercise(f"http://127.0.0.1:{settings.port}", executor, spool)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    out, err = capfd.readouterr()
    logs = "\n".join(all_logs.lines)
    # The capture saw what happened: the access log, refusals, SQL, the client's warnings.
    assert f'"POST {API}/runs/1/status HTTP/1.1" 200' in logs
    assert '/stop HTTP/1.1" 401' in logs and '/metrics HTTP/1.1" 403' in logs
    assert "sqlalchemy.engine" in logs and "INSERT INTO runs" in logs
    assert "mlbench_core" in logs
    assert "master rejected POST" in logs and "heartbeat 1 not delivered" in logs
    texts = {"log records": logs, "stdout": out, "stderr": err}
    texts.update(_files(data_dir))
    texts.update(_files(spool))
    leaked = _secrets_in(texts, [ADMIN_TOKEN, *tokens, *WRONG_TOKENS])
    assert leaked == [], leaked


def _worker_token(served: ServedMaster, timeout_s: float = 60) -> str:
    """The token the master gave the run's workers, from their environment."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for child in psutil.Process(served.proc.pid).children(recursive=True):
            try:
                env = child.environ()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if env.get("MLBENCH_API_URL") == served.url and env.get("MLBENCH_TOKEN"):
                return env["MLBENCH_TOKEN"]
        time.sleep(0.1)
    raise AssertionError("no worker process with MLBENCH_TOKEN appeared")


@pytest.mark.slow
def test_a_real_run_leaves_no_token_in_any_log_or_file(tmp_path: Path) -> None:
    data_dir, log_path = tmp_path / "data", tmp_path / "serve.log"
    with ServedMaster(data_dir, free_port(), log_path=log_path) as served:
        for wrong in WRONG_TOKENS:
            refused = httpx.post(f"{served.url}{API}/runs", json={}, headers=bearer(wrong))
            assert refused.status_code == 401
        created = served.http.post(
            f"{API}/runs",
            json={"name": "logged", "benchmark": "digits-mlp", "workers": 2, "seed": 1},
        )
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        token = _worker_token(served)
        stolen = httpx.post(
            f"{served.url}{API}/runs/{run_id}/stop", headers=bearer(token), timeout=10
        )
        assert stolen.status_code == 403  # the worker token found is the real one
        run = served.wait(run_id, {"succeeded", "failed", "stopped"}, timeout_s=240)
        assert run["state"] == "succeeded", run
    texts = _files(data_dir)
    texts[str(log_path)] = log_path.read_bytes().decode("utf-8", "replace")
    workers_log = next(path for path in texts if path.endswith("workers.log"))
    assert "rank" in texts[workers_log]  # the workers did log
    leaked = _secrets_in(texts, [SERVED_TOKEN, token, *WRONG_TOKENS])
    assert leaked == [], leaked


def _cli(*args: str, url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLBENCH_")}
    env["MLBENCH_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [MLBENCH, *args, "--api-url", url],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


CLI_TOKENS = (
    "cli-wrong-token-Hk3mW9qZ",
    "-cli-token-starting-with-a-dash",
    "cli-token-with-newline\nrest-of-token",
    "cli-tökén-non-ascii",
)


@pytest.mark.slow
def test_the_cli_never_echoes_its_token(tmp_path: Path) -> None:
    """Write commands with a bad ``--token`` (wrong, dash-led, with a newline, non-ASCII)
    fail with an exit code != 0 without repeating it, the run untouched; so does a command
    against a master that is not there."""
    cli_dir = tmp_path / "cli"
    with secure_master(tmp_path / "master") as master:
        run_id = master.create()
        commands = [["runs", "stop", str(run_id)] for _ in CLI_TOKENS]
        commands[0] = ["runs", "delete", str(run_id)]
        for token, args in zip(CLI_TOKENS, commands, strict=True):
            done = _cli(*args, f"--token={token}", url=master.url, data_dir=cli_dir)
            output = done.stdout + done.stderr
            assert done.returncode != 0, output
            for part in token.splitlines():
                assert part not in output, output
        assert master.http.get(f"{API}/runs/{run_id}").json()["state"] == "starting"
    token = CLI_TOKENS[0]
    gone = _cli("runs", "stop", "1", f"--token={token}", url=master.url, data_dir=cli_dir)
    assert gone.returncode != 0
    assert token not in gone.stdout + gone.stderr
