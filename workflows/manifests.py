"""The Kubernetes objects of one run's workers, as plain dicts with concrete values.

The run workflow embeds them in Argo ``resource`` templates. They are rendered here, in
Python, rather than with Argo ``{{...}}`` parameters inside the manifest text, so that every
value is checked before submission and the exact objects can be validated against the
Kubernetes schemas in tests (DESIGN.md, "Kubernetes path").
"""

from __future__ import annotations

from typing import Any

import yaml

from mlbench_core.spec import RunSpec
from workflows import names
from workflows.config import RunTarget

Manifest = dict[str, Any]

WORKER_CONTAINER = "worker"
WORKER_COMMAND = ["mlbench-worker", "--linger"]
DATA_DIR = "/data"
SHM_DIR = "/dev/shm"
GPU_RESOURCE = "nvidia.com/gpu"
ISTIO_INJECT = "sidecar.istio.io/inject"
"""Istio's sidecar would hold the pods' network and keep finished step pods alive: off."""
RUN_AS = 1000
"""UID/GID of the worker and step processes (non-root; matches the worker image's user)."""


def cpu_quantity(cores: float) -> str:
    """CPU cores as a millicore quantity (``1.5`` -> ``1500m``): exact, and never a float."""
    return f"{max(1, round(cores * 1000))}m"


def pod_security_context() -> Manifest:
    """Pod-level hardening shared by worker and step pods (restricted Pod Security Standard)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> Manifest:
    """Container-level hardening shared by worker and step containers."""
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        # Not read-only: torch, the tokenizers and Python write caches under $HOME and /tmp,
        # and the set of paths differs by task; the volume mounts cover the large writes.
        "readOnlyRootFilesystem": False,
    }


def worker_env(spec: RunSpec, target: RunTarget) -> list[Manifest]:
    """Environment of every worker pod. RANK is deliberately absent: all pods share one
    template, so each worker derives its rank from the ordinal in ``MLBENCH_POD_NAME``."""
    cluster = target.cluster
    base = names.run_object_name(target.run_id, spec.name)
    plain = {
        "WORLD_SIZE": str(spec.workers),
        "LOCAL_RANK": "0",
        "MASTER_ADDR": names.pod_fqdn(base, 0, cluster.namespace, cluster.cluster_domain),
        "MASTER_PORT": str(names.DIST_PORT),
        "MLBENCH_API_URL": target.api_url,
        "MLBENCH_RUN_ID": str(target.run_id),
        "MLBENCH_SPEC": spec.model_dump_json(),
        "MLBENCH_DATA_DIR": DATA_DIR,
        "MLBENCH_LINGER": "1",
        "OMP_NUM_THREADS": str(max(1, int(spec.resources.cpu))),
        # Pod 0's DNS record appears only once it is scheduled; it may take as long as the
        # whole wait-ready phase, so the workers wait for it as long as that.
        "MLBENCH_DNS_TIMEOUT_S": str(cluster.ready_timeout_s),
    }
    return [
        {"name": "MLBENCH_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        *({"name": key, "value": value} for key, value in plain.items()),
        token_env(target.run_id, spec.name),
    ]


def token_env(run_id: int, run_name: str) -> Manifest:
    """``MLBENCH_TOKEN`` read from the run's Secret, so the token never appears in a spec."""
    return {
        "name": "MLBENCH_TOKEN",
        "valueFrom": {
            "secretKeyRef": {"name": names.secret_name(run_id, run_name), "key": names.TOKEN_KEY}
        },
    }


def worker_resources(spec: RunSpec) -> Manifest:
    """Requests equal limits (Guaranteed QoS): benchmark timings must not depend on how busy
    the node is, and a worker must not be the first one evicted under memory pressure."""
    amounts: dict[str, str] = {
        "cpu": cpu_quantity(spec.resources.cpu),
        "memory": spec.resources.memory,
    }
    if spec.resources.gpu > 0:
        amounts[GPU_RESOURCE] = str(spec.resources.gpu)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _volumes(spec: RunSpec, target: RunTarget) -> list[Manifest]:
    # torch.distributed and DataLoader workers share tensors through /dev/shm, which a
    # container runtime caps at 64Mi; a memory-backed emptyDir (counted against the memory
    # limit) lifts that cap.
    shm = {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": spec.resources.memory}}
    pvc = target.cluster.data_pvc
    data: Manifest = (
        {"name": "data", "persistentVolumeClaim": {"claimName": pvc}}
        if pvc
        else {"name": "data", "emptyDir": {}}
    )
    return [shm, data]


def pod_labels(run_id: int, run_name: str) -> dict[str, str]:
    """Labels of the worker pods: the run's labels plus Istio's opt-out."""
    return {**names.run_labels(run_id, run_name), ISTIO_INJECT: "false"}


def statefulset(spec: RunSpec, target: RunTarget) -> Manifest:
    """The workers: one pod per rank, started together (``Parallel``), each with a stable
    DNS name behind the headless Service, so rank 0 is reachable as ``MASTER_ADDR``."""
    cluster = target.cluster
    base = names.run_object_name(target.run_id, spec.name)
    container: Manifest = {
        "name": WORKER_CONTAINER,
        "image": spec.image,
        "imagePullPolicy": cluster.image_pull_policy,
        "command": list(WORKER_COMMAND),
        "env": worker_env(spec, target),
        "ports": [{"name": "dist", "containerPort": names.DIST_PORT, "protocol": "TCP"}],
        "resources": worker_resources(spec),
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": "dshm", "mountPath": SHM_DIR},
            {"name": "data", "mountPath": DATA_DIR},
        ],
    }
    pod_spec: Manifest = {
        # Workers talk to the master over HTTP with their run token, never to the API server.
        "automountServiceAccountToken": False,
        # One variable per Service in the namespace would otherwise be injected into each pod.
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": cluster.stop_grace_s,
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": _volumes(spec, target),
    }
    if cluster.node_selector:
        pod_spec["nodeSelector"] = dict(cluster.node_selector)
    if spec.resources.gpu > 0:
        pod_spec["tolerations"] = [
            {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": base,
            "namespace": cluster.namespace,
            "labels": names.run_labels(target.run_id, spec.name),
        },
        "spec": {
            "serviceName": base,
            "replicas": spec.workers,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": names.selector_labels(target.run_id)},
            "template": {
                "metadata": {
                    "labels": pod_labels(target.run_id, spec.name),
                    "annotations": {ISTIO_INJECT: "false"},
                },
                "spec": pod_spec,
            },
        },
    }


def headless_service(spec: RunSpec, target: RunTarget) -> Manifest:
    """Gives each worker pod a DNS record. ``publishNotReadyAddresses`` publishes the records
    before the pods are Ready, since rank 0 must be reachable while all ranks rendezvous."""
    base = names.run_object_name(target.run_id, spec.name)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": base,
            "namespace": target.cluster.namespace,
            "labels": names.run_labels(target.run_id, spec.name),
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": names.selector_labels(target.run_id),
            "ports": [
                {"name": "dist", "port": names.DIST_PORT, "targetPort": "dist", "protocol": "TCP"}
            ],
        },
    }


def object_ref(api_version: str, kind: str, name: str, namespace: str) -> Manifest:
    """The least manifest that names one object, for ``resource`` templates that delete it."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
    }


def teardown_refs(spec: RunSpec, target: RunTarget) -> dict[str, Manifest]:
    """What the exit handler deletes, by step name: the workers, their Service, the token."""
    base = names.run_object_name(target.run_id, spec.name)
    namespace = target.cluster.namespace
    return {
        "delete-statefulset": object_ref("apps/v1", "StatefulSet", base, namespace),
        "delete-service": object_ref("v1", "Service", base, namespace),
        "delete-secret": object_ref(
            "v1", "Secret", names.secret_name(target.run_id, spec.name), namespace
        ),
    }


def to_yaml(manifest: Manifest) -> str:
    """YAML text of one manifest, in the order it was built (readable in the Argo UI)."""
    return yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False, width=100)
