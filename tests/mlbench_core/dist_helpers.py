"""Run functions in real torch.distributed (gloo) processes, one subprocess per rank.

Subprocesses rather than ``torch.multiprocessing.spawn`` so that a hung collective is killed
by a timeout instead of hanging the test session. Each rank writes its JSON return value to
``<out>/rank<r>.json``; the parent collects them.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RankOutcome:
    rank: int
    returncode: int | None
    stderr: str
    value: Any


def run_ranks(
    target: str,
    world_size: int,
    out_dir: Path,
    params: dict[str, Any] | None = None,
    timeout_s: float = 60.0,
    *,
    module: str = "tests.mlbench_core.dist_helpers",
) -> list[RankOutcome]:
    """Start ``world_size`` ranks of ``python -m <module> <target> <out_dir> <params>``.

    ``module`` is this one by default (``target`` names one of ``TARGETS``); other test helpers
    pass their own module, whose ``__main__`` runs the rank side. All ranks are killed once
    ``timeout_s`` has passed.
    """
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
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", module, target, str(out_dir), json.dumps(params or {})],
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


def function_of(target: str) -> Callable[[dict[str, Any]], Any]:
    """The function that a ``"module:function"`` target names."""
    module_name, _, function_name = target.partition(":")
    return getattr(importlib.import_module(module_name), function_name)


def rank_main(
    resolve: Callable[[str], Callable[[dict[str, Any]], Any]],
    *,
    init_timeout_s: float = 30,
    one_thread: bool = False,
    collect_garbage: bool = False,
) -> None:
    """The rank side of ``run_ranks``: run ``resolve(target)(params)`` in a gloo process group.

    ``one_thread`` limits torch to one thread before the group starts; ``collect_garbage``
    collects the run's reference cycles (DDP's reducer and its hooks) while the process group
    they use still exists. ``params["skip_shutdown"]`` leaves the group up at exit.
    """
    from mlbench_core import distributed as mdist

    target, out_dir, params = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    function = resolve(target)
    if one_thread:
        import torch

        torch.set_num_threads(1)
    env = mdist.DistEnv.from_env()
    mdist.init_process_group(env, mdist.pick_backend("gloo"), timeout_s=init_timeout_s)
    try:
        value = function(params)
    finally:
        if collect_garbage:
            gc.collect()
        if not params.get("skip_shutdown"):
            mdist.shutdown()
    (out_dir / f"rank{env.rank}.json").write_text(json.dumps(value))


# ---------------------------------------------------------------- code that runs in the ranks


def _global_ops(params: dict[str, Any]) -> dict[str, Any]:
    import torch

    from mlbench_core import distributed as mdist

    rank = mdist.rank()
    tensor = torch.tensor([float(rank + 1), 10.0 * (rank + 1)])
    avg_t = mdist.global_average(tensor)
    return {
        "avg_float": mdist.global_average(float(rank + 1)),
        "avg_tensor": avg_t.tolist(),
        "input_unchanged": tensor.tolist(),
        "avg_int_tensor": mdist.global_average(torch.tensor([rank + 1])).tolist(),
        "sum_float": mdist.global_sum(float(rank + 1)),
        "max_float": mdist.global_max(float(rank + 1)),
        "any_only_last": mdist.any_rank(rank == mdist.world_size() - 1),
        "any_none": mdist.any_rank(False),
    }


def _barrier(params: dict[str, Any]) -> dict[str, Any]:
    from mlbench_core import distributed as mdist

    rank = mdist.rank()
    if rank == params.get("absent_rank"):
        time.sleep(params.get("absent_sleep_s", 3.0))
        return {"arrived": False}
    begin = time.monotonic()
    try:
        mdist.barrier(params["timeout_s"])
    except mdist.BarrierTimeoutError as exc:
        return {
            "arrived": True,
            "timed_out": True,
            "elapsed": time.monotonic() - begin,
            "error": str(exc),
        }
    return {"arrived": True, "timed_out": False, "elapsed": time.monotonic() - begin}


def _task(params: dict[str, Any]) -> dict[str, Any]:
    import tempfile

    import torch

    from mlbench_core import distributed as mdist
    from mlbench_core.tasks import TaskContext, get_task
    from mlbench_core.tracker import Tracker

    torch.set_num_threads(1)
    task_cls = get_task(params["task"])
    config = task_cls.config_from(params.get("overrides", {}))
    goal_kind = params.get("goal_kind", "full")
    goal_value = params.get("goal_value")
    if goal_value is None and task_cls.goal is not None:
        goal_value = task_cls.goal.full if goal_kind == "full" else task_cls.goal.light
    points: list[dict[str, Any]] = []

    def log(name: str, value: float, *, step: int, epoch: float = 0.0) -> None:
        points.append({"name": name, "value": value, "step": step, "epoch": epoch})

    stop_after = params.get("stop_after_s")
    started = time.monotonic()
    ctx = TaskContext(
        rank=mdist.rank(),
        world_size=mdist.world_size(),
        device=torch.device("cpu"),
        seed=params.get("seed", 0),
        goal_kind=goal_kind,
        goal_value=goal_value,
        tracker=Tracker(),
        log=log,
        data_dir=tempfile.gettempdir(),
        should_stop=(lambda: False)
        if stop_after is None
        else (lambda: time.monotonic() - started > stop_after),
    )
    begin = time.perf_counter()
    result = task_cls().run(ctx, config)
    wall = time.perf_counter() - begin
    return {"result": result.model_dump(mode="json"), "points": points, "wall_s": wall}


TARGETS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "global_ops": _global_ops,
    "barrier": _barrier,
    "task": _task,
}


if __name__ == "__main__":
    rank_main(TARGETS.__getitem__)
