"""Workers' heartbeats: how the master tells a hung worker from a slow one."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from master.api.deps import HeartbeatsDep, RunIdPath, SessionDep, WorkerDep
from master.errors import NotFound
from master.models import Run
from master.schemas import ErrorPublic, HeartbeatAck
from mlbench_core.states import RunState
from mlbench_core.wire import Heartbeat

router = APIRouter(prefix="/runs/{run_id}/heartbeat", tags=["runs"])

_ERRORS = {code: {"model": ErrorPublic} for code in (401, 403, 404)}


@router.post("", responses=_ERRORS)  # type: ignore[arg-type]
def post_heartbeat(
    run_id: RunIdPath,
    beat: Heartbeat,
    session: SessionDep,
    heartbeats: HeartbeatsDep,
    _worker: WorkerDep,
) -> HeartbeatAck:
    """A worker is alive (``idle_s``: how long its training thread has not logged). A running
    run whose worker stops beating for ``heartbeat_timeout_s``, or stays idle for
    ``progress_timeout_s``, fails with a reason naming the rank. Kept in memory, not stored."""
    found = session.scalar(select(Run.state).where(Run.id == run_id))
    if found is None:
        raise NotFound(f"run {run_id} does not exist")
    state = RunState(found)
    if state is RunState.running:
        heartbeats.record(run_id, beat)
    return HeartbeatAck(state=state)
