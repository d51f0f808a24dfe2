"""Run a rank function in real gloo processes: ``python -m tests.mlbench_core.optim.procs``.

The target is ``"module:function"``, so each test file keeps its rank-side code next to its
assertions. One subprocess per rank (a hung collective is killed by the timeout, as in
``tests/mlbench_core/dist_helpers.py``, whose port and outcome helpers this reuses).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.mlbench_core.dist_helpers import ROOT, RankOutcome, free_port

MODULE = "tests.mlbench_core.optim.procs"


def run_ranks(
    target: str,
    world_size: int,
    out_dir: Path,
    params: dict[str, Any] | None = None,
    timeout_s: float = 60.0,
) -> list[RankOutcome]:
    """Start ``world_size`` ranks running ``target``; kill them all after the timeout."""
    port = free_port()
    out_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    for rank in range(world_size):
        env = dict(os.environ)
        env.update(
            RANK=str(rank),
            WORLD_SIZE=str(world_size),
            LOCAL_RANK=str(rank),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
            OMP_NUM_THREADS="1",
        )
        command = [sys.executable, "-m", MODULE, target, str(out_dir), json.dumps(params or {})]
        procs.append(
            subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + timeout_s
    outcomes = []
    for rank, proc in enumerate(procs):
        try:
            _, stderr = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            _, stderr = proc.communicate()
            stderr = f"TIMEOUT after {timeout_s}s\n{stderr}"
        result_file = out_dir / f"rank{rank}.json"
        value = json.loads(result_file.read_text()) if result_file.exists() else None
        outcomes.append(RankOutcome(rank, proc.returncode, stderr, value))
    return outcomes


def run_ok(
    target: str,
    world_size: int,
    out_dir: Path,
    params: dict[str, Any] | None = None,
    timeout_s: float = 60.0,
) -> list[Any]:
    """Each rank's return value, after checking that every rank exited cleanly."""
    outcomes = run_ranks(target, world_size, out_dir, params, timeout_s)
    for outcome in outcomes:
        assert outcome.returncode == 0, f"rank {outcome.rank} failed:\n{outcome.stderr}"
    return [outcome.value for outcome in outcomes]


def _main() -> None:
    import torch

    from mlbench_core import distributed as mdist

    target, out_dir, params = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    module_name, function_name = target.split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    torch.set_num_threads(1)
    env = mdist.DistEnv.from_env()
    mdist.init_process_group(env, mdist.pick_backend("gloo"), timeout_s=30)
    try:
        value = function(params)
    finally:
        mdist.shutdown()
    (out_dir / f"rank{env.rank}.json").write_text(json.dumps(value))


if __name__ == "__main__":
    _main()
