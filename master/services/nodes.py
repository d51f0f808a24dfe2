"""The machines runs can use: the cluster's nodes when this master reaches a cluster (argo
executor configured, or MLBENCH_KUBECONFIG set), else this host."""

from __future__ import annotations

import functools
import math
import platform
import socket
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from master.executors.base import Executor
from master.executors.kube import KubeAccess
from master.schemas import NodePublic, NodeResources
from master.settings import Settings

GPU_RESOURCE = "nvidia.com/gpu"
ARCH_LABEL = "kubernetes.io/arch"
OS_LABEL = "kubernetes.io/os"
INSTANCE_TYPE_LABELS = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")
LABELS_OF_INTEREST = (
    ARCH_LABEL,
    OS_LABEL,
    *INSTANCE_TYPE_LABELS,
    "topology.kubernetes.io/zone",
    "nvidia.com/gpu.product",
)
_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def parse_quantity(text: str | int | float | None) -> Decimal:
    """A Kubernetes quantity (``3500m``, ``16Gi``, ``1k``, ``1.5e3``, ``2E``) as a number."""
    from kubernetes.utils import parse_quantity as kube_parse

    if text is None or text == "":
        return Decimal(0)
    try:
        return Decimal(kube_parse(text))
    except (ValueError, TypeError, InvalidOperation) as exc:
        raise ValueError(f"{text!r} is not a Kubernetes quantity") from exc


def _resources(values: Mapping[str, Any] | None) -> NodeResources:
    values = values or {}
    return NodeResources(
        cpu=float(parse_quantity(values.get("cpu"))),
        memory=math.ceil(parse_quantity(values.get("memory"))),
        gpu=int(parse_quantity(values.get(GPU_RESOURCE))),
    )


def node_from_kubernetes(node: Any) -> NodePublic:
    """One ``V1Node`` as a ``NodePublic``."""
    labels = dict(node.metadata.labels or {})
    status = node.status
    conditions = (status.conditions if status else None) or []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    instance_type = next((labels[k] for k in INSTANCE_TYPE_LABELS if k in labels), None)
    return NodePublic(
        name=node.metadata.name,
        ready=ready,
        capacity=_resources(status.capacity if status else None),
        allocatable=_resources(status.allocatable if status else None),
        arch=labels.get(ARCH_LABEL),
        os=labels.get(OS_LABEL),
        instance_type=instance_type,
        labels={k: labels[k] for k in LABELS_OF_INTEREST if k in labels},
        source="kubernetes",
    )


def kubernetes_nodes(kube: KubeAccess) -> list[NodePublic]:
    """The cluster's nodes, by name; errors as one-line ``ServiceError``s (502/503)."""
    timeout = kube.timeout_s
    found = kube.call("list nodes", None, lambda core: core.list_node(_request_timeout=timeout))
    return sorted((node_from_kubernetes(n) for n in found.items or []), key=lambda n: n.name)


@functools.cache
def local_gpu_count() -> int:
    """CUDA devices of this host, counted once (the count does not change while we run).

    ``torch.cuda.device_count`` asks the driver (or NVML) without creating a CUDA context,
    so the master does not hold GPU memory; torch is only imported here, on first use.
    """
    try:
        import torch

        return int(torch.cuda.device_count()) if torch.backends.cuda.is_built() else 0
    except Exception:  # no torch, no driver: no usable GPU
        return 0


def local_node() -> NodePublic:
    import psutil

    cpu = float(psutil.cpu_count(logical=True) or 1)
    memory = psutil.virtual_memory()
    gpu = local_gpu_count()
    machine = platform.machine().lower()
    return NodePublic(
        name=socket.gethostname(),
        ready=True,
        capacity=NodeResources(cpu=cpu, memory=memory.total, gpu=gpu),
        allocatable=NodeResources(cpu=cpu, memory=memory.available, gpu=gpu),
        arch=_ARCH.get(machine, machine) or None,
        os=platform.system().lower() or None,
        source="local",
    )


def cluster_access(settings: Settings, executors: Mapping[str, Executor]) -> KubeAccess | None:
    """The argo executor's cluster access, else one from MLBENCH_KUBECONFIG, else None."""
    kube = getattr(executors.get("argo"), "kube", None)
    if isinstance(kube, KubeAccess):
        return kube
    if settings.kubeconfig is not None:
        return _kube_access(settings.kubeconfig, settings.argo_request_timeout_s)
    return None


@functools.lru_cache(maxsize=8)
def _kube_access(kubeconfig: Path, timeout_s: float) -> KubeAccess:
    """One client per configuration, not one per request."""
    return KubeAccess(kubeconfig, timeout_s)


def list_nodes(settings: Settings, executors: Mapping[str, Executor]) -> list[NodePublic]:
    kube = cluster_access(settings, executors)
    return [local_node()] if kube is None else kubernetes_nodes(kube)
