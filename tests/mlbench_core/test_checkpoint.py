"""Checkpoints round-trip a real model and optimizer; tampered, truncated and foreign files are
refused with one line, and a code-execution payload never runs."""

from __future__ import annotations

import os
import pickle
import random
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from mlbench_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def _trained() -> tuple[nn.Module, torch.optim.Optimizer]:
    """A small model after two SGD-with-momentum steps, so the optimizer has state."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.BatchNorm1d(16), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        loss = model(torch.randn(4, 8)).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, optimizer


def test_round_trip_restores_model_and_optimizer(tmp_path: Path) -> None:
    model, optimizer = _trained()
    path = save_checkpoint(
        tmp_path / "ckpt" / "last.pt",
        model_state=model.state_dict(),
        optimizer_state=optimizer.state_dict(),
        step=2,
        meta={"run": "digits-2w", "epoch": 0.5},
    )
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left

    loaded = load_checkpoint(path)
    assert loaded.step == 2 and loaded.meta == {"run": "digits-2w", "epoch": 0.5}
    fresh, fresh_opt = _trained()
    with torch.no_grad():
        for param in fresh.parameters():
            param.add_(1.0)  # make sure the restore really changes something
    fresh.load_state_dict(loaded.model_state)
    assert loaded.optimizer_state is not None
    fresh_opt.load_state_dict(loaded.optimizer_state)
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    momentum = optimizer.state_dict()["state"][0]["momentum_buffer"]
    assert torch.equal(fresh_opt.state_dict()["state"][0]["momentum_buffer"], momentum)


def test_an_existing_checkpoint_survives_a_failed_write(tmp_path: Path) -> None:
    model, _ = _trained()
    path = save_checkpoint(tmp_path / "c.pt", model_state=model.state_dict(), step=1)
    good = path.read_bytes()
    with pytest.raises(ValueError, match="step must be an int"):
        save_checkpoint(path, model_state=model.state_dict(), step=-1)
    unpicklable = {"weight": torch.zeros(1), "lock": __import__("threading").Lock()}
    with pytest.raises((TypeError, pickle.PicklingError)):
        save_checkpoint(path, model_state=unpicklable, step=2)
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]
    assert load_checkpoint(path).step == 1


class _Payload:
    """Unpickling this calls ``os.system``: it would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_a_code_execution_payload_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    # Guard: the payload really runs when unpickled without weights_only.
    pickle.loads(pickle.dumps(_Payload(tmp_path / "guard")))
    assert (tmp_path / "guard").exists()

    path = tmp_path / "evil.pt"
    model, _ = _trained()
    tampered = {
        "format": "mlbench-checkpoint",
        "version": 1,
        "step": 1,
        "model_state": model.state_dict(),
        "optimizer_state": None,
        "meta": {"x": _Payload(marker)},
    }
    torch.save(tampered, path)  # what an attacker would write: a valid torch zip file
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message and "refused" in message
    assert "system" in message  # names what it refused to call
    assert "weights_only` set to `False`" not in message  # no advice to disable the guard
    assert not marker.exists()


def test_a_raw_pickle_payload_is_refused_and_never_runs(tmp_path: Path) -> None:
    """The legacy (non-zip) format too: a plain pickle stream is read with the same guard."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"model_state": _Payload(marker)}, protocol=2))
    with pytest.raises(CheckpointError, match=r"refused|unreadable") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0.5, 0.1, 0.0], ids=["half", "tenth", "empty"])
def test_truncated_files_are_unreadable(tmp_path: Path, keep: float) -> None:
    model, _ = _trained()
    path = save_checkpoint(tmp_path / "c.pt", model_state=model.state_dict(), step=3)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match=r"unreadable \(truncated or corrupted\)") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_random_bytes_are_refused_with_one_line(tmp_path: Path) -> None:
    """Garbage makes torch's unpickler fail with all sorts of exceptions (IndexError, KeyError,
    ...): each must come out as one CheckpointError line. Seeded, so a failure reproduces."""
    rng = random.Random(8)
    path = tmp_path / "noise.pt"
    for _ in range(300):
        path.write_bytes(rng.randbytes(rng.randint(1, 4096)))
        with (
            warnings.catch_warnings(),
            pytest.raises(CheckpointError, match=rf"^checkpoint {path}: ") as info,
        ):
            warnings.simplefilter("ignore")  # torch warns about odd pickle protocols
            load_checkpoint(path)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ({"weights": torch.zeros(2)}, "not an mlbench checkpoint"),
        ([torch.zeros(2)], "not an mlbench checkpoint"),
        ({"format": "mlbench-checkpoint", "version": 99}, "version 99 is not supported"),
        ({"format": "mlbench-checkpoint", "version": 1, "step": -1}, "step -1"),
        ({"format": "mlbench-checkpoint", "version": 1, "step": "3"}, "step '3'"),
        ({"format": "mlbench-checkpoint", "version": 1, "step": 1}, "model_state is missing"),
        (
            {"format": "mlbench-checkpoint", "version": 1, "step": 1, "model_state": {"w": 1.0}},
            "model_state['w'] is not a tensor",
        ),
        (
            {
                "format": "mlbench-checkpoint",
                "version": 1,
                "step": 1,
                "model_state": {"w": torch.zeros(1)},
                "optimizer_state": [1],
                "meta": {},
            },
            "optimizer_state is not a dict",
        ),
        (
            {
                "format": "mlbench-checkpoint",
                "version": 1,
                "step": 1,
                "model_state": {"w": torch.zeros(1)},
                "meta": "x",
            },
            "meta is not a dict",
        ),
    ],
)
def test_files_that_are_not_checkpoints_are_refused(
    tmp_path: Path, content: object, needle: str
) -> None:
    path = tmp_path / "other.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=rf"^checkpoint {path}: ") as info:
        load_checkpoint(path)
    assert needle in str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)
