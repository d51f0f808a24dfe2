"""Task 0a: latency and bandwidth of the backend's all-reduce over message sizes.

The figures follow the nccl-tests conventions: *algbw* = bytes / time and
*busbw* = algbw x 2(n-1)/n, the factor that makes a ring all-reduce's bus bandwidth comparable
to the link speed whatever the number of ranks n.
"""

from __future__ import annotations

import math
import time
from typing import Literal

import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlbench_core import distributed as mdist
from mlbench_core.tasks import register
from mlbench_core.tasks.base import GoalSpec, Task, TaskContext
from mlbench_core.wire import RunResult

DTypeName = Literal[
    "float64",
    "float32",
    "float16",
    "bfloat16",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "float8_e4m3fn",
    "float8_e5m2",
]

MAX_ELEMENTS_LIMIT = 2**26
LIGHT_MAX_ELEMENTS = 2**20


class AllReduceConfig(BaseModel):
    """Settings of the all-reduce benchmark."""

    model_config = ConfigDict(extra="forbid")

    min_elements: int = Field(
        1,
        ge=1,
        le=MAX_ELEMENTS_LIMIT,
        description="Smallest message, in elements; rounded up to a power of two.",
    )
    max_elements: int = Field(
        2**24,
        ge=1,
        le=MAX_ELEMENTS_LIMIT,
        description=(
            "Largest message, in elements (at most 2**26). Goal kind 'light' caps it at 2**20."
        ),
    )
    dtypes: list[DTypeName] = Field(
        default_factory=lambda: ["float32", "float16"],
        min_length=1,
        description=(
            "Element types to measure, in order. A type the backend cannot reduce is skipped "
            "and the reason recorded in the result's extra figures."
        ),
    )
    warmup: int = Field(
        2, ge=0, le=100, description="Untimed all-reduces per size before measuring."
    )
    min_iters: int = Field(3, ge=1, le=10_000, description="Timed all-reduces per size, at least.")
    max_iters: int = Field(50, ge=1, le=10_000, description="Timed all-reduces per size, at most.")
    seconds_per_size: float = Field(
        0.5,
        gt=0,
        le=600,
        description="Time budget per size; iterations stop when it is spent (within the bounds).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> AllReduceConfig:
        if self.min_elements > self.max_elements:
            raise ValueError("min_elements must be <= max_elements")
        if self.min_iters > self.max_iters:
            raise ValueError("min_iters must be <= max_iters")
        if len(set(self.dtypes)) != len(self.dtypes):
            raise ValueError("dtypes must not repeat")
        return self


def message_sizes(min_elements: int, max_elements: int) -> list[int]:
    """Powers of two from ``min_elements`` (rounded up) to ``max_elements`` (inclusive)."""
    low = math.ceil(math.log2(min_elements))
    high = math.floor(math.log2(max_elements))
    return [2**k for k in range(low, high + 1)]


def bus_bandwidth_gbps(nbytes: int, seconds: float, world_size: int) -> tuple[float, float]:
    """(algbw, busbw) in GB/s (10**9 bytes) for an all-reduce of ``nbytes`` on ``world_size``."""
    if seconds <= 0:
        return 0.0, 0.0
    algbw = nbytes / seconds / 1e9
    return algbw, algbw * 2 * (world_size - 1) / world_size


@register
class AllReduceTask(Task):
    id = "allreduce"
    title = "Task 0a: backend all-reduce"
    description = (
        "Latency and bus bandwidth of torch.distributed all_reduce (SUM) for power-of-two "
        "message sizes and several element types; no model and no quality goal. "
        "Goal kind 'light' caps the largest message at 2**20 elements."
    )
    Config = AllReduceConfig
    goal: GoalSpec | None = None

    def run(self, ctx: TaskContext, config: BaseModel) -> RunResult:
        assert isinstance(config, AllReduceConfig)
        if not mdist.is_initialized():
            raise RuntimeError("the allreduce task needs an initialised process group")
        backend = str(dist.get_backend())
        max_elements = config.max_elements
        if ctx.goal_kind == "light":
            max_elements = min(max_elements, LIGHT_MAX_ELEMENTS)
        sizes = message_sizes(min(config.min_elements, max_elements), max_elements)
        tracker = ctx.tracker
        tracker.start()

        extra: dict[str, float | str | bool] = {}
        peak_busbw: dict[str, float] = {}
        supported = []
        for name in config.dtypes:
            reason = _check_dtype(name, ctx.device, backend)
            if reason is None:
                supported.append(name)
            else:
                extra[name] = reason

        total = len(sizes) * len(supported)
        done = 0
        stopped = False
        for name in supported:
            dtype = getattr(torch, name)
            peak = 0.0
            for index, n in enumerate(sizes):
                # Ranks must agree to stop: one leaving alone would hang the others.
                if mdist.any_rank(ctx.should_stop()):
                    stopped = True
                    break
                tracker.start_step()
                with tracker.phase("communication"):
                    latency = _measure(n, dtype, ctx.device, config)
                nbytes = n * _element_size(dtype)
                algbw, busbw = bus_bandwidth_gbps(nbytes, latency, ctx.world_size)
                peak = max(peak, busbw)
                done += 1
                with tracker.phase("metrics"):
                    if ctx.rank == 0:
                        prefix = f"allreduce/{name}"
                        ctx.log(f"{prefix}/latency_us", latency * 1e6, step=n)
                        ctx.log(f"{prefix}/algbw_gbps", algbw, step=n)
                        ctx.log(f"{prefix}/busbw_gbps", busbw, step=n)
                    ctx.progress(done / total if total else 1.0, step=done)
                tracker.end_step(samples=0)
                if index == 0:
                    extra[f"{name}/min_size_latency_us"] = latency * 1e6
            if stopped:
                break
            peak_busbw[name] = peak
            extra[f"{name}/peak_busbw_gbps"] = peak

        extra["backend"] = backend
        extra["sizes"] = len(sizes)
        extra["max_elements"] = max_elements
        return RunResult(
            goal_reached=not stopped and bool(supported),
            goal_metric=None,
            goal_value=None,
            time_to_goal_s=None,
            final_value=peak_busbw.get("float32"),
            samples_per_s=0.0,
            total_time_s=tracker.elapsed,
            steps=tracker.steps,
            epochs=0.0,  # no epochs in a sweep; steps counts the measured sizes
            phases=tracker.phase_times(),
            extra=extra,
        )


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _check_dtype(name: str, device: torch.device, backend: str) -> str | None:
    """None when every rank can all-reduce ``name``, else why not (same answer on all ranks)."""
    dtype = getattr(torch, name)
    error = ""
    try:
        probe = torch.zeros(4, dtype=dtype, device=device)
        dist.all_reduce(probe)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    except Exception as exc:  # the backend refuses the type before any communication
        error = " ".join(str(exc).split())[:200] or type(exc).__name__
    # Every rank must take the same branch, so the verdict is agreed on collectively.
    if mdist.any_rank(bool(error)):
        return f"unsupported by {backend}: {error or 'failed on another rank'}"
    return None


def _measure(n: int, dtype: torch.dtype, device: torch.device, config: AllReduceConfig) -> float:
    """Mean seconds of one all-reduce of ``n`` elements, the slowest rank's mean."""
    # Zeros: a SUM of zeros never overflows, whatever the dtype and iteration count.
    buf = torch.zeros(n, dtype=dtype, device=device)
    cuda = device.type == "cuda"

    def once() -> float:
        dist.barrier()  # align the ranks so each sample times the collective, not the skew
        if cuda:
            torch.cuda.synchronize(device)
        begin = time.perf_counter()
        dist.all_reduce(buf)
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter() - begin

    for _ in range(config.warmup):
        once()
    # The iteration count must be the same on every rank (each all_reduce needs all of them),
    # so it is derived from one calibration sample agreed on with MAX, not from local clocks.
    spent = once()
    first = mdist.global_max(spent)
    iters = config.max_iters
    if first > 0:
        iters = int(config.seconds_per_size / first)
    iters = max(config.min_iters, min(config.max_iters, iters))
    for _ in range(iters - 1):
        spent += once()
    return mdist.global_max(spent / iters)
