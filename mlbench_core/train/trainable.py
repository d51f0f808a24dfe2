"""What a task hands to the generic training loop: model, optimizer, data and evaluation."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn


@dataclass
class StepLoss:
    """The loss of one training step on this rank."""

    loss: torch.Tensor
    """Scalar to back-propagate (the mean over the batch, regularisers included)."""
    samples: int
    """Samples in this rank's batch (images, documents, sentence pairs)."""
    tokens: int = 0
    """Tokens in the batch for sequence tasks (0 otherwise); logged as train/tokens_per_s."""


class Schedule(Protocol):
    """Learning-rate schedule as the loop drives it."""

    def step(self) -> None:
        """Called after every optimizer step."""

    def after_eval(self, value: float) -> None:
        """Called with the goal metric after every evaluation (reduce-on-plateau uses it)."""


class Trainable(ABC):
    """One task's parts. The loop owns the step order, timing, logging, evaluation schedule,
    goal check and stopping; a Trainable only says how to get batches, compute a loss and
    evaluate.
    """

    model: nn.Module
    """The replica on this rank (unwrapped)."""
    optimizer: torch.optim.Optimizer
    steps_per_epoch: int
    """Steps in one epoch; the same on every rank (collectives need every rank at every step)."""

    @abstractmethod
    def batches(self, epoch: int) -> Iterator[Any]:
        """This rank's batches of ``epoch``, on the CPU; at least ``steps_per_epoch`` of them."""

    def to_device(self, batch: Any, device: torch.device) -> Any:
        """Move a batch to the compute device (timed as the data phase)."""
        if isinstance(batch, torch.Tensor):
            return batch.to(device, non_blocking=True)
        if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a NamedTuple
            return type(batch)(*(self.to_device(item, device) for item in batch))
        if isinstance(batch, tuple | list):
            return type(batch)(self.to_device(item, device) for item in batch)
        return batch

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any) -> StepLoss:
        """Forward pass of ``model`` (possibly wrapped by the aggregator) on one batch."""

    def before_optimizer(self) -> None:  # noqa: B027 - optional hook
        """After gradient aggregation, before ``optimizer.step()`` (gradient clipping)."""

    def after_optimizer(self) -> None:  # noqa: B027 - optional hook
        """Right after ``optimizer.step()`` (undo a per-batch lr change)."""

    @abstractmethod
    def evaluate(self) -> dict[str, float]:
        """Metrics over the whole validation set, the same value on every rank.

        Names are full metric names (``val/accuracy``); the goal metric must be among them.
        """
