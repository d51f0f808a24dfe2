"""Training checkpoints: written atomically, read back without running any code from the file.

A checkpoint is a plain dict of tensors and plain values saved with ``torch.save``. It is read
with ``torch.load(weights_only=True)``, whose unpickler only builds tensors and plain
containers, so a tampered file (a pickle whose ``__reduce__`` calls ``os.system``) is refused
instead of executed. Every problem is one ``CheckpointError`` line naming the file and why.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

FORMAT = "mlbench-checkpoint"
VERSION = 1


class CheckpointError(Exception):
    """A checkpoint that cannot be used: missing, unreadable, tampered with or not one of ours."""


@dataclass(frozen=True)
class Checkpoint:
    """What ``load_checkpoint`` returns: the states to restore and where training stood."""

    model_state: dict[str, Any]
    step: int
    optimizer_state: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model_state: Mapping[str, Any],
    optimizer_state: Mapping[str, Any] | None = None,
    step: int,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint to ``path`` atomically: a crash mid-write leaves the old file whole.

    The data goes to a temporary file in the same directory, is flushed to disk, then replaces
    ``path`` with ``os.replace`` (atomic on POSIX and Windows)."""
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an int >= 0, not {step!r}")
    target = Path(path)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "step": step,
        "model_state": dict(model_state),
        "optimizer_state": None if optimizer_state is None else dict(optimizer_state),
        "meta": dict(meta or {}),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def load_checkpoint(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint``; never executes code from the file."""
    source = Path(path)
    if not source.is_file():
        why = "is a directory" if source.is_dir() else "does not exist"
        raise CheckpointError(f"checkpoint {source}: {why}")
    try:
        data = torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses globals it does not know: the file asks to run or build code.
        raise CheckpointError(
            f"checkpoint {source}: refused, it holds objects other than tensors and plain "
            f"values (tampered or not an mlbench checkpoint): {_unpickler_reason(exc)}"
        ) from None
    except Exception as exc:
        # Parsing untrusted bytes: torch's unpickler fails on garbage with whatever it meets
        # first (RuntimeError, EOFError, IndexError, KeyError, ...); all mean "unreadable".
        raise CheckpointError(
            f"checkpoint {source}: unreadable (truncated or corrupted): {_first_line(exc)}"
        ) from None
    return _checked(source, data)


def _checked(source: Path, data: object) -> Checkpoint:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {source}: not an mlbench checkpoint")
    if data.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {source}: version {data.get('version')!r} is not supported "
            f"(this mlbench reads version {VERSION})"
        )
    step = data.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"checkpoint {source}: step {step!r} is not an int >= 0")
    model_state = data.get("model_state")
    if not isinstance(model_state, dict) or not model_state:
        raise CheckpointError(f"checkpoint {source}: model_state is missing or empty")
    bad = [key for key, value in model_state.items() if not isinstance(value, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint {source}: model_state[{bad[0]!r}] is not a tensor")
    optimizer_state = data.get("optimizer_state")
    if optimizer_state is not None and not isinstance(optimizer_state, dict):
        raise CheckpointError(f"checkpoint {source}: optimizer_state is not a dict")
    meta = data.get("meta")
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {source}: meta is not a dict")
    return Checkpoint(
        model_state=model_state, step=step, optimizer_state=optimizer_state, meta=meta
    )


_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")


def _unpickler_reason(exc: BaseException) -> str:
    """The line of torch's long refusal that says what was refused (e.g. ``GLOBAL
    posix.system``); its advice to retry with ``weights_only=False`` is left out on purpose."""
    for line in str(exc).splitlines():
        line = line.strip()
        if line and not line.startswith(_TORCH_BOILERPLATE):
            return line if len(line) <= 300 else line[:297] + "..."
    return type(exc).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."
