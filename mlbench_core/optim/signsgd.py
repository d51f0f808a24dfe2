"""signSGD with majority vote (Bernstein, Wang, Azizzadenesheli and Anandkumar, ICLR 2019).

Each rank sends only the sign of its gradient (or, with ``momentum`` > 0, the sign of its local
momentum: "Signum"); the update direction is the sign of the sum of the signs, the majority
vote. The optimizer then applies ``.grad`` = the vote in {-1, 0, +1} (0 where a vote is tied), so
plain ``torch.optim.SGD`` without momentum is the paper's update; its ``lr`` is the step size.

Wire format: the signs are packed 1 bit per element (bit 1 = non-negative, so a zero gradient
counts as +1) into one uint8 vector and exchanged with ``all_gather``. Bytes counted per step =
ceil(number of gradient elements / 8), the packed message this rank sends; those are the bits
actually needed, not an int8 or float32 upper bound.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.distributed as dist
from pydantic import Field
from torch import nn

from mlbench_core.optim._tensors import flatten, grads_of, unflatten_into
from mlbench_core.optim.base import Aggregator, AggregatorConfig

# Bit j of a packed byte (most significant first) holds element 8*i + j.
_BIT_VALUES = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)
_SHIFTS = torch.arange(7, -1, -1, dtype=torch.uint8)


def pack_signs(values: torch.Tensor) -> torch.Tensor:
    """uint8 vector of ceil(n/8) bytes: bit set where ``values`` >= 0."""
    bits = (values.reshape(-1) >= 0).to(torch.uint8)
    pad = (-bits.numel()) % 8
    if pad:
        bits = torch.cat([bits, bits.new_zeros(pad)])
    weights = _BIT_VALUES.to(bits.device)
    # At most 255 per byte: the sum of distinct powers of two fits uint8 exactly.
    return (bits.view(-1, 8) * weights).sum(dim=1, dtype=torch.uint8)


def unpack_signs(packed: torch.Tensor, n: int) -> torch.Tensor:
    """int8 vector of ``n`` values in {-1, +1}, the inverse of ``pack_signs``."""
    bits = (packed.unsqueeze(1) >> _SHIFTS.to(packed.device)) & 1
    return bits.reshape(-1)[:n].to(torch.int8) * 2 - 1


class SignSGDConfig(AggregatorConfig):
    """Settings of signSGD / Signum with majority vote."""

    momentum: float = Field(
        0.0,
        ge=0,
        lt=1,
        description=(
            "beta of the local momentum m = beta*m + (1-beta)*g whose sign is sent (Signum); "
            "0 sends the sign of the gradient itself (signSGD). Use an optimizer without "
            "momentum on top."
        ),
    )


class SignSGD(Aggregator):
    """Majority vote over 1-bit gradient signs; ``.grad`` becomes the vote in {-1, 0, +1}."""

    name: ClassVar[str] = "signsgd"
    Config: ClassVar[type[AggregatorConfig]] = SignSGDConfig

    def __init__(self, config: AggregatorConfig, *, rank: int, world_size: int) -> None:
        super().__init__(config, rank=rank, world_size=world_size)
        assert isinstance(config, SignSGDConfig)
        self.momentum = config.momentum
        self.buffer: torch.Tensor | None = None
        """Local momentum (Signum); None for plain signSGD."""

    def after_backward(self, model: nn.Module) -> None:
        grads = grads_of(model)
        if not grads:
            return
        with torch.no_grad():
            direction = flatten(grads)
            if self.momentum:
                if self.buffer is None:
                    self.buffer = torch.zeros_like(direction)
                self.buffer.mul_(self.momentum).add_(direction, alpha=1 - self.momentum)
                direction = self.buffer
            packed = pack_signs(direction)
            n = direction.numel()
            if self.world_size > 1:
                self.count(packed)
                gathered = [torch.empty_like(packed) for _ in range(self.world_size)]
                dist.all_gather(gathered, packed)
            else:
                gathered = [packed]
            # int32 sum: no overflow for any realistic number of ranks.
            votes = torch.zeros(n, dtype=torch.int32, device=direction.device)
            for message in gathered:
                votes += unpack_signs(message, n)
            unflatten_into(votes.sign().to(direction.dtype), grads)
