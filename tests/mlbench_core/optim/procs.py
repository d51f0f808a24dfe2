"""Run a rank function in real gloo processes: ``python -m tests.mlbench_core.optim.procs``.

The target is ``"module:function"``, so each test file keeps its rank-side code next to its
assertions. The processes are started and collected by ``tests.mlbench_core.dist_helpers``
(one subprocess per rank; a hung collective is killed by the timeout).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.mlbench_core.dist_helpers import function_of, rank_main, run_ranks

MODULE = "tests.mlbench_core.optim.procs"


def run_ok(
    target: str,
    world_size: int,
    out_dir: Path,
    params: dict[str, Any] | None = None,
    timeout_s: float = 60.0,
) -> list[Any]:
    """Each rank's return value, after checking that every rank exited cleanly."""
    outcomes = run_ranks(target, world_size, out_dir, params, timeout_s, module=MODULE)
    for outcome in outcomes:
        assert outcome.returncode == 0, f"rank {outcome.rank} failed:\n{outcome.stderr}"
    return [outcome.value for outcome in outcomes]


if __name__ == "__main__":
    # DDP variants leave the reducer in a reference cycle: collect it before the group ends.
    rank_main(function_of, init_timeout_s=30, one_thread=True, collect_garbage=True)
