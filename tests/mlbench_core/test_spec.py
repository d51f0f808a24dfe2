"""RunSpec validation against the task catalog, and CLI override parsing."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mlbench_core.spec import Backend, GoalKind, RunSpec, parse_override
from mlbench_core.tasks import all_tasks, get_task


def spec(**fields: Any) -> RunSpec:
    data: dict[str, Any] = {"name": "run-1", "benchmark": "digits-mlp"}
    data.update(fields)
    return RunSpec.model_validate(data)


def error_text(**fields: Any) -> str:
    with pytest.raises(ValidationError) as info:
        spec(**fields)
    return str(info.value)


def test_defaults() -> None:
    s = spec()
    assert s.workers == 2
    assert s.backend is Backend.gloo
    assert s.goal.kind is GoalKind.full
    assert s.resources.memory == "2Gi"
    assert s.goal_value() == 0.96


def test_json_round_trip() -> None:
    s = spec(overrides={"lr": 0.2, "epochs": 5}, goal={"kind": "light"}, seed=3)
    again = RunSpec.model_validate_json(s.model_dump_json())
    assert again == s
    assert again.goal_value() == 0.90


def test_unknown_benchmark_lists_the_known_ones() -> None:
    text = error_text(benchmark="imagenet-9000")
    assert "unknown benchmark 'imagenet-9000'" in text
    assert "allreduce" in text and "digits-mlp" in text


def test_unknown_override_names_the_key_and_the_settings() -> None:
    text = error_text(overrides={"learning_rate": 0.1})
    assert "'learning_rate' not a setting of 'digits-mlp'" in text
    assert "lr" in text


def test_bad_override_value_type() -> None:
    text = error_text(overrides={"lr": "fast"})
    assert "setting 'lr'" in text
    text = error_text(overrides={"epochs": 0})
    assert "setting 'epochs'" in text


def test_override_of_the_allreduce_task() -> None:
    assert spec(benchmark="allreduce", overrides={"max_elements": 1024}).goal_value() is None
    text = error_text(benchmark="allreduce", overrides={"max_elements": 2**27})
    assert "max_elements" in text


@pytest.mark.parametrize("name", ["Bad", "under_score", "-lead", "trail-", "", "a" * 41, "a.b"])
def test_bad_names(name: str) -> None:
    assert "name" in error_text(name=name)


@pytest.mark.parametrize("name", ["a", "run-1", "x9", "a" * 40])
def test_good_names(name: str) -> None:
    assert spec(name=name).name == name


def test_custom_goal_needs_a_value() -> None:
    assert "goal kind 'custom' needs a value" in error_text(goal={"kind": "custom"})
    assert spec(goal={"kind": "custom", "value": 0.5}).goal_value() == 0.5


def test_full_goal_takes_no_value() -> None:
    assert "takes no value" in error_text(goal={"kind": "full", "value": 0.5})


def test_custom_goal_on_a_task_without_goal() -> None:
    text = error_text(benchmark="allreduce", goal={"kind": "custom", "value": 1.0})
    assert "has no quality goal" in text


def test_nccl_needs_a_gpu() -> None:
    assert "needs resources.gpu >= 1" in error_text(backend="nccl")
    assert spec(backend="nccl", resources={"gpu": 1}).backend is Backend.nccl


@pytest.mark.parametrize("memory", ["512Mi", "4Gi", "1.5Gi", "1000", "2G"])
def test_memory_quantity_ok(memory: str) -> None:
    assert spec(resources={"memory": memory}).resources.memory == memory


@pytest.mark.parametrize("memory", ["4GB", "lots", "-1Gi", "1.Gi", ""])
def test_memory_quantity_bad(memory: str) -> None:
    assert "is not a quantity" in error_text(resources={"memory": memory})


def test_extra_fields_are_refused() -> None:
    assert "extra" in error_text(colour="blue").lower()
    assert "extra" in error_text(resources={"tpu": 1}).lower()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lr=0.1", ("lr", 0.1)),
        ("epochs=3", ("epochs", 3)),
        ("flag=true", ("flag", True)),
        ("flag=False", ("flag", False)),
        ("name=abc", ("name", "abc")),
        (" key = 2 ", ("key", 2)),
        ("expr=a=b", ("expr", "a=b")),
        ("empty=", ("empty", "")),
        ("big=1e3", ("big", 1000.0)),
    ],
)
def test_parse_override(text: str, expected: tuple[str, Any]) -> None:
    key, value = parse_override(text)
    assert (key, value) == expected
    assert type(value) is type(expected[1])


@pytest.mark.parametrize("text", ["novalue", "=3", "  =x"])
def test_parse_override_errors(text: str) -> None:
    with pytest.raises(ValueError, match="key=value"):
        parse_override(text)


def test_every_setting_of_every_task_is_described() -> None:
    for task in all_tasks():
        assert task.Config.model_config.get("extra") == "forbid", task.id
        for name, field in task.Config.model_fields.items():
            assert field.description, f"{task.id}.{name} has no description"
        entry = task.describe()
        assert entry["id"] == task.id
        assert set(entry["settings"]["properties"]) == set(task.Config.model_fields)


def test_catalog_ids() -> None:
    assert [t.id for t in all_tasks()] == ["1a", "2a", "3a", "4b", "allreduce", "digits-mlp"]
    assert get_task("digits-mlp").goal is not None
    assert get_task("allreduce").goal is None
