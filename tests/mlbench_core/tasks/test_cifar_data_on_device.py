"""Task 1a's data_on_device setting: the device-resident loader and the host loader train the
same model on a CPU (same order, same augmentation), in a job of one without a process group."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from mlbench_core.tasks import TaskContext, get_task
from mlbench_core.tracker import Tracker
from mlbench_core.wire import RunResult
from tests.mlbench_core.tasks import datafiles


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # Tiny convolutions: more threads only contend with the other tests on a small machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train(root: Path, data_on_device: bool) -> tuple[RunResult, list[tuple[str, float]]]:
    task = get_task("1a")
    config = task.config_from(
        {"width": 4, "batch_size": 16, "epochs": 2, "log_every": 2, "data_root": str(root)}
        | {"data_on_device": data_on_device}
    )
    points: list[tuple[str, float]] = []

    def log(name: str, value: float, **_: Any) -> None:
        if not name.endswith("_per_s"):  # timings differ from run to run
            points.append((name, value))

    ctx = TaskContext(
        rank=0,
        world_size=1,
        device=torch.device("cpu"),
        seed=3,
        goal_kind="custom",
        goal_value=2.0,  # unreachable: both epochs run
        tracker=Tracker(),
        log=log,
        data_dir=str(root),
    )
    return task().run(ctx, config), points


def test_device_resident_and_host_loaders_train_the_same_model(tmp_path: Path) -> None:
    datafiles.write_cifar10(tmp_path, per_batch=24)
    resident, resident_points = train(tmp_path, True)
    host, host_points = train(tmp_path, False)
    assert resident.steps == host.steps == 2 * 8  # 120 images / 16 per step, twice
    assert resident.final_value == host.final_value
    assert resident_points == host_points
    assert resident.phases.data > 0
