"""All-reduce SGD (bucketed, per layer), DDP, model averaging and local SGD in real gloo ranks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mlbench_core.optim import make_aggregator
from mlbench_core.optim._tensors import buckets
from tests.mlbench_core.optim.common import gather_flat, world
from tests.mlbench_core.optim.procs import run_ok

HERE = "tests.mlbench_core.optim.test_allreduce"
BATCH = 4  # per rank
STEPS = 5
# 0.0005 MiB = 524 bytes: smaller than the first weight (640 bytes), so buckets split.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "bucketed-small": ("allreduce", {"bucket_mb": 0.0005}),
    "bucketed": ("allreduce", {}),
    "per-layer": ("allreduce", {"per_layer": True}),
    "ddp": ("ddp", {"bucket_mb": 0.0005}),
}


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 3))


def _sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)


def _batches() -> tuple[torch.Tensor, torch.Tensor]:
    """STEPS global batches (identical on every rank), each of world_size * BATCH samples."""
    _, size = world()
    g = torch.Generator().manual_seed(7)
    x = torch.randn(STEPS, size * BATCH, 10, generator=g)
    y = torch.randint(0, 3, (STEPS, size * BATCH), generator=g)
    return x, y


def _equivalence(params: dict[str, Any]) -> dict[str, Any]:
    rank, size = world()
    x, y = _batches()
    # Reference: one process, rank 0's initial model, the whole global batch per step.
    reference = _model(seed=100)
    ref_opt = _sgd(reference)
    for step in range(STEPS):
        ref_opt.zero_grad()
        F.cross_entropy(reference(x[step]), y[step]).backward()
        ref_opt.step()
    expected = torch.cat([p.detach().reshape(-1) for p in reference.parameters()])

    out: dict[str, Any] = {"grad_bytes": 4 * expected.numel()}
    for label, (name, settings) in VARIANTS.items():
        aggregator = make_aggregator(name, settings, rank=rank, world_size=size)
        model = aggregator.wrap(_model(seed=100 + rank))  # wrap must make rank 0's init common
        opt = _sgd(model)
        step_bytes = []
        for step in range(STEPS):
            shard = slice(rank * BATCH, (rank + 1) * BATCH)
            aggregator.begin_step()
            opt.zero_grad()
            F.cross_entropy(model(x[step, shard]), y[step, shard]).backward()
            aggregator.after_backward(model)
            opt.step()
            aggregator.after_step(model)
            step_bytes.append(aggregator.last_step_bytes)
        rows = gather_flat(model)
        out[label] = {
            "ranks_identical": all(torch.equal(rows[0], row) for row in rows),
            "max_diff_to_reference": float((rows[rank] - expected).abs().max()),
            "step_bytes": step_bytes,
            "bytes_sent": aggregator.bytes_sent,
        }
    return out


@pytest.mark.parametrize("world_size", [2, 4])
def test_allreduce_and_ddp_equal_single_process_sgd(tmp_path: Path, world_size: int) -> None:
    results = run_ok(f"{HERE}:_equivalence", world_size, tmp_path)
    for result in results:
        grad_bytes = result["grad_bytes"]
        for label in VARIANTS:
            got = result[label]
            assert got["ranks_identical"], label
            assert got["max_diff_to_reference"] < 1e-5, (label, got)
            # Every gradient element goes on the wire once per step, whatever the bucketing.
            assert got["step_bytes"] == [grad_bytes] * STEPS, label
            assert got["bytes_sent"] == grad_bytes * STEPS, label


def test_buckets_respect_the_size_limit_and_keep_order() -> None:
    tensors = [
        torch.zeros(100),
        torch.zeros(10),
        torch.zeros(300),
        torch.zeros(5, dtype=torch.int64),
    ]
    groups = buckets(tensors, bucket_bytes=440)
    assert [[t.numel() for t in group] for group in groups] == [[100, 10], [300], [5]]
    assert [t for group in groups for t in group] == tensors


# ----------------------------------------------------------- model averaging and local SGD

SYNC_CASES: dict[str, tuple[str, dict[str, Any], list[int]]] = {
    "model-average": ("model-average", {"period": 4}, [4, 8]),
    "local-sgd": ("local-sgd", {"local_steps": 3, "warmup_steps": 2}, [1, 2, 5, 8]),
}
SYNC_STEPS = 8


def _bn_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def _periodic(params: dict[str, Any]) -> dict[str, Any]:
    rank, size = world()
    out: dict[str, Any] = {}
    for label, (name, settings, _) in SYNC_CASES.items():
        aggregator = make_aggregator(name, settings, rank=rank, world_size=size)
        model = aggregator.wrap(_bn_model(seed=rank))
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        g = torch.Generator().manual_seed(50 + rank)  # each rank its own data: models drift
        equal_after, step_bytes = [], []
        for _ in range(SYNC_STEPS):
            aggregator.begin_step()
            opt.zero_grad()
            x, y = torch.randn(8, 6, generator=g), torch.randint(0, 2, (8,), generator=g)
            F.cross_entropy(model(x), y).backward()
            aggregator.after_backward(model)
            opt.step()
            aggregator.after_step(model)
            rows = gather_flat(model)
            equal_after.append(all(torch.equal(rows[0], row) for row in rows))
            step_bytes.append(aggregator.last_step_bytes)
        bn = model[1]
        stats = torch.cat([bn.running_mean, bn.running_var])
        stat_rows = [torch.empty_like(stats) for _ in range(size)]
        torch.distributed.all_gather(stat_rows, stats)
        out[label] = {
            "equal_after": equal_after,
            "step_bytes": step_bytes,
            "state_bytes": 4 * (sum(p.numel() for p in model.parameters()) + 2 * 8),
            "buffers_equal": all(torch.equal(stat_rows[0], row) for row in stat_rows),
        }
    out["ddp-bn"] = _ddp_with_buffers(rank, size)
    return out


def _ddp_with_buffers(rank: int, size: int) -> dict[str, Any]:
    aggregator = make_aggregator("ddp", {}, rank=rank, world_size=size)
    model = aggregator.wrap(_bn_model(seed=rank))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(50 + rank)
    step_bytes = []
    for _ in range(3):
        aggregator.begin_step()
        opt.zero_grad()
        x, y = torch.randn(8, 6, generator=g), torch.randint(0, 2, (8,), generator=g)
        F.cross_entropy(model(x), y).backward()
        aggregator.after_backward(model)
        opt.step()
        aggregator.after_step(model)
        step_bytes.append(aggregator.last_step_bytes)
    params = sum(p.numel() for p in model.parameters())
    return {"step_bytes": step_bytes, "grad_bytes": 4 * params}


@pytest.mark.parametrize("world_size", [2, 4])
def test_model_average_and_local_sgd_agree_exactly_after_sync_steps(
    tmp_path: Path, world_size: int
) -> None:
    results = run_ok(f"{HERE}:_periodic", world_size, tmp_path)
    for result in results:
        for label, (_, _, sync_steps) in SYNC_CASES.items():
            got = result[label]
            expected = [step in sync_steps for step in range(1, SYNC_STEPS + 1)]
            # Equal exactly after a sync step, different after a local one.
            assert got["equal_after"] == expected, label
            # Parameters plus float BatchNorm buffers travel on sync steps; nothing otherwise.
            assert got["step_bytes"] == [got["state_bytes"] if s else 0 for s in expected], label
            assert got["buffers_equal"], label  # the last step (8) synchronises in both cases
        # DDP: gradients from every rank; BatchNorm buffers (running mean and var, 8 floats
        # each, and the int64 batch counter) broadcast by rank 0 before every forward.
        ddp = result["ddp-bn"]
        buffer_bytes = (8 + 8) * 4 + 8 if result is results[0] else 0
        assert ddp["step_bytes"] == [ddp["grad_bytes"] + buffer_bytes] * 3
