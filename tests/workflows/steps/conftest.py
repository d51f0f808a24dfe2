"""Fixtures of the step tests: a fake Kubernetes API (real HTTP) with its kubeconfig, and a
real master process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.fakes.kube_api import FakeKubeAPI, running_kube_api
from tests.served import ServedMaster
from tests.workflows.steps.helpers import NS


@pytest.fixture
def kube() -> Iterator[FakeKubeAPI]:
    with running_kube_api(token="kube-token") as fake:
        yield fake


@pytest.fixture
def kubeconfig(kube: FakeKubeAPI, tmp_path: Path) -> Path:
    return kube.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedMaster]:
    """One real ``mlbench serve`` (SQLite, local executor) for the step tests that need it."""
    with ServedMaster(tmp_path_factory.mktemp("served-master"), free_port()) as master:
        yield master
