"""The launcher WorkflowTemplates: one per benchmark, parameters = RunSpec fields."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlbench_core.spec import RunSpec
from mlbench_core.tasks import all_tasks, get_task
from tests.workflows.argo_checks import semantic_errors, templates
from workflows import names
from workflows.render import as_dict
from workflows.templates import DEFAULT_MASTER_URL, build_template, template_name

PARAMETERS = [
    "name",
    "workers",
    "backend",
    "cpu",
    "memory",
    "gpu",
    "goal",
    "goal-value",
    "seed",
    "overrides",
    "image",
    "max-duration-s",
    "master-url",
]


def _params(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in template["spec"]["arguments"]["parameters"]}


def test_argo_would_accept_it(template_dict: dict[str, Any]) -> None:
    assert semantic_errors(template_dict) == []


def test_one_template_per_benchmark_with_a_dns_name() -> None:
    for task in all_tasks():
        template = as_dict(build_template(task.id))
        assert template["metadata"]["name"] == template_name(task.id) == f"mlbench-{task.id}"
        assert template["metadata"]["labels"]["mlbench.io/benchmark"] == task.id


def test_parameters_are_the_runspec_fields(template_dict: dict[str, Any]) -> None:
    params = _params(template_dict)
    assert list(params) == PARAMETERS
    assert all(p.get("description") for p in params.values())
    assert params["backend"]["enum"] == ["gloo", "nccl"]
    assert params["master-url"]["value"] == DEFAULT_MASTER_URL
    for name, param in params.items():
        if "enum" in param:
            assert param["value"] in param["enum"], name


def test_goal_choices_follow_the_task() -> None:
    assert _params(as_dict(build_template("1a")))["goal"]["enum"] == ["full", "light", "custom"]
    assert get_task("allreduce").goal is None
    assert _params(as_dict(build_template("allreduce")))["goal"]["enum"] == ["full", "light"]


def test_defaults_make_a_valid_runspec(template_dict: dict[str, Any]) -> None:
    """What the submit step does with the defaults must pass the master's validation."""
    values = {name: p["value"] for name, p in _params(template_dict).items()}
    benchmark = template_dict["metadata"]["labels"]["mlbench.io/benchmark"]
    RunSpec(
        name=values["name"],
        benchmark=benchmark,
        workers=int(values["workers"]),
        backend=values["backend"],
        resources={
            "cpu": float(values["cpu"]),
            "memory": values["memory"],
            "gpu": int(values["gpu"]),
        },
        goal={
            "kind": values["goal"],
            "value": float(values["goal-value"]) if values["goal-value"] else None,
        },
        seed=int(values["seed"]),
        overrides=json.loads(values["overrides"]),
        image=values["image"],
        max_duration_s=int(values["max-duration-s"]),
        executor="argo",
    )


def test_submit_then_follow(template_dict: dict[str, Any]) -> None:
    by_name = templates(template_dict)
    assert template_dict["spec"]["entrypoint"] == "launch"
    assert [[s["name"] for s in group] for group in by_name["launch"]["steps"]] == [
        ["submit"],
        ["follow"],
    ]
    benchmark = template_dict["metadata"]["labels"]["mlbench.io/benchmark"]
    submit = by_name["submit"]["container"]
    assert submit["command"] == ["python", "-m", "workflows.steps"]
    args = submit["args"]
    assert args[:5] == [
        "submit",
        "--api-url",
        "{{workflow.parameters.master-url}}",
        "--benchmark",
        benchmark,
    ]
    for name in PARAMETERS[:-1]:
        i = args.index(f"--{name}")
        assert args[i + 1] == f"{{{{workflow.parameters.{name}}}}}"
    assert args[-2:] == ["--output", "/tmp/run-id"]
    (output,) = by_name["submit"]["outputs"]["parameters"]
    assert output["name"] == "run-id" and output["valueFrom"] == {"path": "/tmp/run-id"}
    assert "retryStrategy" not in by_name["submit"]  # a retried submit could start 2 runs
    follow = by_name["follow"]["container"]
    assert follow["args"] == [
        "follow",
        "--api-url",
        "{{workflow.parameters.master-url}}",
        "--run-id",
        "{{steps.submit.outputs.parameters.run-id}}",
    ]
    for container in (submit, follow):
        (env,) = container["env"]
        assert env["name"] == "MLBENCH_ADMIN_TOKEN"
        assert env["valueFrom"]["secretKeyRef"] == {"name": names.ADMIN_SECRET, "key": "token"}


def test_unknown_benchmark_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown benchmark 'nope'"):
        build_template("nope")


def test_template_names_must_be_dns_labels() -> None:
    with pytest.raises(ValueError, match="no valid template name"):
        template_name("has_underscore")
