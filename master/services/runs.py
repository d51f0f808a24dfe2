"""Run lifecycle: the state machine, creation and start, stop, delete, worker reports, exits.

Rule for everything here: the executor (process launcher, Argo Server) is never called while a
database transaction is open. Its callbacks open their own sessions, and on SQLite a held write
lock would make them wait for us while we wait for them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from master.auth import hash_token, new_token
from master.db import write_transaction
from master.errors import Conflict, ExecutorFailed, NotFound, ServiceError, Unprocessable
from master.executors.base import Executor, Launch
from master.models import (
    MetricBatch,
    MetricPoint,
    MetricSeries,
    MetricTile,
    Result,
    Run,
    RunTransition,
    utcnow,
)
from mlbench_core.spec import ExecutorKind, RunSpec
from mlbench_core.states import RunState, can_transition

log = logging.getLogger(__name__)

LIVE_STATES = tuple(s.value for s in RunState if not s.terminal)


def get_run(session: Session, run_id: int) -> Run:
    """The run with its transitions, read fresh from the database; 404 when unknown."""
    run = session.scalar(
        select(Run)
        .where(Run.id == run_id)
        .options(selectinload(Run.transitions))
        .execution_options(populate_existing=True)
    )
    if run is None:
        raise NotFound(f"run {run_id} does not exist")
    return run


def ensure_run(session: Session, run_id: int) -> None:
    """404 unless the run exists (cheap check before reading its metrics or result)."""
    if session.scalar(select(Run.id).where(Run.id == run_id)) is None:
        raise NotFound(f"run {run_id} does not exist")


def lock_run(session: Session, run_id: int) -> Run:
    """The run, row-locked until the transaction ends (PostgreSQL; SQLite's BEGIN IMMEDIATE
    already serialises writers), so concurrent reports apply one after the other."""
    run = session.scalar(
        select(Run)
        .where(Run.id == run_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if run is None:
        raise NotFound(f"run {run_id} does not exist")
    return run


def transition(session: Session, run: Run, target: RunState, reason: str) -> bool:
    """Move ``run`` to ``target`` if the state machine allows it, recording why and when.

    An illegal transition changes nothing and returns False; callers decide whether that is an
    error (stop of an ended run) or expected (a report arriving after the run ended).
    """
    current = RunState(run.state)
    if not can_transition(current, target):
        log.info("run %s: refused transition %s -> %s (%s)", run.id, current, target, reason)
        return False
    # PostgreSQL text cannot hold NUL; a reason quoting binary output (a worker's exception, a
    # log line) must still be stored, or the run would never end.
    reason = reason.replace("\x00", "\ufffd")
    now = utcnow()
    session.add(
        RunTransition(
            run_id=run.id, from_state=current.value, to_state=target.value, at=now, reason=reason
        )
    )
    run.state = target.value
    run.reason = reason
    run.updated_at = now
    if target in (RunState.starting, RunState.running) and run.started_at is None:
        run.started_at = now
    if target.terminal:
        run.finished_at = now
    return True


def list_runs(
    session: Session,
    states: Sequence[RunState],
    limit: int,
    offset: int,
    group: str | None = None,
    benchmark: str | None = None,
) -> tuple[list[Run], int]:
    """One page of runs, newest first, and the total number matching the filters."""
    query = select(Run)
    count = select(func.count()).select_from(Run)
    if benchmark is not None:
        query = query.where(Run.benchmark == benchmark)
        count = count.where(Run.benchmark == benchmark)
    if states:
        values = [s.value for s in states]
        query = query.where(Run.state.in_(values))
        count = count.where(Run.state.in_(values))
    if group is not None:
        query = query.where(Run.group == group)
        count = count.where(Run.group == group)
    total = session.scalar(count) or 0
    page = query.options(selectinload(Run.transitions)).order_by(Run.id.desc())
    return list(session.scalars(page.limit(limit).offset(offset))), total


def latest_points(session: Session, run_ids: Sequence[int]) -> dict[int, MetricPoint]:
    """The newest stored metric point of each run that has one: how far a run has come.

    One ``max(id)`` per run, answered from the (run_id, id) index without scanning the run's
    points, then one read of those rows; cheap even for runs with millions of points.
    """
    if not run_ids:
        return {}
    newest = (
        select(func.max(MetricPoint.id))
        .where(MetricPoint.run_id == Run.id)
        .correlate(Run)
        .scalar_subquery()
    )
    ids = [i for i in session.scalars(select(newest).where(Run.id.in_(run_ids))) if i is not None]
    if not ids:
        return {}
    return {
        p.run_id: p for p in session.scalars(select(MetricPoint).where(MetricPoint.id.in_(ids)))
    }


def results_of(session: Session, run_ids: Sequence[int]) -> dict[int, Result]:
    """The stored results of these runs, by run id (runs without one are absent)."""
    if not run_ids:
        return {}
    rows = session.scalars(select(Result).where(Result.run_id.in_(run_ids)))
    return {row.run_id: row for row in rows}


def create_run(
    session: Session,
    spec: RunSpec,
    executors: Mapping[str, Executor],
    api_url: str,
    default_executor: ExecutorKind = ExecutorKind.local,
) -> int:
    """Store a new run and start its workers; returns the run id.

    A spec without an executor gets ``default_executor``; the stored spec names the one used.
    The run is moved to ``starting`` before the executor is called, so a worker that reports
    ``running`` right away finds a state it may leave. If the executor fails, the run is kept
    as ``failed`` with the executor's message as reason; an executor's ``ServiceError`` (e.g.
    the Argo Server refused the workflow) is then raised again, naming the run, so the client
    gets its status code.
    """
    if spec.executor is None:
        spec = spec.model_copy(update={"executor": ExecutorKind(default_executor)})
    kind = ExecutorKind(spec.executor).value
    executor = executors.get(kind)
    if executor is None:
        configured = ", ".join(sorted(executors)) or "none"
        raise Unprocessable(
            f"executor {kind!r} is not configured on this master (configured: {configured})",
            loc=("body", "executor"),
        )
    token = new_token()
    try:
        with write_transaction(session):
            _refuse_live_duplicate(session, spec.name)
            run = Run(
                name=spec.name,
                benchmark=spec.benchmark,
                spec=spec.model_dump(mode="json"),
                state=RunState.queued.value,
                reason="created",
                executor=kind,
                token_hash=hash_token(token),
                group=spec.group,
            )
            session.add(run)
            session.flush()
            session.add(RunTransition(run_id=run.id, to_state=run.state, reason="created"))
            transition(session, run, RunState.starting, "starting the workers")
    except IntegrityError:
        # Lost a race against a concurrent creation of the same name (partial unique index).
        raise Conflict(f"a run named {spec.name!r} is still live; pick another name") from None

    run_id = run.id
    try:
        ref = executor.start(Launch(run_id=run_id, spec=spec, api_url=api_url, token=token))
    except Exception as exc:
        if isinstance(exc, ServiceError):
            log.warning("run %s: executor %s could not start it: %s", run_id, kind, exc.detail)
        else:
            log.exception("run %s: executor %s could not start it", run_id, kind)
        with write_transaction(session):
            transition(session, lock_run(session, run_id), RunState.failed, _start_failed(exc))
        if isinstance(exc, ServiceError):
            raise _with_detail(exc, f"run {run_id} failed to start: {exc.detail}") from exc
        return run_id

    with write_transaction(session):
        run = lock_run(session, run_id)
        run.executor_ref = ref
        stop_now = RunState(run.state) is RunState.stopping
    if stop_now:  # a stop arrived while the executor was starting: pass it on with the ref
        stop_workers_quietly(executor, run_id, ref)
    return run_id


def _refuse_live_duplicate(session: Session, name: str) -> None:
    live = session.execute(
        select(Run.id, Run.state).where(Run.name == name, Run.state.in_(LIVE_STATES))
    ).first()
    if live is not None:
        raise Conflict(
            f"run {live.id} named {name!r} is still {live.state}; stop it or pick another name"
        )


def _start_failed(exc: Exception) -> str:
    message = str(exc).strip().splitlines()
    return f"executor could not start the run: {message[0] if message else type(exc).__name__}"


def _with_detail(exc: ServiceError, detail: str) -> ServiceError:
    """The same kind of error (same status code), with another message."""
    try:
        again = type(exc)(detail)
    except TypeError:  # a subclass with another constructor
        again = ServiceError(detail)
    again.status_code = exc.status_code
    return again


def stop_run(
    session: Session,
    run_id: int,
    executors: Mapping[str, Executor],
    reason: str = "stop requested",
) -> None:
    """Ask a run to end: ``stopping`` now, ``stopped`` once the executor reports the exit.

    A queued run has no workers and goes straight to ``stopped``. Stopping a run that is
    already ``stopping`` sends the stop again (the executor treats it as idempotent).
    """
    with write_transaction(session):
        run = lock_run(session, run_id)
        state = RunState(run.state)
        if state.terminal:
            raise Conflict(f"run {run_id} already ended ({state.value}); nothing to stop")
        if state is RunState.queued:
            transition(session, run, RunState.stopped, "stopped before it started")
            return
        if state is not RunState.stopping:
            transition(session, run, RunState.stopping, reason)
        kind, ref = run.executor, dict(run.executor_ref or {})

    executor = executors.get(kind)
    if executor is None:
        with write_transaction(session):
            transition(
                session,
                lock_run(session, run_id),
                RunState.stopped,
                f"no {kind!r} executor is configured on this master; "
                "marked stopped without reaching the workers",
            )
        return
    try:
        executor.stop(run_id, ref)
    except ExecutorFailed as exc:  # already one readable line with its status (502, 503, ...)
        log.warning("run %s: executor could not stop it: %s", run_id, exc.detail)
        raise _with_detail(exc, f"executor could not stop run {run_id}: {exc.detail}") from exc
    except Exception as exc:
        log.exception("run %s: executor could not stop it", run_id)
        raise ExecutorFailed(f"executor could not stop run {run_id}: {exc}") from exc


def stop_workers_quietly(executor: Executor, run_id: int, ref: dict[str, Any]) -> None:
    """Best-effort stop (after a failure report): a failure here changes nothing stored."""
    try:
        executor.stop(run_id, ref)
    except Exception:
        log.exception("run %s: executor could not stop the remaining workers", run_id)


def delete_run(session: Session, run_id: int) -> None:
    """Delete an ended run with its transitions, metrics and result."""
    with write_transaction(session):
        run = lock_run(session, run_id)
        if not RunState(run.state).terminal:
            raise Conflict(
                f"run {run_id} is {run.state}; only ended runs can be deleted (stop it first)"
            )
        # Explicit deletes instead of relying on ON DELETE CASCADE being enabled.
        for model in (MetricTile, MetricSeries, MetricPoint, MetricBatch, Result, RunTransition):
            session.execute(delete(model).where(model.run_id == run_id))
        session.execute(delete(Run).where(Run.id == run_id))
