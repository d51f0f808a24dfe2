"""One run = one Argo Workflow, built from a RunSpec by a pure function (no cluster access).

Shape (the shared contract, DESIGN.md "Kubernetes path")::

    run (steps)
      setup       apply-service, apply-statefulset    resource apply, owned by the Workflow
      wait-ready  python -m workflows.steps wait-ready  until all worker pods are Ready
      train       python -m workflows.steps monitor     follows rank 0 and the run's state
    exit-handler (steps, always runs, also after a stop)
      report      python -m workflows.steps report      tells the master how the workflow ended
      delete-statefulset | delete-service | delete-secret   in parallel, --ignore-not-found
"""

from __future__ import annotations

import re

from hera.workflows import Workflow
from hera.workflows import models as m

from mlbench_core.spec import RunSpec
from workflows import manifests, names
from workflows.config import RunTarget

ENTRYPOINT = "run"
EXIT_HANDLER = "exit-handler"
STEPS_MODULE = ["python", "-m", "workflows.steps"]
WAIT_READY_MARGIN_S = 60
"""wait-ready's own deadline past its --timeout-s: it should fail itself, with a clear line."""
TRAIN_MARGIN_S = 300
"""train's deadline past the run's max duration: the master ends an overlong run first."""
WORKFLOW_MARGIN_S = 900
"""Workflow deadline past ready timeout + max duration: setup, report, teardown, retries."""
RETRY_LIMIT = "2"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def check_dns_label(value: str, what: str) -> str:
    """Kubernetes rejects such names only at submission, deep in a step's log: check early."""
    if not _DNS_LABEL.match(value):
        raise ValueError(f"{what} {value!r} is not a DNS-1123 label (a-z, 0-9, '-', <= 63)")
    return value


def workflow_labels(run_id: int, run_name: str) -> dict[str, str]:
    """Labels of the Workflow and its step pods. Deliberately not the worker selector
    labels: the step pods must never be counted as workers of the run."""
    return {
        "app.kubernetes.io/part-of": "mlbench",
        "app.kubernetes.io/managed-by": "mlbench-workflow",
        names.RUN_ID_LABEL: str(run_id),
        names.RUN_NAME_LABEL: run_name,
    }


def retry_on_error() -> m.RetryStrategy:
    """Retry infrastructure errors only (pod deleted, node lost, executor failed). A step
    whose own command failed is not retried: a failure of training is the run's result."""
    return m.RetryStrategy(
        limit=m.IntOrString(RETRY_LIMIT),
        retry_policy="OnError",
        backoff=m.Backoff(duration="10s", factor=m.IntOrString("2")),
    )


def step_resources() -> m.ResourceRequirements:
    """The in-pod steps are small Python clients of the API server and the master."""
    return m.ResourceRequirements(
        requests={"cpu": m.Quantity("100m"), "memory": m.Quantity("256Mi")},
        limits={"cpu": m.Quantity("1"), "memory": m.Quantity("1Gi")},
    )


def step_security_context() -> m.SecurityContext:
    """Same hardening as the workers' containers (see manifests.container_security_context)."""
    return m.SecurityContext.model_validate(manifests.container_security_context())


def step_pod_security_context() -> m.PodSecurityContext:
    return m.PodSecurityContext.model_validate(manifests.pod_security_context())


def token_env(run_id: int, run_name: str) -> m.EnvVar:
    return m.EnvVar.model_validate(manifests.token_env(run_id, run_name))


def step_container(
    image: str, pull_policy: str, args: list[str], env: list[m.EnvVar] | None = None
) -> m.Container:
    """A ``python -m workflows.steps <args>`` container of the step image."""
    return m.Container(
        name="main",
        image=image,
        image_pull_policy=pull_policy,
        command=list(STEPS_MODULE),
        args=args,
        env=env or None,
        resources=step_resources(),
        security_context=step_security_context(),
    )


def container_template(
    name: str, container: m.Container, deadline_s: int | None = None
) -> m.Template:
    return m.Template(
        name=name,
        container=container,
        active_deadline_seconds=None if deadline_s is None else m.IntOrString(str(deadline_s)),
        retry_strategy=retry_on_error(),
        security_context=step_pod_security_context(),
    )


def resource_template(name: str, action: str, manifest: manifests.Manifest) -> m.Template:
    """Argo runs ``kubectl <action>`` on the manifest. ``apply`` sets an owner reference to
    the Workflow, so deleting the Workflow (TTL, or by hand) also deletes what it created."""
    text = manifests.to_yaml(manifest)
    if "{{" in text:
        # Argo substitutes {{...}} in the whole spec; a user value must never reach it.
        raise ValueError(f"{manifest['kind']} manifest of step {name!r} contains '{{{{'")
    return m.Template(
        name=name,
        resource=m.ResourceTemplate(
            action=action,
            manifest=text,
            set_owner_reference=True if action == "apply" else None,
            flags=["--ignore-not-found"] if action == "delete" else None,
        ),
        retry_strategy=retry_on_error(),
    )


def step(name: str, template: str | None = None, **kwargs: object) -> m.WorkflowStep:
    return m.WorkflowStep(name=name, template=template or name, **kwargs)


def workflow_deadline_s(spec: RunSpec, target: RunTarget) -> int:
    """Workflow-level activeDeadlineSeconds: the last bound on a run the master lost track of."""
    return spec.max_duration_s + target.cluster.ready_timeout_s + WORKFLOW_MARGIN_S


def build_workflow(spec: RunSpec, target: RunTarget) -> Workflow:
    """The Workflow of one run, ready for ``WorkflowsService.create_workflow``. Pure: the
    same inputs give the same Workflow, so it is tested by golden files and schemas.

    Raises ValueError when a name would be invalid or a value would reach Argo's templating.
    """
    cluster = target.cluster
    base = check_dns_label(names.run_object_name(target.run_id, spec.name), "object name")
    ns = check_dns_label(cluster.namespace, "namespace")
    check_dns_label(cluster.service_account, "service account")
    image = cluster.step_image or spec.image
    pull = cluster.image_pull_policy
    run_id = str(target.run_id)
    token = [token_env(target.run_id, spec.name)]
    workers = ["--namespace", ns, "--statefulset", base, "--replicas", str(spec.workers)]
    api = ["--run-id", run_id, "--api-url", target.api_url]

    templates = [
        m.Template(
            name=ENTRYPOINT,
            steps=[
                m.ParallelSteps([step("apply-service"), step("apply-statefulset")]),
                m.ParallelSteps([step("wait-ready")]),
                m.ParallelSteps([step("train")]),
            ],
        ),
        resource_template("apply-service", "apply", manifests.headless_service(spec, target)),
        resource_template("apply-statefulset", "apply", manifests.statefulset(spec, target)),
        container_template(
            "wait-ready",
            step_container(
                image,
                pull,
                ["wait-ready", *workers, "--timeout-s", str(cluster.ready_timeout_s)],
            ),
            deadline_s=cluster.ready_timeout_s + WAIT_READY_MARGIN_S,
        ),
        container_template(
            "train",
            step_container(image, pull, ["monitor", *workers, *api], env=token),
            deadline_s=spec.max_duration_s + TRAIN_MARGIN_S,
        ),
        m.Template(
            name=EXIT_HANDLER,
            steps=[
                # A failed report must not keep the workers alive: teardown runs regardless,
                # also when the report pod errored (node lost) after its retries.
                m.ParallelSteps(
                    [step("report", continue_on=m.ContinueOn(failed=True, error=True))]
                ),
                m.ParallelSteps([step(name) for name in manifests.teardown_refs(spec, target)]),
            ],
        ),
        container_template(
            "report",
            step_container(
                image,
                pull,
                [
                    "report",
                    *api,
                    "--workflow-name",
                    "{{workflow.name}}",
                    "--workflow-status",
                    "{{workflow.status}}",
                    "--failures",
                    "{{workflow.failures}}",
                ],
                env=token,
            ),
        ),
        *(
            resource_template(name, "delete", ref)
            for name, ref in manifests.teardown_refs(spec, target).items()
        ),
    ]
    labels = workflow_labels(target.run_id, spec.name)
    return Workflow(
        api_version="argoproj.io/v1alpha1",
        kind="Workflow",
        name=base,
        namespace=ns,
        labels=labels,
        entrypoint=ENTRYPOINT,
        on_exit=EXIT_HANDLER,
        service_account_name=cluster.service_account,
        active_deadline_seconds=workflow_deadline_s(spec, target),
        pod_gc=m.PodGC(strategy="OnPodSuccess"),
        ttl_strategy=m.TTLStrategy(
            seconds_after_success=cluster.ttl_after_success_s,
            seconds_after_failure=cluster.ttl_after_failure_s,
        ),
        pod_metadata=m.Metadata(
            labels={**labels, manifests.ISTIO_INJECT: "false"},
            annotations={manifests.ISTIO_INJECT: "false"},
        ),
        templates=templates,
    )
