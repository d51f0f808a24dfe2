"""ArgoExecutor: each run is one Argo Workflow (built by ``workflows.run_workflow``), submitted
to the Argo Server through Hera's ``WorkflowsService``.

start: the run's Secret (its worker token) is created first, the Workflow is submitted, then
the Secret is made the Workflow's child so Kubernetes deletes it with the workflow; a failed
submission deletes it again. stop: Argo ``stop`` (the exit handler still runs: it reports and
tears down). Status: one daemon thread polls the watched workflows every ``poll_s`` and reports
each ended one once through ``on_exit``. The workflows live in the cluster, not in this
process: they outlive the master, which re-attaches to them after a restart.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from master.errors import ExecutorFailed
from master.executors.base import Executor, Exit, ExitCallback, Launch
from master.executors.cluster_errors import argo_error, hera_status
from master.executors.kube import KubeAccess
from master.settings import Settings
from workflows import names
from workflows.config import ClusterConfig, RunTarget

log = logging.getLogger(__name__)

ENDED_PHASES = ("Succeeded", "Failed", "Error")


class TimeoutSession(requests.Session):
    """Hera's service sends its requests without a timeout: this session adds one (and the
    CA bundle to verify the server with, where one is configured)."""

    def __init__(self, timeout_s: float, ca_file: str | Path | None = None) -> None:
        super().__init__()
        self.timeout_s = timeout_s
        self.ca_file = str(ca_file) if ca_file else None

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout_s
        if self.ca_file and kwargs.get("verify", True) is True:
            kwargs["verify"] = self.ca_file
        return super().request(method, url, *args, **kwargs)


@dataclass(frozen=True)
class _Watched:
    workflow: str
    namespace: str


class ArgoExecutor(Executor):
    kind = "argo"
    runs_end_with_master = False

    def __init__(
        self,
        on_exit: ExitCallback,
        *,
        server: str,
        cluster: ClusterConfig | None = None,
        api_url: str | None = None,
        token: str | None = None,
        token_file: str | Path | None = None,
        verify_tls: bool = True,
        ca_file: str | Path | None = None,
        kube: KubeAccess | None = None,
        poll_s: float = 10.0,
        timeout_s: float = 15.0,
    ) -> None:
        super().__init__(on_exit)
        self.server = server.rstrip("/")
        self.cluster = cluster or ClusterConfig()
        self.api_url = api_url
        """The master's URL as the pods reach it; None = the launch's (public) URL."""
        self.token = token
        self.token_file = Path(token_file) if token_file else None
        self.verify_tls = verify_tls
        self.ca_file = ca_file
        self.kube = kube or KubeAccess(timeout_s=timeout_s)
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self._local = threading.local()  # one requests.Session per thread
        self._watched: dict[int, _Watched] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings: Settings, on_exit: ExitCallback) -> ArgoExecutor:
        if not settings.argo_server:
            raise ValueError("MLBENCH_ARGO_SERVER is not set")
        token = settings.argo_token.get_secret_value() if settings.argo_token else None
        return cls(
            on_exit,
            server=settings.argo_server,
            cluster=settings.cluster_config(),
            api_url=settings.resolved_argo_api_url,
            token=token or None,
            token_file=settings.argo_token_file,
            verify_tls=settings.argo_verify_tls,
            ca_file=settings.argo_ca_file,
            kube=KubeAccess(settings.kubeconfig, settings.argo_request_timeout_s),
            poll_s=settings.argo_poll_s,
            timeout_s=settings.argo_request_timeout_s,
        )

    # -- the Argo Server --------------------------------------------------------------------

    def _token(self) -> str | None:
        if self.token:
            return self.token
        if self.token_file is None:
            return None
        try:  # read on every request: a projected service-account token is rotated
            return self.token_file.read_text().strip() or None
        except OSError as exc:
            raise ExecutorFailed(
                f"cannot read the Argo token file {self.token_file} "
                f"(MLBENCH_ARGO_TOKEN_FILE): {exc.strerror or exc}"
            ) from None

    def service(self) -> Any:
        """A Hera ``WorkflowsService`` with the current token, on this thread's session."""
        from hera.workflows import WorkflowsService

        session = getattr(self._local, "session", None)
        if session is None:
            session = TimeoutSession(self.timeout_s, self.ca_file)
            self._local.session = session
        return WorkflowsService(
            host=self.server,
            token=self._token(),
            verify_ssl=self.verify_tls,
            namespace=self.cluster.namespace,
            session=session,
        )

    def _error(
        self, exc: Exception, action: str, namespace: str, workflow: str | None = None
    ) -> ExecutorFailed:
        if isinstance(exc, ExecutorFailed):  # already mapped (e.g. an unreadable token file)
            return exc
        return argo_error(
            exc,
            self.server,
            action,
            namespace=namespace,
            workflow=workflow,
            timeout_s=self.timeout_s,
        )

    # -- start ------------------------------------------------------------------------------

    def target(self, launch: Launch) -> RunTarget:
        return RunTarget(launch.run_id, self.api_url or launch.api_url, self.cluster)

    def start(self, launch: Launch) -> dict[str, Any]:
        # Imported here: the builder pulls in Hera's model tree, which only this path needs.
        from hera.workflows.models import WorkflowCreateRequest

        from workflows.run_workflow import build_workflow

        spec, namespace = launch.spec, self.cluster.namespace
        # Built before anything is created: a spec the cluster cannot take leaves nothing behind.
        built = build_workflow(spec, self.target(launch)).build()
        name = built.metadata.name or names.run_object_name(launch.run_id, spec.name)
        secret = names.secret_name(launch.run_id, spec.name)
        self.kube.put_secret(
            secret,
            namespace,
            {names.TOKEN_KEY: launch.token},
            names.run_labels(launch.run_id, spec.name),
        )
        try:
            created = self.service().create_workflow(
                WorkflowCreateRequest(workflow=built, namespace=namespace), namespace=namespace
            )
        except Exception as exc:
            self.kube.delete_secret_quietly(secret, namespace)
            raise self._error(exc, f"create workflow {name}", namespace, name) from exc
        name = created.metadata.name or name
        uid = created.metadata.uid or ""
        try:
            self.kube.own_secret(secret, namespace, name, uid)
        except ExecutorFailed as exc:
            # Not fatal: the workflow's exit handler deletes the Secret too.
            log.warning("run %s: Secret %s keeps no owner: %s", launch.run_id, secret, exc.detail)
        self._watch(launch.run_id, _Watched(name, namespace))
        return {"workflow": name, "namespace": namespace, "uid": uid}

    # -- stop -------------------------------------------------------------------------------

    def stop(self, run_id: int, ref: dict[str, Any]) -> None:
        """Argo ``stop``: running steps end, the exit handler runs (report, teardown).
        An ended (409) or vanished (404) workflow is no error: the poll reports it."""
        from hera.workflows.models import WorkflowStopRequest

        name = ref.get("workflow")
        if not name:  # still being submitted: create_run passes the stop on with the ref
            log.info("run %s: no workflow yet; the stop follows the submission", run_id)
            return
        namespace = ref.get("namespace") or self.cluster.namespace
        request = WorkflowStopRequest(
            name=name, namespace=namespace, message=f"mlbench: stop of run {run_id} requested"
        )
        try:
            self.service().stop_workflow(name, request, namespace=namespace)
        except Exception as exc:
            if hera_status(exc) in (404, 409):
                log.info("run %s: workflow %s already ended or is gone: %s", run_id, name, exc)
            else:
                raise self._error(exc, f"stop workflow {name}", namespace, None) from exc

    # -- re-attach and status sync ----------------------------------------------------------

    def reattach(self, run_id: int, ref: dict[str, Any]) -> bool:
        """True unless the workflow is definitely gone (404); an Argo Server that cannot be
        reached now is asked again by the poll rather than failing the run."""
        name = ref.get("workflow")
        if not name:
            return False
        namespace = ref.get("namespace") or self.cluster.namespace
        try:
            self.service().get_workflow(name, namespace=namespace)
        except Exception as exc:
            if hera_status(exc) == 404:
                return False
            log.warning(
                "run %s: cannot check workflow %s now (%s); watching it anyway",
                run_id,
                name,
                self._error(exc, f"get workflow {name}", namespace).detail,
            )
        self._watch(run_id, _Watched(name, namespace))
        return True

    def watched(self) -> dict[int, str]:
        """Run id -> workflow name of the runs being watched."""
        with self._lock:
            return {run_id: w.workflow for run_id, w in self._watched.items()}

    def _watch(self, run_id: int, watched: _Watched) -> None:
        with self._lock:
            self._watched[run_id] = watched
            if self._thread is None and not self._closing.is_set():
                self._thread = threading.Thread(
                    target=self._poll_loop, name="argo-status", daemon=True
                )
                self._thread.start()

    def _poll_loop(self) -> None:
        while not self._closing.wait(self.poll_s):
            try:
                self.poll_once()
            except Exception:  # never let the one status thread die
                log.exception("Argo status poll failed")

    def poll_once(self) -> None:
        """Ask the Argo Server about every watched workflow; report the ended ones."""
        with self._lock:
            items = list(self._watched.items())
        for run_id, watched in items:
            if self._closing.is_set():
                return
            exit_ = self._check(run_id, watched)
            if exit_ is None:
                continue
            with self._lock:
                if self._watched.get(run_id) != watched:
                    continue  # reported already, or watched anew
                del self._watched[run_id]
            try:
                self._on_exit(exit_)
            except Exception:  # the poll thread must survive a failing callback
                log.exception("recording the exit of run %s failed", run_id)

    def _check(self, run_id: int, watched: _Watched) -> Exit | None:
        name, namespace = watched.workflow, watched.namespace
        try:
            workflow = self.service().get_workflow(name, namespace=namespace)
        except Exception as exc:
            if hera_status(exc) == 404:
                return Exit(run_id, None, f"workflow {name} was deleted")
            detail = self._error(exc, f"get workflow {name}", namespace).detail
            log.warning("run %s: status poll failed, trying again: %s", run_id, detail)
            return None
        status = workflow.status
        phase = status.phase if status is not None else None
        if phase not in ENDED_PHASES:
            return None
        message = (status.message or "").strip() if status is not None else ""
        reason = f"workflow {name} {phase}" + (f": {message}" if message else "")
        return Exit(run_id, 0 if phase == "Succeeded" else 1, reason)

    def shutdown(self) -> None:
        """Stop watching; the workflows go on in the cluster."""
        self._closing.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout=self.timeout_s + 5)
