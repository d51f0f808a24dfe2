"""mlbench-worker as a real process: usage errors, a full run against a master, stop, failure."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.mlbench_core.dist_helpers import free_port
from tests.mlbench_core.fake_master import FakeMaster

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "run-token-123"
RUN_ID = 5


@pytest.fixture
def master() -> Iterator[FakeMaster]:
    with FakeMaster(token=TOKEN, run_id=RUN_ID) as server:
        yield server


def worker_env(
    tmp_path: Path,
    *,
    rank: int = 0,
    world_size: int = 1,
    port: int | None = None,
    master: FakeMaster | None = None,
    **extra: str,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLBENCH_")}
    env.update(
        PYTHONPATH=str(ROOT),
        OMP_NUM_THREADS="1",
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port or free_port()),
        MLBENCH_DATA_DIR=str(tmp_path / "data"),
    )
    if master is not None:
        env.update(MLBENCH_API_URL=master.url, MLBENCH_RUN_ID=str(RUN_ID), MLBENCH_TOKEN=TOKEN)
    env.update(extra)
    return env


def write_spec(tmp_path: Path, **fields: Any) -> Path:
    spec = {"name": "test-run", "benchmark": "digits-mlp", "workers": 1, "seed": 0}
    spec.update(fields)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def start(
    args: list[str], env: dict[str, str], process_group: int | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker.main", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        process_group=process_group,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 90) -> tuple[int, str]:
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        pytest.fail(f"worker did not finish in {timeout}s:\n{stderr}")
    return proc.returncode, stderr


# ---------------------------------------------------------------- usage errors (exit 2)


@pytest.mark.parametrize(
    ("spec_text", "expected"),
    [
        ("{not json", "invalid run spec in"),
        ('{"name": "Bad Name", "benchmark": "digits-mlp"}', "name: String should match pattern"),
        ('{"name": "ok", "benchmark": "nope"}', "unknown benchmark 'nope'"),
        ('{"name": "ok", "benchmark": "digits-mlp", "overrides": {"lr": "x"}}', "setting 'lr'"),
        ('{"name": "ok", "benchmark": "digits-mlp", "workers": 0}', "workers:"),
    ],
)
def test_bad_spec_exits_2_with_one_readable_line(
    tmp_path: Path, spec_text: str, expected: str
) -> None:
    path = tmp_path / "spec.json"
    path.write_text(spec_text)
    code, stderr = finish(start(["--spec", str(path)], worker_env(tmp_path)))
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("mlbench-worker: ")
    assert expected in lines[0]


def test_spec_from_the_environment(tmp_path: Path) -> None:
    env = worker_env(tmp_path, MLBENCH_SPEC='{"name": "ok", "benchmark": "nope"}')
    code, stderr = finish(start([], env))
    assert code == 2
    assert "invalid run spec in MLBENCH_SPEC: unknown benchmark 'nope'" in stderr


@pytest.mark.parametrize(
    ("args", "drop", "extra", "expected"),
    [
        ([], None, {}, "no run spec: pass --spec FILE or set MLBENCH_SPEC"),
        (["--spec", "/nonexistent/spec.json"], None, {}, "cannot read spec file"),
        (["--spec", "SPEC"], None, {}, "MLBENCH_API_URL, MLBENCH_RUN_ID, MLBENCH_TOKEN not set"),
        (["--spec", "SPEC", "--no-report"], "WORLD_SIZE", {}, "WORLD_SIZE is not set"),
        (["--spec", "SPEC", "--no-report"], None, {"RANK": "x"}, "RANK='x' is not an integer"),
    ],
)
def test_bad_environment_exits_2(
    tmp_path: Path, args: list[str], drop: str | None, extra: dict[str, str], expected: str
) -> None:
    spec = write_spec(tmp_path)
    args = [str(spec) if a == "SPEC" else a for a in args]
    env = worker_env(tmp_path, **extra)
    if drop:
        del env[drop]
    code, stderr = finish(start(args, env))
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert expected in stderr


# ---------------------------------------------------------------- runs against a master


def test_two_workers_train_and_report_to_the_master(master: FakeMaster, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, workers=2)
    port = free_port()
    procs = [
        start(
            ["--spec", str(spec)],
            worker_env(tmp_path, rank=r, world_size=2, port=port, master=master),
        )
        for r in range(2)
    ]
    outcomes = [finish(p) for p in procs]
    for code, stderr in outcomes:
        assert code == 0, stderr
    assert [(s["state"], s["rank"]) for s in master.statuses] == [
        ("running", 0),
        ("succeeded", 0),
    ]
    assert master.state == "succeeded"
    assert master.result is not None
    assert master.result["goal_reached"] is True
    assert master.result["final_value"] >= 0.96
    accuracy = master.stored_values("val/accuracy")
    assert accuracy and accuracy[-1] == master.result["final_value"]
    # Ordering: running first, then every metric, then the result, then succeeded.
    kinds = [e[0] for e in master.events]
    assert kinds[0] == "status" and kinds[-2:] == ["result", "status"]
    assert master.events[-1][2] == len(master.points)  # all points were in before succeeded
    assert "finished: goal_reached=True" in outcomes[0][1]
    manifest = master.manifest
    assert manifest is not None, "rank 0 sends the run's manifest"
    assert manifest["world_size"] == 2 and manifest["backend"] == "gloo"
    assert manifest["settings"]["lr"] == 0.1 and manifest["seed"] == 0
    assert len(manifest["devices"]) == 2 and "torch" in manifest["packages"]

    # A restarted container of the same run (StatefulSet) must not train again, even when the
    # master still shows the run as running.
    with master.lock:
        master.state = "running"
        before = len(master.events)
    code, stderr = finish(
        start(["--spec", str(spec)], worker_env(tmp_path, rank=0, world_size=2, master=master))
    )
    assert code == 0, stderr
    assert "already finished this run" in stderr
    assert len(master.events) == before


def test_run_already_ended_in_the_master_is_not_trained(master: FakeMaster, tmp_path: Path) -> None:
    master.state = "succeeded"
    spec = write_spec(tmp_path)
    begin = time.monotonic()
    code, stderr = finish(start(["--spec", str(spec)], worker_env(tmp_path, master=master)))
    assert code == 0, stderr
    assert "run is already succeeded in the master: nothing to do" in stderr
    assert master.events == []
    assert time.monotonic() - begin < 30


def test_linger_waits_for_sigterm_after_a_clean_end(master: FakeMaster, tmp_path: Path) -> None:
    master.state = "stopped"
    spec = write_spec(tmp_path)
    proc = start(["--spec", str(spec), "--linger"], worker_env(tmp_path, master=master))
    assert proc.stderr is not None
    seen: list[str] = []
    for line in proc.stderr:  # until it says it lingers (or exits: then the loop ends)
        seen.append(line)
        if "lingering until terminated" in line:
            break
    assert "lingering until terminated" in "".join(seen), "".join(seen)
    time.sleep(1.5)  # still there a while later
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    code, _ = finish(proc, timeout=10)
    assert code == 0


def test_failure_is_reported_with_a_one_line_reason(master: FakeMaster, tmp_path: Path) -> None:
    # World size 2 but rank 1 never comes: the rendezvous times out.
    spec = write_spec(tmp_path, workers=2)
    env = worker_env(tmp_path, rank=0, world_size=2, master=master)
    code, stderr = finish(start(["--spec", str(spec), "--dist-timeout", "2"], env))
    assert code == 1, stderr
    assert [s["state"] for s in master.statuses] == ["failed"]
    reason = master.statuses[0]["reason"]
    assert "\n" not in reason
    assert reason.split(":")[0].endswith("Error")  # exception type first
    assert master.state == "failed"
    assert "run failed:" in stderr


def test_sigterm_to_the_process_group_stops_all_ranks_with_143(
    master: FakeMaster, tmp_path: Path
) -> None:
    """The master stops a run by sending SIGTERM to the workers' process group."""
    # An unreachable goal and many epochs: it trains until stopped.
    spec = write_spec(
        tmp_path, workers=2, goal={"kind": "custom", "value": 1.01}, overrides={"epochs": 10_000}
    )
    port = free_port()
    first = start(
        ["--spec", str(spec)],
        worker_env(tmp_path, rank=0, world_size=2, port=port, master=master),
        process_group=0,  # a new group, like the local executor's launcher
    )
    second = start(
        ["--spec", str(spec)],
        worker_env(tmp_path, rank=1, world_size=2, port=port, master=master),
        process_group=first.pid,
    )
    procs = [first, second]
    try:
        # Wait until it trains and its first points reached the master.
        master.wait_for(
            lambda: (
                bool(master.stored_values("train/loss")) or any(p.poll() is not None for p in procs)
            ),
            timeout=60,
        )
        assert all(p.poll() is None for p in procs), [finish(p) for p in procs]
        n_points = len(master.points)
        os.killpg(first.pid, signal.SIGTERM)
        outcomes = [finish(p, timeout=30) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for code, stderr in outcomes:
        assert code == 143, stderr
        assert "Traceback" not in stderr
        assert "terminated by SIGTERM" in stderr
    assert [s["state"] for s in master.statuses] == ["running"]  # a stop is no failure
    assert master.result is None
    # What was still queued at the stop was flushed, not lost: the client's own count of
    # delivered points matches the master's, and nothing had to be spooled.
    stats = re.search(r"sent_points=(\d+).*spooled_batches=(\d+)", outcomes[0][1])
    assert stats, outcomes[0][1]
    assert int(stats.group(1)) == len(master.points) >= n_points
    assert int(stats.group(2)) == 0
