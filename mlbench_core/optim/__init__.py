"""Distributed optimizers: communication strategies (aggregators) and learning-rate schedules.

A task's training loop::

    aggregator = make_aggregator(name, settings, rank=rank, world_size=world_size)
    model = aggregator.wrap(model)                   # once, before building the optimizer
    optimizer = torch.optim.SGD(model.parameters(), lr=...)
    scheduler = make_scheduler("linear-warmup", optimizer, {"scale": world_size, ...})
    for each step:
        aggregator.begin_step()
        loss = loss_fn(model(x), y); loss.backward()
        aggregator.after_backward(model)             # communication phase
        optimizer.step()
        aggregator.after_step(model)                 # communication phase
        scheduler.step()
        aggregator.last_step_bytes                   # bytes this rank sent in this step
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from mlbench_core.optim.allreduce import AllReduce, ModelAverage
from mlbench_core.optim.base import Aggregator, AggregatorConfig
from mlbench_core.optim.ddp import DDP
from mlbench_core.optim.gossip import Gossip
from mlbench_core.optim.local_sgd import LocalSGD
from mlbench_core.optim.powersgd import PowerSGD
from mlbench_core.optim.schedulers import SCHEDULERS, WarmupReduceLROnPlateau
from mlbench_core.optim.signsgd import SignSGD
from mlbench_core.optim.sparsify import RandomK, TopK

__all__ = [
    "AGGREGATORS",
    "SCHEDULERS",
    "Aggregator",
    "AggregatorConfig",
    "WarmupReduceLROnPlateau",
    "make_aggregator",
    "make_scheduler",
    "validate_settings",
]

AGGREGATORS: dict[str, type[Aggregator]] = {
    cls.name: cls
    for cls in (AllReduce, ModelAverage, DDP, PowerSGD, SignSGD, TopK, RandomK, Gossip, LocalSGD)
}
"""Aggregator name (as used in run specs) -> class."""


def _describe(error: Mapping[str, Any], model: type[BaseModel]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(settings)"
    if error["type"] == "extra_forbidden":
        known = ", ".join(model.model_fields) or "none"
        return f"unknown setting {key!r} (known: {known})"
    if error["type"] == "missing":
        return f"setting {key!r} is required"
    return f"setting {key!r}: {error['msg']} (got {error['input']!r})"


def validate_settings(kind: str, name: str, model: type[BaseModel], settings: Any) -> BaseModel:
    """``model`` validated from ``settings``; any problem is one ``ValueError`` line naming
    the ``kind`` (aggregator / scheduler), its ``name`` and every offending key."""
    if not isinstance(settings, Mapping):
        raise ValueError(
            f"{kind} {name!r}: settings must be a mapping, got {type(settings).__name__}"
        )
    try:
        return model.model_validate(dict(settings))
    except ValidationError as exc:
        problems = "; ".join(_describe(e, model) for e in exc.errors(include_url=False))
        raise ValueError(f"{kind} {name!r}: {problems}") from None


def make_aggregator(
    name: str, settings: Mapping[str, Any], *, rank: int, world_size: int
) -> Aggregator:
    """The aggregator ``name`` configured by ``settings`` for this rank of the job.

    Unknown names, unknown keys and bad values raise ``ValueError`` with one readable line.
    """
    cls = AGGREGATORS.get(name)
    if cls is None:
        raise ValueError(f"unknown aggregator {name!r} (known: {', '.join(AGGREGATORS)})")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"aggregator {name!r}: rank {rank} is not in a world of {world_size}")
    config = validate_settings("aggregator", name, cls.Config, settings)
    assert isinstance(config, AggregatorConfig)
    try:
        return cls(config, rank=rank, world_size=world_size)
    except ValueError as exc:  # settings valid alone but not for this job (torus shape)
        raise ValueError(f"aggregator {name!r}: {exc}") from None


def make_scheduler(name: str, optimizer: Optimizer, settings: Mapping[str, Any]) -> LRScheduler:
    """The learning-rate scheduler ``name`` on ``optimizer``, configured by ``settings``.

    Call its ``step()`` after every optimizer step; ``plateau-warmup`` also takes
    ``step(metric)`` after each evaluation.
    """
    entry = SCHEDULERS.get(name)
    if entry is None:
        raise ValueError(f"unknown scheduler {name!r} (known: {', '.join(SCHEDULERS)})")
    model, build = entry
    return build(optimizer, validate_settings("scheduler", name, model, settings))
