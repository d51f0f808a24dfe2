"""PowerSGD (Vogels, Karimireddy and Jaggi, NeurIPS 2019): rank-r gradient compression.

Per step, for every gradient tensor with two or more dimensions, viewed as a matrix M of shape
``(shape[0], rest)`` = (n, m) with the error of the previous step added (error feedback)::

    P = M Q            all-reduce-mean P          (n x r floats on the wire)
    P = orthonormalise(P)
    Q = M^T P          all-reduce-mean Q          (m x r floats on the wire)
    grad = P Q^T       the same low-rank update on every rank
    error = M - P (M^T P)^T                       what this rank's own message left out

(Algorithm 1 and 2 of the paper; the error uses this rank's own decompression, as in the paper.)
``Q`` is reused from the previous step (warm start: one power-iteration step per SGD step
tracks the gradient's top subspace). Tensors of fewer dimensions (biases, norms) are all-reduced
uncompressed. All P matrices travel in one all-reduce, all Q matrices in a second and the
uncompressed tensors in a third, so a step costs three messages whatever the model's depth.

Bytes per step (with two or more ranks; a job of one sends nothing) = sum over compressed
matrices of (n + m) * r * element size + uncompressed bytes, where r = min(rank, n, m): a rank
above min(n, m) cannot reduce anything further.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.distributed as dist
from pydantic import Field
from torch import nn

from mlbench_core.optim._tensors import flatten, grads_of, unflatten_into
from mlbench_core.optim.base import Aggregator, AggregatorConfig


class PowerSGDConfig(AggregatorConfig):
    """Settings of PowerSGD."""

    rank: int = Field(
        2,
        ge=1,
        le=1024,
        description="r: rank of the approximation; the paper reaches full accuracy at 2 to 4.",
    )
    warm_start: bool = Field(
        True,
        description="Reuse the previous step's Q instead of drawing a fresh random one.",
    )
    error_feedback: bool = Field(
        True,
        description="Add what compression left out of the last step to the next gradient.",
    )
    seed: int = Field(
        0,
        ge=0,
        le=2**63 - 1,
        description="Seed of the random Q matrices; the same on all ranks by construction.",
    )


def matrix_shape(shape: torch.Size) -> tuple[int, int]:
    """(n, m) = (shape[0], product of the other dimensions)."""
    return shape[0], math.prod(shape[1:])


def compressed_rank(shape: torch.Size, rank: int) -> int:
    n, m = matrix_shape(shape)
    return min(rank, n, m)


def analytic_bytes(shapes: list[torch.Size], rank: int, element_size: int = 4) -> int:
    """Bytes one PowerSGD step sends for parameters of ``shapes`` (see the module docstring)."""
    total = 0
    for shape in shapes:
        if len(shape) >= 2:
            n, m = matrix_shape(shape)
            total += (n + m) * compressed_rank(shape, rank) * element_size
        else:
            total += math.prod(shape) * element_size
    return total


class PowerSGD(Aggregator):
    """Rank-r PowerSGD with warm start and error feedback; 1-D tensors uncompressed."""

    name: ClassVar[str] = "powersgd"
    Config: ClassVar[type[AggregatorConfig]] = PowerSGDConfig

    def __init__(self, config: AggregatorConfig, *, rank: int, world_size: int) -> None:
        super().__init__(config, rank=rank, world_size=world_size)
        assert isinstance(config, PowerSGDConfig)
        self.r = config.rank
        self.warm_start = config.warm_start
        self.error_feedback = config.error_feedback
        # Same seed on every rank: P = M Q is only averaged meaningfully with a shared Q.
        self.generator = torch.Generator().manual_seed(config.seed)
        self.qs: dict[int, torch.Tensor] = {}
        self.errors: dict[int, torch.Tensor] = {}

    def _fresh_q(self, m: int, r: int, like: torch.Tensor) -> torch.Tensor:
        q = torch.randn(m, r, generator=self.generator, dtype=like.dtype)
        return q.to(like.device)

    def _allreduce_mean(self, tensors: list[torch.Tensor]) -> None:
        # One message for the whole list (no bucket limit): the P and Q factors are small.
        if self.world_size == 1 or not tensors:
            return
        flat = flatten(tensors)
        self.count(flat)
        dist.all_reduce(flat)
        flat.div_(self.world_size)
        unflatten_into(flat, tensors)

    def after_backward(self, model: nn.Module) -> None:
        grads = grads_of(model)
        with torch.no_grad():
            matrices = [(i, g) for i, g in enumerate(grads) if g.dim() >= 2]
            vectors = [g for g in grads if g.dim() < 2]
            self._allreduce_mean(vectors)
            if matrices:
                self._compress_and_aggregate(matrices)

    def _compress_and_aggregate(self, matrices: list[tuple[int, torch.Tensor]]) -> None:
        ms: list[torch.Tensor] = []
        qs: list[torch.Tensor] = []
        for i, g in matrices:
            n, m = matrix_shape(g.shape)
            r = compressed_rank(g.shape, self.r)
            mat = g.reshape(n, m).clone()  # clone: g is overwritten with the result below
            if self.error_feedback and i in self.errors:
                mat.add_(self.errors[i])
            ms.append(mat)
            q = self.qs.get(i) if self.warm_start else None
            qs.append(q if q is not None else self._fresh_q(m, r, mat))

        ps = [mat @ q for mat, q in zip(ms, qs, strict=True)]
        self._allreduce_mean(ps)
        # Reduced QR: orthonormal columns even when P is rank-deficient (e.g. a zero gradient).
        ps = [torch.linalg.qr(p, mode="reduced").Q for p in ps]
        local_qs = [mat.T @ p for mat, p in zip(ms, ps, strict=True)]
        global_qs = [q.clone() for q in local_qs]
        self._allreduce_mean(global_qs)

        for (i, g), mat, p, q_local, q_global in zip(
            matrices, ms, ps, local_qs, global_qs, strict=True
        ):
            if self.error_feedback:
                self.errors[i] = mat - p @ q_local.T
            if self.warm_start:
                self.qs[i] = q_global
            g.copy_((p @ q_global.T).view_as(g))

    def residual_norm(self) -> float:
        """Euclidean norm of this rank's error-feedback memory (0 before the first step)."""
        return math.sqrt(sum(float(e.pow(2).sum()) for e in self.errors.values()))
