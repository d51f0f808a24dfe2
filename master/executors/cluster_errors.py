"""Errors of the Argo Server and the Kubernetes API as one-line ``ServiceError``s.

Mapping (docs/api.md, "Executor errors"): a rejected token (401) or missing rights (403) is the
master's configuration, answered 502 with what to check; a name that already exists is 409;
a server that cannot be reached (refused, DNS, TLS, timeout) is 503; anything else 502.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Iterator

from master.errors import ExecutorConflict, ExecutorFailed, ExecutorUnavailable

RBAC_HINT = "grant the master's service account the rights in argo/rbac/master.yaml"
_HERA_STATUS = re.compile(r"status code (\d{3})")
_HERA_MESSAGE = re.compile(r"with message: `(.*)`\s*$", re.DOTALL)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes, and the errors wrapped in requests' and urllib3's errors."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        current = todo.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
        todo.extend(current.args)


def describe_connection_error(
    exc: BaseException, timeout_s: float, tls_hint: str = "check MLBENCH_ARGO_CA_FILE / _VERIFY_TLS"
) -> str:
    """Why a request got no answer, in a few words."""
    chain = list(_chain(exc))
    names = {type(e).__name__ for e in chain}
    if any(isinstance(e, ssl.SSLError) for e in chain) or "SSLError" in names:
        detail = next((e for e in chain if isinstance(e, ssl.SSLError)), exc)
        return f"TLS failed ({_first_line(detail)}); {tls_hint}"
    if any(isinstance(e, socket.gaierror) for e in chain) or "NameResolutionError" in names:
        return "its host name does not resolve"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection refused"
    if any(isinstance(e, TimeoutError) for e in chain) or any("Timeout" in n for n in names):
        return f"no answer within {timeout_s:g}s"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


# -- Argo Server (Hera + requests) ---------------------------------------------------------------


def hera_status(exc: BaseException) -> int | None:
    """The HTTP status of an error Hera raised for a server answer, else None."""
    code = getattr(type(exc), "status_code", None)
    if isinstance(code, int):
        return code
    found = _HERA_STATUS.search(str(exc))
    return int(found.group(1)) if found else None


def hera_message(exc: BaseException) -> str:
    """The Argo Server's own message inside a Hera error."""
    found = _HERA_MESSAGE.search(str(exc))
    return _first_line(Exception(found.group(1))) if found else _first_line(exc)


def is_connection_error(exc: BaseException) -> bool:
    """No answer came back: refused, DNS, TLS, timeout (requests, urllib3 or the socket)."""
    import requests
    import urllib3.exceptions

    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return True
    if isinstance(exc, urllib3.exceptions.HTTPError):  # MaxRetryError, ProtocolError, ...
        return True
    return isinstance(exc, ConnectionError | TimeoutError | socket.gaierror | ssl.SSLError)


def argo_error(
    exc: BaseException,
    url: str,
    action: str,
    *,
    namespace: str,
    workflow: str | None = None,
    timeout_s: float,
) -> ExecutorFailed:
    """One readable error for a failed request to the Argo Server.

    ``action`` completes "could not ...", e.g. "create workflow mlbench-3-a".
    """
    if is_connection_error(exc):
        why = describe_connection_error(exc, timeout_s)
        return ExecutorUnavailable(f"Argo Server at {url} is unreachable: {why}")
    status = hera_status(exc)
    message = hera_message(exc)
    if status == 401:
        return ExecutorFailed(
            f"Argo Server at {url} rejected the master's token (401): "
            "check MLBENCH_ARGO_TOKEN/_FILE"
        )
    if status == 403:
        return ExecutorFailed(
            f"Argo Server at {url} forbids the master to {action} in namespace {namespace} "
            f"(403: {message}): {RBAC_HINT}"
        )
    if status == 404:
        return ExecutorFailed(
            f"Argo Server at {url} answered 404 to {action}: namespace {namespace!r} does not "
            f"exist or {url} is not an Argo Server (check MLBENCH_ARGO_SERVER and "
            f"MLBENCH_ARGO_NAMESPACE): {message}"
        )
    if status == 409 and workflow is not None:
        return ExecutorConflict(
            f"a workflow named {workflow} already exists in namespace {namespace}"
        )
    if status is None:
        return ExecutorFailed(f"could not {action} on the Argo Server at {url}: {message}")
    if status in (502, 503, 504):
        return ExecutorUnavailable(f"Argo Server at {url} is unavailable ({status}): {message}")
    return ExecutorFailed(f"Argo Server at {url} answered {status} to {action}: {message}")


# -- Kubernetes API (kubernetes client + urllib3) -----------------------------------------------


def kube_status(exc: BaseException) -> int | None:
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException) and isinstance(exc.status, int) and exc.status > 0:
        return exc.status
    return None


def kube_message(exc: BaseException) -> str:
    """The API server's ``Status.message``, else the reason."""
    import json

    body = getattr(exc, "body", None)
    if body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            message = None
        if message:
            return _first_line(Exception(message))
    return _first_line(Exception(getattr(exc, "reason", None) or exc))


def kube_error(
    exc: BaseException, url: str, action: str, *, namespace: str | None, timeout_s: float
) -> ExecutorFailed:
    """One readable error for a failed request to the Kubernetes API."""
    from workflows.kube import KubeConfigError

    where = f" in namespace {namespace}" if namespace else ""
    if isinstance(exc, KubeConfigError):
        return ExecutorUnavailable(f"{exc}; set MLBENCH_KUBECONFIG")
    status = kube_status(exc)
    if status is None:
        if is_connection_error(exc):
            why = describe_connection_error(
                exc, timeout_s, "check the certificate authority in the kubeconfig"
            )
            return ExecutorUnavailable(f"Kubernetes API at {url} is unreachable: {why}")
        return ExecutorFailed(
            f"could not {action}{where}: {type(exc).__name__}: {_first_line(exc)}"
        )
    message = kube_message(exc)
    if status == 401:
        return ExecutorFailed(
            f"Kubernetes API at {url} rejected the master's credentials (401): check "
            "MLBENCH_KUBECONFIG or the master pod's service account"
        )
    if status == 403:
        return ExecutorFailed(
            f"Kubernetes API at {url} forbids the master to {action}{where} "
            f"(403: {message}): {RBAC_HINT}"
        )
    if status == 409:
        return ExecutorConflict(f"could not {action}{where}: {message}")
    if status in (502, 503, 504):
        return ExecutorUnavailable(f"Kubernetes API at {url} is unavailable ({status}): {message}")
    return ExecutorFailed(
        f"Kubernetes API at {url} answered {status} to {action}{where}: {message}"
    )
