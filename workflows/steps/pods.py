"""Reading the worker pods of one StatefulSet and judging their state (wait-ready, monitor).

The pods of a StatefulSet are ``<name>-0`` .. ``<name>-<replicas - 1>``; they are listed with the
StatefulSet's own ``spec.selector.matchLabels`` (one list call per poll, whatever the number
of workers) and matched by name, so pods of another run never count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException

from workflows.kube import KubeConfigError, api_client
from workflows.steps import StepFailed, one_line

# Waiting reasons that do not go away by waiting: fail the step at once.
FATAL_WAITING = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CrashLoopBackOff",
        "CreateContainerError",
    }
)
# The run's Secret may be created a moment after the pods that reference it.
CONFIG_ERROR = "CreateContainerConfigError"
_REQUEST_TIMEOUT = (10, 30)


@dataclass(frozen=True)
class PodState:
    """One expected pod, judged."""

    name: str
    exists: bool
    ready: bool = False
    fatal: str | None = None
    """Why the pod can never become (or stay) healthy; None when nothing is wrong for good."""
    config_error: str | None = None
    """A CreateContainerConfigError message (tolerated for a while)."""
    pending: str = ""
    """Short description of why it is not ready yet, for progress lines."""
    restarts: int = 0
    restart_detail: str = ""


class KubeAccessError(Exception):
    """The Kubernetes API refused us (401/403): no point in retrying."""


class WorkerPods:
    """The pods ``<statefulset>-<i>``, i < replicas, of one namespace."""

    def __init__(self, namespace: str, statefulset: str, replicas: int) -> None:
        try:
            api = api_client()
        except KubeConfigError as exc:
            raise StepFailed(str(exc)) from None
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.namespace = namespace
        self.statefulset = statefulset
        self.names = [f"{statefulset}-{i}" for i in range(replicas)]
        self._selector: str | None = None

    def selector(self) -> str | None:
        """The StatefulSet's label selector; None while the StatefulSet does not exist."""
        if self._selector is None:
            try:
                sts = self.apps.read_namespaced_stateful_set(
                    self.statefulset, self.namespace, _request_timeout=_REQUEST_TIMEOUT
                )
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
            labels = (sts.spec.selector.match_labels or {}) if sts.spec.selector else {}
            if not labels:
                raise StepFailed(
                    f"StatefulSet {self.namespace}/{self.statefulset} has no matchLabels selector"
                )
            self._selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        return self._selector

    def read(self) -> dict[str, Any] | None:
        """name -> V1Pod of the expected pods that exist; None while there is no StatefulSet.

        Raises ``KubeAccessError`` on 401/403, ``ApiException``/urllib3 errors otherwise (the
        callers tolerate those for a while: the API server may be briefly unavailable).
        """
        try:
            selector = self.selector()
            if selector is None:
                return None
            listed = self.core.list_namespaced_pod(
                self.namespace, label_selector=selector, _request_timeout=_REQUEST_TIMEOUT
            )
        except ApiException as exc:
            if exc.status in (401, 403):
                raise KubeAccessError(
                    f"the Kubernetes API refused to read pods in namespace {self.namespace} "
                    f"({exc.status} {exc.reason}): {api_message(exc)}"
                ) from None
            raise
        wanted = set(self.names)
        return {p.metadata.name: p for p in listed.items if p.metadata.name in wanted}


def api_message(exc: ApiException) -> str:
    """The ``message`` of a Kubernetes Status body, else the raw body, on one line."""
    try:
        return one_line(json.loads(exc.body).get("message", exc.body), 300)
    except (TypeError, ValueError, AttributeError):
        return one_line(exc.body or exc.reason or "", 300)


def transient_error_text(exc: Exception) -> str | None:
    """A one-line description when ``exc`` is a transient API problem, else None."""
    if isinstance(exc, ApiException):
        return f"Kubernetes API error {exc.status} {exc.reason}: {api_message(exc)}"
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return f"Kubernetes API unreachable: {one_line(exc, 300)}"
    return None


def judge(name: str, pod: Any | None, watched: str | None = None) -> PodState:
    """What one pod's status says (``pod`` is a V1Pod, or None when it does not exist).

    ``restarts`` counts the restarts of the container named ``watched`` only (the training
    process; a restarted log sidecar does not end a run), of every container when None.
    """
    if pod is None:
        return PodState(name, exists=False, pending="not created yet")
    status = pod.status
    conditions = {c.type: c for c in (status.conditions or [])} if status else {}
    ready = conditions.get("Ready") is not None and conditions["Ready"].status == "True"
    if status is not None and status.phase == "Failed":
        why = ": ".join(x for x in (status.reason, status.message) if x) or "no reason given"
        return PodState(name, exists=True, fatal=f"pod phase Failed ({one_line(why, 300)})")

    fatal = config_error = None
    pending = ""
    restarts = 0
    restart_detail = ""
    containers = (
        [*(status.init_container_statuses or []), *(status.container_statuses or [])]
        if status is not None
        else []
    )
    for c in containers:
        waiting = c.state.waiting if c.state else None
        terminated = c.state.terminated if c.state else None
        last = c.last_state.terminated if c.last_state else None
        if watched is None or c.name == watched:
            restarts += c.restart_count or 0
            if (c.restart_count or 0) > 0 and last is not None and not restart_detail:
                restart_detail = _termination(c.name, last)
        if waiting is not None and waiting.reason in FATAL_WAITING and fatal is None:
            fatal = f"container {c.name} {waiting.reason}" + _message(waiting.message)
        elif waiting is not None and waiting.reason == CONFIG_ERROR:
            config_error = f"container {c.name} {CONFIG_ERROR}" + _message(waiting.message)
        elif terminated is not None and terminated.exit_code != 0 and fatal is None:
            fatal = _termination(c.name, terminated)
        if not pending and waiting is not None and waiting.reason:
            pending = waiting.reason
    scheduled = conditions.get("PodScheduled")
    if scheduled is not None and scheduled.status == "False":
        pending = f"{scheduled.reason or 'not scheduled'}: {one_line(scheduled.message or '', 300)}"
    if not pending:
        if pod.metadata.deletion_timestamp is not None:
            pending = "terminating"
        elif status is not None and status.phase == "Running":
            pending = "running, not ready"
        else:
            pending = (status.phase if status else None) or "Pending"
    return PodState(
        name,
        exists=True,
        ready=ready and fatal is None,
        fatal=fatal,
        config_error=config_error,
        pending=pending,
        restarts=restarts,
        restart_detail=restart_detail,
    )


def _termination(container: str, terminated: Any) -> str:
    reason = f" ({terminated.reason})" if terminated.reason else ""
    return (
        f"container {container} terminated with exit code {terminated.exit_code}{reason}"
        + _message(terminated.message)
    )


def _message(text: str | None) -> str:
    return f": {one_line(text, 300)}" if text else ""


def summary(states: list[PodState], limit: int = 5) -> str:
    """``2/4 pods ready; not ready: a (Pending), b (Unschedulable: ...)``."""
    ready = sum(s.ready for s in states)
    line = f"{ready}/{len(states)} pods ready"
    waiting = [s for s in states if not s.ready]
    if waiting:
        shown = ", ".join(f"{s.name} ({s.config_error or s.pending})" for s in waiting[:limit])
        more = f" and {len(waiting) - limit} more" if len(waiting) > limit else ""
        line += f"; not ready: {shown}{more}"
    return line
