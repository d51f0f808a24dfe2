"""A small Kubernetes API server stand-in, over real HTTP, for the parts of mlbench that talk
to a cluster (the master's Secrets and nodes, the in-pod workflow steps).

It serves version and API discovery (enough for ``helm template --dry-run=server``), stores
objects by (API prefix, namespace, resource, name) and answers the REST verbs the
official ``kubernetes`` client sends: list (with equality label selectors), get, create
(409 when present), replace, patch (merge), delete (404 when absent), and pod logs, also
followed (``follow=true`` streams lines as tests append them until the log is closed).
Every request is recorded. Tests can require a bearer token and make chosen requests fail.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.asgi_server import serve_in_thread

KINDS = {
    "pods": ("v1", "Pod"),
    "nodes": ("v1", "Node"),
    "secrets": ("v1", "Secret"),
    "services": ("v1", "Service"),
    "statefulsets": ("apps/v1", "StatefulSet"),
}

# Discovery: group/version -> (resource, kind, namespaced), the kinds mlbench's code and chart use.
DISCOVERY: dict[str, list[tuple[str, str, bool]]] = {
    "v1": [
        ("configmaps", "ConfigMap", True),
        ("namespaces", "Namespace", False),
        ("nodes", "Node", False),
        ("persistentvolumeclaims", "PersistentVolumeClaim", True),
        ("pods", "Pod", True),
        ("secrets", "Secret", True),
        ("serviceaccounts", "ServiceAccount", True),
        ("services", "Service", True),
    ],
    "apps/v1": [("deployments", "Deployment", True), ("statefulsets", "StatefulSet", True)],
    "rbac.authorization.k8s.io/v1": [
        ("clusterrolebindings", "ClusterRoleBinding", False),
        ("clusterroles", "ClusterRole", False),
        ("rolebindings", "RoleBinding", True),
        ("roles", "Role", True),
    ],
    "networking.k8s.io/v1": [
        ("ingresses", "Ingress", True),
        ("networkpolicies", "NetworkPolicy", True),
    ],
}

Key = tuple[str, str | None, str, str]  # (api prefix, namespace, resource, name)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class _Log:
    lines: list[str] = field(default_factory=list)
    closed: bool = False


@dataclass
class _Parsed:
    prefix: str
    namespace: str | None
    resource: str
    name: str | None
    sub: str | None


def _parse(path: str) -> _Parsed | None:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        prefix, rest = "/api/v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        prefix, rest = "/" + "/".join(parts[:3]), parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 2 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    return _Parsed(
        prefix,
        namespace,
        rest[0],
        rest[1] if len(rest) > 1 else None,
        rest[2] if len(rest) > 2 else None,
    )


def _discovery(path: str) -> dict[str, Any] | None:
    """The answer to a version or discovery request, or None for any other path."""
    if path == "/version":
        return {"major": "1", "minor": "33", "gitVersion": "v1.33.0"}
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"]}
    if path == "/apis":
        groups = []
        for gv in DISCOVERY:
            if "/" in gv:
                group, version = gv.split("/")
                entry = {"groupVersion": gv, "version": version}
                groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    gv = path.removeprefix("/api/").removeprefix("/apis/")
    if path.startswith("/api") and gv in DISCOVERY:
        verbs = ["get", "list", "create", "update", "patch", "delete"]
        resources = [
            {"name": name, "singularName": "", "namespaced": ns, "kind": kind, "verbs": verbs}
            for name, kind, ns in DISCOVERY[gv]
        ]
        return {"kind": "APIResourceList", "groupVersion": gv, "resources": resources}
    return None


def _status(code: int, reason: str, message: str) -> JSONResponse:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return JSONResponse(body, status_code=code)


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7386); strategic-merge bodies are treated the same way."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def _selected(obj: dict[str, Any], selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, _, value = term.partition("=")
        if labels.get(key.strip()) != value.lstrip("=").strip():
            return False
    return True


class FakeKubeAPI:
    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.lock = threading.Lock()
        self.objects: dict[Key, dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], _Log] = {}
        self.requests: list[Recorded] = []
        self.failures: list[tuple[str, str, int]] = []
        self._versions = itertools.count(1)
        self.url = ""

    # ----------------------------------------------------------------- test helpers

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` (needs apiVersion, kind, metadata.name[, namespace]) as if created."""
        resource = next(r for r, (_, kind) in KINDS.items() if kind == obj["kind"])
        version = obj["apiVersion"]
        prefix = "/api/v1" if version == "v1" else f"/apis/{version}"
        key = (prefix, obj["metadata"].get("namespace"), resource, obj["metadata"]["name"])
        with self.lock:
            stored = self._stamp(copy.deepcopy(obj))
            self.objects[key] = stored
            return copy.deepcopy(stored)

    def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        with self.lock:
            for (_, ns, res, obj_name), obj in self.objects.items():
                if (res, obj_name, ns) == (resource, name, namespace):
                    return copy.deepcopy(obj)
        return None

    def update(
        self, resource: str, name: str, namespace: str | None, patch: dict[str, Any]
    ) -> None:
        """Merge ``patch`` into a stored object (e.g. a pod's status)."""
        with self.lock:
            for key, obj in self.objects.items():
                if key[1:] == (namespace, resource, name):
                    _merge(obj, patch)
                    return
        raise KeyError(f"{resource}/{name} not stored")

    def append_log(self, namespace: str, pod: str, *lines: str, close: bool = False) -> None:
        with self.lock:
            log = self.logs.setdefault((namespace, pod), _Log())
            log.lines.extend(lines)
            log.closed = log.closed or close

    def fail(self, method: str, path_part: str, status: int, times: int = 1) -> None:
        """The next ``times`` requests with ``method`` whose path contains ``path_part`` fail."""
        with self.lock:
            self.failures.extend([(method.upper(), path_part, status)] * times)

    def calls(self, method: str | None = None, path_part: str = "") -> list[Recorded]:
        with self.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper()) and path_part in r.path
            ]

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig pointing at this server (token auth when the server wants one)."""
        user: dict[str, Any] = {"token": self.token} if self.token else {}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": user}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "fake", "namespace": namespace},
                }
            ],
            "current-context": "fake",
        }
        path.write_text(json.dumps(config))  # JSON is YAML
        return path

    # ----------------------------------------------------------------- server

    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        meta["resourceVersion"] = str(next(self._versions))
        return obj

    async def _handle(self, request: Request) -> Response:
        path = request.url.path
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return _status(400, "BadRequest", "request body is not JSON")
        method = request.method
        with self.lock:
            self.requests.append(Recorded(method, path, dict(request.query_params), body))
            failure = next((f for f in self.failures if f[0] == method and f[1] in path), None)
            if failure is not None:
                self.failures.remove(failure)
        if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
            return _status(401, "Unauthorized", "Unauthorized")
        if failure is not None:
            return _status(failure[2], "InjectedFailure", f"injected failure {failure[2]}")
        discovery = _discovery(path.rstrip("/")) if method == "GET" else None
        if discovery is not None:
            return JSONResponse(discovery)
        parsed = _parse(path)
        if parsed is None:
            return _status(
                404, "NotFound", f"the server could not find the requested resource {path}"
            )
        if parsed.sub == "log":
            return self._log(parsed, request)
        if parsed.sub is not None:
            return _status(404, "NotFound", f"subresource {parsed.sub} is not served by the fake")
        with self.lock:
            return self._rest(method, parsed, request, body)

    def _rest(self, method: str, p: _Parsed, request: Request, body: Any) -> Response:
        api_version, kind = KINDS.get(p.resource, ("v1", p.resource.rstrip("s").title()))
        if p.name is None:
            if method == "GET":
                selector = request.query_params.get("labelSelector", "")
                items = [
                    copy.deepcopy(obj)
                    for (prefix, ns, res, _), obj in sorted(
                        self.objects.items(), key=lambda i: str(i[0])
                    )
                    if (prefix, res) == (p.prefix, p.resource)
                    and (p.namespace is None or ns == p.namespace)
                    and _selected(obj, selector)
                ]
                return JSONResponse(
                    {
                        "apiVersion": api_version,
                        "kind": f"{kind}List",
                        "metadata": {"resourceVersion": "1"},
                        "items": items,
                    }
                )
            if method == "POST":
                if not isinstance(body, dict) or not body.get("metadata", {}).get("name"):
                    return _status(422, "Invalid", "metadata.name is required")
                key = (p.prefix, p.namespace, p.resource, body["metadata"]["name"])
                if key in self.objects:
                    return _status(409, "AlreadyExists", f'{p.resource} "{key[3]}" already exists')
                body["metadata"].setdefault("namespace", p.namespace)
                body.setdefault("apiVersion", api_version)
                body.setdefault("kind", kind)
                self.objects[key] = self._stamp(body)
                return JSONResponse(self.objects[key], status_code=201)
            return _status(405, "MethodNotAllowed", f"{method} on a collection")
        key = (p.prefix, p.namespace, p.resource, p.name)
        stored = self.objects.get(key)
        if stored is None and method != "PUT":
            return _status(404, "NotFound", f'{p.resource} "{p.name}" not found')
        if method == "GET":
            return JSONResponse(copy.deepcopy(stored))
        if method == "DELETE":
            del self.objects[key]
            return JSONResponse({"kind": "Status", "apiVersion": "v1", "status": "Success"})
        if method == "PUT":
            if stored is None:
                return _status(404, "NotFound", f'{p.resource} "{p.name}" not found')
            self.objects[key] = self._stamp(body)
            return JSONResponse(self.objects[key])
        if method == "PATCH":
            if isinstance(body, list):
                return _status(415, "UnsupportedMediaType", "JSON patch is not served by the fake")
            _merge(stored, body or {})
            self._stamp(stored)
            return JSONResponse(copy.deepcopy(stored))
        return _status(405, "MethodNotAllowed", method)

    def _log(self, p: _Parsed, request: Request) -> Response:
        key = (p.namespace or "", p.name or "")
        with self.lock:
            if (p.prefix, p.namespace, "pods", p.name) not in self.objects:
                return _status(404, "NotFound", f'pods "{p.name}" not found')
            log = self.logs.setdefault(key, _Log())
            if request.query_params.get("follow") != "true":
                return Response("".join(line + "\n" for line in log.lines), media_type="text/plain")

        async def stream() -> Any:
            sent = 0
            while True:
                with self.lock:
                    lines, closed = log.lines[sent:], log.closed
                for line in lines:
                    yield (line + "\n").encode()
                sent += len(lines)
                if closed and not lines:
                    return
                await asyncio.sleep(0.05)

        return StreamingResponse(stream(), media_type="text/plain")

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", self._handle, methods=methods)])


@contextmanager
def running_kube_api(token: str | None = None) -> Iterator[FakeKubeAPI]:
    fake = FakeKubeAPI(token=token)
    with serve_in_thread(fake.app()) as url:
        fake.url = url
        yield fake
