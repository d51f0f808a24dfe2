"""The manifest of a run: what ran, with which settings, on what (DESIGN.md: reproducibility)."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psutil
import torch
import torch.distributed as dist

from mlbench_core.spec import RunSpec
from mlbench_core.wire import Manifest

_PACKAGES = ("mlbench", "torch", "numpy", "scikit-learn", "pydantic")


def package_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    if torch.cuda.is_available():
        found["cuda"] = str(torch.version.cuda)
    return found


def git_commit() -> str | None:
    """MLBENCH_GIT_COMMIT (set in images), else HEAD of the checkout mlbench runs from."""
    if commit := os.environ.get("MLBENCH_GIT_COMMIT"):
        return commit[:64]
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def host_description() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{device.index} {torch.cuda.get_device_name(device)}"
    return f"cpu ({platform.machine()})"


def build_manifest(
    spec: RunSpec, settings: dict[str, Any], world_size: int, backend: str, device: torch.device
) -> Manifest:
    """Called on every rank (it gathers each rank's device); only rank 0 sends the result."""
    mine = f"{socket.gethostname()} {device_name(device)}"
    devices = [mine]
    if dist.is_available() and dist.is_initialized():
        gathered: list[Any] = [None] * world_size
        dist.all_gather_object(gathered, mine)
        devices = [str(item) for item in gathered]
    return Manifest(
        spec=spec.model_dump(mode="json"),
        settings=settings,
        seed=spec.seed,
        world_size=world_size,
        backend=backend,
        packages=package_versions(),
        git_commit=git_commit(),
        host=host_description(),
        devices=devices,
    )


__all__ = ["build_manifest", "git_commit", "host_description", "package_versions"]
