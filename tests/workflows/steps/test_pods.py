"""How a pod's status is judged (workflows/steps/pods.py), on V1Pod objects built by the
kubernetes client's own deserializer from the same dicts the fake API server serves."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from tests.workflows.steps.helpers import STS, container_status, pod
from workflows.steps.pods import judge, summary


def v1pod(data: dict[str, Any]) -> Any:
    # The name-mangled helper has kept its signature across client versions; the public
    # ``deserialize`` has not (response object before v37, response text since).
    api = client.ApiClient()
    return api._ApiClient__deserialize(data, "V1Pod")  # type: ignore[attr-defined]


def test_ready_pending_and_missing() -> None:
    assert judge("a", v1pod(pod(0))).ready
    waiting = judge("b", v1pod(pod(1, waiting=("ContainerCreating", ""))))
    assert not waiting.ready and waiting.fatal is None and waiting.pending == "ContainerCreating"
    missing = judge("c", None)
    assert not missing.exists and missing.pending == "not created yet"
    assert summary([judge("a", v1pod(pod(0))), waiting, missing]) == (
        "1/3 pods ready; not ready: b (ContainerCreating), c (not created yet)"
    )


def test_pod_without_status_is_pending() -> None:
    data = pod(0)
    del data["status"]
    state = judge(f"{STS}-0", v1pod(data))
    assert state.exists and not state.ready and state.fatal is None
    assert state.pending == "Pending"


def test_failed_phase_is_fatal() -> None:
    data = pod(0)
    data["status"] = {"phase": "Failed", "reason": "Evicted", "message": "low on memory"}
    assert judge("x", v1pod(data)).fatal == "pod phase Failed (Evicted: low on memory)"


def test_restarts_of_a_sidecar_count_only_when_every_container_is_watched() -> None:
    data = pod(0)
    data["status"]["containerStatuses"].append(
        {**container_status(restarts=3, last_exit=(1, "Error")), "name": "log-agent"}
    )
    assert judge("x", v1pod(data)).restarts == 3
    assert judge("x", v1pod(data), "worker").restarts == 0
    restarted = judge("x", v1pod(pod(0, restarts=1, last_exit=(137, "OOMKilled"))), "worker")
    assert restarted.restarts == 1
    assert restarted.restart_detail == "container worker terminated with exit code 137 (OOMKilled)"


def test_config_error_is_not_fatal_by_itself() -> None:
    state = judge("x", v1pod(pod(0, waiting=("CreateContainerConfigError", "no secret"))))
    assert state.fatal is None
    assert state.config_error == "container worker CreateContainerConfigError: no secret"
