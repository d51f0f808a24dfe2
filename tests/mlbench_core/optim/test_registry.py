"""The aggregator registry: names, validated settings and behaviour in a job of one."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from pydantic import BaseModel

from mlbench_core.optim import AGGREGATORS, SCHEDULERS, make_aggregator

NAMES = [
    "allreduce",
    "model-average",
    "ddp",
    "powersgd",
    "signsgd",
    "topk",
    "randomk",
    "gossip",
    "local-sgd",
]


def test_registry_names() -> None:
    assert sorted(AGGREGATORS) == sorted(NAMES)
    for name, cls in AGGREGATORS.items():
        assert cls.name == name


SETTINGS_MODELS: list[type[BaseModel]] = [cls.Config for cls in AGGREGATORS.values()] + [
    model for model, _ in SCHEDULERS.values()
]


@pytest.mark.parametrize("model", SETTINGS_MODELS, ids=lambda m: m.__name__)
def test_every_setting_is_described_and_unknown_keys_are_refused(model: type[BaseModel]) -> None:
    assert model.model_config.get("extra") == "forbid"
    assert model.__doc__
    for field_name, field in model.model_fields.items():
        assert field.description and len(field.description) > 10, field_name


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("allreduce-sgd", {}, "unknown aggregator 'allreduce-sgd' (known: allreduce, "),
        ("powersgd", {"rnk": 2}, "aggregator 'powersgd': unknown setting 'rnk' (known: rank, "),
        ("powersgd", {"rank": 0}, "aggregator 'powersgd': setting 'rank': Input should be"),
        ("allreduce", {"bucket_mb": "big"}, "aggregator 'allreduce': setting 'bucket_mb': "),
        ("topk", {"ratio": 1.5}, "aggregator 'topk': setting 'ratio': Input should be less"),
        ("signsgd", {"momentum": 1}, "aggregator 'signsgd': setting 'momentum': Input should"),
        ("gossip", {"topology": "star"}, "setting 'topology': Input should be 'ring', 'torus'"),
        ("gossip", {"topology": "torus", "torus_rows": 3}, "torus_rows=3 does not divide"),
        ("local-sgd", {"local_steps": 0}, "aggregator 'local-sgd': setting 'local_steps'"),
        ("ddp", ["bucket_mb"], "aggregator 'ddp': settings must be a mapping, got list"),
    ],
)
def test_make_aggregator_errors_are_one_readable_line(
    name: str, settings: Any, message: str
) -> None:
    with pytest.raises(ValueError) as info:
        make_aggregator(name, settings, rank=0, world_size=4)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_make_aggregator_checks_the_rank() -> None:
    with pytest.raises(ValueError, match="rank 2 is not in a world of 2"):
        make_aggregator("allreduce", {}, rank=2, world_size=2)


def test_make_aggregator_applies_settings() -> None:
    aggregator = make_aggregator("powersgd", {"rank": 4, "warm_start": False}, rank=1, world_size=3)
    assert aggregator.config.model_dump() == {
        "rank": 4,
        "warm_start": False,
        "error_feedback": True,
        "seed": 0,
    }
    assert (aggregator.rank, aggregator.world_size) == (1, 3)


@pytest.mark.parametrize("name", NAMES)
def test_every_aggregator_runs_as_a_job_of_one(name: str) -> None:
    """Without a process group (a debugging session) every aggregator trains and sends nothing."""
    torch.manual_seed(0)
    aggregator = make_aggregator(name, {}, rank=0, world_size=1)
    model = aggregator.wrap(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    losses = []
    for _ in range(30):
        aggregator.begin_step()
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        aggregator.after_backward(model)
        opt.step()
        aggregator.after_step(model)
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    assert aggregator.bytes_sent == 0 and aggregator.last_step_bytes == 0
