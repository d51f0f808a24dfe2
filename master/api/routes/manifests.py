"""The manifest of a run, written once by rank 0 when it starts."""

from __future__ import annotations

from fastapi import APIRouter

from master.api.deps import ReaderDep, RunIdPath, SessionDep, WorkerDep
from master.schemas import ErrorPublic
from master.services import manifests
from mlbench_core.wire import Manifest

router = APIRouter(prefix="/runs/{run_id}/manifest", tags=["results"])

_ERRORS = {401: {"model": ErrorPublic}, 403: {"model": ErrorPublic}, 404: {"model": ErrorPublic}}


@router.put("", responses=_ERRORS)
def put_manifest(
    run_id: RunIdPath, manifest: Manifest, session: SessionDep, _worker: WorkerDep
) -> Manifest:
    """Store what the run ran with: spec, resolved settings, versions, host and devices."""
    return manifests.put_manifest(session, run_id, manifest)


@router.get("", responses=_ERRORS)
def get_manifest(run_id: RunIdPath, session: SessionDep, _reader: ReaderDep) -> Manifest:
    """The run's manifest; 404 until rank 0 has sent it."""
    return manifests.get_manifest(session, run_id)
