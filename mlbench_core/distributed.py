"""torch.distributed plumbing shared by the worker and the tasks.

Workers follow the torchrun contract (DESIGN.md: Worker environment): ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` come from the environment, set by
``torch.distributed.run`` locally and by the pod spec in Kubernetes.

The collective helpers (``global_average``, ``global_sum``, ``global_max``, ``any_rank``) also
work when no process group is initialised: they then behave as a job of one, which keeps the
tasks usable in a plain single-process debugging session.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import overload

import torch
import torch.distributed as dist

from mlbench_core.spec import Backend

log = logging.getLogger(__name__)

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

# Set when a barrier timed out: the group has a collective in flight and cannot be torn down.
_broken = False


class DistEnvError(ValueError):
    """A torchrun environment variable is missing or malformed."""


class BarrierTimeoutError(TimeoutError):
    """Not every rank arrived at a barrier within its timeout."""


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job, as torchrun (or the pod spec) describes it."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DistEnv:
        """Read and check the torchrun variables; errors name the offending variable."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str:
            value = env.get(name)
            if value is None or not value.strip():
                raise DistEnvError(
                    f"environment variable {name} is not set "
                    f"(workers need {', '.join(ENV_VARS)}, as set by torchrun)"
                )
            return value.strip()

        def get_int(name: str, low: int, high: int | None = None) -> int:
            raw = get(name)
            try:
                value = int(raw)
            except ValueError:
                raise DistEnvError(
                    f"environment variable {name}={raw!r} is not an integer"
                ) from None
            if value < low or (high is not None and value > high):
                bound = f">= {low}" if high is None else f"in [{low}, {high}]"
                raise DistEnvError(f"environment variable {name}={value} must be {bound}")
            return value

        world_size = get_int("WORLD_SIZE", 1)
        rank = get_int("RANK", 0, world_size - 1)
        local_rank = get_int("LOCAL_RANK", 0)
        master_addr = get("MASTER_ADDR")
        master_port = get_int("MASTER_PORT", 1, 65_535)
        return cls(rank, world_size, local_rank, master_addr, master_port)


def pick_backend(requested: Backend | str) -> str:
    """The backend to use: nccl needs CUDA (asking for it without raises), else gloo."""
    try:
        backend = Backend(requested)
    except ValueError:
        known = ", ".join(b.value for b in Backend)
        raise ValueError(f"unknown backend {requested!r} (known: {known})") from None
    if backend is Backend.nccl:
        if not torch.cuda.is_available():
            raise RuntimeError("backend 'nccl' requested but CUDA is not available on this node")
        return Backend.nccl.value
    return Backend.gloo.value


def device_for(env: DistEnv, backend: str) -> torch.device:
    """nccl ranks compute on ``cuda:LOCAL_RANK``; gloo ranks compute on the CPU.

    gloo is the CPU backend of this suite, so its tensors stay on the CPU even on a GPU node;
    GPU runs use nccl.
    """
    if backend == Backend.nccl.value:
        count = torch.cuda.device_count()
        if env.local_rank >= count:
            raise RuntimeError(
                f"LOCAL_RANK={env.local_rank} but only {count} CUDA device(s) visible"
            )
        device = torch.device("cuda", env.local_rank)
        # Collectives and default allocations of this process go to its own GPU.
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")


def init_process_group(env: DistEnv, backend: str, timeout_s: float = 600.0) -> None:
    """Join the job's process group (TCP rendezvous at MASTER_ADDR:MASTER_PORT).

    ``timeout_s`` bounds the rendezvous and every later collective, so a dead peer ends the
    run with an error instead of a hang.
    """
    if dist.is_initialized():
        raise RuntimeError("the process group is already initialised")
    host = env.master_addr
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal in a URL
    log.info(
        "joining process group: backend=%s rank=%d/%d master=%s:%d",
        backend,
        env.rank,
        env.world_size,
        env.master_addr,
        env.master_port,
    )
    dist.init_process_group(
        backend=backend,
        init_method=f"tcp://{host}:{env.master_port}",
        rank=env.rank,
        world_size=env.world_size,
        timeout=timedelta(seconds=timeout_s),
    )


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def _comm_device() -> torch.device:
    # nccl only reduces CUDA tensors; gloo works on CPU tensors.
    if is_initialized() and dist.get_backend() == Backend.nccl.value:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _reduce(value: torch.Tensor | float, op: dist.ReduceOp.RedOpType) -> torch.Tensor | float:
    if isinstance(value, torch.Tensor):
        out = value.detach().clone()
        if is_initialized():
            if out.device != _comm_device():
                moved = out.to(_comm_device())
                dist.all_reduce(moved, op=op)
                out = moved.to(value.device)
            else:
                dist.all_reduce(out, op=op)
        return out
    buf = torch.tensor([float(value)], dtype=torch.float64, device=_comm_device())
    if is_initialized():
        dist.all_reduce(buf, op=op)
    return float(buf.item())


@overload
def global_sum(value: torch.Tensor) -> torch.Tensor: ...
@overload
def global_sum(value: float) -> float: ...
def global_sum(value: torch.Tensor | float) -> torch.Tensor | float:
    """Sum over all ranks; a tensor comes back as a new tensor, a number as a float."""
    return _reduce(value, dist.ReduceOp.SUM)


@overload
def global_average(value: torch.Tensor) -> torch.Tensor: ...
@overload
def global_average(value: float) -> float: ...
def global_average(value: torch.Tensor | float) -> torch.Tensor | float:
    """Mean over all ranks (all_reduce SUM divided by the world size)."""
    total = _reduce(value, dist.ReduceOp.SUM)
    n = world_size()
    if isinstance(total, torch.Tensor):
        if total.is_floating_point() or total.is_complex():
            return total.div_(n)
        return total / n  # integer tensors: true division gives a float tensor
    return total / n


@overload
def global_max(value: torch.Tensor) -> torch.Tensor: ...
@overload
def global_max(value: float) -> float: ...
def global_max(value: torch.Tensor | float) -> torch.Tensor | float:
    """Maximum over all ranks."""
    return _reduce(value, dist.ReduceOp.MAX)


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on at least one.

    Decisions that end a loop (time budget spent, stop requested) must be taken by all ranks
    together: a rank that leaves early would leave the others waiting in a collective.
    """
    return global_max(1.0 if flag else 0.0) > 0.0


def barrier(timeout_s: float = 60.0) -> None:
    """Wait until every rank arrives; raise ``BarrierTimeoutError`` after ``timeout_s``.

    gloo has ``monitored_barrier``: rank 0 honours its timeout and names the missing ranks,
    but the other ranks wait for rank 0's answer with the process group's (long) timeout. So
    the call runs in a helper thread that every rank stops waiting for at the deadline. nccl has
    no monitored barrier; there an asynchronous all_reduce is polled until the deadline.
    After a timeout the process group is unusable (a collective is half done): the caller
    should end the run, and ``shutdown`` then skips the teardown that would wait for it.
    """
    global _broken
    if not is_initialized():
        return
    if dist.get_backend() == Backend.gloo.value:
        outcome: list[BaseException | None] = []

        def wait() -> None:
            try:
                dist.monitored_barrier(timeout=timedelta(seconds=timeout_s), wait_all_ranks=True)
                outcome.append(None)
            except BaseException as exc:  # handed over to the calling thread
                outcome.append(exc)

        helper = threading.Thread(target=wait, name="mlbench-barrier", daemon=True)
        helper.start()
        # Rank 0's own timeout fires at timeout_s; the margin lets its message win the race.
        helper.join(timeout_s + (0.5 if rank() == 0 else 0.0))
        if not outcome:
            _broken = True
            raise BarrierTimeoutError(f"barrier timed out after {timeout_s:g}s")
        error = outcome[0]
        if error is not None:
            _broken = True
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise BarrierTimeoutError(
                f"barrier timed out after {timeout_s:g}s: {first_line}"
            ) from error
        return
    token = torch.zeros(1, device=_comm_device())
    work = dist.all_reduce(token, async_op=True)
    deadline = time.monotonic() + timeout_s
    while not work.is_completed():
        if time.monotonic() >= deadline:
            _broken = True
            raise BarrierTimeoutError(f"barrier timed out after {timeout_s:g}s")
        time.sleep(0.001)
    work.wait()


def shutdown() -> None:
    """Leave the process group if one is initialised; never raises.

    After a barrier timeout the group still has an operation in flight that would make the
    teardown wait for the process group's timeout; then it is left to process exit.
    """
    global _broken
    if not is_initialized():
        return
    if _broken:
        log.warning("process group left without teardown after a barrier timeout")
        _broken = False
        return
    try:
        dist.destroy_process_group()
    except Exception:  # a broken group must not mask the run's own outcome
        log.warning("destroy_process_group failed", exc_info=True)
