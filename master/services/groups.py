"""Groups of repeated runs (same configuration, different seeds) and their summary."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from master.errors import NotFound
from master.models import Result, Run
from master.schemas import GroupRunPublic, GroupSummaryPublic
from mlbench_core.states import RunState
from mlbench_core.summary import summarize_time_to_goal


def group_summary(session: Session, group: str) -> GroupSummaryPublic:
    rows = session.execute(
        select(Run, Result).outerjoin(Result, Result.run_id == Run.id).where(Run.group == group)
        .order_by(Run.id)
    ).all()  # fmt: skip
    if not rows:
        raise NotFound(f"no runs in group {group!r}")
    runs = [
        GroupRunPublic(
            id=run.id,
            name=run.name,
            seed=int(run.spec.get("seed", 0)),
            state=RunState(run.state),
            goal_reached=None if result is None else result.goal_reached,
            time_to_goal_s=None if result is None else result.time_to_goal_s,
            final_value=None if result is None else result.final_value,
            samples_per_s=None if result is None else result.samples_per_s,
        )
        for run, result in rows
    ]
    ended = [r for r in runs if r.state.terminal]
    times = [r.time_to_goal_s if r.goal_reached else None for r in ended]
    return GroupSummaryPublic(group=group, runs=runs, time_to_goal=summarize_time_to_goal(times))
