"""Building blocks a task assembles before it hands over to the training loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from mlbench_core.optim import make_aggregator, make_scheduler
from mlbench_core.optim.base import Aggregator
from mlbench_core.tasks.base import TaskContext
from mlbench_core.train.config import TrainConfig


def data_root(ctx: TaskContext, config: TrainConfig) -> str:
    """Where the task's data sets live: the config's data_root, else the worker's data dir."""
    return config.data_root or ctx.data_dir


def make_communication(
    ctx: TaskContext, config: TrainConfig, model: nn.Module
) -> tuple[Aggregator, nn.Module]:
    """The configured aggregator and the model to train (DDP's wrapper, else ``model``).

    ``wrap`` also starts every rank from rank 0's weights. Build the optimizer afterwards.
    """
    aggregator = make_aggregator(
        config.aggregator,
        config.aggregator_settings,
        rank=ctx.rank,
        world_size=ctx.world_size,
    )
    return aggregator, aggregator.wrap(model)


class PlateauSettings(Protocol):
    """The plateau fields of a task config (some also have ``plateau_threshold``)."""

    plateau_factor: float
    plateau_patience: int


def plateau_warmup_scheduler(
    optimizer: Optimizer,
    config: PlateauSettings,
    *,
    scale: float,
    warmup_steps: int = 0,
    min_lr: float = 0.0,
) -> LRScheduler:
    """``plateau-warmup`` on a loss-like metric (mode min) with the config's plateau settings.

    The lr warms up linearly from its base to base * ``scale`` over ``warmup_steps``, then is
    cut by ``plateau_factor`` after ``plateau_patience`` evaluations without an improvement of
    at least ``plateau_threshold`` (where the config has one; else the scheduler's default),
    never below ``min_lr``.
    """
    settings: dict[str, object] = {
        "scale": scale,
        "warmup_steps": warmup_steps,
        "mode": "min",
        "factor": config.plateau_factor,
        "patience": config.plateau_patience,
        "min_lr": min_lr,
    }
    threshold = getattr(config, "plateau_threshold", None)
    if threshold is not None:
        settings["threshold"] = threshold
    return make_scheduler("plateau-warmup", optimizer, settings)


def settings_of(config: TrainConfig, plateau_metric: str | None = None) -> LoopSettings:
    return LoopSettings(
        epochs=config.epochs,
        eval_every_epochs=config.eval_every_epochs,
        log_every=config.log_every,
        max_steps=config.max_steps,
        precision=str(getattr(config, "precision", "fp32")),
        plateau_metric=plateau_metric,
    )


@dataclass
class LoopSettings:
    """How long to train and how often to log and evaluate."""

    epochs: int
    eval_every_epochs: float
    log_every: int
    max_steps: int = 0
    precision: str = "fp32"
    plateau_metric: str | None = None
    """Metric a reduce-on-plateau scheduler follows (None: the goal metric)."""
