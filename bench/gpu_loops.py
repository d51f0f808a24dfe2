"""The two training loops of figure 7 (``gpu_resnet20.py``) and the GPU's own ceilings.

- ``MlbenchSide``: task 1a as the worker runs it (``worker.main._run_worker`` without the process
  group: a job of one needs none), i.e. the generic loop with its tracker, the metrics client
  reporting to a real master, and the goal checked at every evaluation.
- ``bare_epochs``: a textbook PyTorch loop with the same model, loader, optimizer settings,
  batch size, seed and autocast.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import torch
import torch.nn.functional as F
from pydantic import BaseModel

from mlbench_core.data.augment import CifarAugment
from mlbench_core.data.cifar10 import Cifar10
from mlbench_core.data.device_resident import DeviceResidentLoader
from mlbench_core.metrics_client import MetricsClient, NullReporter, Reporter
from mlbench_core.models.resnet20 import ResNetCIFAR
from mlbench_core.tasks import TaskContext
from mlbench_core.tasks.cifar_resnet import CifarResNetTask
from mlbench_core.tracker import CudaTiming, Tracker
from mlbench_core.wire import RunResult

ADMIN = "bench-gpu"
UNREACHABLE_ACCURACY = 2.0
"""A custom goal no run reaches: every run trains all its epochs, goal checked each time."""


def note(message: str) -> None:
    print(f"[gpu_resnet20 {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, precision: str) -> Any:
    """What the loop does (``train/loop.py``): autocast on CUDA only, fp32 means off."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    enabled = device.type == "cuda" and dtype is not None
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=enabled)


def start_master(data_dir: Path) -> tuple[Any, Any]:
    """An embedded master (SQLite under ``data_dir``) whose executor starts nothing: this
    process plays the worker of each run. Returns (master, executor); imports lazily, so a
    machine without the master's dependencies can still run the loops (``NullReporter``)."""
    from hold_master import HoldExecutor

    from master.server import EmbeddedMaster
    from master.settings import Settings
    from tests.conftest import free_port

    settings = Settings(data_dir=data_dir, port=free_port(), admin_token=ADMIN)
    executor = HoldExecutor()
    master = EmbeddedMaster(settings, executors={"local": executor}).start()
    return master, executor


class MlbenchSide:
    """Runs task 1a in this process as the worker would, reporting to ``master_url`` (a run is
    created per call; ``None``: no master, a ``NullReporter``)."""

    def __init__(
        self, master_url: str | None, executor: Any, data_root: Path, spool: Path, seed: int
    ) -> None:
        self.master_url = master_url
        self.executor = executor
        self.data_root = data_root
        self.spool = spool
        self.seed = seed
        self.http = (
            httpx.Client(base_url=master_url, headers={"Authorization": f"Bearer {ADMIN}"})
            if master_url
            else None
        )
        self.run_id: int | None = None

    def run(
        self,
        overrides: dict[str, Any],
        device: torch.device,
        cuda_timing: CudaTiming,
        step_hook: Callable[[int], None] | None = None,
    ) -> RunResult:
        """One run; ``step_hook(i)`` is called before step ``i`` (0-based) starts."""
        client = self._client(overrides, device)
        task = CifarResNetTask  # imported directly: the other tasks need other libraries
        config = task.config_from(overrides)
        torch.manual_seed(self.seed)  # as worker.main.seed_everything
        tracker = Tracker(device=device, cuda_timing=cuda_timing)
        if step_hook is not None:
            start_step = tracker.start_step

            def hooked() -> None:
                step_hook(tracker.steps)
                start_step()

            tracker.start_step = hooked  # type: ignore[method-assign]
        ctx = TaskContext(
            rank=0,
            world_size=1,
            device=device,
            seed=self.seed,
            goal_kind="custom",
            goal_value=UNREACHABLE_ACCURACY,
            tracker=tracker,
            log=client.log,
            data_dir=str(self.data_root),
        )
        try:
            client.status("running")
            result = task().run(ctx, config)
            client.result(result)
            client.status("succeeded")
        finally:
            client.close(timeout_s=30)
        return result

    def _client(self, overrides: dict[str, Any], device: torch.device) -> Reporter:
        if self.http is None or self.master_url is None:
            return NullReporter(0)
        launch = self.create_run(overrides, device)
        return MetricsClient(self.master_url, launch.run_id, launch.token, 0, spool_dir=self.spool)

    def create_run(self, overrides: dict[str, Any], device: torch.device) -> Any:
        """A new run in the master (which validates the settings); its launch (id, token)."""
        assert self.http is not None
        spec = {
            "name": f"gpu-1a-{time.time_ns()}",
            "benchmark": "1a",
            "workers": 1,
            "backend": "nccl" if device.type == "cuda" else "gloo",
            "resources": {"gpu": 1} if device.type == "cuda" else {},
            "overrides": overrides,
            "goal": {"kind": "custom", "value": UNREACHABLE_ACCURACY},
            "seed": self.seed,
        }
        self.http.post("/api/v1/runs", json=spec).raise_for_status()
        launch = self.executor.launches[-1]
        self.run_id = launch.run_id
        return launch

    def check_last_run(self) -> dict[str, Any]:
        """What the master holds for the last run: its state and the metric points stored."""
        if self.http is None or self.run_id is None:
            return {}
        run = self.http.get(f"/api/v1/runs/{self.run_id}").json()
        names = self.http.get(f"/api/v1/runs/{self.run_id}/metrics/names").json()
        return {
            "run_id": self.run_id,
            "state": run.get("state"),
            "points": {entry["name"]: entry["count"] for entry in names},
        }

    def close(self) -> None:
        if self.http is not None:
            self.http.close()


def bare_epochs(
    data: Cifar10,
    config: BaseModel,
    device: torch.device,
    seed: int,
    *,
    set_to_none: bool = True,
    step_hook: Callable[[int], None] | None = None,
) -> float:
    """Images/s of a textbook loop over ``config.epochs`` epochs of task 1a's settings.

    ``set_to_none=False`` keeps zeroed gradient tensors between steps, as the mlbench loop
    does; ``step_hook(i)`` is called before step ``i`` (the profile window)."""
    c: Any = config
    torch.manual_seed(seed)
    model = ResNetCIFAR(
        num_classes=10, blocks_per_stage=c.blocks_per_stage, width=c.width, shortcut=c.shortcut
    ).to(device)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=c.lr,
        momentum=c.momentum,
        nesterov=c.nesterov,
        weight_decay=c.weight_decay,
    )
    loader = DeviceResidentLoader(
        data.train_x, data.train_y, batch_size=c.batch_size, seed=seed, transform=CifarAugment()
    )
    model.train()
    samples = step = 0
    sync(device)
    began = time.perf_counter()
    for epoch in range(c.epochs):
        for images, labels in loader.batches(epoch):
            if step_hook is not None:
                step_hook(step)
            step += 1
            with autocast(device, c.precision):
                loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=set_to_none)
            loss.backward()
            optimizer.step()
            samples += len(labels)
    sync(device)
    return samples / (time.perf_counter() - began)
