"""One WorkflowTemplate per benchmark: a launcher for the Argo UI and ``argo submit``.

The launcher does not run the workers itself. Its ``submit`` step posts a RunSpec to the
master, which creates the run (with its token and Secret) and submits the real per-run
Workflow (:mod:`workflows.run_workflow`) through its Argo executor; ``follow`` then waits for
the run to end. So every run, however started, exists in the master and shows in the
dashboard, and the per-run Workflow is only ever built from a validated RunSpec.
"""

from __future__ import annotations

import re

from hera.workflows import WorkflowTemplate
from hera.workflows import models as m

from mlbench_core.spec import Backend, GoalKind, Resources, RunSpec
from mlbench_core.tasks import get_task
from workflows import names
from workflows.config import ClusterConfig
from workflows.run_workflow import (
    STEPS_MODULE,
    retry_on_error,
    step,
    step_pod_security_context,
    step_resources,
    step_security_context,
)

DEFAULT_MASTER_URL = "http://mlbench-master:8000"
"""The master's Service in the launcher's own namespace (charts install it so)."""
RUN_ID_FILE = "/tmp/run-id"
LAUNCHER_DEADLINE_S = 7 * 24 * 3600 + 2 * 3600
"""RunSpec's longest max_duration_s plus queueing and setup: a bound, not a schedule."""
TEMPLATE_PREFIX = "mlbench-"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def template_name(benchmark_id: str) -> str:
    """``mlbench-<id>``; raises ValueError when that is no DNS-1123 label."""
    name = f"{TEMPLATE_PREFIX}{benchmark_id.lower()}"
    if len(name) > 63 or not _DNS_LABEL.match(name):
        raise ValueError(f"benchmark id {benchmark_id!r} gives no valid template name {name!r}")
    return name


def _param(name: str, value: str, description: str, enum: list[str] | None = None) -> m.Parameter:
    return m.Parameter(name=name, value=value, description=description, enum=enum)


def _fmt(number: float) -> str:
    """``1.0`` -> ``1``: the form a user would type, and what the submit step parses."""
    return f"{number:g}"


def launcher_parameters(benchmark_id: str, image: str, master_url: str) -> list[m.Parameter]:
    """The RunSpec fields a user may set when submitting, with the RunSpec's defaults."""
    task = get_task(benchmark_id)
    fields = RunSpec.model_fields
    res = Resources.model_fields
    goals = [kind.value for kind in GoalKind if kind is not GoalKind.custom or task.goal]
    goal_text = (
        f"{task.goal.metric} {task.goal.full:g} (full) / {task.goal.light:g} (light)"
        if task.goal
        else "no quality goal: full/light pick the measurement size"
    )
    return [
        _param(
            "name",
            f"{benchmark_id.lower()}-argo",
            "Run name (DNS label, at most 40 characters); one live run per name.",
        ),
        _param("workers", str(fields["workers"].default), "Number of workers (world size)."),
        _param(
            "backend",
            Backend(fields["backend"].default).value,
            "torch.distributed backend (nccl needs gpu >= 1).",
            [b.value for b in Backend],
        ),
        _param("cpu", _fmt(res["cpu"].default), "CPU cores per worker."),
        _param("memory", res["memory"].default, "Memory per worker, e.g. 4Gi."),
        _param("gpu", str(res["gpu"].default), "GPUs per worker (nvidia.com/gpu)."),
        _param("goal", GoalKind.full.value, f"Goal: {goal_text}.", goals),
        _param("goal-value", "", "Target value for goal=custom; empty otherwise."),
        _param("seed", str(fields["seed"].default), "Random seed shared by all workers."),
        _param("overrides", "{}", 'Setting overrides as a JSON object, e.g. {"lr": 0.1}.'),
        _param("image", image, "Worker image (also runs the submit and follow steps)."),
        _param(
            "max-duration-s",
            str(fields["max_duration_s"].default),
            "Hard wall-clock limit of the run in seconds.",
        ),
        _param("master-url", master_url, "URL of the mlbench master as pods reach it."),
    ]


def _wp(name: str) -> str:
    return f"{{{{workflow.parameters.{name}}}}}"


def _launcher_container(args: list[str], pull_policy: str) -> m.Container:
    admin = m.EnvVar(
        name="MLBENCH_ADMIN_TOKEN",
        value_from=m.EnvVarSource(
            secret_key_ref=m.SecretKeySelector(name=names.ADMIN_SECRET, key=names.TOKEN_KEY)
        ),
    )
    return m.Container(
        name="main",
        image=_wp("image"),
        image_pull_policy=pull_policy,
        command=list(STEPS_MODULE),
        args=args,
        env=[admin],
        resources=step_resources(),
        security_context=step_security_context(),
    )


def build_template(
    benchmark_id: str,
    *,
    image: str | None = None,
    master_url: str = DEFAULT_MASTER_URL,
    cluster: ClusterConfig | None = None,
) -> WorkflowTemplate:
    """The launcher WorkflowTemplate of one benchmark; ValueError for an unknown id."""
    get_task(benchmark_id)  # raises ValueError listing the known ids
    cluster = cluster or ClusterConfig()
    image = image or RunSpec.model_fields["image"].default
    pull = cluster.image_pull_policy
    submit_args = ["submit", "--api-url", _wp("master-url"), "--benchmark", benchmark_id]
    for option in (
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
    ):
        submit_args += [f"--{option}", _wp(option)]
    submit_args += ["--output", RUN_ID_FILE]
    follow_args = [
        "follow",
        "--api-url",
        _wp("master-url"),
        "--run-id",
        "{{steps.submit.outputs.parameters.run-id}}",
    ]
    templates = [
        m.Template(
            name="launch",
            steps=[
                m.ParallelSteps([step("submit")]),
                m.ParallelSteps([step("follow")]),
            ],
        ),
        m.Template(
            name="submit",
            container=_launcher_container(submit_args, pull),
            outputs=m.Outputs(
                parameters=[
                    m.Parameter(
                        name="run-id",
                        value_from=m.ValueFrom(path=RUN_ID_FILE),
                        global_name="run-id",
                    )
                ]
            ),
            # No retry: a submit that reached the master must not create a second run.
            security_context=step_pod_security_context(),
        ),
        m.Template(
            name="follow",
            container=_launcher_container(follow_args, pull),
            retry_strategy=retry_on_error(),
            security_context=step_pod_security_context(),
        ),
    ]
    task = get_task(benchmark_id)
    labels = {"app.kubernetes.io/part-of": "mlbench", "mlbench.io/benchmark": benchmark_id}
    istio = {"sidecar.istio.io/inject": "false"}
    return WorkflowTemplate(
        api_version="argoproj.io/v1alpha1",
        kind="WorkflowTemplate",
        name=template_name(benchmark_id),
        namespace=cluster.namespace,
        labels=labels,
        annotations={
            "workflows.argoproj.io/title": f"mlbench {benchmark_id}: {task.title}",
            "workflows.argoproj.io/description": (
                f"Submits one {benchmark_id} run to the mlbench master and follows it; the "
                "master starts the workers in their own Workflow."
            ),
        },
        entrypoint="launch",
        arguments=m.Arguments(parameters=launcher_parameters(benchmark_id, image, master_url)),
        service_account_name=cluster.service_account,
        active_deadline_seconds=LAUNCHER_DEADLINE_S,
        pod_gc=m.PodGC(strategy="OnPodSuccess"),
        ttl_strategy=m.TTLStrategy(
            seconds_after_success=cluster.ttl_after_success_s,
            seconds_after_failure=cluster.ttl_after_failure_s,
        ),
        workflow_metadata=m.WorkflowMetadata(labels=labels),
        pod_metadata=m.Metadata(labels={**labels, **istio}, annotations=istio),
        templates=templates,
    )
