"""The rank processes of ``loop_overhead.py``: each runs, on command, one mlbench worker run or
one bare DDP training run, so both variants share the same long-lived processes and alternate.

A command is ``("mlbench", MlbenchRun)`` or ``("bare", BareRun)``; ``None`` ends the process.
Each rank answers ``(rank, kind, value, error)`` on the shared result queue: the worker's exit
code for an mlbench run, the global samples/s measured on this rank for a bare run.
"""

from __future__ import annotations

import gc
import os
import time
import traceback
from dataclasses import dataclass
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from mlbench_core.data.augment import CifarAugment
from mlbench_core.data.cifar10 import load_cifar10, prepare_cifar10
from mlbench_core.data.partition import shard_indices
from mlbench_core.models.resnet20 import ResNetCIFAR
from worker.main import run as worker_run
from worker.main import seed_everything


@dataclass(frozen=True)
class MlbenchRun:
    """One run of the real worker (``worker.main.run``) for a run the master created."""

    spec_json: str
    api_url: str
    run_id: int
    token: str
    port: int
    data_dir: str


@dataclass(frozen=True)
class BareRun:
    """One bare DDP run: task 1a's model, data, optimizer settings and seed, no mlbench."""

    port: int
    data_root: str
    steps: int
    batch_size: int
    width: int
    seed: int
    lr: float
    momentum: float
    weight_decay: float
    threads: int


def serve(rank: int, world: int, commands: Queue[Any], results: Queue[Any]) -> None:
    """Run commands until ``None``; every failure is reported, never raised."""
    while True:
        command = commands.get()
        if command is None:
            return
        kind, job = command
        try:
            value = (
                run_mlbench(rank, world, job) if kind == "mlbench" else run_bare(rank, world, job)
            )
            results.put((rank, kind, value, None))
        except BaseException:
            results.put((rank, kind, None, traceback.format_exc()))


def run_mlbench(rank: int, world: int, job: MlbenchRun) -> float:
    """The worker as ``torch.distributed.run`` starts it: returns its exit code."""
    environ = {
        **os.environ,
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(world),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(job.port),
        "MLBENCH_SPEC": job.spec_json,
        "MLBENCH_API_URL": job.api_url,
        "MLBENCH_RUN_ID": str(job.run_id),
        "MLBENCH_TOKEN": job.token,
        "MLBENCH_DATA_DIR": job.data_dir,
    }
    return float(worker_run(["--log-level", "WARNING", "--dist-timeout", "300"], environ))


def run_bare(rank: int, world: int, job: BareRun) -> float:
    """A textbook DDP loop; global samples/s from the first to the last step on this rank."""
    seed_everything(job.seed)
    torch.set_num_threads(job.threads)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{job.port}", rank=rank, world_size=world
    )
    try:
        return _train_bare(rank, world, job)
    finally:
        # As the worker does: DDP's reducer sits in reference cycles; collected after the group
        # is gone it can abort the process.
        gc.collect()
        dist.destroy_process_group()


def _train_bare(rank: int, world: int, job: BareRun) -> float:
    data = load_cifar10(prepare_cifar10(Path(job.data_root)))
    torch.manual_seed(job.seed)
    model = ResNetCIFAR(num_classes=10, blocks_per_stage=3, width=job.width, shortcut="A")
    # mlbench's 'ddp' aggregator's defaults: 25 MiB buckets, buffers synced before forward,
    # gradients as views of the buckets.
    ddp = DistributedDataParallel(model, bucket_cap_mb=25.0, gradient_as_bucket_view=True)
    optimizer = torch.optim.SGD(
        ddp.parameters(), lr=job.lr, momentum=job.momentum, weight_decay=job.weight_decay
    )
    augment = CifarAugment()
    generator = torch.Generator().manual_seed(job.seed * 1_000_003 + rank)
    n = len(data.train_y)
    samples = step = epoch = 0
    began = time.perf_counter()
    while step < job.steps:
        order = shard_indices(n, rank, world, job.seed, epoch)
        for start in range(0, len(order), job.batch_size):
            if step >= job.steps:
                break
            chosen = order[start : start + job.batch_size]
            images = augment(data.train_x[chosen], generator)
            labels = data.train_y[chosen]
            optimizer.zero_grad()
            loss = F.cross_entropy(ddp(images), labels)
            loss.backward()
            optimizer.step()
            samples += len(labels)
            step += 1
        epoch += 1
    seconds = time.perf_counter() - began
    total = torch.tensor([float(samples)], dtype=torch.float64)
    dist.all_reduce(total)
    return float(total) / seconds
