"""The generic training loop in real two-rank gloo jobs: timing, bytes, goal, stop, results."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from mlbench_core import distributed as mdist
from mlbench_core.tasks.base import GoalSpec, TaskContext
from mlbench_core.tracker import Tracker
from mlbench_core.train import (
    LoopSettings,
    StepLoss,
    Trainable,
    TrainConfig,
    TrainingLoop,
    make_communication,
)
from mlbench_core.wire import PHASES, RunResult
from tests.mlbench_core.train.ranks import run_in_ranks

GOAL = GoalSpec(metric="val/score", higher_is_better=True, full=3.0, light=2.0)
FEATURES = 8


def make_context(
    points: list[dict[str, Any]], goal_value: float | None, stop_after_s: float | None
):
    started = time.monotonic()

    def log(name: str, value: float, *, step: int, epoch: float = 0.0) -> None:
        points.append({"name": name, "value": value, "step": step, "epoch": epoch})

    return TaskContext(
        rank=mdist.rank(),
        world_size=mdist.world_size(),
        device=torch.device("cpu"),
        seed=3,
        goal_kind="custom",
        goal_value=goal_value,
        tracker=Tracker(),
        log=log,
        data_dir=tempfile.gettempdir(),
        should_stop=lambda: stop_after_s is not None and time.monotonic() - started > stop_after_s,
    )


class Regression(Trainable):
    """Least squares on a fixed random problem; ``val/score`` counts the evaluations, so the
    step at which a goal of k is met is known exactly (k evaluations)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, rank: int) -> None:
        self.model = model
        self.optimizer = optimizer
        self.steps_per_epoch = 4
        generator = torch.Generator().manual_seed(100 + rank)  # each rank its own shard
        self.x = torch.randn(64, FEATURES, generator=generator)
        self.y = self.x @ torch.arange(1.0, FEATURES + 1)
        self.evaluations = 0

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(4):
            yield self.x[i * 16 : (i + 1) * 16], self.y[i * 16 : (i + 1) * 16]

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> StepLoss:
        x, y = batch
        return StepLoss(((model(x).squeeze(1) - y) ** 2).mean(), samples=len(y))

    def evaluate(self) -> dict[str, float]:
        self.evaluations += 1
        return {"val/score": float(self.evaluations)}


def regression_run(params: dict[str, Any]) -> dict[str, Any]:
    points: list[dict[str, Any]] = []
    ctx = make_context(points, params.get("goal_value"), params.get("stop_after_s"))
    torch.manual_seed(ctx.rank)  # different starts: wrap() must make them equal
    model = nn.Linear(FEATURES, 1)
    config = TrainConfig(aggregator=params.get("aggregator", "allreduce"))
    aggregator, train_model = make_communication(ctx, config, model)
    optimizer = torch.optim.SGD(train_model.parameters(), lr=0.02)
    trainable = Regression(model, optimizer, ctx.rank)
    settings = LoopSettings(epochs=params["epochs"], eval_every_epochs=1.0, log_every=2)
    loop = TrainingLoop(
        ctx,
        trainable,
        train_model=train_model,
        aggregator=aggregator,
        scheduler=None,
        settings=settings,
        goal=GOAL,
    )
    result = loop.run()
    weights = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).tolist()
    return {"result": result.model_dump(mode="json"), "points": points, "weights": weights}


def named(points: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [p for p in points if p["name"] == name]


def test_allreduce_run_times_counts_bytes_and_keeps_replicas_equal(tmp_path: Path) -> None:
    outcomes = run_in_ranks(f"{__name__}:regression_run", 2, tmp_path, {"epochs": 5})
    for outcome in outcomes:
        assert outcome.returncode == 0, outcome.stderr
    rank0, rank1 = (o.value for o in outcomes)
    result = RunResult.model_validate(rank0["result"])
    assert result.steps == 20 and result.epochs == 5.0
    phases = result.phases.model_dump()
    assert set(phases) == set(PHASES)
    assert all(phases[p] > 0 for p in ("data", "forward", "backward", "communication"))
    assert sum(phases.values()) <= result.total_time_s
    # allreduce sends the flat gradient (8 weights + 1 bias, float32) once per step and rank.
    assert result.bytes_communicated == 9 * 4 * 20 * 2
    assert result.extra["bytes_per_step"] == 9 * 4 * 2
    assert result.samples_per_s > 0
    assert result.goal_reached is False  # no goal value given
    assert result.best_value == 5.0 and result.final_value == 5.0
    assert rank0["weights"] == rank1["weights"]  # one model, trained on two shards
    points = rank0["points"]
    loss = named(points, "train/loss")
    assert [p["step"] for p in loss] == list(range(2, 21, 2))
    assert loss[-1]["value"] < loss[0]["value"] / 2
    assert {p["value"] for p in named(points, "train/lr")} == {0.02}
    assert {p["value"] for p in named(points, "train/bytes_per_step")} == {72.0}
    assert [p["value"] for p in named(points, "val/score")] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert named(points, "progress")[-1]["value"] == 1.0
    assert rank1["points"] == []  # only rank 0 reports


def test_goal_detection_stops_training_at_the_first_evaluation_that_meets_it(
    tmp_path: Path,
) -> None:
    outcomes = run_in_ranks(
        f"{__name__}:regression_run", 2, tmp_path, {"epochs": 50, "goal_value": 3.0}
    )
    for outcome in outcomes:
        assert outcome.returncode == 0, outcome.stderr
        result = RunResult.model_validate(outcome.value["result"])
        assert result.goal_reached is True
        assert result.steps == 12  # three evaluations, one per 4-step epoch
        assert result.epochs_to_goal == 3.0
        assert result.best_value == 3.0 and result.final_value == 3.0
        assert result.extra["goal_step"] == 12
        assert result.time_to_goal_s is not None
        assert 0 < result.time_to_goal_s <= result.total_time_s
    progress = named(outcomes[0].value["points"], "progress")
    assert progress[-1]["value"] == 1.0


@pytest.mark.parametrize("aggregator", ["model-average", "ddp"])
def test_bytes_are_counted_for_other_aggregators(tmp_path: Path, aggregator: str) -> None:
    params = {"epochs": 2, "aggregator": aggregator}
    outcomes = run_in_ranks(f"{__name__}:regression_run", 2, tmp_path, params)
    for outcome in outcomes:
        assert outcome.returncode == 0, outcome.stderr
    result = RunResult.model_validate(outcomes[0].value["result"])
    assert result.extra["aggregator"] == aggregator
    assert result.bytes_communicated > 0
    assert outcomes[0].value["weights"] == outcomes[1].value["weights"]


def test_a_stop_request_ends_all_ranks_at_the_same_step(tmp_path: Path) -> None:
    params = {"epochs": 1000, "goal_value": 10_000.0, "stop_after_s": 0.0}
    outcomes = run_in_ranks(f"{__name__}:regression_run", 2, tmp_path, params)
    steps = []
    for outcome in outcomes:
        assert outcome.returncode == 0, outcome.stderr
        result = outcome.value["result"]
        assert result["goal_reached"] is False
        steps.append(result["steps"])
    assert steps == [2, 2]  # the first logging all-reduce carried the stop


def test_a_job_of_one_needs_no_process_group() -> None:
    result = RunResult.model_validate(regression_run({"epochs": 2, "goal_value": 2.0})["result"])
    assert result.goal_reached is True and result.steps == 8
    assert result.bytes_communicated == 0  # nothing to average with


def test_the_loop_refuses_data_that_runs_out() -> None:
    points: list[dict[str, Any]] = []
    ctx = make_context(points, None, None)
    model = nn.Linear(FEATURES, 1)
    aggregator, train_model = make_communication(ctx, TrainConfig(), model)
    trainable = Regression(model, torch.optim.SGD(model.parameters(), lr=0.1), 0)
    trainable.steps_per_epoch = 5  # promises one batch more than it yields
    loop = TrainingLoop(
        ctx,
        trainable,
        train_model=train_model,
        aggregator=aggregator,
        scheduler=None,
        settings=LoopSettings(epochs=1, eval_every_epochs=1.0, log_every=1),
        goal=GOAL,
    )
    with pytest.raises(RuntimeError, match="the data ran out after step 4"):
        loop.run()
    assert loop.step == 4
