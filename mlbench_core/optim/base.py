"""The communication side of a data-parallel step, kept apart from the update rule.

A training step calls, in this order (the training loop times each call as the tracker's
``communication`` phase)::

    loss.backward()
    aggregator.after_backward(model)   # gradient aggregators: make .grad the global update
    optimizer.step()
    aggregator.after_step(model)       # model aggregators: average / gossip / local-SGD sync

so any aggregator works with any ``torch.optim`` optimizer where that makes sense.

Byte counts are the payload this rank hands to the wire per training step. The one-off
broadcast of rank 0's initial model in ``wrap`` is not a training step and is not counted.
"""

from __future__ import annotations

from abc import ABC
from typing import ClassVar

import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict
from torch import nn


class AggregatorConfig(BaseModel):
    """Settings shared by every aggregator; subclasses add their own, each described."""

    model_config = ConfigDict(extra="forbid")


class Aggregator(ABC):
    """Base of all-reduce SGD, DDP, PowerSGD, signSGD, sparsified SGD, gossip and local SGD."""

    name: ClassVar[str]
    Config: ClassVar[type[AggregatorConfig]] = AggregatorConfig

    def __init__(self, config: AggregatorConfig, *, rank: int, world_size: int) -> None:
        self.config = config
        self.rank = rank
        self.world_size = world_size
        self.bytes_sent = 0
        """Payload bytes this rank handed to collectives / point-to-point sends, cumulative."""
        self.last_step_bytes = 0
        """Payload bytes of the last step (after_backward + after_step)."""

    def wrap(self, model: nn.Module) -> nn.Module:
        """Called once before training; DDP returns its wrapper, the others the model itself.

        Every rank starts from rank 0's parameters and buffers (as DDP does), so replicas that
        were initialised with different seeds still train one model.
        """
        if self.world_size > 1 and dist.is_available() and dist.is_initialized():
            with torch.no_grad():
                for tensor in [*model.parameters(), *model.buffers()]:
                    dist.broadcast(tensor.data, src=0)
        return model

    def begin_step(self) -> None:
        """Called at the start of every step (resets the per-step byte count)."""
        self.last_step_bytes = 0

    def after_backward(self, model: nn.Module) -> None:  # noqa: B027 - optional hook
        """Gradient aggregation: replace every ``p.grad`` with the synchronised update."""

    def after_step(self, model: nn.Module) -> None:  # noqa: B027 - optional hook
        """Model aggregation after the optimizer step (model averaging, gossip, local SGD)."""

    def count(self, tensor: torch.Tensor) -> None:
        """Record ``tensor`` as sent by this rank."""
        nbytes = tensor.numel() * tensor.element_size()
        self.bytes_sent += nbytes
        self.last_step_bytes += nbytes
