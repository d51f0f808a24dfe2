"""FastAPI dependencies: the app's state, a session per request, and who may do what.

Dependencies that do no I/O are ``async def``: FastAPI runs every plain ``def`` dependency in
its thread pool, and under load those trips cost more than the small requests themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from master.auth import Principal, authenticate
from master.executors.base import Executor
from master.services.heartbeats import HeartbeatMonitor
from master.settings import Settings

MAX_RUN_ID = 2**31 - 1
"""Run ids are an INTEGER column (32 bits on PostgreSQL). Bounding the path parameter turns an
id no run can have into a 422 instead of an OverflowError in the database driver (a 500 on
SQLite, which takes at most 64-bit integers)."""

RunIdPath = Annotated[int, Path(ge=1, le=MAX_RUN_ID, description="The run's id.")]

MAX_SQL_INT = 2**63 - 1
"""Largest value of an integer query parameter that reaches SQL (point ids, cursors, OFFSET are
64-bit): beyond it the driver overflows (a 500) where a 422 is the answer."""


@dataclass
class MasterState:
    """What the lifespan builds and every request uses (``app.state.mlbench``)."""

    settings: Settings
    engine: Engine
    sessionmaker: sessionmaker[Session]
    executors: Mapping[str, Executor]
    admin_token: str
    heartbeats: HeartbeatMonitor


async def get_state(request: Request) -> MasterState:
    return request.app.state.mlbench


StateDep = Annotated[MasterState, Depends(get_state)]


async def get_settings(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_executors(state: StateDep) -> Mapping[str, Executor]:
    return state.executors


ExecutorsDep = Annotated[Mapping[str, Executor], Depends(get_executors)]


async def get_heartbeats(state: StateDep) -> HeartbeatMonitor:
    return state.heartbeats


HeartbeatsDep = Annotated[HeartbeatMonitor, Depends(get_heartbeats)]


async def get_session(state: StateDep) -> AsyncIterator[Session]:
    # Async although the session is sync: creating and closing one does no I/O once its work
    # is committed, and a sync dependency would cost two trips through the thread pool per
    # request (enter and exit), the largest part of a small request's cost under load.
    with state.sessionmaker() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False, description="Admin token or the run's worker token.")
CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def _forbidden(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail=detail)


def require_principal(
    state: StateDep, session: SessionDep, credentials: CredentialsDep
) -> Principal:
    """Any valid token (admin or a worker token of any run); 401 otherwise."""
    if credentials is None:
        raise _unauthorized("missing bearer token (header 'Authorization: Bearer <token>')")
    principal = authenticate(session, state.admin_token, credentials.credentials)
    # Hand the connection back before the body is read: a request waiting for its body (or
    # for a thread to run its route) must not hold one of the pool's connections, or under
    # load every connection is held by such requests while the threads that could finish
    # them wait for a connection (a deadlock found by tests/reliability/test_load.py).
    session.commit()
    if principal is None:
        raise _unauthorized("invalid token")
    return principal


PrincipalDep = Annotated[Principal, Depends(require_principal)]


async def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        raise _forbidden("this route needs the admin token; a worker token may not use it")
    return principal


def require_reader(
    state: StateDep, session: SessionDep, credentials: CredentialsDep
) -> Principal | None:
    """Reads are open unless MLBENCH_AUTH_READS is set; then any valid token will do."""
    if not state.settings.auth_reads:
        return None
    return require_principal(state, session, credentials)


async def require_run_worker(run_id: RunIdPath, principal: PrincipalDep) -> Principal:
    """The worker token of the run in the path (metrics, result)."""
    if principal.is_admin:
        raise _forbidden(f"this route takes the worker token of run {run_id}, not the admin token")
    if principal.run_id != run_id:
        raise _forbidden(f"this worker token belongs to another run, not to run {run_id}")
    return principal


async def require_run_worker_or_admin(run_id: RunIdPath, principal: PrincipalDep) -> Principal:
    """The worker token of the run in the path, or the admin token (status reports)."""
    if not principal.is_admin and principal.run_id != run_id:
        raise _forbidden(f"this worker token belongs to another run, not to run {run_id}")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]
ReaderDep = Annotated[Principal | None, Depends(require_reader)]
WorkerDep = Annotated[Principal, Depends(require_run_worker)]
WorkerOrAdminDep = Annotated[Principal, Depends(require_run_worker_or_admin)]
