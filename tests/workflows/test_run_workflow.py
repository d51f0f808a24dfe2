"""The per-run Workflow: what Argo checks on submission, and the shape of the contract."""

from __future__ import annotations

from typing import Any

import pytest

from mlbench_core.spec import RunSpec
from tests.workflows.argo_checks import (
    DNS_LABEL,
    selector_parses,
    semantic_errors,
    step_refs,
    templates,
)
from tests.workflows.conftest import API, BIG_RUN_ID, LONGEST_NAME
from workflows import names
from workflows.config import ClusterConfig, RunTarget
from workflows.render import as_dict
from workflows.run_workflow import (
    TRAIN_MARGIN_S,
    WAIT_READY_MARGIN_S,
    build_workflow,
    workflow_deadline_s,
)

Case = tuple[RunSpec, RunTarget, dict[str, Any]]
LEAVES = {
    "apply-service",
    "apply-statefulset",
    "wait-ready",
    "train",
    "report",
    "delete-statefulset",
    "delete-service",
    "delete-secret",
}


def _steps(template: dict[str, Any]) -> list[list[tuple[str, str]]]:
    return [[(s["name"], s["template"]) for s in group] for group in template["steps"]]


def test_argo_would_accept_it(run_case: Case) -> None:
    assert semantic_errors(run_case[2]) == []


def test_the_checker_catches_what_argo_rejects() -> None:
    broken = as_dict(build_workflow(RunSpec(name="x", benchmark="digits-mlp"), RunTarget(1, API)))
    spec = broken["spec"]
    spec["onExit"] = "cleanup"
    spec["templates"][0]["steps"][0][0]["template"] = "nowhere"
    spec["templates"][1]["resource"]["manifest"] += "# {{workflow.name}}\n"
    train = templates(broken)["train"]
    train["container"]["args"] += ["{{workflow.parameters.missing}}", "{{workflow.status}}"]
    errors = "\n".join(semantic_errors(broken))
    for expected in (
        "onExit 'cleanup' is no template",
        "unknown template 'nowhere'",
        "embedded manifest contains '{{'",
        "{{workflow.parameters.missing}} is no workflow parameter",
        "{{workflow.status}} is only set in the exit handler",
    ):
        assert expected in errors


def test_selector_grammar() -> None:
    assert selector_parses("status.readyReplicas == 2, status.phase in (Running, Succeeded)")
    assert selector_parses("!status.failed")
    assert not selector_parses("== 2")
    assert not selector_parses("")


def test_shape_follows_the_contract(run_case: Case) -> None:
    _, _, wf = run_case
    by_name = templates(wf)
    assert wf["spec"]["entrypoint"] == "run" and wf["spec"]["onExit"] == "exit-handler"
    assert _steps(by_name["run"]) == [
        [("apply-service", "apply-service"), ("apply-statefulset", "apply-statefulset")],
        [("wait-ready", "wait-ready")],
        [("train", "train")],
    ]
    exit_steps = _steps(by_name["exit-handler"])
    assert exit_steps[0] == [("report", "report")]
    assert {name for name, _ in exit_steps[1]} == {
        "delete-statefulset",
        "delete-service",
        "delete-secret",
    }
    report = next(step_refs(by_name["exit-handler"]))
    assert report["continueOn"] == {"failed": True, "error": True}
    for name in ("apply-service", "apply-statefulset"):
        assert by_name[name]["resource"]["action"] == "apply"
        assert by_name[name]["resource"]["setOwnerReference"] is True
    for name in ("delete-statefulset", "delete-service", "delete-secret"):
        assert by_name[name]["resource"]["action"] == "delete"
        assert by_name[name]["resource"]["flags"] == ["--ignore-not-found"]


def test_step_commands(run_case: Case) -> None:
    spec, target, wf = run_case
    by_name = templates(wf)
    base = names.run_object_name(target.run_id, spec.name)
    ns = target.cluster.namespace
    workers = ["--namespace", ns, "--statefulset", base, "--replicas", str(spec.workers)]
    api = ["--run-id", str(target.run_id), "--api-url", target.api_url]
    expected = {
        "wait-ready": ["wait-ready", *workers, "--timeout-s", str(target.cluster.ready_timeout_s)],
        "train": ["monitor", *workers, *api],
        "report": [
            "report",
            *api,
            "--workflow-name",
            "{{workflow.name}}",
            "--workflow-status",
            "{{workflow.status}}",
            "--failures",
            "{{workflow.failures}}",
        ],
    }
    for name, args in expected.items():
        container = by_name[name]["container"]
        assert container["command"] == ["python", "-m", "workflows.steps"]
        assert container["args"] == args
        assert container["image"] == (target.cluster.step_image or spec.image)
        env = {e["name"]: e for e in container.get("env", [])}
        if name == "wait-ready":
            assert "MLBENCH_TOKEN" not in env
        else:
            assert env["MLBENCH_TOKEN"]["valueFrom"]["secretKeyRef"] == {
                "name": names.secret_name(target.run_id, spec.name),
                "key": names.TOKEN_KEY,
            }


def test_deadlines_retries_gc_and_identity(run_case: Case) -> None:
    spec, target, wf = run_case
    cluster = target.cluster
    meta, wspec = wf["metadata"], wf["spec"]
    assert meta["name"] == names.run_object_name(target.run_id, spec.name)
    assert meta["namespace"] == cluster.namespace
    assert meta["labels"][names.RUN_ID_LABEL] == str(target.run_id)
    assert wspec["serviceAccountName"] == cluster.service_account
    assert wspec["activeDeadlineSeconds"] == workflow_deadline_s(spec, target)
    assert wspec["activeDeadlineSeconds"] > spec.max_duration_s + cluster.ready_timeout_s
    assert wspec["podGC"] == {"strategy": "OnPodSuccess"}
    assert wspec["ttlStrategy"] == {
        "secondsAfterSuccess": cluster.ttl_after_success_s,
        "secondsAfterFailure": cluster.ttl_after_failure_s,
    }
    by_name = templates(wf)
    assert by_name["wait-ready"]["activeDeadlineSeconds"] == str(
        cluster.ready_timeout_s + WAIT_READY_MARGIN_S
    )
    assert by_name["train"]["activeDeadlineSeconds"] == str(spec.max_duration_s + TRAIN_MARGIN_S)
    for name in LEAVES:
        retry = by_name[name]["retryStrategy"]
        assert retry["retryPolicy"] == "OnError"  # infrastructure errors only
        assert int(retry["limit"]) <= 3 and retry["backoff"]["duration"]
    assert "retryStrategy" not in wspec  # would also re-run whole step groups


def test_step_pods_are_hardened_and_never_look_like_workers(run_case: Case) -> None:
    _, target, wf = run_case
    pod_labels = wf["spec"]["podMetadata"]["labels"]
    selector = names.selector_labels(target.run_id)
    assert not selector.items() <= pod_labels.items()
    assert wf["spec"]["podMetadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    for template in wf["spec"]["templates"]:
        if "container" not in template:
            continue
        pod = template["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0
        container = template["container"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert set(container["resources"]["requests"]) == {"cpu", "memory"}
        assert set(container["resources"]["limits"]) == {"cpu", "memory"}


def test_the_longest_names_stay_within_kubernetes_limits() -> None:
    spec = RunSpec(name=LONGEST_NAME, benchmark="digits-mlp", workers=256)
    assert len(LONGEST_NAME) == 40
    target = RunTarget(BIG_RUN_ID, API)
    wf = as_dict(build_workflow(spec, target))
    base = wf["metadata"]["name"]
    assert len(base) <= names.OBJECT_NAME_MAX and DNS_LABEL.match(base)
    assert str(BIG_RUN_ID) in base  # the id keeps a cut name unique
    assert len(names.secret_name(BIG_RUN_ID, spec.name)) <= 63
    assert len(f"{base}-{spec.workers - 1}") <= 63  # pod name = hostname
    assert len(f"{base}-") + 10 <= 63  # controller-revision-hash label value
    fqdn = names.pod_fqdn(base, 0, "mlbench", "cluster.local")
    assert all(len(label) <= 63 for label in fqdn.split("."))


def test_user_values_never_reach_argo_templating() -> None:
    spec = RunSpec(name="inject", benchmark="digits-mlp", image="registry/{{workflow.name}}:1")
    with pytest.raises(ValueError, match="contains '\\{\\{'"):
        build_workflow(spec, RunTarget(1, API))


@pytest.mark.parametrize(
    ("cluster", "message"),
    [
        (ClusterConfig(namespace="Bad_NS"), "namespace"),
        (ClusterConfig(service_account="x" * 64), "service account"),
    ],
)
def test_bad_cluster_names_are_refused_early(cluster: ClusterConfig, message: str) -> None:
    spec = RunSpec(name="ok", benchmark="digits-mlp")
    with pytest.raises(ValueError, match=message):
        build_workflow(spec, RunTarget(1, API, cluster))


def test_build_is_pure() -> None:
    spec = RunSpec(name="same", benchmark="2a", workers=3)
    target = RunTarget(5, API)
    assert as_dict(build_workflow(spec, target)) == as_dict(build_workflow(spec, target))
