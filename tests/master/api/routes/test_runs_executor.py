"""Which executor a run gets, and how an executor's refusal reaches the client."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import pytest

from master.errors import ExecutorConflict, ExecutorFailed, ExecutorUnavailable, ServiceError
from master.executors.base import Launch
from master.settings import Settings
from mlbench_core.spec import ExecutorKind
from tests.master.conftest import API, Master, RecordingExecutor, spec, start_master


class RefusingExecutor(RecordingExecutor):
    """Refuses with a mapped ``ServiceError``, the way the Argo executor does."""

    def __init__(self) -> None:
        super().__init__()
        self.start_refusal: ServiceError | None = None
        self.stop_refusal: ServiceError | None = None

    def start(self, launch: Launch) -> dict[str, Any]:
        if self.start_refusal is not None:
            raise self.start_refusal
        return super().start(launch)

    def stop(self, run_id: int, ref: dict[str, Any]) -> None:
        if self.stop_refusal is not None:
            raise self.stop_refusal
        super().stop(run_id, ref)


@pytest.fixture
def refusing(settings: Settings) -> Any:
    yield from start_master(settings, RefusingExecutor())


def test_a_spec_without_executor_gets_the_masters_default(master: Master) -> None:
    run = master.create()
    assert run["spec"]["executor"] == "local"
    assert master.executor.launches[run["id"]].spec.executor is ExecutorKind.local


def test_a_default_executor_that_is_not_configured_is_a_422(settings: Settings) -> None:
    argo_default = settings.model_copy(update={"default_executor": ExecutorKind.argo})
    with contextmanager(start_master)(argo_default, RecordingExecutor()) as master:
        response = master.client.post(f"{API}/runs", json=spec(), headers=master.admin)
        assert response.status_code == 422
        error = response.json()["detail"][0]
        assert error["loc"] == ["body", "executor"]
        assert (
            error["msg"] == "executor 'argo' is not configured on this master (configured: local)"
        )
        # An explicit executor still works.
        assert master.create(executor="local")["spec"]["executor"] == "local"


@pytest.mark.parametrize(
    ("refusal", "status"),
    [
        (ExecutorFailed("Argo Server at http://argo:2746 rejected the master's token (401)"), 502),
        (ExecutorUnavailable("Argo Server at http://argo:2746 is unreachable: refused"), 503),
        (ExecutorConflict("a workflow named mlbench-1-x already exists in namespace ns"), 409),
    ],
)
def test_an_executor_refusal_answers_its_status_and_keeps_the_failed_run(
    refusing: Master, refusal: ServiceError, status: int
) -> None:
    executor = refusing.executor
    assert isinstance(executor, RefusingExecutor)
    executor.start_refusal = refusal
    response = refusing.client.post(f"{API}/runs", json=spec(), headers=refusing.admin)
    assert response.status_code == status
    assert response.json() == {"detail": f"run 1 failed to start: {refusal.detail}"}
    run = refusing.get(1)
    assert run["state"] == "failed"
    assert run["reason"] == f"executor could not start the run: {refusal.detail}"
    assert refusing.client.get(f"{API}/runs").json()["total"] == 1


def test_an_executor_refusing_a_stop_answers_its_status(refusing: Master) -> None:
    run_id = refusing.create()["id"]
    executor = refusing.executor
    assert isinstance(executor, RefusingExecutor)
    executor.stop_refusal = ExecutorUnavailable("Argo Server at x is unreachable: dns")
    response = refusing.client.post(f"{API}/runs/{run_id}/stop", headers=refusing.admin)
    assert response.status_code == 503
    assert response.json() == {
        "detail": f"executor could not stop run {run_id}: Argo Server at x is unreachable: dns"
    }
    assert refusing.get(run_id)["state"] == "stopping"
