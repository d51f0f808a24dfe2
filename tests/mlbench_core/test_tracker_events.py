"""Tracker on CUDA devices: phases timed with CUDA events (no synchronisation in the step) or
with a device synchronisation at each boundary. Fake events stand in for the GPU here; a real
GPU run is in bench/gpu_resnet20.py."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from mlbench_core import tracker as tracker_module
from mlbench_core.tracker import Tracker
from mlbench_core.wire import PHASES


class FakeGpu:
    """A GPU timeline: events take the time of ``now``; they complete when ``done`` says."""

    def __init__(self) -> None:
        self.now = 10.0
        self.done = False
        self.created = 0
        self.waited = 0


class FakeEvent:
    def __init__(self, gpu: FakeGpu) -> None:
        self.gpu = gpu
        self.at: float | None = None
        gpu.created += 1

    def record(self, stream: object = None) -> None:
        assert stream is None or stream == "stream"
        self.at = self.gpu.now

    def query(self) -> bool:
        return self.gpu.done

    def synchronize(self) -> None:
        if not self.gpu.done:
            self.gpu.waited += 1

    def elapsed_time(self, other: FakeEvent) -> float:
        assert self.at is not None and other.at is not None
        return (other.at - self.at) * 1000.0  # milliseconds, as CUDA reports


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> FakeGpu:
    fake = FakeGpu()
    monkeypatch.setattr(tracker_module, "_new_cuda_event", lambda: FakeEvent(fake))
    synced: list[Any] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synced.append(device))
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: "stream")
    fake.synced = synced  # type: ignore[attr-defined]
    return fake


def one_step(tracker: Tracker, gpu: FakeGpu, seconds: float = 0.5) -> None:
    tracker.start_step()
    for name in PHASES:
        with tracker.phase(name):
            gpu.now += seconds
    gpu.now += 0.25  # GPU time between phases: in the step, in no phase
    tracker.end_step(samples=4)


def test_events_time_the_gpu_timeline_once_the_gpu_is_done(gpu: FakeGpu) -> None:
    tracker = Tracker(device=torch.device("cuda"))
    tracker.start()
    one_step(tracker, gpu)
    # Not run by the GPU yet: counted as a step, but no phase time so far.
    assert tracker.steps == 1 and tracker.samples == 4
    assert sum(tracker.totals.values()) == 0.0 and tracker.last_step is None
    gpu.done = True
    one_step(tracker, gpu)  # end_step picks up every finished step
    assert tracker.totals == {name: pytest.approx(1.0) for name in PHASES}
    assert tracker.last_step is not None and tracker.last_step.step == 2
    assert tracker.last_step.wall == pytest.approx(len(PHASES) * 0.5 + 0.25)
    assert tracker.last_step.unaccounted == pytest.approx(0.25)
    assert gpu.synced == [] and gpu.waited == 0  # type: ignore[attr-defined]


def test_phase_times_waits_for_the_gpu(gpu: FakeGpu) -> None:
    tracker = Tracker(device=torch.device("cuda"))
    for _ in range(3):
        one_step(tracker, gpu)
    with tracker.phase("metrics"):  # outside any step
        gpu.now += 1.0
    times = tracker.phase_times()
    assert times.data == pytest.approx(1.5)
    assert times.metrics == pytest.approx(2.5)
    assert gpu.waited > 0


def test_events_are_recycled(gpu: FakeGpu) -> None:
    tracker = Tracker(device=torch.device("cuda"))
    gpu.done = True
    for _ in range(50):
        one_step(tracker, gpu)
    per_step = 2 + 2 * len(PHASES)
    assert gpu.created <= 2 * per_step


def test_a_gpu_far_behind_is_waited_for_not_queued_forever(gpu: FakeGpu) -> None:
    tracker = Tracker(device=torch.device("cuda"))
    limit = tracker_module._MAX_PENDING_STEPS
    for _ in range(limit + 5):
        one_step(tracker, gpu)
    assert len(tracker._pending) == limit
    assert gpu.waited == 5
    assert tracker.totals["data"] == pytest.approx(5 * 0.5)


def test_sync_timing_synchronises_at_every_boundary(gpu: FakeGpu) -> None:
    tracker = Tracker(device=torch.device("cuda"), cuda_timing="sync")
    tracker.start_step()
    for name in PHASES:
        with tracker.phase(name):
            pass
    timing = tracker.end_step(samples=1)
    assert len(gpu.synced) == len(PHASES) + 2  # type: ignore[attr-defined]
    assert set(timing.phases) == set(PHASES)
    assert gpu.created == 0


def test_cpu_tracker_uses_no_events(gpu: FakeGpu) -> None:
    tracker = Tracker()
    one_step(tracker, gpu)
    assert gpu.created == 0 and gpu.synced == []  # type: ignore[attr-defined]
    assert tracker.last_step is not None and set(tracker.last_step.phases) == set(PHASES)
