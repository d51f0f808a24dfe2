"""The CLI's Kubernetes side, in subprocesses against a served master whose Argo Server and
Kubernetes API are the fakes (real HTTP): ``run --executor`` and ``nodes``."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.fakes.argo_server import FakeArgoServer, running_argo_server
from tests.fakes.kube_api import FakeKubeAPI, running_kube_api
from tests.served import MLBENCH, ServedMaster

ARGO_TOKEN = "argo-token"
ROOT = Path(__file__).resolve().parents[2]
NS = "mlbench"
NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "gpu-1", "labels": {"kubernetes.io/arch": "amd64"}},
    "status": {
        "capacity": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "2"},
        "allocatable": {"cpu": "7910m", "memory": "31Gi", "nvidia.com/gpu": "2"},
        "conditions": [{"type": "Ready", "status": "True"}],
    },
}


@dataclass
class Setup:
    master: ServedMaster
    argo: FakeArgoServer
    kube: FakeKubeAPI


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with running_argo_server(ARGO_TOKEN) as argo, running_kube_api() as kube:
        kube.add(NODE)
        env = {
            "MLBENCH_ARGO_SERVER": argo.url,
            "MLBENCH_ARGO_TOKEN": ARGO_TOKEN,
            "MLBENCH_KUBECONFIG": str(kube.write_kubeconfig(tmp_path / "kubeconfig")),
            "MLBENCH_ARGO_POLL_S": "0.1",
            "MLBENCH_DEFAULT_EXECUTOR": "argo",
            # The checkout's ``workflows`` package, also where an older editable install of
            # mlbench does not map it yet.
            "PYTHONPATH": str(ROOT),
        }
        with ServedMaster(tmp_path / "data", free_port(), env=env) as master:
            yield Setup(master, argo, kube)


def _mlbench(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MLBENCH, *args], env={**env, "COLUMNS": "200"}, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def test_run_executor_option_and_the_masters_default(setup: Setup) -> None:
    env = setup.master.env
    explicit = _mlbench("run", "--executor", "argo", "--name", "on-k8s", "--detach", env=env)
    assert explicit.returncode == 0, explicit.stderr
    default = _mlbench("run", "--name", "by-default", "--detach", env=env)
    assert default.returncode == 0, default.stderr
    assert [setup.master.run(i)["spec"]["executor"] for i in (1, 2)] == ["argo", "argo"]
    posted = [r.body["workflow"]["metadata"]["name"] for r in setup.argo.calls("POST")]
    assert posted == ["mlbench-1-on-k8s", "mlbench-2-by-default"]

    bad = _mlbench("run", "--executor", "slurm", "--detach", env=env)
    assert bad.returncode == 2 and "slurm" in bad.stderr


def test_run_follows_an_argo_run_to_its_end(setup: Setup) -> None:
    follower = subprocess.Popen(
        [MLBENCH, "run", "--executor", "argo", "--name", "followed"],
        env=setup.master.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        end = time.monotonic() + 30
        while setup.argo.workflow(NS, "mlbench-1-followed") is None:
            assert time.monotonic() < end, "the workflow was never submitted"
            time.sleep(0.05)
        setup.argo.set_phase(NS, "mlbench-1-followed", "Failed", "child 'wait-ready' failed")
        out, err = follower.communicate(timeout=60)
    finally:
        follower.kill()
    assert follower.returncode == 1, out + err
    assert "failed" in out
    assert "child 'wait-ready' failed" in setup.master.run(1)["reason"]


def test_a_refused_submission_exits_1_with_one_line(setup: Setup) -> None:
    setup.argo.token = "rotated"
    done = _mlbench("run", "--name", "refused", "--detach", env=setup.master.env)
    assert done.returncode == 1
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert "master answered 502: run 1 failed to start: Argo Server at" in line
    assert "rejected the master's token (401)" in line
    assert setup.master.run(1)["state"] == "failed"  # kept, with the reason


def test_nodes_table_json_and_a_refusing_cluster(setup: Setup) -> None:
    env = setup.master.env
    table = _mlbench("nodes", env=env)
    assert table.returncode == 0, table.stderr
    assert "nodes (kubernetes)" in table.stdout
    row = next(line for line in table.stdout.splitlines() if "gpu-1" in line)
    assert "7.91 / 8" in row and "31.0Gi / 32.0Gi" in row and "2 / 2" in row and "amd64" in row

    listed = _mlbench("nodes", "--json", env=env)
    assert listed.returncode == 0
    (node,) = json.loads(listed.stdout)
    assert node["capacity"] == {"cpu": 8.0, "memory": 32 * 2**30, "gpu": 2}
    assert node["source"] == "kubernetes"

    setup.kube.fail("GET", "/nodes", 401)
    refused = _mlbench("nodes", env=env)
    assert refused.returncode == 1
    assert "master answered 502: Kubernetes API at" in refused.stderr


def test_nodes_of_a_local_master_is_this_host(tmp_path: Path) -> None:
    with ServedMaster(tmp_path / "data", free_port()) as master:
        listed = _mlbench("nodes", "--json", env=master.env)
    assert listed.returncode == 0, listed.stderr
    (node,) = json.loads(listed.stdout)
    assert node["source"] == "local" and node["capacity"]["cpu"] >= 1
