"""PyTorch ``DistributedDataParallel``: the reference point the other aggregators are measured by.

DDP all-reduces gradient buckets from autograd hooks *while backward is still running*, so its
communication overlaps computation and its time falls inside the tracker's ``backward`` phase;
``after_backward`` has nothing left to do and the ``communication`` phase stays near zero. Compare
DDP with the other aggregators by step time, not by the communication phase alone.

Bytes are counted by a communication hook that wraps DDP's default all-reduce hook and records
each bucket it hands to the all-reduce. Buffers (BatchNorm statistics) that DDP broadcasts from
rank 0 before each forward are counted on rank 0, the only rank that sends them.
"""

# No ``from __future__ import annotations`` here: DDP's register_comm_hook compares the hook's
# annotations with dist.GradBucket and Future[Tensor], and string annotations fail that check.

import inspect
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from pydantic import Field
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

from mlbench_core.optim.base import Aggregator, AggregatorConfig


class DDPConfig(AggregatorConfig):
    """Settings passed through to ``torch.nn.parallel.DistributedDataParallel``."""

    bucket_mb: float = Field(
        25.0,
        gt=0,
        le=4096,
        description="DDP's bucket_cap_mb: gradient bytes per all-reduce bucket, in MiB.",
    )
    sync_buffers: bool = Field(
        True,
        description=(
            "Broadcast rank 0's buffers (BatchNorm statistics) before every forward "
            "(DDP's forward_sync_buffers, formerly broadcast_buffers)."
        ),
    )
    find_unused_parameters: bool = Field(
        False,
        description=(
            "Let DDP detect parameters that took no part in the forward (needed by models "
            "with conditional branches; costs a graph traversal per step)."
        ),
    )
    gradient_as_bucket_view: bool = Field(
        True,
        description="Make .grad views of the all-reduce buckets (saves one copy and memory).",
    )


class DDP(Aggregator):
    """Gradient all-reduce done by ``DistributedDataParallel``, overlapped with backward."""

    name: ClassVar[str] = "ddp"
    Config: ClassVar[type[AggregatorConfig]] = DDPConfig

    def __init__(self, config: AggregatorConfig, *, rank: int, world_size: int) -> None:
        super().__init__(config, rank=rank, world_size=world_size)
        assert isinstance(config, DDPConfig)
        self.ddp_config = config

    def wrap(self, model: nn.Module) -> nn.Module:
        """``DistributedDataParallel(model)``; a job of one without a process group keeps
        the plain model, as the collective helpers in ``mlbench_core.distributed`` do."""
        if not (dist.is_available() and dist.is_initialized()):
            if self.world_size > 1:
                raise RuntimeError("aggregator 'ddp' needs an initialised process group")
            return model
        cfg = self.ddp_config
        # DDP broadcasts rank 0's parameters and buffers itself at construction.
        # torch 2.13 renamed broadcast_buffers (now deprecated) to forward_sync_buffers.
        params = inspect.signature(DistributedDataParallel.__init__).parameters
        buffer_flag = (
            "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
        )
        wrapped = DistributedDataParallel(
            model,
            bucket_cap_mb=cfg.bucket_mb,
            find_unused_parameters=cfg.find_unused_parameters,
            gradient_as_bucket_view=cfg.gradient_as_bucket_view,
            **{buffer_flag: cfg.sync_buffers},
        )
        wrapped.register_comm_hook(state=None, hook=self._counting_allreduce)
        if cfg.sync_buffers and self.rank == 0:
            wrapped.register_forward_pre_hook(self._count_buffer_broadcast)
        return wrapped

    def _counting_allreduce(
        self, state: Any, bucket: dist.GradBucket
    ) -> torch.futures.Future[torch.Tensor]:
        self.count(bucket.buffer())
        return default_hooks.allreduce_hook(state, bucket)

    def _count_buffer_broadcast(self, module: nn.Module, args: Any) -> None:
        assert isinstance(module, DistributedDataParallel)
        # The condition DDP itself checks before it broadcasts (false inside no_sync()).
        if module.will_sync_module_buffers():
            for buffer in module.module.buffers():
                self.count(buffer)
