"""The machines runs can use: the cluster's nodes, or this host."""

from __future__ import annotations

from fastapi import APIRouter

from master.api.deps import ExecutorsDep, ReaderDep, SettingsDep
from master.schemas import ErrorPublic, NodePublic
from master.services import nodes

router = APIRouter(prefix="/nodes", tags=["nodes"])

_ERRORS = {code: {"model": ErrorPublic} for code in (401, 403, 502, 503)}


@router.get("", responses=_ERRORS)  # type: ignore[arg-type]
def list_nodes(
    settings: SettingsDep, executors: ExecutorsDep, _reader: ReaderDep
) -> list[NodePublic]:
    """With a cluster (argo executor configured, or MLBENCH_KUBECONFIG set): its nodes with
    their capacity and allocatable CPU (cores), memory (bytes) and GPUs (``nvidia.com/gpu``),
    ``source: "kubernetes"``; 502/503 when the cluster refuses or cannot be reached. Else this
    host, ``source: "local"``."""
    return nodes.list_nodes(settings, executors)
