"""Run states and the transitions allowed between them (DESIGN.md: Run states)."""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    queued = "queued"
    starting = "starting"
    running = "running"
    stopping = "stopping"
    succeeded = "succeeded"
    failed = "failed"
    stopped = "stopped"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({RunState.succeeded, RunState.failed, RunState.stopped})

_ALLOWED: dict[RunState, frozenset[RunState]] = {
    RunState.queued: frozenset(
        {RunState.starting, RunState.stopping, RunState.stopped, RunState.failed}
    ),
    RunState.starting: frozenset(
        {RunState.running, RunState.stopping, RunState.stopped, RunState.failed, RunState.succeeded}
    ),
    RunState.running: frozenset(
        {RunState.succeeded, RunState.failed, RunState.stopping, RunState.stopped}
    ),
    # A run may finish on its own while a stop is in flight; the first terminal state wins.
    RunState.stopping: frozenset({RunState.stopped, RunState.failed, RunState.succeeded}),
}


def can_transition(current: RunState, target: RunState) -> bool:
    return target in _ALLOWED.get(current, frozenset())
