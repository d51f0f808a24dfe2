"""The worker StatefulSet and headless Service, checked field by field."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from mlbench_core.spec import RunSpec
from tests.workflows.conftest import API, CUSTOM_CLUSTER, gpu_spec
from workflows import manifests, names
from workflows.config import ClusterConfig, RunTarget

CPU_SPEC = RunSpec(name="cpu-run", benchmark="digits-mlp", workers=3, executor="argo")
TARGET = RunTarget(12, API)


def _pod(sts: dict[str, Any]) -> dict[str, Any]:
    return sts["spec"]["template"]["spec"]


def _env(sts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in _pod(sts)["containers"][0]["env"]}


def test_statefulset_identity_and_replicas() -> None:
    sts = manifests.statefulset(CPU_SPEC, TARGET)
    base = names.run_object_name(12, "cpu-run")
    assert sts["metadata"]["name"] == base == sts["spec"]["serviceName"]
    assert sts["metadata"]["namespace"] == "mlbench"
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert sts["spec"]["selector"] == {"matchLabels": names.selector_labels(12)}
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert names.selector_labels(12).items() <= labels.items()
    assert labels["sidecar.istio.io/inject"] == "false"
    annotations = sts["spec"]["template"]["metadata"]["annotations"]
    assert annotations["sidecar.istio.io/inject"] == "false"


def test_worker_environment() -> None:
    env = _env(manifests.statefulset(CPU_SPEC, TARGET))
    base = names.run_object_name(12, "cpu-run")
    assert "RANK" not in env  # derived from the pod name's ordinal by the worker
    assert env["MLBENCH_POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["MASTER_ADDR"]["value"] == f"{base}-0.{base}.mlbench.svc.cluster.local"
    assert env["MASTER_ADDR"]["value"] == names.pod_fqdn(base, 0, "mlbench", "cluster.local")
    assert env["MASTER_PORT"]["value"] == "29500"
    assert env["WORLD_SIZE"]["value"] == "3" and env["LOCAL_RANK"]["value"] == "0"
    assert env["MLBENCH_RUN_ID"]["value"] == "12"
    assert env["MLBENCH_API_URL"]["value"] == API
    assert env["MLBENCH_DATA_DIR"]["value"] == "/data"
    assert env["MLBENCH_LINGER"]["value"] == "1"
    assert env["OMP_NUM_THREADS"]["value"] == "1"
    assert int(env["MLBENCH_DNS_TIMEOUT_S"]["value"]) > 0
    assert RunSpec.model_validate_json(env["MLBENCH_SPEC"]["value"]) == CPU_SPEC
    assert env["MLBENCH_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": names.secret_name(12, "cpu-run"),
        "key": "token",
    }
    assert all("value" in e or "valueFrom" in e for e in env.values())


def test_worker_container_and_pod_security() -> None:
    sts = manifests.statefulset(CPU_SPEC, TARGET)
    pod = _pod(sts)
    (container,) = pod["containers"]
    assert container["name"] == "worker"
    assert container["command"] == ["mlbench-worker", "--linger"]
    assert container["image"] == CPU_SPEC.image
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False
    assert pod["terminationGracePeriodSeconds"] == 30
    assert "hostNetwork" not in pod and "hostPID" not in pod
    assert all("hostPort" not in port for port in container["ports"])
    assert container["ports"] == [{"name": "dist", "containerPort": 29500, "protocol": "TCP"}]
    assert "nodeSelector" not in pod and "tolerations" not in pod


def test_cpu_only_resources_are_guaranteed_and_gpu_free() -> None:
    spec = RunSpec(name="c", benchmark="digits-mlp", resources={"cpu": 0.25, "memory": "512Mi"})
    resources = _pod(manifests.statefulset(spec, TARGET))["containers"][0]["resources"]
    assert resources["requests"] == resources["limits"] == {"cpu": "250m", "memory": "512Mi"}


def test_gpus_only_when_asked() -> None:
    sts = manifests.statefulset(gpu_spec(), TARGET)
    pod = _pod(sts)
    resources = pod["containers"][0]["resources"]
    assert resources["limits"] == {"cpu": "3500m", "memory": "24Gi", "nvidia.com/gpu": "2"}
    assert resources["requests"] == resources["limits"]
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert _env(sts)["OMP_NUM_THREADS"]["value"] == "3"


@pytest.mark.parametrize(("cores", "quantity"), [(1.0, "1000m"), (1.5, "1500m"), (0.0001, "1m")])
def test_cpu_quantity(cores: float, quantity: str) -> None:
    assert manifests.cpu_quantity(cores) == quantity


def test_shared_memory_is_memory_backed_and_sized() -> None:
    spec = RunSpec(name="s", benchmark="digits-mlp", resources={"memory": "6Gi"})
    pod = _pod(manifests.statefulset(spec, TARGET))
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "6Gi"}
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts == {"/dev/shm": "dshm", "/data": "data"}


def test_dataset_volume_is_the_pvc_or_an_empty_dir() -> None:
    with_pvc = _pod(manifests.statefulset(CPU_SPEC, TARGET))["volumes"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "mlbench-data"}} in with_pvc
    without = _pod(manifests.statefulset(CPU_SPEC, RunTarget(12, API, CUSTOM_CLUSTER)))["volumes"]
    assert {"name": "data", "emptyDir": {}} in without


def test_cluster_config_reaches_the_pods() -> None:
    sts = manifests.statefulset(CPU_SPEC, RunTarget(12, API, CUSTOM_CLUSTER))
    pod = _pod(sts)
    base = names.run_object_name(12, "cpu-run")
    assert sts["metadata"]["namespace"] == "bench-ns"
    assert pod["nodeSelector"] == {"pool": "training"}
    assert pod["terminationGracePeriodSeconds"] == 45
    assert pod["containers"][0]["imagePullPolicy"] == "Always"
    assert _env(sts)["MASTER_ADDR"]["value"] == f"{base}-0.{base}.bench-ns.svc.corp.example"


def test_headless_service() -> None:
    svc = manifests.headless_service(CPU_SPEC, TARGET)
    assert svc["metadata"]["name"] == names.run_object_name(12, "cpu-run")
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"] == names.selector_labels(12)
    assert svc["spec"]["ports"] == [
        {"name": "dist", "port": 29500, "targetPort": "dist", "protocol": "TCP"}
    ]


def test_manifests_are_concrete_and_round_trip_through_yaml() -> None:
    for build in (manifests.statefulset, manifests.headless_service):
        obj = build(gpu_spec(), RunTarget(3, API, ClusterConfig()))
        text = manifests.to_yaml(obj)
        assert "{{" not in text
        assert yaml.safe_load(text) == obj
