"""Every Kubernetes object we ship or embed passes ``kubernetes-validate --strict`` for
Kubernetes 1.33 and for the newest schemas installed (no cluster, no network)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlbench_core.spec import RunSpec
from tests.workflows.argo_checks import K8S_VERSIONS, ROOT, embedded_manifests, k8s_errors
from workflows import names
from workflows.config import RunTarget

RBAC_FILES = sorted((ROOT / "argo" / "rbac").glob("*.yaml"))


def test_applied_manifests_validate(run_case: tuple[RunSpec, RunTarget, dict[str, Any]]) -> None:
    applied = [(n, obj) for n, action, obj in embedded_manifests(run_case[2]) if action == "apply"]
    assert [obj["kind"] for _, obj in applied] == ["Service", "StatefulSet"]
    for _, obj in applied:
        assert k8s_errors(obj) == []


def test_deletes_name_exactly_what_the_run_created(
    run_case: tuple[RunSpec, RunTarget, dict[str, Any]],
) -> None:
    """Delete manifests are references (kubectl only reads their identity), so they are
    checked for naming the applied objects and the master's Secret."""
    spec, target, workflow = run_case
    identity = {
        (o["apiVersion"], o["kind"], o["metadata"]["name"], o["metadata"]["namespace"])
        for _, action, o in embedded_manifests(workflow)
        if action == "apply"
    }
    secret = ("v1", "Secret", names.secret_name(target.run_id, spec.name), target.cluster.namespace)
    deleted = set()
    for _, action, obj in embedded_manifests(workflow):
        if action == "delete":
            assert set(obj) == {"apiVersion", "kind", "metadata"}
            meta = obj["metadata"]
            deleted.add((obj["apiVersion"], obj["kind"], meta["name"], meta["namespace"]))
    assert deleted == identity | {secret}
    secret_ref = next(o for _, a, o in embedded_manifests(workflow) if o["kind"] == "Secret")
    assert k8s_errors(secret_ref) == []


def test_strict_validation_rejects_unknown_fields() -> None:
    workflow = yaml.safe_load((ROOT / "argo/examples/digits-mlp-workflow.yaml").read_text())
    sts = next(o for _, _, o in embedded_manifests(workflow) if o["kind"] == "StatefulSet")
    sts["spec"]["template"]["spec"]["containers"][0]["hostPorts"] = [1]
    assert k8s_errors(sts)


@pytest.mark.parametrize("path", RBAC_FILES, ids=lambda p: p.name)
def test_rbac_objects_validate(path: Path) -> None:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert docs
    for doc in docs:
        assert k8s_errors(doc) == []


def test_the_cli_agrees_on_the_rbac_files() -> None:
    """The same check as a user runs it: the kubernetes-validate command line."""
    for version in K8S_VERSIONS:
        done = subprocess.run(
            [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", "-k", version]
            + [str(path) for path in RBAC_FILES],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def _rules(path: Path, kind: str, name: str) -> list[dict[str, Any]]:
    docs = yaml.safe_load_all(path.read_text())
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)["rules"]


def _grants(rules: list[dict[str, Any]], group: str, resource: str) -> set[str]:
    return {
        verb
        for rule in rules
        if group in rule["apiGroups"] and resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_workflow_role_covers_the_steps() -> None:
    rules = _rules(ROOT / "argo/rbac/workflow.yaml", "Role", "mlbench-workflow")
    crud = {"get", "list", "watch", "create", "update", "patch", "delete"}
    assert _grants(rules, "apps", "statefulsets") >= crud
    assert _grants(rules, "", "services") >= crud
    assert _grants(rules, "", "pods") >= crud
    assert _grants(rules, "", "pods/log") == {"get"}
    assert _grants(rules, "", "secrets") == {"get", "delete"}  # never read by list
    assert _grants(rules, "argoproj.io", "workflowtaskresults") >= {"create", "patch"}


def test_master_role_covers_the_executor() -> None:
    path = ROOT / "argo/rbac/master.yaml"
    rules = _rules(path, "Role", "mlbench-master")
    assert _grants(rules, "argoproj.io", "workflows") >= {"create", "get", "list", "delete"}
    assert _grants(rules, "argoproj.io", "workflowtemplates") == {"get", "list"}
    assert _grants(rules, "", "secrets") >= {"create", "get", "patch", "delete"}
    nodes = _rules(path, "ClusterRole", "mlbench-master-nodes")
    assert _grants(nodes, "", "nodes") == {"get", "list"}
