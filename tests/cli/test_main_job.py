"""The CLI in subprocesses, as a user runs it: the main job, bad input, and a served master."""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.served import MLBENCH, ServedMaster

pytestmark = pytest.mark.slow


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        MLBENCH_DATA_DIR=str(tmp_path / "data"),
        MLBENCH_API_URL=f"http://127.0.0.1:{port}",
        COLUMNS="120",
        MLBENCH_DASHBOARD_PORT="0",  # no dashboard: parallel tests must not race for 5006
    )
    env.pop("MLBENCH_ADMIN_TOKEN", None)
    env.pop("MLBENCH_DATABASE_URL", None)
    return env


def _mlbench(
    *args: str, env: dict[str, str], timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLBENCH, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_main_job_runs_end_to_end_with_an_embedded_master(tmp_path: Path) -> None:
    port = free_port()
    done = _mlbench("run", "digits-mlp", "--workers", "2", env=_env(tmp_path, port))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"started an embedded master at http://127.0.0.1:{port}" in done.stderr
    table = done.stdout
    assert "succeeded" in table and "goal reached" in table and "yes" in table
    for row in (
        "time to goal",
        "final quality",
        "samples/s",
        "data",
        "forward",
        "backward",
        "communication",
        "optimizer",
        "metrics",
    ):
        assert row in table, f"result table lacks {row!r}:\n{table}"
    # The embedded master is gone with the command, and it kept the run in its database.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1)
    assert (tmp_path / "data" / "mlbench.db").exists()
    assert (tmp_path / "data" / "admin-token").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "no-such-benchmark"), "unknown benchmark 'no-such-benchmark'"),
        (("run", "digits-mlp", "--set", "lrr=0.1"), "'lrr' not a setting of 'digits-mlp'"),
        (("run", "digits-mlp", "--set", "lr"), "not of the form key=value"),
        (("run", "digits-mlp", "--name", "Bad_Name"), "name"),
        (("run", "digits-mlp", "--goal", "custom"), "needs a value"),
    ],
)
def test_bad_input_exits_2_with_one_readable_line(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    done = _mlbench(*args, env=_env(tmp_path, free_port()), timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_served_master_runs_list_show_export_delete(tmp_path: Path) -> None:
    with ServedMaster(tmp_path / "data", free_port()) as master:
        env = master.env
        done = _mlbench(
            "run", "allreduce", "-n", "2", "--goal", "light", "--name", "ar-cli",
            "--set", "max_elements=1024", "--set", "seconds_per_size=0.02", env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "embedded" not in done.stderr

        listed = _mlbench("runs", "list", env=env, timeout=30)
        assert listed.returncode == 0 and "ar-cli" in listed.stdout and "succeeded" in listed.stdout

        shown = _mlbench("runs", "show", "1", env=env, timeout=30)
        assert shown.returncode == 0
        assert "running" in shown.stdout and "goal reached" in shown.stdout

        exported = _mlbench("metrics", "export", "1", "--format", "csv", env=env, timeout=30)
        assert exported.returncode == 0, exported.stderr
        rows = list(csv.DictReader(io.StringIO(exported.stdout)))
        assert rows and set(rows[0]) == {"name", "rank", "step", "epoch", "time", "value"}
        sizes = {int(r["step"]) for r in rows if r["name"] == "allreduce/float32/latency_us"}
        assert sizes == {2**k for k in range(11)}

        assert _mlbench("runs", "delete", "1", env=env, timeout=30).returncode == 0
        gone = _mlbench("runs", "show", "1", env=env, timeout=30)
        assert gone.returncode == 2 and "404" in gone.stderr


def _start_long_run(env: dict[str, str], name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [MLBENCH, "run", "digits-mlp", "-n", "2", "--name", name, "--goal-value", "1.5",
         "--set", "epochs=10000"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_runs_stop_and_ctrl_c_stop_a_run(tmp_path: Path) -> None:
    with ServedMaster(tmp_path / "data", free_port()) as master:
        follower = _start_long_run(master.env, "stop-by-command")
        try:
            master.wait(1, {"running"})
            stopped = _mlbench("runs", "stop", "1", env=master.env, timeout=30)
            assert stopped.returncode == 0 and "stopping" in stopped.stdout
            out, err = follower.communicate(timeout=60)
        finally:
            follower.kill()
        assert follower.returncode == 3, out + err  # the follower saw the run end as stopped
        assert "stopped" in out

        interrupted = _start_long_run(master.env, "stop-by-ctrl-c")
        try:
            master.wait(2, {"running"})
            interrupted.send_signal(signal.SIGINT)
            out, err = interrupted.communicate(timeout=60)
        finally:
            interrupted.kill()
        assert "stopping run 2" in err
        assert interrupted.returncode == 3, out + err
        assert master.run(2)["state"] == "stopped"


def test_repeat_runs_a_group_and_summarises_time_to_goal(tmp_path: Path) -> None:
    env = _env(tmp_path, free_port())
    done = _mlbench("run", "digits-mlp", "-n", "2", "--repeat", "3", "--seed", "5", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.count("submitted to") == 3
    summary = done.stdout[done.stdout.index("group digits-mlp-") :]
    rows = re.findall(r"│\s+(\d+)\s+│\s+(\d+)\s+│\s+(\w+)\s+│", summary)
    assert [(seed, state) for _, seed, state in rows] == [
        ("5", "succeeded"), ("6", "succeeded"), ("7", "succeeded"),
    ]  # fmt: skip
    assert "3 of 3 runs reached it" in " ".join(summary.split())
    assert "olympic mean" in summary

    mixed = _mlbench("run", "digits-mlp", "--repeat", "2", "--detach", env=env, timeout=60)
    assert mixed.returncode == 2 and "do not mix" in mixed.stderr
