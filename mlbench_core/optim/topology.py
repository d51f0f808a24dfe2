"""Communication graphs for gossip SGD and their doubly-stochastic mixing matrices.

A topology says, for every rank, which ranks it sends its model to (``out_peers``) and with
which weight it combines the models it receives (``weights``: sender -> weight, itself
included). Row i of the mixing matrix W holds rank i's weights; every row and every column sums
to 1 (doubly stochastic), so mixing preserves the average model, and on a connected graph
repeated mixing drives all ranks to it at the rate of W's second singular value.

- ``ring``: neighbours i-1 and i+1.
- ``torus``: a rows x cols grid with wrap-around, neighbours up, down, left, right.
- ``exponential``: rank i sends to i + 2^k (mod n) for every 2^k < n and receives from
  i - 2^k: log2(n) peers, a short diameter (Assran et al. 2019, SGP; Ying et al. 2021).

Undirected graphs (ring, torus) use Metropolis-Hastings weights, W_ij = 1 / (1 + max(d_i, d_j))
and W_ii = 1 - sum of the others, doubly stochastic for any undirected graph. The exponential
graph is directed; every rank has the same number d of in- and out-peers, so uniform weights
1 / (d + 1) make a circulant, hence doubly stochastic, matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

TopologyName = Literal["ring", "torus", "exponential"]


@dataclass(frozen=True)
class Topology:
    """Peers and mixing weights of every rank of a job of ``world_size`` ranks."""

    name: str
    world_size: int
    out_peers_of: tuple[tuple[int, ...], ...]
    weights_of: tuple[dict[int, float], ...]

    def out_peers(self, rank: int) -> tuple[int, ...]:
        """Ranks that receive ``rank``'s model each mixing step (never ``rank`` itself)."""
        return self.out_peers_of[rank]

    def weights(self, rank: int) -> dict[int, float]:
        """Sender -> weight of the models ``rank`` combines, its own included; sums to 1."""
        return self.weights_of[rank]

    def in_peers(self, rank: int) -> tuple[int, ...]:
        """Ranks whose models ``rank`` receives (the weights' keys without ``rank``)."""
        return tuple(sorted(j for j in self.weights_of[rank] if j != rank))

    def matrix(self) -> torch.Tensor:
        """The mixing matrix W (float64): mixed model of rank i = sum_j W[i, j] * model_j."""
        w = torch.zeros(self.world_size, self.world_size, dtype=torch.float64)
        for i, row in enumerate(self.weights_of):
            for j, value in row.items():
                w[i, j] = value
        return w

    def contraction(self) -> float:
        """Spectral norm of W - 11^T/n: the factor by which one mixing step at least shrinks
        the ranks' distance from their average (< 1 on a connected graph)."""
        n = self.world_size
        w = self.matrix() - torch.full((n, n), 1.0 / n, dtype=torch.float64)
        return float(torch.linalg.matrix_norm(w, ord=2))


def torus_shape(world_size: int, rows: int | None = None) -> tuple[int, int]:
    """(rows, cols) of the torus: ``rows`` if given, else the most square factorisation."""
    if rows is None:
        rows = max(r for r in range(1, math.isqrt(world_size) + 1) if world_size % r == 0)
    if rows < 1 or world_size % rows:
        raise ValueError(f"torus_rows={rows} does not divide the world size {world_size}")
    return rows, world_size // rows


def _undirected(name: str, neighbours: list[set[int]]) -> Topology:
    degree = [len(nb) for nb in neighbours]
    weights: list[dict[int, float]] = []
    for i, nb in enumerate(neighbours):
        row = {j: 1.0 / (1 + max(degree[i], degree[j])) for j in sorted(nb)}
        row[i] = 1.0 - sum(row.values())
        weights.append(row)
    peers = tuple(tuple(sorted(nb)) for nb in neighbours)
    return Topology(name, len(neighbours), peers, tuple(weights))


def ring(world_size: int) -> Topology:
    # A set: for 2 ranks, i-1 and i+1 are the same peer, which must be mixed in once.
    neighbours = [{(i - 1) % world_size, (i + 1) % world_size} - {i} for i in range(world_size)]
    return _undirected("ring", neighbours)


def torus(world_size: int, rows: int | None = None) -> Topology:
    rows, cols = torus_shape(world_size, rows)
    neighbours = []
    for i in range(world_size):
        r, c = divmod(i, cols)
        around = {
            ((r - 1) % rows) * cols + c,
            ((r + 1) % rows) * cols + c,
            r * cols + (c - 1) % cols,
            r * cols + (c + 1) % cols,
        }
        neighbours.append(around - {i})
    return _undirected("torus", neighbours)


def exponential(world_size: int) -> Topology:
    hops = [1 << k for k in range(max(world_size - 1, 0).bit_length())]  # 2^k < world_size
    weight = 1.0 / (len(hops) + 1)
    peers = tuple(tuple((i + h) % world_size for h in hops) for i in range(world_size))
    weights = tuple(
        {i: weight, **{(i - h) % world_size: weight for h in hops}} for i in range(world_size)
    )
    return Topology("exponential", world_size, peers, weights)


def make_topology(name: str, world_size: int, *, torus_rows: int | None = None) -> Topology:
    """The topology ``name`` (ring, torus, exponential) over ``world_size`` ranks."""
    if world_size < 1:
        raise ValueError(f"world size must be >= 1, got {world_size}")
    if name == "ring":
        return ring(world_size)
    if name == "torus":
        return torus(world_size, torus_rows)
    if name == "exponential":
        return exponential(world_size)
    raise ValueError(f"unknown topology {name!r} (known: ring, torus, exponential)")
