"""The built-in tasks, run in real two-rank gloo jobs (subprocesses), plus their pure helpers."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch

from mlbench_core.tasks import TaskContext, get_task
from mlbench_core.tasks.allreduce import bus_bandwidth_gbps, message_sizes
from mlbench_core.tasks.digits import shard_indices
from mlbench_core.tracker import Tracker
from mlbench_core.wire import PHASES, RunResult
from tests.mlbench_core.dist_helpers import run_ranks


def points_named(points: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [p for p in points if p["name"] == name]


# ---------------------------------------------------------------- allreduce


def test_message_sizes() -> None:
    assert message_sizes(1, 16) == [1, 2, 4, 8, 16]
    assert message_sizes(3, 20) == [4, 8, 16]
    assert message_sizes(8, 8) == [8]


def test_bus_bandwidth_follows_nccl_tests() -> None:
    algbw, busbw = bus_bandwidth_gbps(4_000_000_000, 2.0, 4)
    assert algbw == pytest.approx(2.0)
    assert busbw == pytest.approx(2.0 * 2 * 3 / 4)
    assert bus_bandwidth_gbps(100, 1.0, 1)[1] == 0.0  # one rank moves nothing over a bus


def test_allreduce_config_bounds() -> None:
    task = get_task("allreduce")
    with pytest.raises(ValueError, match="max_elements"):
        task.config_from({"max_elements": 2**26 + 1})
    with pytest.raises(ValueError, match="min_elements must be <= max_elements"):
        task.config_from({"min_elements": 64, "max_elements": 32})
    with pytest.raises(ValueError, match="dtypes"):
        task.config_from({"dtypes": ["float33"]})


def test_allreduce_on_two_gloo_ranks(tmp_path: Path) -> None:
    overrides = {
        "max_elements": 2**10,
        "seconds_per_size": 0.01,
        "dtypes": ["float32", "float16", "int16"],  # gloo cannot reduce int16
    }
    outcomes = run_ranks("task", 2, tmp_path, {"task": "allreduce", "overrides": overrides})
    for outcome in outcomes:
        assert outcome.returncode == 0, outcome.stderr
    rank0, rank1 = (o.value for o in outcomes)
    result = RunResult.model_validate(rank0["result"])
    sizes = [2**k for k in range(11)]
    for dtype in ("float32", "float16"):
        for metric in ("latency_us", "busbw_gbps", "algbw_gbps"):
            series = points_named(rank0["points"], f"allreduce/{dtype}/{metric}")
            assert [p["step"] for p in series] == sizes, (dtype, metric)
            assert all(p["value"] > 0 for p in series)
        busbw = points_named(rank0["points"], f"allreduce/{dtype}/busbw_gbps")
        algbw = points_named(rank0["points"], f"allreduce/{dtype}/algbw_gbps")
        latency = points_named(rank0["points"], f"allreduce/{dtype}/latency_us")
        for b, a, lat, n in zip(busbw, algbw, latency, sizes, strict=True):
            element = 4 if dtype == "float32" else 2
            assert a["value"] == pytest.approx(n * element / (lat["value"] * 1e-6) / 1e9)
            assert b["value"] == pytest.approx(a["value"] * 2 * (2 - 1) / 2)
        assert result.extra[f"{dtype}/peak_busbw_gbps"] == pytest.approx(
            max(p["value"] for p in busbw)
        )
        assert result.extra[f"{dtype}/min_size_latency_us"] == pytest.approx(latency[0]["value"])
    assert not points_named(rank0["points"], "allreduce/int16/latency_us")
    assert str(result.extra["int16"]).startswith("unsupported by gloo: ")
    assert result.goal_reached is True
    assert result.final_value == pytest.approx(result.extra["float32/peak_busbw_gbps"])
    assert result.steps == 2 * len(sizes)
    assert result.phases.communication > 0
    assert sum(result.phases.model_dump().values()) <= result.total_time_s
    progress = points_named(rank0["points"], "progress")
    assert progress[-1]["value"] == pytest.approx(1.0)
    # Only rank 0 reports the figures, but both ranks measured the same sizes.
    assert rank1["points"] == []
    assert rank1["result"]["steps"] == result.steps


def test_allreduce_light_goal_caps_the_message_size(tmp_path: Path) -> None:
    overrides = {
        "min_elements": 2**19,
        "max_elements": 2**22,
        "seconds_per_size": 0.01,
        "dtypes": ["float32"],
        "warmup": 0,
        "min_iters": 1,
    }
    params = {"task": "allreduce", "overrides": overrides, "goal_kind": "light"}
    outcomes = run_ranks("task", 2, tmp_path, params)
    assert outcomes[0].returncode == 0, outcomes[0].stderr
    latency = points_named(outcomes[0].value["points"], "allreduce/float32/latency_us")
    assert [p["step"] for p in latency] == [2**19, 2**20]
    assert outcomes[0].value["result"]["extra"]["max_elements"] == 2**20


def test_allreduce_stops_when_told(tmp_path: Path) -> None:
    overrides = {"max_elements": 2**10, "seconds_per_size": 0.01, "dtypes": ["float32"]}
    params = {"task": "allreduce", "overrides": overrides, "stop_after_s": 0.0}
    outcomes = run_ranks("task", 2, tmp_path, params)
    for outcome in outcomes:
        assert outcome.returncode == 0, outcome.stderr
        assert outcome.value["result"]["goal_reached"] is False
        assert outcome.value["result"]["steps"] == 0


# ---------------------------------------------------------------- digits-mlp


def test_shards_are_disjoint_equal_and_cover_the_epoch() -> None:
    n, world = 1437, 4
    shards = [shard_indices(n, epoch=3, seed=5, rank=r, world_size=world) for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # same number of steps on every rank
    joined = torch.cat(shards)
    assert set(joined.tolist()) == set(range(n))
    assert len(joined) - n == math.ceil(n / world) * world - n  # only the padding repeats
    other_epoch = shard_indices(n, epoch=4, seed=5, rank=0, world_size=world)
    assert not torch.equal(shards[0], other_epoch)  # reshuffled every epoch
    assert torch.equal(shards[0], shard_indices(n, epoch=3, seed=5, rank=0, world_size=world))


def test_digits_reaches_its_goal_on_two_gloo_ranks(tmp_path: Path) -> None:
    outcomes = run_ranks("task", 2, tmp_path, {"task": "digits-mlp"}, timeout_s=120)
    for outcome in outcomes:
        assert outcome.returncode == 0, outcome.stderr
    results = [RunResult.model_validate(o.value["result"]) for o in outcomes]
    for result in results:
        assert result.goal_reached is True
        assert result.goal_metric == "val/accuracy"
        assert result.goal_value == 0.96
        assert result.final_value is not None and result.final_value >= 0.96
        assert result.time_to_goal_s is not None
        assert 0 < result.time_to_goal_s <= result.total_time_s
        assert result.time_to_goal_s < 30
        phases = result.phases.model_dump()
        assert set(phases) == set(PHASES)
        assert all(v >= 0 for v in phases.values())
        assert all(phases[name] > 0 for name in ("forward", "backward", "communication"))
        assert sum(phases.values()) <= result.total_time_s
        assert result.samples_per_s > 0
        assert 1 <= result.epochs < 30
        assert result.steps == result.epochs * result.extra["steps_per_epoch"]
    # Replicas stay identical: both ranks saw the same global metric and stopped together.
    assert results[0].final_value == results[1].final_value
    assert results[0].steps == results[1].steps

    points = outcomes[0].value["points"]
    accuracy = points_named(points, "val/accuracy")
    assert len(accuracy) == results[0].epochs
    assert accuracy[-1]["value"] == results[0].final_value
    assert all(p["value"] < 0.96 for p in accuracy[:-1])  # stopped at the first epoch at goal
    loss = points_named(points, "train/loss")
    assert len(loss) == results[0].steps // 5
    assert loss[-1]["value"] < loss[0]["value"]  # it learned
    assert points_named(points, "train/samples_per_s")
    assert points_named(points, "val/loss")
    assert points_named(points, "progress")[-1]["value"] == 1.0
    assert outcomes[1].value["points"] == []  # rank 1 reports nothing


def test_digits_stop_request_ends_all_ranks_together(tmp_path: Path) -> None:
    params = {"task": "digits-mlp", "stop_after_s": 0.0, "goal_value": 0.999}
    outcomes = run_ranks("task", 2, tmp_path, params, timeout_s=120)
    for outcome in outcomes:
        assert outcome.returncode == 0, outcome.stderr
        result = outcome.value["result"]
        assert result["goal_reached"] is False
        assert result["steps"] == 5  # the first train/loss all-reduce carried the stop
        assert result["time_to_goal_s"] is None


def test_digits_runs_without_a_process_group() -> None:
    """A single process without torch.distributed (debugging) is a job of one."""
    task = get_task("digits-mlp")
    points: list[tuple[str, float]] = []
    ctx = TaskContext(
        rank=0,
        world_size=1,
        device=torch.device("cpu"),
        seed=1,
        goal_kind="light",
        goal_value=0.90,
        tracker=Tracker(),
        log=lambda name, value, **kw: points.append((name, value)),
        data_dir=tempfile.gettempdir(),
    )
    result = task().run(ctx, task.config_from({"epochs": 5}))
    assert result.goal_reached is True
    assert result.final_value is not None and result.final_value >= 0.90
    assert ("val/accuracy", result.final_value) in points
