"""Time-to-goal summaries of repeated runs."""

from __future__ import annotations

import pytest

from mlbench_core.summary import summarize_time_to_goal


def test_olympic_mean_drops_fastest_and_slowest() -> None:
    summary = summarize_time_to_goal([5.0, 1.0, 3.0, 100.0, 4.0])
    assert summary.olympic_mean_s == pytest.approx(4.0)  # mean of 3, 4, 5
    assert summary.mean_s == pytest.approx(22.6)
    assert summary.std_s == pytest.approx(43.2932, rel=1e-4)  # sqrt(7497.2 / 4)
    assert (summary.runs, summary.reached, summary.min_s, summary.max_s) == (5, 5, 1.0, 100.0)


def test_missed_goals_count_as_runs_but_have_no_time() -> None:
    summary = summarize_time_to_goal([None, 2.0, None, 4.0])
    assert (summary.runs, summary.reached) == (4, 2)
    assert summary.olympic_mean_s is None  # needs 3 runs that reached the goal
    assert summary.mean_s == pytest.approx(3.0)


def test_empty_and_single() -> None:
    assert summarize_time_to_goal([]).mean_s is None
    one = summarize_time_to_goal([7.0])
    assert one.mean_s == 7.0 and one.std_s is None
