"""Run a test's function in real gloo ranks: ``python -m tests.mlbench_core.train.ranks``.

The ranks are started by ``tests.mlbench_core.dist_helpers.run_ranks`` (one subprocess per
rank, killed after a timeout), with the function named as ``module:function`` so that each test
module keeps its rank code next to its assertions. The function gets the JSON parameters and
returns a JSON-able value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.mlbench_core.dist_helpers import RankOutcome, function_of, rank_main, run_ranks

MODULE = "tests.mlbench_core.train.ranks"


def run_in_ranks(
    target: str,
    world_size: int,
    out_dir: Path,
    params: dict[str, Any] | None = None,
    timeout_s: float = 120.0,
) -> list[RankOutcome]:
    """Start ``world_size`` ranks running ``target`` (``module:function``); collect results."""
    return run_ranks(target, world_size, out_dir, params, timeout_s, module=MODULE)


if __name__ == "__main__":
    rank_main(function_of, init_timeout_s=60, one_thread=True, collect_garbage=True)
