"""Decentralised gossip SGD (D-PSGD, Lian et al. 2017), no central all-reduce.

Every rank - rank 0 included, it is a peer like any other - steps on its own gradient, then
mixes its model with its neighbours' on a fixed topology (``topology.py``)::

    x_i <- sum_j W[i, j] * x_j        (after optimizer.step(): "adapt, then combine")

The models travel point-to-point: each rank flattens its parameters (and floating-point
buffers) into one vector, ``isend``s it to each out-peer and ``irecv``s one vector from each
in-peer, all requests in flight at once (gloo supports isend/irecv on CPU tensors). Bytes
counted per step = the flattened model's bytes times the number of out-peers.

Ranks do not hold the same model between mixing steps; they agree only in the limit. Evaluate
the average model (or each rank's own and report the spread) accordingly.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.distributed as dist
from pydantic import Field
from torch import nn

from mlbench_core.optim._tensors import flatten, state_of, unflatten_into
from mlbench_core.optim.base import Aggregator, AggregatorConfig
from mlbench_core.optim.topology import Topology, TopologyName, make_topology


class GossipConfig(AggregatorConfig):
    """Settings of gossip SGD."""

    topology: TopologyName = Field(
        "ring",
        description=(
            "Communication graph: ring (2 peers), torus (2-D grid with wrap-around, 4 peers) or "
            "exponential (peers at distance 2^k, log2(n) peers)."
        ),
    )
    torus_rows: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="Rows of the torus (must divide the number of workers); default: most square.",
    )
    include_buffers: bool = Field(
        True,
        description="Mix floating-point buffers (BatchNorm statistics) with the parameters.",
    )
    broadcast_initial: bool = Field(
        True,
        description=(
            "Start every rank from rank 0's model (D-PSGD's common start). False keeps each "
            "rank's own initialisation, e.g. to study consensus."
        ),
    )


class Gossip(Aggregator):
    """D-PSGD: local step, then weighted averaging with the topology's neighbours."""

    name: ClassVar[str] = "gossip"
    Config: ClassVar[type[AggregatorConfig]] = GossipConfig

    def __init__(self, config: AggregatorConfig, *, rank: int, world_size: int) -> None:
        super().__init__(config, rank=rank, world_size=world_size)
        assert isinstance(config, GossipConfig)
        self.include_buffers = config.include_buffers
        self.broadcast_initial = config.broadcast_initial
        # Raises ValueError (torus_rows not dividing world_size) before any training starts.
        self.topology: Topology = make_topology(
            config.topology, world_size, torus_rows=config.torus_rows
        )
        self.out_peers = self.topology.out_peers(rank)
        self.weights = self.topology.weights(rank)

    def wrap(self, model: nn.Module) -> nn.Module:
        return super().wrap(model) if self.broadcast_initial else model

    def after_step(self, model: nn.Module) -> None:
        self.mix(model)

    def mix(self, model: nn.Module) -> None:
        """One gossip round: replace this rank's model by the weighted mean of its in-peers'."""
        if self.world_size == 1:
            return
        with torch.no_grad():
            tensors = state_of(model, self.include_buffers)
            mine = flatten(tensors)
            received = {j: torch.empty_like(mine) for j in self.weights if j != self.rank}
            requests = []
            for dst in self.out_peers:
                self.count(mine)
                requests.append(dist.isend(mine, dst))
            for src, buffer in received.items():
                requests.append(dist.irecv(buffer, src))
            for request in requests:
                request.wait()
            mixed = mine * self.weights[self.rank]
            for src, buffer in received.items():
                mixed.add_(buffer, alpha=self.weights[src])
            unflatten_into(mixed, tensors)
