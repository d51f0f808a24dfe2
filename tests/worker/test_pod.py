"""Worker pod mode (worker/pod.py): rank from the StatefulSet pod name, the bounded wait for
MASTER_ADDR, and the "never trains twice, then lingers" rule, with real worker processes whose
pod environment is simulated by the variables a StatefulSet sets."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mlbench_core.dist_helpers import free_port
from tests.mlbench_core.fake_master import FakeMaster
from worker.invocation import UsageError
from worker.pod import (
    DEFAULT_DNS_TIMEOUT_S,
    MasterAddrUnresolved,
    PodIdentity,
    dns_timeout_from,
    parse_pod_name,
    pod_mode,
    service_hint,
    wait_for_master_addr,
)

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "pod-token"
RUN_ID = 7
STS = "mlbench-7-demo"


# ---------------------------------------------------------------- pure functions


@pytest.mark.parametrize(
    ("name", "statefulset", "ordinal"),
    [
        ("mlbench-7-demo-0", "mlbench-7-demo", 0),
        ("mlbench-7-demo-12", "mlbench-7-demo", 12),
        ("a-3", "a", 3),
    ],
)
def test_parse_pod_name(name: str, statefulset: str, ordinal: int) -> None:
    assert parse_pod_name(name) == PodIdentity(name, statefulset, ordinal)


@pytest.mark.parametrize(
    "name", ["worker", "mlbench-demo-", "-0", "Mlbench-0", "demo-01", "demo_x-1", "a" * 62 + "-1"]
)
def test_bad_pod_names_are_usage_errors(name: str) -> None:
    with pytest.raises(UsageError, match="is not a StatefulSet pod name"):
        parse_pod_name(name)


def test_pod_mode_sets_rank_and_local_rank() -> None:
    assert pod_mode({"WORLD_SIZE": "2"}) is None
    mode = pod_mode({"MLBENCH_POD_NAME": f"{STS}-1", "WORLD_SIZE": "2"})
    assert mode is not None
    assert mode.environ["RANK"] == "1" and mode.environ["LOCAL_RANK"] == "0"
    assert mode.identity.statefulset == STS
    assert mode.dns_timeout_s == DEFAULT_DNS_TIMEOUT_S
    # An explicit RANK that agrees is fine; LOCAL_RANK is kept when set.
    mode = pod_mode(
        {"MLBENCH_POD_NAME": f"{STS}-1", "WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "0"}
    )
    assert mode is not None and mode.environ["RANK"] == "1"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"RANK": "0"}, "RANK=0 disagrees with the ordinal 1"),
        ({"RANK": "x"}, "RANK=x disagrees"),
        ({"WORLD_SIZE": "1"}, "ordinal 1 but WORLD_SIZE=1"),
        ({"MLBENCH_DNS_TIMEOUT_S": "soon"}, "MLBENCH_DNS_TIMEOUT_S='soon' is not a number"),
        ({"MLBENCH_DNS_TIMEOUT_S": "0"}, "must be in (0, 86400]"),
    ],
)
def test_pod_mode_usage_errors(env: dict[str, str], expected: str) -> None:
    environ = {"MLBENCH_POD_NAME": f"{STS}-1", "WORLD_SIZE": "2", **env}
    with pytest.raises(UsageError) as info:
        pod_mode(environ)
    assert expected in str(info.value)


def test_dns_timeout_default_and_value() -> None:
    assert dns_timeout_from({}) == 300
    assert dns_timeout_from({"MLBENCH_DNS_TIMEOUT_S": "2.5"}) == 2.5


def test_service_hint() -> None:
    ident = parse_pod_name(f"{STS}-1")
    fqdn = f"{STS}-0.{STS}.mlbench.svc.cluster.local"
    assert service_hint(fqdn, ident) == f"mlbench/{STS}"
    assert service_hint("localhost", ident) == STS


def test_wait_for_master_addr_retries_until_it_resolves() -> None:
    calls: list[str] = []

    def flaky(host: str, port: int) -> object:
        calls.append(host)
        if len(calls) < 3:
            raise socket.gaierror(-2, "Name or service not known")
        return [("ok",)]

    waited = wait_for_master_addr("pod-0.svc", 29500, 10, parse_pod_name(f"{STS}-1"), resolve=flaky)
    assert len(calls) == 3
    assert waited < 5


def test_wait_for_master_addr_is_bounded_also_when_the_resolver_hangs() -> None:
    release = threading.Event()

    def hangs(host: str, port: int) -> object:
        release.wait(30)
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    begin = time.monotonic()
    try:
        with pytest.raises(MasterAddrUnresolved) as info:
            wait_for_master_addr(
                "x.demo.ns.svc.cluster.local", 1, 0.5, parse_pod_name("x-0"), resolve=hangs
            )
    finally:
        release.set()
    assert time.monotonic() - begin < 5
    assert str(info.value) == (
        "MASTER_ADDR x.demo.ns.svc.cluster.local did not resolve within 0.5 s: is the headless "
        "Service ns/demo there and publishNotReadyAddresses set?"
    )


# ---------------------------------------------------------------- real worker processes


@pytest.fixture
def master() -> Iterator[FakeMaster]:
    with FakeMaster(token=TOKEN, run_id=RUN_ID) as server:
        yield server


def pod_env(
    tmp_path: Path, pod: str, master: FakeMaster, port: int, **extra: str
) -> dict[str, str]:
    """What the StatefulSet's pod spec sets (RANK deliberately absent)."""
    spec = {
        "name": "demo",
        "benchmark": "digits-mlp",
        "workers": 2,
        "seed": 0,
        "executor": "argo",
        "overrides": {"epochs": 3},
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLBENCH_")}
    for name in ("RANK", "LOCAL_RANK"):
        env.pop(name, None)
    env.update(
        PYTHONPATH=str(ROOT),
        OMP_NUM_THREADS="1",
        MLBENCH_POD_NAME=pod,
        WORLD_SIZE="2",
        MASTER_ADDR="localhost",
        MASTER_PORT=str(port),
        MLBENCH_API_URL=master.url,
        MLBENCH_RUN_ID=str(RUN_ID),
        MLBENCH_TOKEN=TOKEN,
        MLBENCH_SPEC=json.dumps(spec),
        MLBENCH_DATA_DIR=str(tmp_path / pod),  # one volume per pod: no shared done markers
        MLBENCH_LINGER="1",
    )
    env.update(extra)
    return env


class Worker:
    """A worker process whose stderr is collected by a thread (so lines can be awaited)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker.main"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, text: str, timeout: float = 90) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.stderr:
                return
            if self.proc.poll() is not None:
                self._reader.join(5)
                if text in self.stderr:
                    return
                break
            time.sleep(0.05)
        pytest.fail(f"no {text!r} in the worker's stderr:\n{self.stderr}")

    def finish(self, timeout: float = 30) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"worker did not exit in {timeout}s:\n{self.stderr}")
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def test_two_pods_train_with_ranks_from_their_names_then_linger(
    master: FakeMaster, tmp_path: Path
) -> None:
    port = free_port()
    pods = [Worker(pod_env(tmp_path, f"{STS}-{i}", master, port)) for i in range(2)]
    try:
        for pod in pods:
            pod.wait_for_line("lingering until terminated")
        assert master.state == "succeeded"
        assert [(s["state"], s["rank"]) for s in master.statuses] == [
            ("running", 0),
            ("succeeded", 0),
        ]
        assert master.result is not None and master.manifest is not None
        assert master.manifest["world_size"] == 2 and len(master.manifest["devices"]) == 2
        assert {p["rank"] for p in master.points} == {0}  # only rank 0 logs metrics
        assert "rank 0 of 2" in pods[0].stderr and "rank 1 of 2" in pods[1].stderr
        time.sleep(1.5)  # still there after the result: a StatefulSet would restart an exit
        assert all(p.proc.poll() is None for p in pods)
        for pod in pods:
            pod.proc.send_signal(signal.SIGTERM)
        for pod in pods:
            assert pod.finish() == 0, pod.stderr
    finally:
        for pod in pods:
            pod.kill()


def test_restarted_pod_of_an_ended_run_lingers_without_waiting_for_dns(
    master: FakeMaster, tmp_path: Path
) -> None:
    master.state = "succeeded"
    # MASTER_ADDR never resolves: the state check comes first, so this pod never waits for it.
    env = pod_env(
        tmp_path,
        f"{STS}-1",
        master,
        free_port(),
        MASTER_ADDR="no-such-host.invalid",
        MLBENCH_DNS_TIMEOUT_S="120",
    )
    pod = Worker(env)
    try:
        begin = time.monotonic()
        pod.wait_for_line("lingering until terminated", timeout=30)
        assert time.monotonic() - begin < 30
        assert "run is already succeeded in the master: nothing to do" in pod.stderr
        assert "MASTER_ADDR" not in pod.stderr
        time.sleep(1.0)
        assert pod.proc.poll() is None
        assert master.points == [] and master.statuses == []
        pod.proc.send_signal(signal.SIGTERM)
        assert pod.finish() == 0
    finally:
        pod.kill()


def test_master_addr_that_never_resolves_fails_the_rank_with_one_clear_line(
    master: FakeMaster, tmp_path: Path
) -> None:
    env = pod_env(
        tmp_path,
        f"{STS}-1",
        master,
        free_port(),
        MASTER_ADDR="no-such-host.invalid",
        MLBENCH_DNS_TIMEOUT_S="2",
    )
    pod = Worker(env)
    try:
        begin = time.monotonic()
        assert pod.finish(timeout=30) == 1, pod.stderr
        assert time.monotonic() - begin < 20
    finally:
        pod.kill()
    line = (
        f"MASTER_ADDR no-such-host.invalid did not resolve within 2 s: is the headless Service "
        f"{STS} there and publishNotReadyAddresses set?"
    )
    assert line in pod.stderr
    assert "Traceback" not in pod.stderr
    assert master.statuses == [{"state": "failed", "rank": 1, "reason": line}]
    assert master.state == "failed"


@pytest.mark.parametrize(
    ("pod", "extra", "expected"),
    [
        ("worker", {}, "MLBENCH_POD_NAME='worker' is not a StatefulSet pod name"),
        (f"{STS}-2", {}, "ordinal 2 but WORLD_SIZE=2"),
        (f"{STS}-1", {"RANK": "0"}, "RANK=0 disagrees with the ordinal 1"),
    ],
)
def test_bad_pod_identity_exits_2(
    master: FakeMaster, tmp_path: Path, pod: str, extra: dict[str, str], expected: str
) -> None:
    worker = Worker(pod_env(tmp_path, pod, master, free_port(), **extra))
    try:
        assert worker.finish() == 2
    finally:
        worker.kill()
    lines = worker.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlbench-worker: "), worker.stderr
    assert expected in lines[0]
    assert master.statuses == []
