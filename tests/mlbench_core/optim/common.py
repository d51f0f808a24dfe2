"""Rank-side helpers: a small real dataset, small models and the documented training loop."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from mlbench_core.optim import Aggregator, make_aggregator

Digits = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def digits(cache: str | None = None) -> Digits:
    """scikit-learn's 8x8 digits (bundled, no download) as 1x8x8 images in [0, 1]:
    a fixed stratified 80/20 split (x_train, y_train, x_val, y_val).

    ``cache``: a file written by ``save_digits``. The test process loads scikit-learn once and
    the ranks read the tensors, which spares every rank process the slow scikit-learn import.
    """
    if cache is not None:
        x_tr, y_tr, x_va, y_va = torch.load(cache)
        return x_tr, y_tr, x_va, y_va
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32).view(-1, 1, 8, 8)
    y = torch.tensor(data.target, dtype=torch.int64)
    x_tr, x_va, y_tr, y_va = train_test_split(
        x, y, test_size=0.2, stratify=y.numpy(), random_state=0
    )
    return x_tr, y_tr, x_va, y_va


def save_digits(path: Path) -> str:
    torch.save(digits(), path)
    return str(path)


def tiny_cnn(seed: int) -> nn.Module:
    """Conv (a 4-D weight, compressed by PowerSGD as 8 x 9) + linear classifier."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))


def tiny_mlp(seed: int, hidden: int = 32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def world() -> tuple[int, int]:
    return dist.get_rank(), dist.get_world_size()


def flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def gather_flat(model: nn.Module) -> torch.Tensor:
    """Every rank's flattened parameters, one row per rank (test-side, not counted)."""
    mine = flat_params(model)
    rows = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(rows, mine)
    return torch.stack(rows)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def train_digits(
    name: str,
    settings: dict[str, Any],
    *,
    model_fn: Callable[[int], nn.Module],
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
    epochs: int,
    data: str | None = None,
    batch_size: int = 32,
    on_step: Callable[[Aggregator, nn.Module], None] | None = None,
) -> dict[str, Any]:
    """Train on digits with aggregator ``name`` in the documented call order.

    ``data`` is the ``digits`` cache file. Every rank starts from its own seed (``wrap`` must
    make them agree) and takes disjoint shards of each epoch's permutation. Returns this rank's
    validation accuracy, the bytes of every step, whether all ranks ended with bit-identical
    parameters, and the wall time.
    """
    rank, size = world()
    x_tr, y_tr, x_va, y_va = digits(data)
    aggregator = make_aggregator(name, settings, rank=rank, world_size=size)
    model = aggregator.wrap(model_fn(1000 + rank))
    optimizer = make_optimizer(model)
    steps_per_epoch = len(x_tr) // (batch_size * size)
    step_bytes: list[int] = []
    began = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(x_tr), generator=torch.Generator().manual_seed(epoch))
        for i in range(steps_per_epoch):
            start = (i * size + rank) * batch_size
            idx = order[start : start + batch_size]
            aggregator.begin_step()
            optimizer.zero_grad()
            F.cross_entropy(model(x_tr[idx]), y_tr[idx]).backward()
            aggregator.after_backward(model)
            optimizer.step()
            aggregator.after_step(model)
            step_bytes.append(aggregator.last_step_bytes)
            if on_step is not None:
                on_step(aggregator, model)
    wall = time.perf_counter() - began
    rows = gather_flat(model)
    return {
        "accuracy": accuracy(model, x_va, y_va),
        "ranks_identical": all(torch.equal(rows[0], row) for row in rows),
        "step_bytes": step_bytes,
        "bytes_sent": aggregator.bytes_sent,
        "wall_s": wall,
    }
