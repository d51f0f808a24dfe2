"""ArgoExecutor through the real master app, against the fake Argo Server and the fake
Kubernetes API over real HTTP: submission, status sync, stop, re-attach, error mapping."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from master.app import create_app
from master.executors.argo import ArgoExecutor, TimeoutSession
from master.executors.base import Launch
from master.models import Run
from master.services.lifecycle import RESTART_GONE
from master.settings import Settings
from mlbench_core.spec import ExecutorKind, RunSpec
from tests.conftest import free_port
from tests.fakes.argo_server import FakeArgoServer, running_argo_server
from tests.fakes.kube_api import FakeKubeAPI, running_kube_api
from tests.master.api.routes.test_results import RESULT
from tests.master.conftest import ADMIN_TOKEN, API, bearer, spec
from workflows import names
from workflows.config import RunTarget

# Hera 7.1 serialises requests with pydantic's deprecated ``.json()``.
pytestmark = pytest.mark.filterwarnings("ignore:The `json` method is deprecated")

ARGO_TOKEN = "argo-token"
KUBE_TOKEN = "kube-token"
NS = "mlbench"
POD_API = "http://mlbench-master.mlbench:8000"


@dataclass
class Cluster:
    argo: FakeArgoServer
    kube: FakeKubeAPI
    kubeconfig: Path


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with running_argo_server(ARGO_TOKEN) as argo, running_kube_api(KUBE_TOKEN) as kube:
        yield Cluster(argo, kube, kube.write_kubeconfig(tmp_path / "kubeconfig"))


def argo_settings(settings: Settings, cluster: Cluster, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "default_executor": ExecutorKind.argo,
        "argo_server": cluster.argo.url,
        "argo_token": SecretStr(ARGO_TOKEN),
        "kubeconfig": cluster.kubeconfig,
        "argo_api_url": POD_API,
        "argo_poll_s": 0.05,
        "argo_request_timeout_s": 2.0,
    }
    values.update(overrides)
    return settings.model_copy(update=values)


@dataclass
class ArgoMaster:
    client: TestClient
    settings: Settings
    cluster: Cluster

    @property
    def executor(self) -> ArgoExecutor:
        executor = self.client.app.state.mlbench.executors["argo"]
        assert isinstance(executor, ArgoExecutor)
        return executor

    def post(self, **overrides: Any) -> httpx.Response:
        return self.client.post(f"{API}/runs", json=spec(**overrides), headers=bearer(ADMIN_TOKEN))

    def create(self, **overrides: Any) -> dict[str, Any]:
        response = self.post(**overrides)
        assert response.status_code == 201, response.text
        return response.json()

    def get(self, run_id: int) -> dict[str, Any]:
        response = self.client.get(f"{API}/runs/{run_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait(self, run_id: int, *states: str, timeout_s: float = 10) -> dict[str, Any]:
        end = time.monotonic() + timeout_s
        while True:
            run = self.get(run_id)
            if run["state"] in states:
                return run
            if time.monotonic() > end:
                raise AssertionError(f"run {run_id} stayed {run['state']}: {run['reason']}")
            time.sleep(0.02)

    def stop(self, run_id: int) -> httpx.Response:
        return self.client.post(f"{API}/runs/{run_id}/stop", headers=bearer(ADMIN_TOKEN))

    def token(self, run: dict[str, Any]) -> str:
        """The worker token, read from the run's Secret as the pods would."""
        secret = self.cluster.kube.get("secrets", names.secret_name(run["id"], run["name"]), NS)
        assert secret is not None
        return secret["stringData"][names.TOKEN_KEY]

    def report(self, run: dict[str, Any], state: str, reason: str = "") -> dict[str, Any]:
        response = self.client.post(
            f"{API}/runs/{run['id']}/status",
            json={"state": state, "rank": 0, "reason": reason},
            headers=bearer(self.token(run)),
        )
        assert response.status_code == 200, response.text
        return response.json()


@contextmanager
def served(settings: Settings, cluster: Cluster) -> Iterator[ArgoMaster]:
    """The real app with the executors the settings configure (local + argo)."""
    with TestClient(create_app(settings)) as client:
        yield ArgoMaster(client, settings, cluster)


@pytest.fixture
def master(settings: Settings, cluster: Cluster) -> Iterator[ArgoMaster]:
    with served(argo_settings(settings, cluster), cluster) as master:
        yield master


def workflow_of(run: dict[str, Any]) -> str:
    return names.run_object_name(run["id"], run["name"])


def hera_body(run: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The workflow as Hera serialises it for the Argo Server."""
    from hera.workflows.models import WorkflowCreateRequest

    from workflows.run_workflow import build_workflow

    target = RunTarget(run["id"], POD_API, settings.cluster_config())
    built = build_workflow(RunSpec.model_validate(run["spec"]), target).build()
    text = WorkflowCreateRequest(workflow=built).json(
        exclude_none=True, by_alias=True, exclude_unset=True, exclude_defaults=True
    )
    return json.loads(text)["workflow"]


# -- submission ----------------------------------------------------------------------------------


def test_submit_creates_the_secret_then_the_built_workflow_and_owns_the_secret(
    master: ArgoMaster,
) -> None:
    argo, kube = master.cluster.argo, master.cluster.kube
    run = master.create(name="digits-k8s", workers=3)  # no executor: the master's default

    assert run["state"] == "starting" and run["spec"]["executor"] == "argo"
    name = workflow_of(run)
    posts = argo.calls("POST", f"/api/v1/workflows/{NS}")
    assert len(posts) == 1 and posts[0].authorization == f"Bearer {ARGO_TOKEN}"
    sent, expected = posts[0].body["workflow"], hera_body(run, master.settings)
    assert sent["spec"] == expected["spec"]  # the built workflow, as built
    assert expected["metadata"].items() <= sent["metadata"].items()
    assert sent["metadata"]["name"] == name and sent["spec"]["onExit"] == "exit-handler"

    stored = argo.workflow(NS, name)
    assert stored is not None
    uid = stored["metadata"]["uid"]
    secret = kube.get("secrets", names.secret_name(run["id"], "digits-k8s"), NS)
    assert secret is not None
    assert secret["metadata"]["labels"] == names.run_labels(run["id"], "digits-k8s")
    assert secret["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "name": name,
            "uid": uid,
            "blockOwnerDeletion": False,
        }
    ]
    token = secret["stringData"]["token"]
    with master.client.app.state.mlbench.sessionmaker() as session:
        row = session.scalar(select(Run).where(Run.id == run["id"]))
        assert row.executor == "argo"
        assert row.executor_ref == {"workflow": name, "namespace": NS, "uid": uid}
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert master.report(run, "running")["state"] == "running"  # the pods' token works


def test_an_explicit_executor_wins_over_the_default(master: ArgoMaster) -> None:
    run = master.create(executor="argo")
    assert run["spec"]["executor"] == "argo"
    response = master.post(executor="kubernetes")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "executor"]


def test_a_left_over_secret_of_the_same_name_is_replaced(master: ArgoMaster) -> None:
    kube = master.cluster.kube
    secret = names.secret_name(1, "again")
    kube.add(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret, "namespace": NS},
            "stringData": {"token": "stale"},
        }
    )
    run = master.create(name="again")
    assert run["id"] == 1 and run["state"] == "starting"
    assert len(kube.calls("PUT", f"/secrets/{secret}")) == 1
    assert master.token(run) != "stale"
    assert master.report(run, "running")["state"] == "running"


def test_a_secret_without_owner_does_not_fail_the_run(master: ArgoMaster) -> None:
    master.cluster.kube.fail("PATCH", "/secrets/", 500)
    run = master.create(name="no-owner")
    assert run["state"] == "starting"
    secret = master.cluster.kube.get("secrets", names.secret_name(run["id"], "no-owner"), NS)
    assert secret is not None and "ownerReferences" not in secret["metadata"]


# -- status sync ---------------------------------------------------------------------------------


def test_a_succeeded_workflow_with_a_result_succeeds_the_run(master: ArgoMaster) -> None:
    argo = master.cluster.argo
    run = master.create()
    master.report(run, "running")
    put = master.client.put(
        f"{API}/runs/{run['id']}/result", json=RESULT, headers=bearer(master.token(run))
    )
    assert put.status_code == 200
    argo.set_phase(NS, workflow_of(run), "Succeeded")

    ended = master.wait(run["id"], "succeeded")
    assert ended["reason"] == "workers exited with code 0" and ended["exit_code"] == 0
    assert master.executor.watched() == {}
    # Reported once: the ended workflow is not polled any more.
    polls = len(argo.calls("GET", workflow_of(run)))
    time.sleep(0.3)
    assert len(argo.calls("GET", workflow_of(run))) == polls


def test_a_failed_workflow_fails_the_run_with_its_message(master: ArgoMaster) -> None:
    run = master.create()
    master.report(run, "running")
    name = workflow_of(run)
    master.cluster.argo.set_phase(NS, name, "Failed", "child 'train' failed")

    ended = master.wait(run["id"], "failed")
    assert ended["exit_code"] == 1
    assert (
        ended["reason"]
        == f"workers exited with code 1: workflow {name} Failed: child 'train' failed"
    )


def test_a_deleted_workflow_fails_the_run(master: ArgoMaster) -> None:
    run = master.create()
    master.cluster.argo.remove(NS, workflow_of(run))
    ended = master.wait(run["id"], "failed")
    assert ended["reason"].endswith(f"workflow {workflow_of(run)} was deleted")
    assert ended["exit_code"] is None


def test_poll_errors_are_retried(master: ArgoMaster) -> None:
    argo = master.cluster.argo
    run = master.create()
    name = workflow_of(run)
    argo.fail("GET", f"/workflows/{NS}/{name}", 500, times=3)
    argo.set_phase(NS, name, "Error", "pod deleted")
    ended = master.wait(run["id"], "failed")
    assert f"workflow {name} Error: pod deleted" in ended["reason"]
    assert len(argo.calls("GET", name)) >= 4


def test_the_workers_report_decides_before_the_workflow_ends(master: ArgoMaster) -> None:
    run = master.create()
    master.report(run, "failed", "CUDA error")
    assert master.get(run["id"])["state"] == "failed"
    # A failed rank makes the master stop the rest: the workflow is stopped.
    assert len(master.cluster.argo.calls("PUT", f"{workflow_of(run)}/stop")) == 1
    master.cluster.argo.set_phase(NS, workflow_of(run), "Failed", "Stopped with strategy 'Stop'")
    time.sleep(0.3)
    final = master.get(run["id"])
    assert final["state"] == "failed" and final["reason"] == "rank 0: CUDA error"
    assert final["exit_code"] == 1  # the workflow's end is still recorded


# -- stop ----------------------------------------------------------------------------------------


def test_stop_asks_argo_to_stop_and_the_run_ends_stopped(master: ArgoMaster) -> None:
    argo = master.cluster.argo
    run = master.create()
    master.report(run, "running")
    name = workflow_of(run)

    response = master.stop(run["id"])
    assert response.status_code == 202 and response.json()["state"] == "stopping"
    stops = argo.calls("PUT", f"/api/v1/workflows/{NS}/{name}/stop")
    assert len(stops) == 1 and stops[0].authorization == f"Bearer {ARGO_TOKEN}"
    assert argo.workflow(NS, name)["spec"]["shutdown"] == "Stop"
    time.sleep(0.2)
    assert master.get(run["id"])["state"] == "stopping"  # until the workflow has ended

    argo.set_phase(NS, name, "Failed", "Stopped with strategy 'Stop'")
    ended = master.wait(run["id"], "stopped")
    assert ended["reason"] == (
        f"stopped on request (workflow {name} Failed: Stopped with strategy 'Stop')"
    )


def test_the_exit_handlers_failed_report_after_a_stop_ends_the_run_stopped(
    master: ArgoMaster,
) -> None:
    run = master.create()
    master.report(run, "running")
    assert master.stop(run["id"]).status_code == 202
    name = workflow_of(run)
    reported = master.report(run, "failed", f"workflow {name} Failed: Stopped with strategy 'Stop'")
    assert reported["state"] == "stopped"
    assert reported["reason"] == (
        f"stopped on request (rank 0: workflow {name} Failed: Stopped with strategy 'Stop')"
    )


def test_stopping_an_ended_or_vanished_workflow_is_no_error(cluster: Cluster) -> None:
    executor = ArgoExecutor(
        lambda _exit: None, server=cluster.argo.url, token=ARGO_TOKEN, timeout_s=2
    )
    executor.stop(7, {"workflow": "mlbench-7-gone", "namespace": NS})  # 404
    _add_workflow(cluster.argo, "done")
    cluster.argo.set_phase(NS, "done", "Succeeded")
    executor.stop(8, {"workflow": "done", "namespace": NS})  # 409: already completed
    executor.stop(9, {})  # not submitted yet: nothing to stop
    assert [r.path for r in cluster.argo.calls("PUT")] == [
        f"/api/v1/workflows/{NS}/mlbench-7-gone/stop",
        f"/api/v1/workflows/{NS}/done/stop",
    ]


@pytest.mark.parametrize(
    ("arrange", "status", "message"),
    [
        (
            lambda argo: setattr(argo, "token", "rotated"),
            502,
            "rejected the master's token (401): check MLBENCH_ARGO_TOKEN/_FILE",
        ),
        (lambda argo: setattr(argo, "hang_s", 3.0), 503, "is unreachable: no answer within 1s"),
    ],
    ids=["401", "hang"],
)
def test_a_failing_stop_keeps_the_run_stopping_with_the_mapped_error(
    settings: Settings,
    cluster: Cluster,
    arrange: Callable[[FakeArgoServer], None],
    status: int,
    message: str,
) -> None:
    with served(argo_settings(settings, cluster, argo_request_timeout_s=1.0), cluster) as master:
        run = master.create()
        arrange(cluster.argo)
        response = master.stop(run["id"])
        cluster.argo.hang_s = 0
        assert response.status_code == status
        detail = response.json()["detail"]
        assert detail.startswith(f"executor could not stop run {run['id']}: Argo Server at ")
        assert message in detail
        assert master.get(run["id"])["state"] == "stopping"


# -- re-attach -----------------------------------------------------------------------------------


def test_a_restarted_master_reattaches_to_live_workflows(
    settings: Settings, cluster: Cluster
) -> None:
    argo = cluster.argo
    config = argo_settings(settings, cluster)
    with served(config, cluster) as first:
        live = first.create(name="live")
        gone = first.create(name="gone")
        first.report(live, "running")
    # Argo runs outlive the master: nothing was stopped at shutdown.
    assert argo.calls("PUT") == []
    argo.remove(NS, workflow_of(gone))  # deleted while no master watched

    with served(config, cluster) as second:
        assert second.get(live["id"])["state"] == "running"
        lost = second.get(gone["id"])
        assert lost["state"] == "failed" and lost["reason"] == RESTART_GONE
        assert second.executor.watched() == {live["id"]: workflow_of(live)}
        argo.set_phase(NS, workflow_of(live), "Failed", "child 'train' failed")
        ended = second.wait(live["id"], "failed")
        assert "child 'train' failed" in ended["reason"]


def test_reattach_survives_an_unreachable_argo_server(settings: Settings, cluster: Cluster) -> None:
    config = argo_settings(settings, cluster)
    with served(config, cluster) as first:
        run = first.create()
    cluster.argo.fail("GET", workflow_of(run), 503, times=3)
    with served(config, cluster) as second:
        assert second.get(run["id"])["state"] == "starting"  # not failed: asked again later
        cluster.argo.set_phase(NS, workflow_of(run), "Failed", "boom")
        assert "boom" in second.wait(run["id"], "failed")["reason"]


# -- error mapping at submission -----------------------------------------------------------------


def _closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def _closed_kubeconfig(tmp: Path) -> Path:
    nobody = FakeKubeAPI()
    nobody.url = _closed_url()
    return nobody.write_kubeconfig(tmp / "closed-kubeconfig")


def _add_workflow(argo: FakeArgoServer, name: str) -> None:
    """A workflow created by someone else (another master, a user)."""
    response = httpx.post(
        f"{argo.url}/api/v1/workflows/{NS}",
        json={"workflow": {"metadata": {"name": name}}},
        headers=bearer(ARGO_TOKEN),
    )
    assert response.status_code == 200, response.text


SUBMIT_ERRORS = [
    pytest.param(
        lambda c: setattr(c.argo, "token", "rotated") or {},
        502,
        "Argo Server at {argo} rejected the master's token (401): check MLBENCH_ARGO_TOKEN/_FILE",
        id="401",
    ),
    pytest.param(
        lambda c: setattr(c.argo, "forbidden", True) or {},
        502,
        "Argo Server at {argo} forbids the master to create workflow mlbench-1-err in namespace "
        "mlbench (403: workflows.argoproj.io is forbidden",
        id="403",
    ),
    pytest.param(
        lambda c: c.argo.fail("POST", "/api/v1/workflows/", 404) or {},
        502,
        "Argo Server at {argo} answered 404 to create workflow mlbench-1-err: namespace "
        "'mlbench' does not exist or {argo} is not an Argo Server",
        id="404",
    ),
    pytest.param(
        lambda c: _add_workflow(c.argo, "mlbench-1-err") or {},
        409,
        "a workflow named mlbench-1-err already exists in namespace mlbench",
        id="409",
    ),
    pytest.param(
        lambda c: {"argo_server": _closed_url()},
        503,
        "Argo Server at {argo} is unreachable: connection refused",
        id="unreachable",
    ),
    pytest.param(
        lambda c: setattr(c.argo, "hang_s", 2.5) or {},
        503,
        "Argo Server at {argo} is unreachable: no answer within 1s",
        id="hang",
    ),
]


@pytest.mark.parametrize(("arrange", "status", "message"), SUBMIT_ERRORS)
def test_submission_errors_answer_mapped_and_keep_the_failed_run(
    settings: Settings,
    cluster: Cluster,
    arrange: Callable[[Cluster], dict[str, Any]],
    status: int,
    message: str,
) -> None:
    overrides = arrange(cluster)
    config = argo_settings(settings, cluster, argo_request_timeout_s=1.0, **overrides)
    with served(config, cluster) as master:
        response = master.post(name="err")
        cluster.argo.hang_s = 0
        assert response.status_code == status, response.text
        detail = response.json()["detail"]
        assert detail.startswith("run 1 failed to start: "), detail
        assert message.format(argo=config.argo_server) in detail
        assert len(detail.splitlines()) == 1

        run = master.get(1)  # nothing stored is lost: the run is listed, failed, with the why
        assert run["state"] == "failed"
        assert run["reason"] == "executor could not start the run: " + detail.removeprefix(
            "run 1 failed to start: "
        )
        listed = master.client.get(f"{API}/runs").json()
        assert [item["id"] for item in listed["items"]] == [1]
        # The Secret was created for the submission, and deleted when it failed.
        secret = names.secret_name(1, "err")
        assert len(cluster.kube.calls("POST", "/secrets")) == 1
        assert len(cluster.kube.calls("DELETE", f"/secrets/{secret}")) == 1
        assert cluster.kube.get("secrets", secret, NS) is None


KUBE_ERRORS = [
    pytest.param(
        lambda c, tmp: setattr(c.kube, "token", "rotated") or {},
        502,
        "Kubernetes API at {kube} rejected the master's credentials (401): check "
        "MLBENCH_KUBECONFIG or the master pod's service account",
        id="401",
    ),
    pytest.param(
        lambda c, tmp: c.kube.fail("POST", "/secrets", 403) or {},
        502,
        "Kubernetes API at {kube} forbids the master to create Secret mlbench-1-err-token in "
        "namespace mlbench (403: injected failure 403): grant the master's service account "
        "the rights in argo/rbac/master.yaml",
        id="403",
    ),
    pytest.param(
        lambda c, tmp: {"kubeconfig": _closed_kubeconfig(tmp)},
        503,
        "is unreachable: connection refused",
        id="unreachable",
    ),
    pytest.param(
        lambda c, tmp: {"kubeconfig": tmp / "no-such-kubeconfig"},
        503,
        "no Kubernetes configuration",
        id="no-config",
    ),
]


@pytest.mark.parametrize(("arrange", "status", "message"), KUBE_ERRORS)
def test_secret_errors_answer_mapped_and_submit_nothing(
    settings: Settings,
    cluster: Cluster,
    tmp_path: Path,
    arrange: Callable[[Cluster, Path], dict[str, Any]],
    status: int,
    message: str,
) -> None:
    overrides = arrange(cluster, tmp_path)
    config = argo_settings(settings, cluster, **overrides)
    with served(config, cluster) as master:
        response = master.post(name="err")
        assert response.status_code == status, response.text
        detail = response.json()["detail"]
        assert detail.startswith("run 1 failed to start: ")
        assert message.format(kube=cluster.kube.url) in detail
        assert master.get(1)["state"] == "failed"
    assert cluster.argo.calls("POST") == []  # no workflow without its Secret


# -- pieces --------------------------------------------------------------------------------------


def test_the_token_file_is_read_on_every_request(
    settings: Settings, cluster: Cluster, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(ARGO_TOKEN + "\n")
    config = argo_settings(settings, cluster, argo_token=None, argo_token_file=token_file)
    with served(config, cluster) as master:
        master.create()
        cluster.argo.token = "rotated-token"
        token_file.write_text("rotated-token\n")
        master.create()
        token_file.unlink()
        response = master.post(name="no-token")
        assert response.status_code == 502
        assert f"cannot read the Argo token file {token_file}" in response.json()["detail"]
    headers = [r.authorization for r in cluster.argo.calls("POST")]
    assert headers == [f"Bearer {ARGO_TOKEN}", "Bearer rotated-token"]


def test_settings_map_to_the_cluster_config(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        public_url="http://public:8000",
        argo_server="https://argo.example:2746/",
        argo_namespace="bench",
        argo_service_account="runner",
        argo_data_pvc="",
        cluster_domain="corp.local",
        argo_ready_timeout_s=60,
    )
    assert settings.argo_server == "https://argo.example:2746"
    assert settings.resolved_argo_api_url == "http://public:8000"
    cluster = settings.cluster_config()
    assert (cluster.namespace, cluster.service_account, cluster.data_pvc) == (
        "bench",
        "runner",
        None,
    )
    assert (cluster.cluster_domain, cluster.ready_timeout_s) == ("corp.local", 60)
    defaults = Settings(data_dir=tmp_path)
    assert defaults.argo_server is None and defaults.default_executor is ExecutorKind.local
    assert defaults.cluster_config().data_pvc == "mlbench-data"
    assert (defaults.argo_poll_s, defaults.argo_request_timeout_s) == (10, 15)
    assert defaults.argo_verify_tls is True
    with pytest.raises(ValueError, match="must start with http:// or https://"):
        Settings(argo_server="argo:2746")


def test_a_master_without_argo_server_has_no_argo_executor(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, admin_token=ADMIN_TOKEN))
    with TestClient(app) as client:
        assert set(app.state.mlbench.executors) == {"local"}
        response = client.post(
            f"{API}/runs", json=spec(executor="argo"), headers=bearer(ADMIN_TOKEN)
        )
        assert response.status_code == 422
        assert "executor 'argo' is not configured" in response.json()["detail"][0]["msg"]


def test_requests_get_a_timeout_and_the_ca_file(cluster: Cluster, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    class Spy(TimeoutSession):
        def send(self, request: Any, **kwargs: Any) -> Any:
            seen.update(kwargs)
            return super().send(request, **kwargs)

    session = Spy(3.5, tmp_path / "ca.pem")
    url = cluster.argo.url + "/api/v1/workflows/x"
    session.request("GET", url, verify=True)  # Hera passes verify=<argo_verify_tls>
    assert seen["timeout"] == 3.5 and seen["verify"] == str(tmp_path / "ca.pem")
    session.request("GET", url, verify=False, timeout=1)
    assert seen["timeout"] == 1 and seen["verify"] is False


def test_start_hands_the_pods_the_pod_facing_master_url(cluster: Cluster) -> None:
    executor = ArgoExecutor(
        lambda _exit: None, server=cluster.argo.url, token=ARGO_TOKEN, api_url=None
    )
    run_spec = RunSpec(name="url", benchmark="digits-mlp", executor="argo")
    launch = Launch(run_id=4, spec=run_spec, api_url="http://public:8000", token="t")
    assert executor.target(launch).api_url == "http://public:8000"
    executor.api_url = POD_API
    assert executor.target(launch).api_url == POD_API
