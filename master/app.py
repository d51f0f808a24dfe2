"""The FastAPI application: ``create_app(settings, executors)``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from master import __version__
from master.api.body_limit import BodyLimitMiddleware
from master.api.deps import MasterState
from master.api.json_body import add_body_schemas
from master.api.main import api_router
from master.auth import ensure_admin_token
from master.db import describe_outage, make_engine, make_sessionmaker
from master.errors import ServiceError, Unprocessable
from master.executors.base import Executor, Exit
from master.migrate import upgrade
from master.services.heartbeats import HeartbeatMonitor
from master.services.lifecycle import handle_exit, reconcile, stop_owned_runs
from master.settings import Settings
from mlbench_core import wire

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, executors: Mapping[str, Executor] | None = None
) -> FastAPI:
    """Build the master app. Startup (the lifespan) migrates the database, ensures the admin
    token, builds the executors unless given, and re-attaches to runs left live.

    Executors passed in must report exits to ``app.state.on_exit`` (callable from any thread
    once the app has started), e.g. ``MyExecutor(on_exit=lambda e: app.state.on_exit(e))``.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.resolved_database_url
        upgrade(url)
        admin_token = ensure_admin_token(settings)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        on_exit = partial(handle_exit, sessions)
        app.state.on_exit = on_exit
        built = executors if executors is not None else _default_executors(settings, on_exit)
        heartbeats = HeartbeatMonitor(
            sessions,
            built,
            timeout_s=settings.heartbeat_timeout_s,
            progress_timeout_s=settings.progress_timeout_s,
        )
        app.state.mlbench = MasterState(settings, engine, sessions, built, admin_token, heartbeats)
        _reconcile(sessions, built)
        heartbeats.start()
        try:
            yield
        finally:
            heartbeats.stop()
            stop_owned_runs(sessions, built)
            for name, executor in built.items():
                try:
                    executor.shutdown()
                except Exception:
                    log.exception("executor %s did not shut down cleanly", name)
            engine.dispose()

    app = FastAPI(
        title="mlbench master",
        version=__version__,
        description="Starts distributed ML benchmark runs and stores their metrics and results.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.on_exit = _not_started
    app.add_exception_handler(ServiceError, _service_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(DBAPIError, _database_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.include_router(api_router)
    add_body_schemas(app, [wire.MetricBatch])
    return app


def _reconcile(sessions: sessionmaker[Session], executors: Mapping[str, Executor]) -> None:
    """Reconcile live runs, unless the database takes no writes now (read-only, full): then
    the master still starts and serves reads; a later start that can write reconciles."""
    try:
        reconcile(sessions, executors)
    except DBAPIError as exc:
        what = describe_outage(exc)
        if what is None:
            raise
        log.warning("live runs not reconciled at start: %s (%s)", what, _first_line(exc))


def _default_executors(settings: Settings, on_exit: partial[None]) -> dict[str, Executor]:
    # Imported here: the local executor pulls in process management the API layer never needs.
    from master.executors.local import LocalExecutor

    executors: dict[str, Executor] = {
        "local": LocalExecutor(
            on_exit=on_exit, runs_dir=settings.data_dir / "runs", grace_s=settings.stop_grace_s
        )
    }
    if settings.argo_server:
        from master.executors.argo import ArgoExecutor

        executors["argo"] = ArgoExecutor.from_settings(settings, on_exit)
    return executors


def _not_started(exit: Exit) -> None:
    log.error("exit of run %s reported before the master started; ignored", exit.run_id)


def _service_error(_request: Request, exc: ServiceError) -> JSONResponse:
    if isinstance(exc, Unprocessable):
        # Same shape as FastAPI's own validation errors, so clients parse one 422 format.
        errors = [{"type": "value_error", "loc": list(exc.loc), "msg": exc.detail}]
        return JSONResponse(status_code=exc.status_code, content={"detail": errors})
    return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail})


def _database_error(request: Request, exc: DBAPIError) -> JSONResponse:
    """An outage of the database (gone, restarting, read-only, disk full) is a 503 the client
    may retry; nothing was stored, because the request's transaction was rolled back. Any other
    database error is a bug and stays a 500."""
    what = describe_outage(exc)
    if what is None:
        raise exc
    verb = "reads" if request.method in ("GET", "HEAD") else "writes"
    log.warning("%s %s refused: %s (%s)", request.method, request.url.path, what, _first_line(exc))
    return JSONResponse(
        status_code=503,
        content={"detail": f"{what}; {verb} are refused until it recovers, retry later"},
        headers={"Retry-After": "1"},
    )


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", exc)).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """FastAPI answers a JSON body that is not UTF-8 with a bare, undocumented 400; answer the
    422 that every other undecodable body gets (the metrics route's included)."""
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        msg = "the body is not UTF-8 encoded JSON"
        errors = [{"type": "json_invalid", "loc": ["body"], "msg": msg}]
        return JSONResponse(status_code=422, content={"detail": errors})
    return await http_exception_handler(request, exc)


def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 list, each error with ``type``, ``loc`` and ``msg``.

    The default handler also echoes each error's ``input``: that fails outright for a NaN
    (JSON has none, so the client would get a 500 instead of the 422) and would send whole
    metric batches back.
    """
    errors = [
        {"type": error["type"], "loc": list(error["loc"]), "msg": error["msg"]}
        for error in exc.errors()
    ]
    return JSONResponse(status_code=422, content={"detail": errors})
