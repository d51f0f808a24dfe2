"""Tracker: phase timing with real sleeps, phase errors, time-to-goal, throughput."""

from __future__ import annotations

import time

import pytest

from mlbench_core.tracker import Tracker
from mlbench_core.wire import PHASES, PhaseTimes

SLEEP = 0.004  # a few ms per phase: long enough to measure, short enough to stay fast


def test_phases_sum_to_the_step_wall_time() -> None:
    tracker = Tracker()
    tracker.start()
    for _ in range(3):
        tracker.start_step()
        for name in PHASES:
            with tracker.phase(name):
                time.sleep(SLEEP)
        timing = tracker.end_step(samples=8)
        assert set(timing.phases) == set(PHASES)
        assert all(seconds >= SLEEP for seconds in timing.phases.values())
        # Only the bookkeeping between phases is unaccounted: well under one sleep.
        assert 0 <= timing.unaccounted < SLEEP
        assert timing.wall >= len(PHASES) * SLEEP
    assert tracker.steps == 3
    assert tracker.samples == 24
    for name in PHASES:
        assert tracker.totals[name] >= 3 * SLEEP
    assert sum(tracker.totals.values()) <= tracker.elapsed


def test_time_outside_phases_is_unaccounted() -> None:
    tracker = Tracker()
    tracker.start_step()
    with tracker.phase("forward"):
        time.sleep(SLEEP)
    time.sleep(2 * SLEEP)  # not inside any phase
    timing = tracker.end_step(samples=1)
    assert timing.unaccounted >= 2 * SLEEP
    assert timing.phases == {"forward": pytest.approx(tracker.totals["forward"])}


def test_repeated_phase_in_one_step_adds_up() -> None:
    tracker = Tracker()
    tracker.start_step()
    for _ in range(2):
        with tracker.phase("communication"):
            time.sleep(SLEEP)
    timing = tracker.end_step(samples=1)
    assert timing.phases["communication"] >= 2 * SLEEP


def test_unknown_phase_is_an_error() -> None:
    tracker = Tracker()
    tracker.start_step()
    with pytest.raises(ValueError, match="unknown phase 'training'"), tracker.phase("training"):
        pass


def test_nested_phase_is_an_error_and_the_outer_phase_still_closes() -> None:
    tracker = Tracker()
    tracker.start_step()
    with tracker.phase("forward"):
        with pytest.raises(RuntimeError, match="inside phase 'forward'"), tracker.phase("backward"):
            pass
        time.sleep(SLEEP)
    assert tracker.totals["backward"] == 0.0
    assert tracker.totals["forward"] >= SLEEP
    with tracker.phase("backward"):  # usable again after the error
        pass


def test_phase_closes_when_the_block_raises() -> None:
    tracker = Tracker()
    with pytest.raises(KeyError), tracker.phase("data"):
        raise KeyError("x")
    with tracker.phase("forward"):
        pass


def test_end_step_without_start_step() -> None:
    with pytest.raises(RuntimeError, match="without start_step"):
        Tracker().end_step(samples=1)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_time_to_goal_is_recorded_once() -> None:
    clock = FakeClock()
    tracker = Tracker(clock=clock)
    tracker.start()
    clock.now += 5
    assert tracker.check_goal(False) is False
    assert tracker.time_to_goal is None
    tracker.start_step()
    tracker.end_step(samples=4)
    clock.now += 2
    assert tracker.check_goal(True) is True
    assert tracker.time_to_goal == pytest.approx(7.0)
    assert tracker.goal_step == 1
    clock.now += 10
    tracker.start_step()
    tracker.end_step(samples=4)
    assert tracker.check_goal(True) is True
    assert tracker.check_goal(False) is True  # once reached, stays reached
    assert tracker.time_to_goal == pytest.approx(7.0)
    assert tracker.goal_step == 1


def test_samples_per_s() -> None:
    clock = FakeClock()
    tracker = Tracker(clock=clock)
    assert tracker.samples_per_s() == 0.0  # not started
    tracker.start()
    for _ in range(3):
        tracker.start_step()
        clock.now += 0.5
        tracker.end_step(samples=32)
    clock.now += 0.5
    assert tracker.elapsed == pytest.approx(2.0)
    assert tracker.samples_per_s() == pytest.approx(96 / 2.0)
    assert tracker.samples_per_s(world_size=2) == pytest.approx(96 * 2 / 2.0)


def test_phase_times_is_the_wire_model() -> None:
    tracker = Tracker()
    with tracker.phase("optimizer"):
        time.sleep(SLEEP)
    times = tracker.phase_times()
    assert isinstance(times, PhaseTimes)
    assert times.optimizer >= SLEEP
    assert times.data == 0.0
