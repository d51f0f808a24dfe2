"""The generic training loop of the reference tasks and what a task plugs into it."""

from __future__ import annotations

from mlbench_core.train.config import PrecisionMixin, TrainConfig
from mlbench_core.train.loop import TrainingLoop, run_training
from mlbench_core.train.setup import (
    LoopSettings,
    data_root,
    make_communication,
    plateau_warmup_scheduler,
    settings_of,
)
from mlbench_core.train.trainable import Schedule, StepLoss, Trainable

__all__ = [
    "LoopSettings",
    "PrecisionMixin",
    "Schedule",
    "StepLoss",
    "TrainConfig",
    "Trainable",
    "TrainingLoop",
    "data_root",
    "make_communication",
    "plateau_warmup_scheduler",
    "run_training",
    "settings_of",
]
