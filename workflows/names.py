"""Names and labels of the Kubernetes objects of one run, shared by the workflow builder, the
in-pod steps and the master's Argo executor."""

from __future__ import annotations

# The StatefulSet controller labels each pod with ``controller-revision-hash: <name>-<hash>``
# (11 characters more than the name) and label values stop at 63 characters, so a longer
# StatefulSet name makes every pod creation fail (kubernetes/kubernetes#64023).
OBJECT_NAME_MAX = 52
DIST_PORT = 29500
"""Port of the torch.distributed rendezvous on pod 0."""
TOKEN_KEY = "token"
"""Key of the worker token inside the run's Secret."""
ADMIN_SECRET = "mlbench-admin"
"""Secret (key ``token``) holding the master's admin token; WorkflowTemplates submit with it."""
RUN_ID_LABEL = "mlbench.io/run-id"
RUN_NAME_LABEL = "mlbench.io/run-name"
COMPONENT = "mlbench-worker"


def run_object_name(run_id: int, run_name: str) -> str:
    """Workflow, StatefulSet and Service name of a run: ``mlbench-<id>-<name>``, at most
    ``OBJECT_NAME_MAX`` characters. The id keeps it unique when the name is cut."""
    if run_id < 0:
        raise ValueError(f"run id {run_id} must be >= 0")
    name = f"mlbench-{run_id}-{run_name}"[:OBJECT_NAME_MAX]
    return name.rstrip("-")


def secret_name(run_id: int, run_name: str) -> str:
    """The Secret holding the run's worker token (created by the master before submission)."""
    return f"{run_object_name(run_id, run_name)}-token"


def selector_labels(run_id: int) -> dict[str, str]:
    """Labels that select exactly the worker pods of one run."""
    return {"app.kubernetes.io/name": COMPONENT, RUN_ID_LABEL: str(run_id)}


def run_labels(run_id: int, run_name: str) -> dict[str, str]:
    """Labels on every object of a run."""
    return {
        **selector_labels(run_id),
        "app.kubernetes.io/part-of": "mlbench",
        "app.kubernetes.io/managed-by": "mlbench-workflow",
        RUN_NAME_LABEL: run_name,
    }


def pod_fqdn(statefulset: str, index: int, namespace: str, cluster_domain: str) -> str:
    """DNS name of one StatefulSet pod behind the headless Service of the same name."""
    return f"{statefulset}-{index}.{statefulset}.{namespace}.svc.{cluster_domain}"
