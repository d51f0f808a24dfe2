"""Runs: create (and start), list, read, stop, delete, and worker status reports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from master.api.deps import (
    MAX_SQL_INT,
    AdminDep,
    ExecutorsDep,
    ReaderDep,
    RunIdPath,
    SessionDep,
    SettingsDep,
    WorkerOrAdminDep,
)
from master.schemas import (
    ErrorPublic,
    RunListItem,
    RunProgress,
    RunPublic,
    RunResultSummary,
    RunsPublic,
)
from master.services import lifecycle, runs
from master.services.worker_defaults import apply_worker_defaults
from mlbench_core.spec import NAME_PATTERN, RunSpec
from mlbench_core.states import RunState
from mlbench_core.wire import StatusUpdate

router = APIRouter(prefix="/runs", tags=["runs"])

_AUTH = {401: {"model": ErrorPublic}, 403: {"model": ErrorPublic}}
_NOT_FOUND = {404: {"model": ErrorPublic}}
_CONFLICT = {409: {"model": ErrorPublic}}
# PostgreSQL text cannot hold NUL: the driver would fail (a 500) where a 422 is the answer.
NO_NUL = r"^[^\x00]*$"


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={**_AUTH, **_CONFLICT, 502: {"model": ErrorPublic}, 503: {"model": ErrorPublic}},
)
def create_run(
    spec: RunSpec,
    session: SessionDep,
    settings: SettingsDep,
    executors: ExecutorsDep,
    _admin: AdminDep,
) -> RunPublic:
    """Store the run and start its workers (``executor`` unset: the master's default). If the
    executor cannot start them the run is still created, in state ``failed`` with the
    executor's message as reason; when its backend refused or could not be reached (Argo
    Server, Kubernetes API) the answer is that error (409, 502, 503) naming the failed run."""
    spec = apply_worker_defaults(spec, settings)
    run_id = runs.create_run(
        session, spec, executors, settings.resolved_public_url, settings.default_executor
    )
    return RunPublic.from_row(runs.get_run(session, run_id))


@router.get("", responses=_AUTH)
def list_runs(
    session: SessionDep,
    _reader: ReaderDep,
    state: Annotated[list[RunState] | None, Query(description="Repeat to match several.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_SQL_INT)] = 0,
    group: Annotated[
        str | None, Query(pattern=NAME_PATTERN, description="Only the runs of this group.")
    ] = None,
    benchmark: Annotated[
        str | None,
        Query(pattern=NO_NUL, max_length=128, description="Only runs of this benchmark."),
    ] = None,
) -> RunsPublic:
    """Runs, newest first, each with its progress (newest metric point) and result summary."""
    items, total = runs.list_runs(session, state or [], limit, offset, group, benchmark)
    ids = [run.id for run in items]
    points, results = runs.latest_points(session, ids), runs.results_of(session, ids)
    listed = [
        RunListItem(
            **dict(RunPublic.from_row(run)),  # fields as they are: spec stays a RunSpec
            progress=RunProgress.from_row(points[run.id]) if run.id in points else None,
            result=RunResultSummary.from_row(results[run.id]) if run.id in results else None,
        )
        for run in items
    ]
    return RunsPublic(items=listed, total=total, limit=limit, offset=offset)


@router.get("/{run_id}", responses={**_AUTH, **_NOT_FOUND})
def get_run(run_id: RunIdPath, session: SessionDep, _reader: ReaderDep) -> RunPublic:
    return RunPublic.from_row(runs.get_run(session, run_id))


@router.post(
    "/{run_id}/stop",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **_AUTH,
        **_NOT_FOUND,
        **_CONFLICT,
        502: {"model": ErrorPublic},
        503: {"model": ErrorPublic},
    },
)
def stop_run(
    run_id: RunIdPath, session: SessionDep, executors: ExecutorsDep, _admin: AdminDep
) -> RunPublic:
    """Ask the workers to end; the run is ``stopping`` until the executor reports the exit
    (a queued run is ``stopped`` at once)."""
    runs.stop_run(session, run_id, executors)
    return RunPublic.from_row(runs.get_run(session, run_id))


@router.delete(
    "/{run_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_AUTH, **_NOT_FOUND, **_CONFLICT},
)
def delete_run(run_id: RunIdPath, session: SessionDep, _admin: AdminDep) -> Response:
    """Delete an ended run with its transitions, metrics and result."""
    runs.delete_run(session, run_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{run_id}/status", responses={**_AUTH, **_NOT_FOUND})
def report_status(
    run_id: RunIdPath,
    update: StatusUpdate,
    session: SessionDep,
    executors: ExecutorsDep,
    _writer: WorkerOrAdminDep,
) -> RunPublic:
    """A worker's report; an ended run is returned unchanged (the first terminal state wins)."""
    lifecycle.apply_status(session, run_id, update, executors)
    return RunPublic.from_row(runs.get_run(session, run_id))
