"""Errors raised by the services; the app turns them into ``{"detail": "..."}`` responses."""

from __future__ import annotations


class ServiceError(Exception):
    """A request the service refuses; ``detail`` is one readable line for the client."""

    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409


class Unprocessable(ServiceError):
    """Input that is well-formed but cannot be served (rendered like FastAPI's 422 list)."""

    status_code = 422

    def __init__(self, detail: str, loc: tuple[str | int, ...] = ("body",)) -> None:
        super().__init__(detail)
        self.loc = loc


class ExecutorFailed(ServiceError):
    """The executor (process launcher, Argo Server) refused or failed an operation."""

    status_code = 502


class ExecutorUnavailable(ExecutorFailed):
    """The executor's backend (Argo Server, Kubernetes API) cannot be reached now."""

    status_code = 503


class ExecutorConflict(ExecutorFailed):
    """The executor's backend already holds an object of that name."""

    status_code = 409
