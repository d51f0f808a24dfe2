"""Summaries of repeated runs: time-to-goal the MLPerf way, next to mean ± std."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from pydantic import BaseModel, Field


class TimeToGoalSummary(BaseModel):
    """Time-to-goal over the runs of one group."""

    runs: int = Field(description="Runs in the group that ended.")
    reached: int = Field(description="Runs that reached the goal; only these have a time.")
    olympic_mean_s: float | None = Field(
        description="MLPerf-style score: drop the fastest and the slowest run, average the rest "
        "(needs at least 3 runs that reached the goal)."
    )
    mean_s: float | None = Field(description="Mean over the runs that reached the goal.")
    std_s: float | None = Field(description="Sample standard deviation (needs 2 runs).")
    min_s: float | None = None
    max_s: float | None = None


def summarize_time_to_goal(times: Sequence[float | None]) -> TimeToGoalSummary:
    """``times`` has one entry per ended run, None where the run missed the goal."""
    reached = sorted(t for t in times if t is not None)
    olympic = statistics.fmean(reached[1:-1]) if len(reached) >= 3 else None
    return TimeToGoalSummary(
        runs=len(times),
        reached=len(reached),
        olympic_mean_s=olympic,
        mean_s=statistics.fmean(reached) if reached else None,
        std_s=statistics.stdev(reached) if len(reached) >= 2 else None,
        min_s=reached[0] if reached else None,
        max_s=reached[-1] if reached else None,
    )
