"""Run a test's function in real gloo ranks: ``python -m tests.mlbench_core.train.ranks``.

Like ``tests.mlbench_core.dist_helpers`` (one subprocess per rank, killed after a timeout), but
the function is named as ``module:function`` so that each test module keeps its rank code next
to its assertions. The function gets the JSON parameters and returns a JSON-able value.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.mlbench_core.dist_helpers import ROOT, RankOutcome, free_port


def run_in_ranks(
    target: str,
    world_size: int,
    out_dir: Path,
    params: dict[str, Any] | None = None,
    timeout_s: float = 120.0,
) -> list[RankOutcome]:
    """Start ``world_size`` ranks running ``target`` (``module:function``); collect results."""
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
        command = [sys.executable, "-m", "tests.mlbench_core.train.ranks", target, str(out_dir)]
        procs.append(
            subprocess.Popen(
                [*command, json.dumps(params or {})],
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


def _main() -> None:
    import torch

    from mlbench_core import distributed as mdist

    target, out_dir, params = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    module_name, _, function = target.partition(":")
    func = getattr(importlib.import_module(module_name), function)
    torch.set_num_threads(1)
    env = mdist.DistEnv.from_env()
    mdist.init_process_group(env, mdist.pick_backend("gloo"), timeout_s=60)
    try:
        value = func(params)
    finally:
        # Objects of the run that sit in reference cycles (DDP's reducer and its hooks) are
        # collected now, while the process group they use still exists.
        gc.collect()
        mdist.shutdown()
    (out_dir / f"rank{env.rank}.json").write_text(json.dumps(value))


if __name__ == "__main__":
    _main()
