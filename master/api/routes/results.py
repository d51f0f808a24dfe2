"""The structured result of a run, written by rank 0."""

from __future__ import annotations

from fastapi import APIRouter

from master.api.deps import ReaderDep, RunIdPath, SessionDep, WorkerDep
from master.schemas import ErrorPublic, ResultPublic
from master.services import results
from mlbench_core.wire import RunResult

router = APIRouter(prefix="/runs/{run_id}/result", tags=["results"])

_AUTH = {401: {"model": ErrorPublic}, 403: {"model": ErrorPublic}}
_NOT_FOUND = {404: {"model": ErrorPublic}}


@router.put("", responses={**_AUTH, **_NOT_FOUND})
def put_result(
    run_id: RunIdPath, result: RunResult, session: SessionDep, _worker: WorkerDep
) -> ResultPublic:
    """Store the run's result, replacing an earlier one."""
    return results.put_result(session, run_id, result)


@router.get("", responses={**_AUTH, **_NOT_FOUND})
def get_result(run_id: RunIdPath, session: SessionDep, _reader: ReaderDep) -> ResultPublic:
    """The run's result; 404 while none is stored."""
    return results.get_result(session, run_id)
