"""A run's manifest: spec, resolved settings, versions, host and devices (written by rank 0)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from master.db import write_transaction
from master.errors import NotFound
from master.services.runs import get_run, lock_run
from mlbench_core.wire import Manifest


def put_manifest(session: Session, run_id: int, manifest: Manifest) -> Manifest:
    with write_transaction(session):
        run = lock_run(session, run_id)
        run.manifest = manifest.model_dump(mode="json")
    return manifest


def get_manifest(session: Session, run_id: int) -> Manifest:
    run = get_run(session, run_id)
    if run.manifest is None:
        raise NotFound(f"run {run_id} has no manifest yet (rank 0 writes it when it starts)")
    return Manifest.model_validate(run.manifest)
