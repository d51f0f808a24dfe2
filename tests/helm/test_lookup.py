"""Generated secrets are kept across upgrades: the chart's ``lookup`` against an API server
(``helm template --dry-run=server`` with a fake one over real HTTP, tests/fakes/kube_api.py)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.kube_api import FakeKubeAPI, running_kube_api
from tests.helm.conftest import CHART, Helm


@pytest.fixture(params=["helm", "helm3"])
def any_helm(request: pytest.FixtureRequest) -> Helm:
    """Each test with Helm 4 and with Helm 3."""
    return request.getfixturevalue(request.param)


def _render(helm: Helm, kubeconfig: Path, values: dict[str, Any] | None = None) -> list[dict]:
    done = helm.run(
        "template",
        "mlbench",
        str(CHART),
        "--namespace",
        "mlbench",
        "--dry-run=server",
        # The fake serves discovery but no OpenAPI documents.
        "--disable-openapi-validation",
        values=values or {},
        kubeconfig=kubeconfig,
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def _secrets(docs: list[dict]) -> dict[str, dict[str, str]]:
    return {
        d["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in d["data"].items()}
        for d in docs
        if d["kind"] == "Secret"
    }


OWNED = {"meta.helm.sh/release-name": "mlbench", "meta.helm.sh/release-namespace": "mlbench"}


def _install(cluster: FakeKubeAPI, docs: list[dict]) -> None:
    """Store the Secrets as ``helm install`` leaves them (with its ownership annotations)."""
    for doc in docs:
        if doc["kind"] == "Secret":
            doc["metadata"].setdefault("annotations", {}).update(OWNED)
            cluster.add(doc)


def test_secrets_survive_an_upgrade(any_helm: Helm, tmp_path: Path) -> None:
    helm = any_helm
    with running_kube_api() as cluster:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        first = _render(helm, kubeconfig)
        read = {r.path for r in cluster.calls("GET")}
        assert "/api/v1/namespaces/mlbench/secrets/mlbench-admin" in read
        assert "/api/v1/namespaces/mlbench/secrets/mlbench-postgresql" in read
        _install(cluster, first)
        upgraded = _render(helm, kubeconfig, {"master": {"authReads": True}})
        assert _secrets(upgraded) == _secrets(first)
        # A value given explicitly wins over the stored one.
        given = _secrets(_render(helm, kubeconfig, {"admin": {"token": "chosen-token-0123456789"}}))
        assert given["mlbench-admin"]["token"] == "chosen-token-0123456789"
        assert given["mlbench-postgresql"] == _secrets(first)["mlbench-postgresql"]


def test_a_fresh_install_generates_new_values(any_helm: Helm, tmp_path: Path) -> None:
    helm = any_helm
    with running_kube_api() as cluster:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        one, two = _secrets(_render(helm, kubeconfig)), _secrets(_render(helm, kubeconfig))
        assert one["mlbench-admin"]["token"] != two["mlbench-admin"]["token"]
        assert one["mlbench-postgresql"]["password"] != two["mlbench-postgresql"]["password"]
        # A stored Secret without the key (edited by hand) gets a new value.
        cluster.add(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "mlbench-admin",
                    "namespace": "mlbench",
                    "labels": {"app.kubernetes.io/managed-by": "Helm"},
                    "annotations": OWNED,
                },
                "data": {},
            }
        )
        token = _secrets(_render(helm, kubeconfig))["mlbench-admin"]["token"]
        assert len(token) == 48
