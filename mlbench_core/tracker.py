"""Per-step phase timing, time-to-goal detection and throughput for one rank."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from mlbench_core.wire import PHASES, PhaseTimes


@dataclass
class StepTiming:
    """Seconds of one finished step, per phase, plus the step's wall time."""

    step: int
    wall: float
    phases: dict[str, float]

    @property
    def unaccounted(self) -> float:
        return self.wall - sum(self.phases.values())


CudaTiming = Literal["events", "sync"]

_MAX_PENDING_STEPS = 64
"""Event timing: steps whose GPU work may be unfinished before end_step waits for the oldest."""


def _new_cuda_event() -> Any:
    return torch.cuda.Event(enable_timing=True)


@dataclass
class _Pending:
    """Phases recorded as CUDA events whose GPU work may still be running."""

    marks: list[tuple[str, Any, Any]]
    step: int | None = None
    """Step number, None for phases timed outside a step."""
    bounds: tuple[Any, Any] | None = None
    """Events at start_step and end_step."""


@dataclass
class Tracker:
    """Times the phases of each training step and notices when the goal is first reached.

    On CUDA devices kernels run asynchronously, so host clocks would charge GPU work to
    whichever phase happens to wait for it. With ``cuda_timing="events"`` (the default) each
    phase is bracketed by CUDA events and timed on the GPU's own timeline, without any
    synchronisation inside the step: the host keeps queueing work ahead of the GPU. A step's
    figures reach ``totals`` and ``last_step`` once the GPU has run it; ``flush()`` waits for
    all, and ``phase_times()`` flushes. ``cuda_timing="sync"`` synchronises the device at every
    phase boundary instead and times with the host clock, which stalls the host at each one.
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    clock: Callable[[], float] = time.perf_counter
    cuda_timing: CudaTiming = "events"
    totals: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    steps: int = 0
    samples: int = 0
    last_step: StepTiming | None = None
    time_to_goal: float | None = None
    goal_step: int | None = None
    _start: float | None = None
    _step_start: float | None = None
    _step_phases: dict[str, float] = field(default_factory=dict)
    _open_phase: str | None = None
    _marks: list[tuple[str, Any, Any]] = field(default_factory=list)
    _step_event: Any = None
    _stream: Any = None
    _pending: deque[_Pending] = field(default_factory=deque)
    _spare_events: list[Any] = field(default_factory=list)

    @property
    def _events(self) -> bool:
        return self.device.type == "cuda" and self.cuda_timing == "events"

    def start(self) -> None:
        """Mark the start of training; time-to-goal and throughput count from here."""
        self._start = self.clock()

    @property
    def elapsed(self) -> float:
        if self._start is None:
            return 0.0
        return self.clock() - self._start

    def _sync(self) -> None:
        if self.device.type == "cuda" and self.cuda_timing == "sync":
            torch.cuda.synchronize(self.device)

    def _record(self) -> Any:
        """A CUDA event recorded now on the step's stream (recycled from resolved steps)."""
        event = self._spare_events.pop() if self._spare_events else _new_cuda_event()
        event.record(self._stream)  # the stream looked up once per step: cheaper
        return event

    def start_step(self) -> None:
        if self._start is None:
            self.start()
        self._sync()
        if self._events:
            if self._marks:  # phases timed outside any step
                self._pending.append(_Pending(self._marks))
                self._marks = []
            self._stream = torch.cuda.current_stream(self.device)
            self._step_event = self._record()
        self._step_start = self.clock()
        self._step_phases = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a block as ``name``; phases do not nest."""
        if name not in self.totals:
            raise ValueError(f"unknown phase {name!r} (phases: {', '.join(PHASES)})")
        if self._open_phase is not None:
            raise RuntimeError(f"phase {name!r} opened inside phase {self._open_phase!r}")
        self._open_phase = name
        if self._events:
            opened = self._record()
            try:
                yield
            finally:
                self._marks.append((name, opened, self._record()))
                self._open_phase = None
            return
        begin = self.clock()
        try:
            yield
        finally:
            self._sync()
            spent = self.clock() - begin
            self._open_phase = None
            self.totals[name] += spent
            self._step_phases[name] = self._step_phases.get(name, 0.0) + spent

    def end_step(self, samples: int) -> StepTiming:
        """Close the step that ``start_step`` opened; ``samples`` is this rank's batch size.

        With CUDA event timing the phase split of the step is not known yet (the GPU may not
        have run it): the timing returned has the host's wall time and no phases, and the GPU
        figures go to ``totals`` and ``last_step`` when the GPU is done with the step.
        """
        if self._step_start is None:
            raise RuntimeError("end_step() without start_step()")
        self._sync()
        wall = self.clock() - self._step_start
        self._step_start = None
        self.steps += 1
        self.samples += samples
        if self._events:
            bounds = (self._step_event, self._record())
            self._pending.append(_Pending(self._marks, self.steps, bounds))
            self._marks = []
            self._stream = None
            self._resolve(wait=False)
            return StepTiming(self.steps, wall, {})
        self.last_step = StepTiming(self.steps, wall, dict(self._step_phases))
        return self.last_step

    def flush(self) -> None:
        """Wait for the GPU work of every timed phase and add it to ``totals`` (event timing;
        otherwise nothing to do)."""
        if self._marks and self._step_start is None:
            self._pending.append(_Pending(self._marks))
            self._marks = []
        self._resolve(wait=True)

    def _resolve(self, wait: bool) -> None:
        """Add the GPU times of finished pending steps, oldest first; ``wait``: of all.

        Events of one stream complete in order, so a step is done when its last event is.
        """
        while self._pending:
            entry = self._pending[0]
            last = entry.bounds[1] if entry.bounds is not None else entry.marks[-1][2]
            if not (wait or len(self._pending) > _MAX_PENDING_STEPS or last.query()):
                return
            last.synchronize()
            self._pending.popleft()
            phases: dict[str, float] = {}
            for name, opened, closed in entry.marks:
                spent = opened.elapsed_time(closed) / 1000.0
                self.totals[name] += spent
                phases[name] = phases.get(name, 0.0) + spent
                self._spare_events += (opened, closed)
            if entry.bounds is not None and entry.step is not None:
                begin, end = entry.bounds
                self.last_step = StepTiming(entry.step, begin.elapsed_time(end) / 1000.0, phases)
                self._spare_events += (begin, end)

    def check_goal(self, reached: bool) -> bool:
        """Record the first time the goal is met; returns True from then on."""
        if reached and self.time_to_goal is None:
            self.time_to_goal = self.elapsed
            self.goal_step = self.steps
        return self.time_to_goal is not None

    def samples_per_s(self, world_size: int = 1) -> float:
        """Throughput of the whole job, assuming every rank processes as many samples."""
        elapsed = self.elapsed
        return self.samples * world_size / elapsed if elapsed > 0 else 0.0

    def phase_times(self) -> PhaseTimes:
        self.flush()
        return PhaseTimes(**self.totals)
