"""GET /nodes: the cluster's nodes through the fake Kubernetes API, or this host."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil
import pytest
from fastapi.testclient import TestClient

from master.app import create_app
from master.executors.argo import ArgoExecutor
from master.executors.kube import KubeAccess
from master.services.nodes import local_gpu_count, parse_quantity
from master.settings import Settings
from tests.conftest import free_port
from tests.fakes.kube_api import FakeKubeAPI, running_kube_api
from tests.master.conftest import ADMIN_TOKEN, API, bearer

KUBE_TOKEN = "kube-token"


def node(name: str, capacity: dict[str, str], allocatable: dict[str, str], **extra: Any) -> dict:
    labels = extra.pop("labels", {})
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": extra.pop("conditions", [{"type": "Ready", "status": "True"}]),
        },
    }


GPU_NODE = node(
    "gpu-1",
    {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "2", "pods": "110"},
    {"cpu": "7910m", "memory": "31.5Gi", "nvidia.com/gpu": "2"},
    labels={
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "g5.2xlarge",
        "nvidia.com/gpu.product": "NVIDIA-A10G",
        "kubernetes.io/hostname": "gpu-1",
    },
)
CPU_NODE = node(
    "cpu-1",
    {"cpu": "4", "memory": "16374584Ki"},
    {"cpu": "3.5", "memory": "15e9"},
    labels={"kubernetes.io/arch": "arm64", "beta.kubernetes.io/instance-type": "t4g.xlarge"},
    conditions=[
        {"type": "MemoryPressure", "status": "False"},
        {"type": "Ready", "status": "False"},
    ],
)


@contextmanager
def nodes_master(settings: Settings, **update: Any) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update=update))) as client:
        yield client


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[FakeKubeAPI, Path]]:
    with running_kube_api(KUBE_TOKEN) as fake:
        fake.add(GPU_NODE)
        fake.add(CPU_NODE)
        yield fake, fake.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3500m", Decimal("3.5")),
        ("2", Decimal(2)),
        ("0.5", Decimal("0.5")),
        ("16Gi", Decimal(16 * 2**30)),
        ("16374584Ki", Decimal(16374584 * 1024)),
        ("512Mi", Decimal(512 * 2**20)),
        ("1Ti", Decimal(2**40)),
        ("1k", Decimal(1000)),
        ("129M", Decimal(129_000_000)),
        ("2G", Decimal(2_000_000_000)),
        ("15e9", Decimal(15_000_000_000)),
        ("1.5E3", Decimal(1500)),
        ("1E", Decimal(10**18)),
        ("100n", Decimal("0.0000001")),
        (None, Decimal(0)),
    ],
)
def test_kubernetes_quantities_parse(text: str | None, value: Decimal) -> None:
    assert parse_quantity(text) == value


def test_a_bad_quantity_says_so() -> None:
    with pytest.raises(ValueError, match="'12 cores' is not a Kubernetes quantity"):
        parse_quantity("12 cores")


def test_nodes_of_the_cluster_from_the_kubeconfig(
    settings: Settings, kube: tuple[FakeKubeAPI, Path]
) -> None:
    fake, kubeconfig = kube
    with nodes_master(settings, kubeconfig=kubeconfig) as client:
        response = client.get(f"{API}/nodes")
    assert response.status_code == 200, response.text
    cpu, gpu = response.json()  # sorted by name
    assert gpu == {
        "name": "gpu-1",
        "ready": True,
        "capacity": {"cpu": 8.0, "memory": 32 * 2**30, "gpu": 2},
        "allocatable": {"cpu": 7.91, "memory": int(31.5 * 2**30), "gpu": 2},
        "arch": "amd64",
        "os": "linux",
        "instance_type": "g5.2xlarge",
        "labels": {
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/os": "linux",
            "node.kubernetes.io/instance-type": "g5.2xlarge",
            "nvidia.com/gpu.product": "NVIDIA-A10G",
        },
        "source": "kubernetes",
    }
    assert cpu["ready"] is False and cpu["instance_type"] == "t4g.xlarge"
    assert cpu["capacity"] == {"cpu": 4.0, "memory": 16374584 * 1024, "gpu": 0}
    assert cpu["allocatable"] == {"cpu": 3.5, "memory": 15 * 10**9, "gpu": 0}
    assert cpu["os"] is None and cpu["arch"] == "arm64"
    assert [r.path for r in fake.calls("GET")] == ["/api/v1/nodes"]


def test_nodes_use_the_argo_executors_cluster_access(
    settings: Settings, kube: tuple[FakeKubeAPI, Path]
) -> None:
    fake, kubeconfig = kube
    executor = ArgoExecutor(
        lambda _exit: None, server="http://argo.invalid:2746", kube=KubeAccess(kubeconfig, 2)
    )
    app = create_app(settings, executors={"argo": executor})
    with TestClient(app) as client:
        names = [n["name"] for n in client.get(f"{API}/nodes").json()]
    assert names == ["cpu-1", "gpu-1"]
    assert len(fake.calls("GET", "/api/v1/nodes")) == 1


def test_without_a_cluster_the_nodes_are_this_host(settings: Settings) -> None:
    with nodes_master(settings) as client:
        response = client.get(f"{API}/nodes")
    assert response.status_code == 200
    (host,) = response.json()
    assert host["source"] == "local" and host["ready"] is True
    assert host["capacity"]["cpu"] == psutil.cpu_count(logical=True)
    assert host["capacity"]["memory"] == psutil.virtual_memory().total
    assert 0 < host["allocatable"]["memory"] <= host["capacity"]["memory"]
    assert host["capacity"]["gpu"] == local_gpu_count() >= 0
    assert host["os"] == "linux" and host["arch"] in ("amd64", "arm64")


def test_reads_need_a_token_when_reads_are_protected(
    settings: Settings, kube: tuple[FakeKubeAPI, Path]
) -> None:
    with nodes_master(settings, auth_reads=True, kubeconfig=kube[1]) as client:
        assert client.get(f"{API}/nodes").status_code == 401
        assert client.get(f"{API}/nodes", headers=bearer(ADMIN_TOKEN)).status_code == 200


def test_a_cluster_that_rejects_the_master_is_a_502(
    settings: Settings, kube: tuple[FakeKubeAPI, Path]
) -> None:
    fake, kubeconfig = kube
    fake.token = "rotated"
    with nodes_master(settings, kubeconfig=kubeconfig) as client:
        response = client.get(f"{API}/nodes")
    assert response.status_code == 502
    assert response.json() == {
        "detail": f"Kubernetes API at {fake.url} rejected the master's credentials (401): "
        "check MLBENCH_KUBECONFIG or the master pod's service account"
    }


def test_missing_rights_to_list_nodes_is_a_502_with_the_hint(
    settings: Settings, kube: tuple[FakeKubeAPI, Path]
) -> None:
    fake, kubeconfig = kube
    fake.fail("GET", "/nodes", 403)
    with nodes_master(settings, kubeconfig=kubeconfig) as client:
        detail = client.get(f"{API}/nodes").json()["detail"]
    assert detail.startswith(f"Kubernetes API at {fake.url} forbids the master to list nodes")
    assert detail.endswith("argo/rbac/master.yaml")


def test_an_unreachable_cluster_is_a_503(settings: Settings, tmp_path: Path) -> None:
    nobody = FakeKubeAPI()
    nobody.url = f"http://127.0.0.1:{free_port()}"
    kubeconfig = nobody.write_kubeconfig(tmp_path / "kubeconfig")
    with nodes_master(settings, kubeconfig=kubeconfig, argo_request_timeout_s=2) as client:
        response = client.get(f"{API}/nodes")
    assert response.status_code == 503
    assert response.json() == {
        "detail": f"Kubernetes API at {nobody.url} is unreachable: connection refused"
    }


def test_openapi_documents_the_nodes_route(settings: Settings) -> None:
    with nodes_master(settings) as client:
        schema = client.get("/openapi.json").json()
    route = schema["paths"][f"{API}/nodes"]["get"]
    assert {"502", "503"} <= set(route["responses"])
    assert "NodePublic" in schema["components"]["schemas"]
