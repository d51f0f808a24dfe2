"""The Helm chart helm/mlbench, rendered by a real helm: lint, Kubernetes schemas, least-privilege
RBAC, pod security, secrets, volumes, and values the schema must refuse."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from bokeh_app.common.settings import DashboardSettings
from master.settings import Settings
from tests.helm.conftest import CHART, ROOT, Helm
from workflows.names import ADMIN_SECRET, TOKEN_KEY

Render = Callable[..., list[dict[str, Any]]]
K8S_VERSIONS = ("1.33.0", kubernetes_validate.latest_version())
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet"}

VALUE_SETS: dict[str, tuple[dict[str, Any], str]] = {
    "defaults": ({}, "mlbench"),
    "external-db": (
        {"postgresql": {"enabled": False}, "externalDatabase": {"existingSecret": "my-db"}},
        "mlbench",
    ),
    "gpu-workers": (
        {
            "workers": {
                "cudaImage": {"repository": "registry.example/mlbench/worker-cuda", "tag": "0.1.0"},
                "resources": {"cpu": 8, "memory": "32Gi", "gpu": 2},
            }
        },
        "mlbench",
    ),
    "ingress": (
        {
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "host": "mlbench.example.com",
                "tls": [{"secretName": "mlbench-tls", "hosts": ["mlbench.example.com"]}],
                "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600"},
            },
            "dashboard": {"allowOrigins": ["lb.example.com:8080"]},
        },
        "mlbench",
    ),
    "custom-namespace": ({"argo": {"namespace": "research-runs"}}, "research"),
    "argo-off": ({"argo": {"enabled": False}, "master": {"defaultExecutor": "local"}}, "mlbench"),
    "everything": (
        {
            "imagePullSecrets": [{"name": "regcred"}],
            "commonLabels": {"team": "ml"},
            "master": {
                "image": {"digest": "sha256:" + "a" * 64},
                "nodeSelector": {"pool": "system"},
                "tolerations": [{"key": "dedicated", "operator": "Exists"}],
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {"matchExpressions": [{"key": "pool", "operator": "Exists"}]}
                            ]
                        }
                    }
                },
                "publicUrl": "https://mlbench.example.com",
                "authReads": True,
                "extraEnv": [{"name": "MLBENCH_ARGO_POLL_S", "value": "5"}],
            },
            "dashboard": {"replicas": 2, "adminAccess": False, "nodeSelector": {"pool": "web"}},
            "postgresql": {
                "persistence": {"storageClass": "fast-ssd", "size": "50Gi"},
                "nodeSelector": {"pool": "db"},
            },
            "admin": {"existingSecret": "my-admin", "existingSecretKey": "admin-token"},
            "argo": {
                "token": {"existingSecret": "argo-token"},
                "caSecret": {"name": "argo-ca"},
                "server": "https://argo.example.com:2746",
            },
            "datasets": {"existingClaim": "shared-datasets"},
            "rbac": {"readNodes": False},
            "networkPolicy": {
                "enabled": True,
                "ingressFrom": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
                        }
                    }
                ],
            },
            "ingress": {"enabled": True, "host": "mlbench.example.com", "exposeApi": False},
        },
        "mlbench",
    ),
}


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "Pod":
        return doc["spec"]
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def container(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in containers(pod_spec(doc)) if c["name"] == name)


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


def secret_values(docs: list[dict[str, Any]]) -> dict[str, str]:
    """Every value of every rendered Secret, decoded, by "<secret>/<key>"."""
    values = {}
    for secret in by_kind(docs, "Secret"):
        for key, encoded in (secret.get("data") or {}).items():
            values[f"{secret['metadata']['name']}/{key}"] = base64.b64decode(encoded).decode()
        for key, plain in (secret.get("stringData") or {}).items():
            values[f"{secret['metadata']['name']}/{key}"] = plain
    return values


@pytest.fixture(params=sorted(VALUE_SETS))
def value_set(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any], str]:
    values, namespace = VALUE_SETS[request.param]
    return request.param, values, namespace


# -- lint and schemas --------------------------------------------------------------------------


def test_lint_strict_with_every_value_set(helm: Helm) -> None:
    for name, (values, namespace) in VALUE_SETS.items():
        try:
            helm.lint(values, namespace)
        except AssertionError as exc:
            raise AssertionError(f"value set {name!r}: {exc}") from None


def test_every_manifest_passes_kubernetes_validate_strict(
    render: Render, value_set: tuple[str, dict[str, Any], str]
) -> None:
    name, values, namespace = value_set
    errors = []
    for doc in render(values, namespace):
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                errors.append(f"{doc['kind']}/{doc['metadata']['name']} on {version}: {exc}")
    assert errors == [], f"value set {name!r}"


def test_every_object_is_namespaced_and_labelled(
    render: Render, value_set: tuple[str, dict[str, Any], str]
) -> None:
    _, values, namespace = value_set
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    workflow_ns = values.get("argo", {}).get("namespace") or namespace
    for doc in render(values, namespace):
        meta = doc["metadata"]
        where = f"{doc['kind']}/{meta['name']}"
        if doc["kind"] in cluster_scoped:
            assert "namespace" not in meta, where
        else:
            assert meta["namespace"] in (namespace, workflow_ns), where
        assert meta["labels"]["app.kubernetes.io/instance"] == "mlbench", where
        assert meta["labels"]["app.kubernetes.io/part-of"] == "mlbench", where
        assert len(meta["name"]) <= 63, where


def test_values_schema_is_draft_07_and_closed() -> None:
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    for component in ("master", "dashboard", "postgresql", "argo", "workers", "ingress"):
        assert schema["properties"][component]["additionalProperties"] is False, component
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(values)


# -- RBAC --------------------------------------------------------------------------------------


def _rules(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {k: sorted(rule.get(k, [])) for k in ("apiGroups", "resources", "verbs")}
        for rule in doc["rules"]
    ]


def _reference_rules(filename: str, kind: str) -> list[dict[str, Any]]:
    docs = list(yaml.safe_load_all((ROOT / "argo" / "rbac" / filename).read_text()))
    roles = [d for d in docs if d and d["kind"] == kind]
    assert len(roles) == 1
    return _rules(roles[0])


def test_rbac_is_least_privilege_and_matches_argo_rbac(render: Render) -> None:
    docs = render({}, "mlbench")
    roles = {d["metadata"]["name"]: d for d in by_kind(docs, "Role")}
    assert set(roles) == {"mlbench-master", "mlbench-workflow"}
    assert _rules(roles["mlbench-master"]) == _reference_rules("master.yaml", "Role")
    assert _rules(roles["mlbench-workflow"]) == _reference_rules("workflow.yaml", "Role")
    assert _rules(roles["mlbench-master"]) == [
        {
            "apiGroups": ["argoproj.io"],
            "resources": ["workflows"],
            "verbs": sorted(["get", "list", "watch", "create", "update", "patch", "delete"]),
        },
        {
            "apiGroups": ["argoproj.io"],
            "resources": ["workflowtemplates"],
            "verbs": ["get", "list"],
        },
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "verbs": sorted(["create", "get", "patch", "update", "delete"]),
        },
    ]
    workflow_secrets = [
        r for r in _rules(roles["mlbench-workflow"]) if r["resources"] == ["secrets"]
    ]
    assert workflow_secrets == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["delete", "get"]}
    ]

    # The only cluster-wide permission: get/list nodes, bound to the master alone.
    (cluster_role,) = by_kind(docs, "ClusterRole")
    assert _rules(cluster_role) == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}
    ]
    (cluster_binding,) = by_kind(docs, "ClusterRoleBinding")
    assert cluster_binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": cluster_role["metadata"]["name"],
    }
    assert cluster_binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "mlbench-master", "namespace": "mlbench"}
    ]
    bindings = {d["metadata"]["name"]: d for d in by_kind(docs, "RoleBinding")}
    assert bindings["mlbench-master"]["subjects"] == cluster_binding["subjects"]
    assert bindings["mlbench-master"]["roleRef"]["name"] == "mlbench-master"
    assert bindings["mlbench-workflow"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "mlbench-workflow", "namespace": "mlbench"}
    ]
    assert bindings["mlbench-workflow"]["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "mlbench-workflow",
    }
    sas = {d["metadata"]["name"] for d in by_kind(docs, "ServiceAccount")}
    assert sas == {"mlbench-master", "mlbench-workflow"}


def test_no_wildcards_and_no_other_cluster_rules_in_any_value_set(
    render: Render, value_set: tuple[str, dict[str, Any], str]
) -> None:
    name, values, namespace = value_set
    docs = render(values, namespace)
    for doc in by_kind(docs, "Role") + by_kind(docs, "ClusterRole"):
        for rule in doc["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(field, []), f"{name}: {doc['metadata']['name']}"
            assert "resourceNames" not in rule and "nonResourceURLs" not in rule
    for doc in by_kind(docs, "ClusterRole"):
        assert _rules(doc) == [
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}
        ]
    assert not [
        d
        for d in docs
        if d["kind"] == "ClusterRoleBinding"
        and d["roleRef"]["kind"] == "ClusterRole"
        and d["roleRef"]["name"] in ("cluster-admin", "admin", "edit", "view")
    ]


def test_rbac_follows_the_workflow_namespace(render: Render) -> None:
    docs = render({"argo": {"namespace": "research-runs"}}, "research")
    for kind in ("Role", "RoleBinding"):
        assert {d["metadata"]["namespace"] for d in by_kind(docs, kind)} == {"research-runs"}
    master_binding = one(docs, "RoleBinding", "mlbench-master")
    assert master_binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "mlbench-master", "namespace": "research"}
    ]
    assert (
        one(docs, "ServiceAccount", "mlbench-workflow")["metadata"]["namespace"] == "research-runs"
    )
    assert (
        one(docs, "PersistentVolumeClaim", "mlbench-data")["metadata"]["namespace"]
        == "research-runs"
    )
    # The launchers read the admin token in the workflow namespace, the master in its own.
    admin = [d for d in by_kind(docs, "Secret") if d["metadata"]["name"] == ADMIN_SECRET]
    assert sorted(d["metadata"]["namespace"] for d in admin) == ["research", "research-runs"]
    assert admin[0]["data"] == admin[1]["data"]
    env = env_of(container(one(docs, "Deployment", "mlbench-master"), "master"))
    assert env["MLBENCH_ARGO_NAMESPACE"]["value"] == "research-runs"
    assert env["MLBENCH_ARGO_API_URL"]["value"] == (
        "http://mlbench-master.research.svc.cluster.local:8000"
    )


def test_argo_off_needs_no_rbac_and_no_token(render: Render) -> None:
    docs = render({"argo": {"enabled": False}, "master": {"defaultExecutor": "local"}})
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    assert "PersistentVolumeClaim" not in kinds
    master = one(docs, "Deployment", "mlbench-master")
    assert pod_spec(master)["automountServiceAccountToken"] is False
    env = env_of(container(master, "master"))
    assert not [n for n in env if n.startswith("MLBENCH_ARGO_")]
    assert env["MLBENCH_DEFAULT_EXECUTOR"]["value"] == "local"
    assert {d["metadata"]["name"] for d in by_kind(docs, "ServiceAccount")} == {"mlbench-master"}


def test_rbac_create_false_and_no_node_reader(render: Render) -> None:
    docs = render({"rbac": {"create": False}})
    assert not {d["kind"] for d in docs} & {"Role", "RoleBinding", "ClusterRole"}
    docs = render({"rbac": {"readNodes": False}})
    assert not by_kind(docs, "ClusterRole") and not by_kind(docs, "ClusterRoleBinding")
    assert len(by_kind(docs, "Role")) == 2


# -- pods --------------------------------------------------------------------------------------


def test_every_pod_is_non_root_unprivileged_and_bounded(
    render: Render, value_set: tuple[str, dict[str, Any], str]
) -> None:
    name, values, namespace = value_set
    workloads = [d for d in render(values, namespace) if d["kind"] in WORKLOAD_KINDS]
    assert workloads
    for doc in workloads:
        spec = pod_spec(doc)
        where = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True, where
        assert pod_sc.get("runAsUser", 1) != 0, where
        assert pod_sc.get("seccompProfile") == {"type": "RuntimeDefault"}, where
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(flag), where
        # Service links would put MLBENCH_DASHBOARD_PORT=tcp://... (from the Service
        # mlbench-dashboard) into the env, where the dashboard reads its port.
        assert spec.get("enableServiceLinks") is False, where
        assert not [v for v in spec.get("volumes", []) if "hostPath" in v], where
        for c in containers(spec):
            sc = c.get("securityContext", {})
            at = f"{where} container {c['name']}"
            assert sc.get("allowPrivilegeEscalation") is False, at
            assert sc.get("privileged") is not True, at
            assert sc.get("runAsNonRoot", True) is True, at
            assert sc.get("readOnlyRootFilesystem") is True, at
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], at
            assert not sc.get("capabilities", {}).get("add"), at
            assert not [p for p in c.get("ports", []) if "hostPort" in p], at
            for bound in ("requests", "limits"):
                assert set(c.get("resources", {}).get(bound, {})) >= {"cpu", "memory"}, at


def test_probes_on_master_dashboard_and_postgresql(render: Render) -> None:
    docs = render({})
    master = container(one(docs, "Deployment", "mlbench-master"), "master")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert master[probe]["httpGet"] == {"path": "/api/v1/health", "port": "http"}
    assert master["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    dashboard = container(one(docs, "Deployment", "mlbench-dashboard"), "dashboard")
    for probe in ("livenessProbe", "readinessProbe"):
        assert dashboard[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    postgres = container(one(docs, "StatefulSet", "mlbench-postgresql"), "postgresql")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        command = postgres[probe]["exec"]["command"]
        assert command[0] == "pg_isready" and "mlbench" in command


def test_health_routes_the_probes_use_exist(tmp_path: Path) -> None:
    """The chart's probe paths are routes of the master and the dashboard."""
    from fastapi.testclient import TestClient

    from master.app import create_app

    app = create_app(Settings(data_dir=tmp_path, admin_token="t" * 32))
    with TestClient(app) as client:
        assert client.get("/api/v1/health").status_code == 200
    server_source = (ROOT / "bokeh_app" / "server.py").read_text()
    assert '(r"/healthz", _HealthHandler)' in server_source


def test_master_runs_migrations_before_it_serves(render: Render) -> None:
    master = one(render({}), "Deployment", "mlbench-master")
    spec = pod_spec(master)
    (init,) = spec["initContainers"]
    assert init["command"][:3] == ["mlbench", "db", "upgrade"]
    assert init["image"] == container(master, "master")["image"] == "mlbench/master:0.1.0"
    assert (
        env_of(init)["MLBENCH_DATABASE_URL"]
        == env_of(container(master, "master"))["MLBENCH_DATABASE_URL"]
    )
    assert container(master, "master")["command"] == [
        "mlbench",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--dashboard-port",
        "0",
    ]
    assert master["spec"]["strategy"] == {"type": "Recreate"}
    mounts = {m["mountPath"] for m in container(master, "master")["volumeMounts"]}
    assert mounts == {"/data", "/tmp"}
    assert env_of(container(master, "master"))["MLBENCH_DATA_DIR"]["value"] == "/data"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes["data"] and "emptyDir" in volumes["tmp"]


def test_images_default_to_the_app_version_and_take_digests(render: Render) -> None:
    docs = render({})
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["appVersion"] == "0.1.0"
    images = {
        c["image"] for d in docs if d["kind"] in WORKLOAD_KINDS for c in containers(pod_spec(d))
    }
    assert images == {
        "mlbench/master:0.1.0",
        "mlbench/dashboard:0.1.0",
        "docker.io/library/postgres:17.6-bookworm",
    }
    env = env_of(container(one(docs, "Deployment", "mlbench-master"), "master"))
    assert env["MLBENCH_WORKER_IMAGE"]["value"] == "mlbench/worker:0.1.0"
    assert env["MLBENCH_WORKER_CUDA_IMAGE"]["value"] == "mlbench/worker-cuda:0.1.0"
    digest = "sha256:" + "b" * 64
    docs = render({"master": {"image": {"digest": digest}}, "dashboard": {"image": {"tag": "x1"}}})
    assert container(one(docs, "Deployment", "mlbench-master"), "master")["image"] == (
        f"mlbench/master@{digest}"
    )
    assert container(one(docs, "Deployment", "mlbench-dashboard"), "dashboard")["image"] == (
        "mlbench/dashboard:x1"
    )


def test_gpu_worker_defaults_reach_the_master(render: Render) -> None:
    values, namespace = VALUE_SETS["gpu-workers"]
    env = env_of(
        container(one(render(values, namespace), "Deployment", "mlbench-master"), "master")
    )
    assert env["MLBENCH_WORKER_GPU"]["value"] == "2"
    assert env["MLBENCH_WORKER_CPU"]["value"] == "8"
    assert env["MLBENCH_WORKER_MEMORY"]["value"] == "32Gi"
    assert env["MLBENCH_WORKER_CUDA_IMAGE"]["value"] == "registry.example/mlbench/worker-cuda:0.1.0"


def test_placement_values_reach_each_component(render: Render) -> None:
    values, namespace = VALUE_SETS["everything"]
    docs = render(values, namespace)
    master = pod_spec(one(docs, "Deployment", "mlbench-master"))
    assert master["nodeSelector"] == {"pool": "system"}
    assert master["tolerations"] == values["master"]["tolerations"]
    assert master["affinity"] == values["master"]["affinity"]
    assert master["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod_spec(one(docs, "Deployment", "mlbench-dashboard"))["nodeSelector"] == {"pool": "web"}
    assert pod_spec(one(docs, "StatefulSet", "mlbench-postgresql"))["nodeSelector"] == {
        "pool": "db"
    }
    assert one(docs, "Service", "mlbench-dashboard")["spec"]["sessionAffinity"] == "ClientIP"


# -- master and dashboard settings -------------------------------------------------------------


def _settings_env(c: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Put a container's env into this process (secret refs get stand-in values)."""
    for key in [k for k in os.environ if k.startswith("MLBENCH_")]:
        monkeypatch.delenv(key)
    for name, entry in env_of(c).items():
        monkeypatch.setenv(name, entry.get("value", f"from-secret-{name.lower()}"))


def test_master_env_is_what_the_master_settings_read(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render({})
    _settings_env(container(one(docs, "Deployment", "mlbench-master"), "master"), monkeypatch)
    settings = Settings()
    assert settings.argo_server == "https://argo-server.argo.svc:2746"
    assert settings.default_executor.value == "argo"
    assert str(settings.argo_token_file) == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert settings.argo_verify_tls is True
    cluster = settings.cluster_config()
    assert cluster.namespace == "mlbench"
    assert cluster.service_account == "mlbench-workflow"
    assert cluster.data_pvc == "mlbench-data"
    one(docs, "PersistentVolumeClaim", cluster.data_pvc)
    one(docs, "ServiceAccount", cluster.service_account)
    assert settings.resolved_argo_api_url == "http://mlbench-master.mlbench.svc.cluster.local:8000"
    service = one(docs, "Service", "mlbench-master")
    assert service["spec"]["ports"][0]["port"] == 8000
    assert settings.worker_image == "mlbench/worker:0.1.0"
    assert settings.worker_cuda_image == "mlbench/worker-cuda:0.1.0"
    # Settings ignore unknown variables: every MLBENCH_* the chart sets must be one it reads.
    master_env = env_of(container(one(docs, "Deployment", "mlbench-master"), "master"))
    unread = [
        name
        for name in master_env
        if name.startswith("MLBENCH_") and name[8:].lower() not in Settings.model_fields
    ]
    assert unread == []


def test_dashboard_env_is_what_the_dashboard_settings_read(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    values, namespace = VALUE_SETS["ingress"]
    docs = render(values, namespace)
    dashboard = container(one(docs, "Deployment", "mlbench-dashboard"), "dashboard")
    assert dashboard["command"] == ["python", "-m", "bokeh_app.server"]
    _settings_env(dashboard, monkeypatch)
    settings = DashboardSettings()
    assert settings.resolved_api_url == "http://mlbench-master:8000"
    assert settings.dashboard_host == "0.0.0.0" and settings.dashboard_port == 5006
    assert settings.allowed_origins == ["mlbench.example.com", "lb.example.com:8080"]
    assert settings.token() == "from-secret-mlbench_admin_token"
    env = env_of(dashboard)
    assert env["MLBENCH_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": ADMIN_SECRET,
        "key": TOKEN_KEY,
    }
    # Read-only dashboard: no token at all.
    docs = render({"dashboard": {"adminAccess": False}})
    env = env_of(container(one(docs, "Deployment", "mlbench-dashboard"), "dashboard"))
    assert "MLBENCH_ADMIN_TOKEN" not in env and "MLBENCH_DASHBOARD_ALLOW_ORIGINS" not in env


def test_argo_token_and_ca_from_existing_secrets(render: Render) -> None:
    values, namespace = VALUE_SETS["everything"]
    master = one(render(values, namespace), "Deployment", "mlbench-master")
    env = env_of(container(master, "master"))
    assert env["MLBENCH_ARGO_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "argo-token",
        "key": "token",
    }
    assert "MLBENCH_ARGO_TOKEN_FILE" not in env
    assert env["MLBENCH_ARGO_CA_FILE"]["value"] == "/etc/mlbench/argo-ca/ca.crt"
    assert env["MLBENCH_ARGO_DATA_PVC"]["value"] == "shared-datasets"
    assert {"name": "argo-ca", "mountPath": "/etc/mlbench/argo-ca", "readOnly": True} in container(
        master, "master"
    )["volumeMounts"]
    assert env["MLBENCH_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "my-admin",
        "key": "admin-token",
    }


# -- secrets -----------------------------------------------------------------------------------


def test_values_yaml_has_no_secret_defaults() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["admin"]["token"] == ""
    assert values["postgresql"]["auth"]["password"] == ""

    def secret_leaves(tree: Any, path: str = "") -> Iterator[tuple[str, Any]]:
        if isinstance(tree, dict):
            for key, value in tree.items():
                if key.lower() in ("password", "token") and not isinstance(value, dict):
                    yield f"{path}{key}", value
                yield from secret_leaves(value, f"{path}{key}.")

    assert dict(secret_leaves(values)) == {"admin.token": "", "postgresql.auth.password": ""}


def test_generated_secrets_are_random_and_named_for_the_launchers(
    render: Render, helm: Helm
) -> None:
    first = secret_values(render({}))
    second = secret_values(helm.render({}))  # uncached: a second install
    token = first[f"{ADMIN_SECRET}/{TOKEN_KEY}"]
    password = first["mlbench-postgresql/password"]
    assert re.fullmatch(r"[A-Za-z0-9]{48}", token)
    assert re.fullmatch(r"[A-Za-z0-9]{32}", password)
    assert token != second[f"{ADMIN_SECRET}/{TOKEN_KEY}"]
    assert password != second["mlbench-postgresql/password"]
    assert first["mlbench-postgresql/database-url"] == (
        f"postgresql://mlbench:{password}@mlbench-postgresql.mlbench.svc.cluster.local:5432/mlbench"
    )
    # The launcher WorkflowTemplates read exactly this Secret and key.
    launcher = (ROOT / "argo" / "workflowtemplates" / "digits-mlp.yaml").read_text()
    assert f"name: {ADMIN_SECRET}\n" in launcher and f"key: {TOKEN_KEY}\n" in launcher


def test_given_secrets_are_used_and_escaped(render: Render) -> None:
    docs = render(
        {
            "admin": {"token": "my-admin-token-0123456789"},
            "postgresql": {"auth": {"password": "p@ss w/rd:+%"}},
        }
    )
    values = secret_values(docs)
    assert values[f"{ADMIN_SECRET}/token"] == "my-admin-token-0123456789"
    assert values["mlbench-postgresql/password"] == "p@ss w/rd:+%"
    from sqlalchemy.engine import make_url

    url = make_url(values["mlbench-postgresql/database-url"])
    assert url.password == "p@ss w/rd:+%" and url.host.startswith("mlbench-postgresql.")
    pg_secret = one(docs, "Secret", "mlbench-postgresql")
    assert pg_secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_no_plaintext_secret_outside_secrets(
    render: Render, value_set: tuple[str, dict[str, Any], str]
) -> None:
    name, values, namespace = value_set
    docs = render(values, namespace)
    secrets = [v for v in secret_values(docs).values() if len(v) >= 8]
    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        text = yaml.safe_dump(doc)
        for secret in secrets:
            assert secret not in text, f"{name}: a secret value appears in {doc['kind']}"
    for cm in by_kind(docs, "ConfigMap"):
        assert not re.search(r"(?i)password|token|database.url", yaml.safe_dump(cm.get("data")))
    sensitive = re.compile(r"(?i)(TOKEN|PASSWORD|SECRET|DATABASE_URL)$")
    for doc in [d for d in docs if d["kind"] in WORKLOAD_KINDS]:
        for c in containers(pod_spec(doc)):
            for entry in c.get("env", []):
                if entry["name"] == "MLBENCH_ARGO_TOKEN_FILE":
                    continue  # a path
                if sensitive.search(entry["name"]):
                    assert "value" not in entry, f"{name}: {entry['name']} in plain text"
                    assert set(entry["valueFrom"]) == {"secretKeyRef"}, entry["name"]
            assert "envFrom" not in c or all("configMapRef" not in e for e in c["envFrom"])


# -- database and volumes ----------------------------------------------------------------------


def test_postgresql_statefulset_keeps_its_data_on_a_pvc(render: Render) -> None:
    docs = render({})
    sts = one(docs, "StatefulSet", "mlbench-postgresql")
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    assert sts["spec"]["serviceName"] == "mlbench-postgresql-headless"
    one(docs, "Service", "mlbench-postgresql-headless")
    pg = container(sts, "postgresql")
    assert {"name": "data", "mountPath": "/var/lib/postgresql/data"} in pg["volumeMounts"]
    env = env_of(pg)
    assert env["PGDATA"]["value"].startswith("/var/lib/postgresql/data/")
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlbench-postgresql",
        "key": "password",
    }
    image = pg["image"]
    assert re.fullmatch(r"docker\.io/library/postgres:\d+\.\d+-\w+", image), image
    sc = pod_spec(sts)["securityContext"]
    assert sc["runAsUser"] == 999 and sc["fsGroup"] == 999  # the image's postgres user
    master_env = env_of(container(one(docs, "Deployment", "mlbench-master"), "master"))
    assert master_env["MLBENCH_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlbench-postgresql",
        "key": "database-url",
    }
    # Storage class and size from values.
    values, namespace = VALUE_SETS["everything"]
    sts = one(render(values, namespace), "StatefulSet", "mlbench-postgresql")
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"


def test_external_database_comes_from_the_given_secret(render: Render) -> None:
    values, namespace = VALUE_SETS["external-db"]
    docs = render(values, namespace)
    assert not by_kind(docs, "StatefulSet")
    assert not [d for d in docs if "postgresql" in d["metadata"]["name"]]
    master = one(docs, "Deployment", "mlbench-master")
    for c in containers(pod_spec(master)):
        assert env_of(c)["MLBENCH_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "my-db",
            "key": "database-url",
        }
    assert {d["metadata"]["name"] for d in by_kind(docs, "Secret")} == {ADMIN_SECRET}


def test_dataset_pvc_is_what_workers_mount(render: Render) -> None:
    docs = render({})
    pvc = one(docs, "PersistentVolumeClaim", "mlbench-data")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert "storageClassName" not in pvc["spec"]  # the cluster's default
    docs = render(
        {"datasets": {"size": "100Gi", "storageClass": "nfs", "accessMode": "ReadWriteOnce"}}
    )
    pvc = one(docs, "PersistentVolumeClaim", "mlbench-data")
    assert pvc["spec"]["storageClassName"] == "nfs"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "100Gi"
    docs = render({"datasets": {"enabled": False}})
    assert not by_kind(docs, "PersistentVolumeClaim")
    env = env_of(container(one(docs, "Deployment", "mlbench-master"), "master"))
    assert env["MLBENCH_ARGO_DATA_PVC"]["value"] == ""  # an emptyDir per worker pod


# -- ingress and network -----------------------------------------------------------------------


def test_ingress_is_off_by_default_and_routes_dashboard_and_api(render: Render) -> None:
    assert not by_kind(render({}), "Ingress")
    values, namespace = VALUE_SETS["ingress"]
    (ingress,) = by_kind(render(values, namespace), "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "mlbench.example.com"
    paths = {p["path"]: p for p in rule["http"]["paths"]}
    assert paths["/"]["backend"]["service"]["name"] == "mlbench-dashboard"
    assert paths["/api"]["backend"]["service"]["name"] == "mlbench-master"
    assert {p["pathType"] for p in paths.values()} == {"Prefix"}
    assert ingress["spec"]["tls"] == values["ingress"]["tls"]


def test_network_policies_fence_postgresql(render: Render) -> None:
    assert not by_kind(render({}), "NetworkPolicy")
    values, namespace = VALUE_SETS["everything"]
    docs = render(values, namespace)
    policies = {d["metadata"]["name"]: d for d in by_kind(docs, "NetworkPolicy")}
    assert set(policies) == {"mlbench-master", "mlbench-dashboard", "mlbench-postgresql"}
    (rule,) = policies["mlbench-postgresql"]["spec"]["ingress"]
    assert rule["from"] == [
        {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "mlbench",
                    "app.kubernetes.io/instance": "mlbench",
                    "app.kubernetes.io/component": "master",
                }
            }
        }
    ]
    master_pod_labels = one(docs, "Deployment", "mlbench-master")["spec"]["template"]["metadata"][
        "labels"
    ]
    assert rule["from"][0]["podSelector"]["matchLabels"].items() <= master_pod_labels.items()


# -- bad values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "path", "v3_message", "v4_message"),
    [
        ({"master": {"replicas": -1}}, "master", "Must be greater than or equal to 0", "minimum"),
        (
            {"dashboard": {"replicas": -2}},
            "dashboard",
            "Must be greater than or equal to 0",
            "minimum",
        ),
        (
            {"master": {"defaultExecutor": "docker"}},
            "master",
            'must be one of the following: "local", "argo"',
            "value must be one of 'local', 'argo'",
        ),
        (
            {"master": {"resources": {"limits": {"memory": "lots"}}}},
            "master",
            "Does not match pattern",
            "'lots' does not match pattern",
        ),
        (
            {"workers": {"resources": {"memory": "lots"}}},
            "workers",
            "Does not match pattern",
            "'lots' does not match pattern",
        ),
        (
            {"workers": {"resources": {"gpu": -1}}},
            "workers",
            "greater than or equal to 0",
            "minimum",
        ),
        (
            {"datasets": {"accessMode": "Shared"}},
            "datasets",
            "must be one of the following",
            "value must be one of",
        ),
        ({"mastr": {}}, "", "Additional property mastr is not allowed", "'mastr' not allowed"),
        (
            {"argo": {"server": "argo-server:2746"}},
            "argo",
            "Does not match pattern",
            "does not match pattern",
        ),
    ],
)
def test_bad_values_fail_with_the_schema_message(
    helm: Helm, values: dict[str, Any], path: str, v3_message: str, v4_message: str
) -> None:
    done = helm.template(values)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr, done.stderr
    assert (v3_message if helm.major == 3 else v4_message) in done.stderr, done.stderr
    assert path in done.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"postgresql": {"enabled": False}}, "set externalDatabase.existingSecret"),
        (
            {"externalDatabase": {"existingSecret": "db"}},
            "choose one database",
        ),
        ({"argo": {"enabled": False}}, "master.defaultExecutor is argo but argo.enabled is false"),
    ],
)
def test_contradictory_values_fail_with_a_readable_message(
    helm: Helm, values: dict[str, Any], message: str
) -> None:
    done = helm.template(values)
    assert done.returncode != 0 and message in done.stderr, done.stderr


# -- NOTES, README -----------------------------------------------------------------------------


def test_notes_tell_how_to_open_the_dashboard_and_run(helm: Helm) -> None:
    done = helm.run("install", "mlbench", str(CHART), "-n", "mlbench", "--dry-run=client")
    assert done.returncode == 0, done.stderr
    notes = done.stdout.split("NOTES:", 1)[1]
    assert "kubectl -n mlbench port-forward svc/mlbench-dashboard 5006:5006" in notes
    assert "get secret mlbench-admin" in notes
    assert "mlbench run digits-mlp --workers 2 --executor argo" in notes
    values, _ = VALUE_SETS["ingress"]
    done = helm.run(
        "install", "mlbench", str(CHART), "-n", "mlbench", "--dry-run=client", values=values
    )
    assert "https://mlbench.example.com/" in done.stdout.split("NOTES:", 1)[1]


def test_readmes_document_the_chart() -> None:
    chart_readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def leaves(tree: dict[str, Any], prefix: str = "") -> Iterator[str]:
        for key, value in tree.items():
            if isinstance(value, dict) and value:
                yield from leaves(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    def documented(key: str) -> bool:
        parts = key.split(".")
        prefixes = [".".join(parts[:i]) + ".*" for i in range(1, len(parts))]
        return any(f"`{name}`" in chart_readme for name in [key, *prefixes])

    missing = [key for key in leaves(values) if not documented(key)]
    assert missing == [], "values missing from helm/mlbench/README.md"
    assert "helm install mlbench ./helm/mlbench" in chart_readme
    readme = (ROOT / "README.md").read_text()
    assert "helm/mlbench/README.md" in readme


def test_both_helm_majors_render_the_same(helm: Helm, helm3: Helm) -> None:
    """Helm 3 and Helm 4 lint the chart strictly and render the same objects."""
    if helm3.binary == helm.binary:
        pytest.skip("one helm major available")
    for values, namespace in (VALUE_SETS["defaults"], VALUE_SETS["everything"]):
        helm3.lint(values, namespace)

        def scrub(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            for doc in docs:
                if doc["kind"] == "Secret":
                    doc["data"] = sorted(doc.get("data", {}))  # random values
            return docs

        assert scrub(helm3.render(values, namespace)) == scrub(helm.render(values, namespace))
    done = helm3.template({"master": {"replicas": -1}})
    assert done.returncode != 0 and "master.replicas" in done.stderr


def test_chart_files_are_complete() -> None:
    for path in (
        "Chart.yaml",
        "values.yaml",
        "values.schema.json",
        "README.md",
        "templates/NOTES.txt",
        ".helmignore",
    ):
        assert (CHART / path).is_file(), path
    assert not list(CHART.glob("charts/*")), "the chart has no dependencies (renders offline)"
    assert "dependencies" not in yaml.safe_load((CHART / "Chart.yaml").read_text())


def test_gitignore_keeps_the_helm_cache_out() -> None:
    assert ".cache/" in (ROOT / ".gitignore").read_text().split()


def test_long_release_names_give_valid_object_names(render: Render) -> None:
    release = "r" + "x" * 52  # Helm's longest release name: 53 characters
    docs = render({}, "mlbench", release)
    label = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
    names = {d["kind"]: [] for d in docs}
    for doc in docs:
        names[doc["kind"]].append(doc["metadata"]["name"])
    for kind in ("Service", "Deployment", "StatefulSet", "ServiceAccount", "Secret"):
        for name in names[kind]:
            assert len(name) <= 63 and label.fullmatch(name), f"{kind} {name}"
    for name in names["StatefulSet"]:
        assert len(name) <= 52, name  # its pods' controller-revision-hash label adds 11
    fullname = f"{release}-mlbench"

    def cut(suffix: str, limit: int = 63) -> str:  # the fullname is cut, the suffix kept
        return f"{fullname[: limit - len(suffix) - 1].rstrip('-')}-{suffix}"

    assert sorted(names["Deployment"]) == [cut("dashboard"), cut("master")]
    assert names["StatefulSet"] == [cut("postgresql", 52)]
    assert one(docs, "PersistentVolumeClaim", cut("data"))
    assert one(docs, "Service", cut("postgresql", 52) + "-headless")
