"""Per-step phase timing, time-to-goal detection and throughput for one rank."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

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


@dataclass
class Tracker:
    """Times the phases of each training step and notices when the goal is first reached.

    On CUDA devices pending kernels are synchronised before a phase is closed, otherwise the
    asynchronous launch would charge GPU work to whichever phase happens to wait for it.
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    clock: Callable[[], float] = time.perf_counter
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

    def start(self) -> None:
        """Mark the start of training; time-to-goal and throughput count from here."""
        self._start = self.clock()

    @property
    def elapsed(self) -> float:
        if self._start is None:
            return 0.0
        return self.clock() - self._start

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def start_step(self) -> None:
        if self._start is None:
            self.start()
        self._sync()
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
        """Close the step that ``start_step`` opened; ``samples`` is this rank's batch size."""
        if self._step_start is None:
            raise RuntimeError("end_step() without start_step()")
        self._sync()
        wall = self.clock() - self._step_start
        self._step_start = None
        self.steps += 1
        self.samples += samples
        self.last_step = StepTiming(self.steps, wall, dict(self._step_phases))
        return self.last_step

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
        return PhaseTimes(**self.totals)
