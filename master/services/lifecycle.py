"""Reports about running runs: worker status updates, executor exits, and the reconcile pass
at master start. Mapping rules: docs/api.md ("How worker reports map to run states")."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from master.db import write_transaction
from master.errors import ServiceError
from master.executors.base import Executor, Exit
from master.models import Result, Run
from master.services.runs import (
    LIVE_STATES,
    lock_run,
    stop_run,
    stop_workers_quietly,
    transition,
)
from mlbench_core.states import RunState
from mlbench_core.wire import StatusUpdate

log = logging.getLogger(__name__)

SessionFactory = Callable[[], Session]
RESTART_GONE = "master restarted and the workers of this run are gone"


def apply_status(
    session: Session, run_id: int, update: StatusUpdate, executors: Mapping[str, Executor]
) -> None:
    """Map one worker report onto the run (rules: docs/api.md). Reports for an ended run, or
    that the state machine does not allow, change nothing."""
    stop_ref: tuple[str, dict[str, Any]] | None = None
    with write_transaction(session):
        run = lock_run(session, run_id)
        if RunState(run.state).terminal:
            return
        detail = update.reason.strip()
        if update.state == "running" and update.rank == 0:
            transition(session, run, RunState.running, "rank 0 reported running")
        elif update.state == "succeeded" and update.rank == 0:
            transition(
                session,
                run,
                RunState.succeeded,
                f"rank 0: {detail}" if detail else "rank 0 succeeded",
            )
        elif update.state == "failed":
            reason = f"rank {update.rank}: {detail}" if detail else f"rank {update.rank} failed"
            if RunState(run.state) is RunState.stopping:
                # The stop itself makes ranks fail (peers killed, an Argo workflow's exit
                # handler reports its stopped workflow as failed): the run ends as asked.
                transition(session, run, RunState.stopped, f"stopped on request ({reason})")
            elif transition(session, run, RunState.failed, reason):
                stop_ref = (run.executor, dict(run.executor_ref or {}))
    # The other ranks may hang in a collective waiting for the failed one: end them now.
    if stop_ref is not None and (executor := executors.get(stop_ref[0])) is not None:
        stop_workers_quietly(executor, run_id, stop_ref[1])


def handle_exit(session_factory: SessionFactory, exit: Exit) -> None:
    """Executor callback (runs on the executor's thread): the workers of a run are gone.

    Never raises: the executor has nobody to hand an error to, so problems are logged.
    """
    try:
        with session_factory() as session, write_transaction(session):
            run = session.scalar(
                select(Run)
                .where(Run.id == exit.run_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
            if run is None:
                log.info("exit of unknown run %s ignored", exit.run_id)
                return
            if run.exit_code is None:
                run.exit_code = exit.exit_code
            state = RunState(run.state)
            if state.terminal:  # the first terminal state wins
                return
            if state is RunState.stopping:
                why = f" ({exit.reason})" if exit.reason else ""
                transition(session, run, RunState.stopped, f"stopped on request{why}")
            elif exit.exit_code == 0 and session.get(Result, run.id) is not None:
                transition(session, run, RunState.succeeded, "workers exited with code 0")
            else:
                transition(session, run, RunState.failed, _exit_reason(exit))
    except Exception:
        log.exception("could not record the exit of run %s", exit.run_id)


def _exit_reason(exit: Exit) -> str:
    code = "unknown" if exit.exit_code is None else str(exit.exit_code)
    missing = " without storing a result" if exit.exit_code == 0 else ""
    return f"workers exited with code {code}{missing}: {exit.reason or 'no output'}"


def reconcile(session_factory: SessionFactory, executors: Mapping[str, Executor]) -> None:
    """At start: re-attach to runs that were live when the master stopped, end the rest."""
    with session_factory() as session:
        rows = session.execute(
            select(Run.id, Run.state, Run.executor, Run.executor_ref).where(
                Run.state.in_(LIVE_STATES)
            )
        ).all()
    for run_id, state, kind, ref in rows:
        if state == RunState.queued.value:
            _end_orphan(session_factory, run_id, "master restarted before this run was started")
            continue
        executor = executors.get(kind)
        alive = False
        if executor is not None:
            try:
                alive = executor.reattach(run_id, dict(ref or {}))
            except Exception:
                log.exception("run %s: re-attaching failed", run_id)
        if not alive:
            _end_orphan(session_factory, run_id, RESTART_GONE)


def _end_orphan(session_factory: SessionFactory, run_id: int, reason: str) -> None:
    with session_factory() as session, write_transaction(session):
        run = lock_run(session, run_id)
        state = RunState(run.state)
        if state.terminal:  # an exit report got here first
            return
        target = RunState.stopped if state is RunState.stopping else RunState.failed
        transition(session, run, target, reason)
        log.warning("run %s: %s -> %s (%s)", run_id, state.value, target.value, reason)


def stop_owned_runs(session_factory: SessionFactory, executors: Mapping[str, Executor]) -> None:
    """At shutdown: stop the live runs whose workers cannot outlive this master."""
    kinds = [kind for kind, executor in executors.items() if executor.runs_end_with_master]
    if not kinds:
        return
    with session_factory() as session:
        run_ids = session.scalars(
            select(Run.id).where(Run.state.in_(LIVE_STATES), Run.executor.in_(kinds))
        ).all()
        for run_id in run_ids:
            try:
                stop_run(session, run_id, executors, reason="the master shut down")
            except ServiceError:
                log.exception("run %s: could not stop it at shutdown", run_id)
