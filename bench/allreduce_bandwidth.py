"""All-reduce bandwidth (figure 4): task 0a against a plain all_reduce loop and memcpy.

Two gloo processes on this machine measure, per message size (float32, powers of two from
``--min-bytes`` to ``--max-bytes``, 4 KiB .. 64 MiB by default):

* ours: task 0a itself (``mlbench_core.tasks.allreduce``, ``AllReduceTask.run`` with its own
  measuring code: a barrier before each timed all-reduce, the slowest rank's mean), one run per
  size with a fixed iteration count (``min_iters = max_iters``);
* baseline: a plain ``torch.distributed.all_reduce`` loop, the same sizes and repetitions back
  to back after one barrier, the slowest rank's mean;
* ceiling: ``torch.Tensor.copy_`` of the same sizes on one process (rank 0, while rank 1 waits),
  the memory-copy bandwidth: on one host an all-reduce moves its data through memory, so this
  is its physical ceiling.

Bus bandwidth (nccl-tests' definition) = 2 (n-1)/n x bytes / time for n ranks (= bytes / time
for n = 2); memcpy bandwidth = bytes copied / time. The three variants alternate (task, plain,
memcpy, then reversed, ...) for ``--repeats`` rounds after ``--warmup`` dropped ones, and each
size reports its median. Every variant repeats a size the same number of times:
``--bytes-per-size / size`` operations, within ``[--iters, --max-iters]``, so small messages get
enough repetitions to rise above the scheduler's jitter. The headline is ours / plain at the
largest size (the target: the fraction of the memcpy ceiling reported, ours within 5% of the
plain loop); every size's fraction of the ceiling is in the ``ours`` row's extra.

Small messages are latency-bound, and there the two loops measure different things: task 0a
times each all-reduce on its own after a barrier (the wake-up of the later rank included), the
plain loop pipelines them back to back, so task 0a reports less bandwidth below ~1 MiB.

    .venv/bin/python bench/allreduce_bandwidth.py [--min-bytes 4096] [--max-bytes 67108864]
                                                 [--iters 20] [--max-iters 500] [--repeats 5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue
import time
from typing import Any

import common
import torch
import torch.distributed as dist

from mlbench_core import distributed as mdist
from mlbench_core.tasks.allreduce import AllReduceConfig, AllReduceTask, message_sizes
from mlbench_core.tasks.base import TaskContext
from mlbench_core.tracker import Tracker
from tests.conftest import free_port

WORLD = 2
FLOAT32 = 4
VARIANTS = ("task 0a", "plain", "memcpy")


def bus_bandwidth(nbytes: int, seconds: float, world: int = WORLD) -> float:
    """GB/s (10**9 bytes): 2 (n-1)/n x bytes / time."""
    return 2 * (world - 1) / world * nbytes / seconds / 1e9


def iterations(n: int, settings: dict[str, Any]) -> int:
    """Timed operations for a message of ``n`` float32 elements (the same in every variant)."""
    wanted = settings["bytes_per_size"] // (n * FLOAT32)
    return max(settings["iters"], min(settings["max_iters"], wanted))


def task_0a(sizes: list[int], settings: dict[str, Any], rank: int) -> dict[int, float]:
    """Seconds per all-reduce of each size (elements -> s), from task 0a's own figures: one
    run of the task per size, so that each size gets its own iteration count."""
    latency: dict[int, float] = {}

    def log(name: str, value: float, step: int, epoch: float = 0.0) -> None:
        if name == "allreduce/float32/latency_us":
            latency[step] = value / 1e6

    ctx = TaskContext(
        rank=rank,
        world_size=WORLD,
        device=torch.device("cpu"),
        seed=0,
        goal_kind="full",
        goal_value=None,
        tracker=Tracker(),
        log=log,
        data_dir="",
    )
    for n in sizes:
        count = iterations(n, settings)
        config = AllReduceConfig(
            min_elements=n,
            max_elements=n,
            dtypes=["float32"],
            warmup=settings["warmup_iters"],
            min_iters=count,
            max_iters=count,
            seconds_per_size=600,
        )
        AllReduceTask().run(ctx, config)
    return latency


def plain(sizes: list[int], settings: dict[str, Any]) -> dict[int, float]:
    """A bare all_reduce loop: seconds per all-reduce of each size, the slowest rank's mean."""
    out = {}
    for n in sizes:
        iters = iterations(n, settings)
        buf = torch.zeros(n, dtype=torch.float32)
        for _ in range(settings["warmup_iters"]):
            dist.all_reduce(buf)
        dist.barrier()
        begin = time.perf_counter()
        for _ in range(iters):
            dist.all_reduce(buf)
        out[n] = mdist.global_max((time.perf_counter() - begin) / iters)
    return out


def memcpy(sizes: list[int], settings: dict[str, Any], rank: int) -> dict[int, float]:
    """Seconds per ``copy_`` of each size on rank 0 (the other ranks wait at a barrier)."""
    out = {}
    if rank == 0:
        for n in sizes:
            iters = iterations(n, settings)
            src = torch.ones(n, dtype=torch.float32)
            dst = torch.empty_like(src)
            for _ in range(settings["warmup_iters"]):
                dst.copy_(src)
            begin = time.perf_counter()
            for _ in range(iters):
                dst.copy_(src)
            out[n] = (time.perf_counter() - begin) / iters
    dist.barrier()
    return out


def rank_main(rank: int, port: int, args: dict[str, Any], results: Any) -> None:
    """One rank: the whole interleaved schedule; rank 0 sends the samples back."""
    torch.set_num_threads(args["threads"])
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        lo, hi = args["min_bytes"] // FLOAT32, args["max_bytes"] // FLOAT32
        sizes = message_sizes(lo, hi)
        per_size: dict[str, list[dict[int, float]]] = {name: [] for name in VARIANTS}
        measure = {
            "task 0a": lambda: task_0a(sizes, args, rank),
            "plain": lambda: plain(sizes, args),
            "memcpy": lambda: memcpy(sizes, args, rank),
        }

        def variant(name: str) -> Any:
            def once() -> float:
                seconds = measure[name]()
                per_size[name].append(seconds)
                return seconds.get(sizes[-1], 1.0)

            return once

        skip = args["warmup"]
        common.interleave({name: variant(name) for name in VARIANTS}, args["repeats"], skip)
        if rank == 0:
            results.put((sizes, {name: runs[skip:] for name, runs in per_size.items()}, None))
    except BaseException as exc:
        results.put((None, None, f"rank {rank}: {type(exc).__name__}: {exc}"))
        raise
    finally:
        dist.destroy_process_group()


def measure_all(args: argparse.Namespace) -> tuple[list[int], dict[str, list[dict[int, float]]]]:
    ctx = mp.get_context("spawn")
    results: Any = ctx.Queue()
    settings = {
        "min_bytes": args.min_bytes,
        "max_bytes": args.max_bytes,
        "iters": args.iters,
        "max_iters": args.max_iters,
        "bytes_per_size": args.bytes_per_size,
        "warmup_iters": args.warmup_iters,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "threads": args.threads,
    }
    port = free_port()
    procs = [
        ctx.Process(target=rank_main, args=(r, port, settings, results), daemon=True)
        for r in range(WORLD)
    ]
    for proc in procs:
        proc.start()
    try:
        deadline = time.monotonic() + args.timeout
        while True:
            try:
                sizes, samples, error = results.get(timeout=1.0)
                break
            except queue.Empty:
                if time.monotonic() > deadline or any(not p.is_alive() for p in procs):
                    raise RuntimeError("the rank processes died or timed out") from None
        if error is not None:
            raise RuntimeError(error)
        for proc in procs:
            proc.join(timeout=30)
        return sizes, samples
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-bytes", type=int, default=4 << 10, help="smallest message")
    parser.add_argument("--max-bytes", type=int, default=64 << 20, help="largest message")
    parser.add_argument("--iters", type=int, default=20, help="fewest timed operations per size")
    parser.add_argument("--max-iters", type=int, default=500, help="most timed ones per size")
    parser.add_argument(
        "--bytes-per-size", type=int, default=256 << 20, help="bytes to move per size and variant"
    )
    parser.add_argument("--warmup-iters", type=int, default=2, help="untimed ones per size")
    parser.add_argument("--repeats", type=int, default=5, help="measured rounds")
    parser.add_argument("--warmup", type=int, default=1, help="dropped rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds for everything")
    common.add_output_args(parser)
    args = parser.parse_args()
    sizes, samples = measure_all(args)

    def gbps(name: str, n: int) -> float:
        seconds = common.median([run[n] for run in samples[name]])
        nbytes = n * FLOAT32
        return nbytes / seconds / 1e9 if name == "memcpy" else bus_bandwidth(nbytes, seconds)

    table = {name: [gbps(name, n) for n in sizes] for name in VARIANTS}
    fraction = [ours / ceil for ours, ceil in zip(table["task 0a"], table["memcpy"], strict=True)]
    print(f"{'bytes':>10}{'task 0a':>10}{'plain':>10}{'memcpy':>10}  GB/s   ours/plain  of ceiling")
    for i, n in enumerate(sizes):
        ours, base, ceil = table["task 0a"][i], table["plain"][i], table["memcpy"][i]
        cells = f"{n * FLOAT32:>10}{ours:>10.3f}{base:>10.3f}{ceil:>10.3f}"
        print(f"{cells}{ours / base:>19.2f}{fraction[i]:>12.3f}")
    per_size = {"bytes": [n * FLOAT32 for n in sizes]}
    rows = [
        common.Row(
            "task 0a (mlbench_core.tasks.allreduce), bus bandwidth at the largest size",
            "ours",
            table["task 0a"][-1],
            "GB/s",
            {**per_size, "busbw_gbps": table["task 0a"], "fraction_of_ceiling": fraction},
        ),
        common.Row(
            "plain torch.distributed.all_reduce loop, bus bandwidth",
            "baseline",
            table["plain"][-1],
            "GB/s",
            {**per_size, "busbw_gbps": table["plain"]},
        ),
        common.Row(
            "memcpy (Tensor.copy_, one process), bytes / time",
            "ceiling",
            table["memcpy"][-1],
            "GB/s",
            {**per_size, "gbps": table["memcpy"]},
        ),
    ]
    common.print_rows(rows)
    ratio = table["task 0a"][-1] / table["plain"][-1]
    params = {
        "backend": "gloo",
        "workers": WORLD,
        "dtype": "float32",
        "min_bytes": sizes[0] * FLOAT32,
        "max_bytes": sizes[-1] * FLOAT32,
        "iters_per_size": {n * FLOAT32: iterations(n, vars(args)) for n in sizes},
        "warmup_iters": args.warmup_iters,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "threads_per_process": args.threads,
        "busbw_definition": "2 (n-1)/n x bytes / time",
    }
    summary = common.Summary(
        f"bus bandwidth at {sizes[-1] * FLOAT32} B, task 0a / plain all_reduce",
        ratio,
        "fraction of memcpy ceiling reported (ours >= 0.95 x plain)",
        ratio >= 0.95,
    )
    notes = (
        f"task 0a reaches {fraction[-1]:.3f} of the memcpy ceiling at the largest size "
        f"(plain loop: {table['plain'][-1] / table['memcpy'][-1]:.3f})"
    )
    print(notes)
    title = "All-reduce bus bandwidth (task 0a, gloo, 2 ranks)"
    common.save(args, "allreduce_bandwidth", title, params, rows, summary, notes)


if __name__ == "__main__":
    main()
