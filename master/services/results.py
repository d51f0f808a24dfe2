"""The structured result of a run (one row per run, replaced on a repeated PUT)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from master.db import write_transaction
from master.errors import NotFound
from master.models import Result, utcnow
from master.schemas import ResultPublic
from master.services.runs import ensure_run, lock_run
from mlbench_core.wire import RunResult


def put_result(session: Session, run_id: int, result: RunResult) -> ResultPublic:
    with write_transaction(session):
        lock_run(session, run_id)  # 404 for unknown runs; serialises with exit handling
        row = session.get(Result, run_id, populate_existing=True)
        if row is None:
            row = Result(run_id=run_id)
            session.add(row)
        fields = result.model_dump(exclude={"phases"})
        for key, value in fields.items():
            setattr(row, key, value)
        for phase, seconds in result.phases.model_dump().items():
            setattr(row, f"{phase}_s", seconds)
        row.received_at = utcnow()
    return ResultPublic.from_row(row)


def get_result(session: Session, run_id: int) -> ResultPublic:
    ensure_run(session, run_id)
    row = session.get(Result, run_id, populate_existing=True)
    if row is None:
        raise NotFound(f"run {run_id} has no result yet")
    return ResultPublic.from_row(row)
