"""Workflows to check: the rendered examples plus the corners (GPUs, no PVC, a custom
cluster, the longest run name with a 10-digit run id)."""

from __future__ import annotations

from typing import Any

import pytest

from mlbench_core.spec import RunSpec
from mlbench_core.tasks import all_tasks
from workflows.config import ClusterConfig, RunTarget
from workflows.render import as_dict, example_spec
from workflows.run_workflow import build_workflow
from workflows.templates import build_template

LONGEST_NAME = "a" * 18 + "-" + "b" * 21  # 40 characters, RunSpec's limit
BIG_RUN_ID = 9_999_999_999
API = "http://mlbench-master.mlbench:8000"
CUSTOM_CLUSTER = ClusterConfig(
    namespace="bench-ns",
    service_account="bench-sa",
    data_pvc=None,
    cluster_domain="corp.example",
    ready_timeout_s=120,
    stop_grace_s=45,
    step_image="registry.example/mlbench-steps:1.0",
    image_pull_policy="Always",
    node_selector={"pool": "training"},
)


def gpu_spec(**extra: Any) -> RunSpec:
    return RunSpec(
        name="gpu-run",
        benchmark="1a",
        workers=4,
        backend="nccl",
        resources={"cpu": 3.5, "memory": "24Gi", "gpu": 2},
        executor="argo",
        **extra,
    )


def _cases() -> dict[str, tuple[RunSpec, RunTarget]]:
    cases = {
        f"example-{task.id}": (example_spec(task.id), RunTarget(1, API)) for task in all_tasks()
    }
    cases["gpu-custom-cluster"] = (gpu_spec(), RunTarget(7, API, CUSTOM_CLUSTER))
    cases["longest-name"] = (
        RunSpec(name=LONGEST_NAME, benchmark="digits-mlp", workers=256, executor="argo"),
        RunTarget(BIG_RUN_ID, API),
    )
    return cases


CASES = _cases()


@pytest.fixture(params=sorted(CASES))
def run_case(request: pytest.FixtureRequest) -> tuple[RunSpec, RunTarget, dict[str, Any]]:
    """(spec, target, the built Workflow as a dict) for every case."""
    spec, target = CASES[request.param]
    return spec, target, as_dict(build_workflow(spec, target))


@pytest.fixture(params=[task.id for task in all_tasks()])
def template_dict(request: pytest.FixtureRequest) -> dict[str, Any]:
    return as_dict(build_template(request.param))
