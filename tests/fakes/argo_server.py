"""A stand-in for the Argo Server's workflow API, over real HTTP (the routes Hera's
``WorkflowsService`` calls): create, get, list, stop, terminate, delete, and WorkflowTemplate
create/get. Answers are Argo-shaped (grpc-gateway errors ``{"code", "message"}``).

It records every request, can require a bearer token (401) and refuse with 403, lets tests
move a workflow to a phase, and can make chosen requests fail or hang.
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
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.asgi_server import serve_in_thread

# grpc codes the Argo Server puts next to the HTTP status
_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 500: 13, 503: 14}


@dataclass
class Recorded:
    method: str
    path: str
    body: Any
    authorization: str | None


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"code": _GRPC.get(status, 2), "message": message}, status_code=status)


class FakeArgoServer:
    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.forbidden = False
        self.lock = threading.Lock()
        self.workflows: dict[tuple[str, str], dict[str, Any]] = {}
        self.templates: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self.failures: list[tuple[str, str, int]] = []
        self.hang_s = 0.0
        self._versions = itertools.count(1)
        self.url = ""

    # ----------------------------------------------------------------- test helpers

    def set_phase(self, namespace: str, name: str, phase: str, message: str = "") -> None:
        with self.lock:
            status = self.workflows[(namespace, name)].setdefault("status", {})
            status["phase"] = phase
            if message:
                status["message"] = message
            if phase in ("Succeeded", "Failed", "Error"):
                status["finishedAt"] = "2026-01-01T00:10:00Z"

    def remove(self, namespace: str, name: str) -> None:
        with self.lock:
            self.workflows.pop((namespace, name), None)

    def workflow(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.workflows.get((namespace, name))
            return copy.deepcopy(found) if found else None

    def fail(self, method: str, path_part: str, status: int, times: int = 1) -> None:
        with self.lock:
            self.failures.extend([(method.upper(), path_part, status)] * times)

    def calls(self, method: str | None = None, path_part: str = "") -> list[Recorded]:
        with self.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper()) and path_part in r.path
            ]

    # ----------------------------------------------------------------- server

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return _error(400, "request body is not JSON")
        method, path = request.method, request.url.path
        with self.lock:
            self.requests.append(Recorded(method, path, body, request.headers.get("authorization")))
            failure = next((f for f in self.failures if f[0] == method and f[1] in path), None)
            if failure is not None:
                self.failures.remove(failure)
        if self.hang_s:
            await asyncio.sleep(self.hang_s)  # the client must time out
        if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
            return _error(
                401, "token not valid. see https://argo-workflows.readthedocs.io/en/latest/faq/"
            )
        if self.forbidden:
            return _error(
                403,
                'workflows.argoproj.io is forbidden: User "system:serviceaccount:mlbench:'
                'mlbench-master" cannot create resource "workflows" in API group "argoproj.io"',
            )
        if failure is not None:
            return _error(failure[2], f"injected failure {failure[2]}")
        parts = [p for p in path.split("/") if p]
        if parts[:2] != ["api", "v1"] or len(parts) < 4:
            return _error(404, f"no route {path}")
        collection, namespace, rest = parts[2], parts[3], parts[4:]
        with self.lock:
            if collection == "workflows":
                return self._workflows(method, namespace, rest, body)
            if collection == "workflow-templates":
                return self._templates(method, namespace, rest, body)
        return _error(404, f"no route {path}")

    def _create(
        self,
        store: dict[tuple[str, str], dict[str, Any]],
        namespace: str,
        obj: dict[str, Any],
        kind: str,
    ) -> Response:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                return _error(400, f"{kind}.metadata.name or generateName is required")
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta["name"]
        if (namespace, name) in store:
            return _error(409, f'{kind.lower()}s.argoproj.io "{name}" already exists')
        meta["namespace"] = namespace
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = str(next(self._versions))
        meta["creationTimestamp"] = "2026-01-01T00:00:00Z"
        if kind == "Workflow":
            obj["status"] = {"phase": "Pending"}
        store[(namespace, name)] = obj
        return JSONResponse(copy.deepcopy(obj))

    def _workflows(self, method: str, namespace: str, rest: list[str], body: Any) -> Response:
        if not rest:
            if method == "POST":
                workflow = (body or {}).get("workflow")
                if not isinstance(workflow, dict):
                    return _error(400, "request has no workflow")
                return self._create(self.workflows, namespace, workflow, "Workflow")
            if method == "GET":
                items = [
                    copy.deepcopy(w) for (ns, _), w in self.workflows.items() if ns == namespace
                ]
                return JSONResponse({"metadata": {}, "items": items})
            return _error(405, method)
        name = rest[0]
        workflow = self.workflows.get((namespace, name))
        if workflow is None:
            return _error(404, f'workflows.argoproj.io "{name}" not found')
        if len(rest) == 1 and method == "GET":
            return JSONResponse(copy.deepcopy(workflow))
        if len(rest) == 1 and method == "DELETE":
            del self.workflows[(namespace, name)]
            return JSONResponse({})
        if len(rest) == 2 and method == "PUT" and rest[1] in ("stop", "terminate"):
            status = workflow.setdefault("status", {})
            if status.get("phase") in ("Succeeded", "Failed", "Error"):
                return _error(409, "cannot shutdown a completed workflow")
            workflow.setdefault("spec", {})["shutdown"] = rest[1].title()
            return JSONResponse(copy.deepcopy(workflow))
        return _error(405, f"{method} {'/'.join(rest)}")

    def _templates(self, method: str, namespace: str, rest: list[str], body: Any) -> Response:
        if not rest and method == "POST":
            template = (body or {}).get("template")
            if not isinstance(template, dict):
                return _error(400, "request has no template")
            return self._create(self.templates, namespace, template, "WorkflowTemplate")
        if len(rest) == 1 and method == "GET":
            template = self.templates.get((namespace, rest[0]))
            if template is None:
                return _error(404, f'workflowtemplates.argoproj.io "{rest[0]}" not found')
            return JSONResponse(copy.deepcopy(template))
        return _error(405, method)

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", self._handle, methods=methods)])


@contextmanager
def running_argo_server(token: str | None = None) -> Iterator[FakeArgoServer]:
    fake = FakeArgoServer(token=token)
    with serve_in_thread(fake.app()) as url:
        fake.url = url
        yield fake
