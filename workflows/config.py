"""Where and how a run's workflow runs in the cluster (from the master's settings)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ClusterConfig:
    """Cluster-wide choices that are not part of a RunSpec."""

    namespace: str = "mlbench"
    """Namespace of the workflows, the worker StatefulSets and their Services."""
    service_account: str = "mlbench-workflow"
    """Service account of the workflow's step pods (RBAC: argo/rbac/workflow.yaml)."""
    data_pvc: str | None = "mlbench-data"
    """PersistentVolumeClaim mounted at the workers' data dir, so datasets are downloaded
    once; None gives each pod an emptyDir."""
    cluster_domain: str = "cluster.local"
    """DNS suffix of the cluster, for the fully qualified name of pod 0."""
    ready_timeout_s: int = 900
    """How long the wait-ready step waits for all worker pods to be ready."""
    stop_grace_s: int = 30
    """terminationGracePeriodSeconds of worker pods: time to flush metrics after SIGTERM."""
    ttl_after_success_s: int = 24 * 3600
    """The workflow object is deleted this long after it succeeded."""
    ttl_after_failure_s: int = 7 * 24 * 3600
    """...and this long after it failed (kept longer, for its logs)."""
    step_image: str | None = None
    """Image of the in-pod steps (wait-ready, train monitor, report); default: the run's
    worker image, which carries mlbench."""
    image_pull_policy: str = "IfNotPresent"
    node_selector: dict[str, str] = field(default_factory=dict)
    """Extra node selector for the worker pods."""


@dataclass(frozen=True)
class RunTarget:
    """One run as the cluster sees it: its id, how its pods reach the master, and where."""

    run_id: int
    api_url: str
    """Base URL of the master as the pods reach it, e.g. http://mlbench-master.mlbench:8000."""
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
