"""Minibatches of an image set that lives in the compute device's memory.

CIFAR-10's 50,000 training images are 150 MB as uint8, a sliver of a GPU's memory. Kept there,
a training step needs nothing from the host: each epoch's shard order is one ``randperm`` drawn
on the device (``partition.shard_indices(device=...)``, the same shards as everywhere else in
the suite), a batch is a slice of it, and the gather, the augmentation and the labels are
kernels on the device. No host-to-device copy and no synchronisation per step, so the host can
queue the next steps while the GPU runs.

The loader is device-agnostic: on the CPU it gives exactly the order of ``shard_indices`` on
the CPU, which is what the tests check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from mlbench_core.data.partition import shard_indices, shard_size

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
"""A whole-batch augmentation, e.g. ``CifarAugment``: (uint8 batch, generator) -> batch."""


class DeviceResidentLoader:
    """This rank's shard of ``images``/``labels`` per epoch, in batches, on the data's device.

    ``images`` (N x ...) and ``labels`` (N) are moved to ``device`` once (default: where the
    images already are). Every rank draws the same permutation from (``seed``, epoch) and takes
    every ``world_size``-th index from ``rank`` (``partition.shard_indices``); the last batch of
    an epoch may be smaller; ``chunk_batches`` batches are gathered and transformed at once.
    ``transform`` gets each gathered batch and a generator on the
    device seeded with ``augment_seed`` (default: derived from ``seed`` and ``rank``).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        transform: Transform | None = None,
        augment_seed: int | None = None,
        device: torch.device | str | None = None,
        drop_last: bool = False,
        chunk_batches: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if chunk_batches < 1:
            raise ValueError(f"chunk_batches must be >= 1, got {chunk_batches}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.device = torch.device(device) if device is not None else images.device
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.chunk_batches = chunk_batches
        self.transform = transform
        if augment_seed is None:
            augment_seed = seed * 1_000_003 + rank
        self.generator = torch.Generator(device=self.device).manual_seed(augment_seed)
        shard = shard_size(len(self.labels), world_size, drop_last=drop_last)
        self.steps_per_epoch = -(-shard // batch_size)
        """Batches per epoch, the same on every rank."""

    def __len__(self) -> int:
        return self.steps_per_epoch

    def order(self, epoch: int) -> torch.Tensor:
        """This rank's indices for ``epoch``, drawn on the loader's device."""
        n = len(self.labels)
        return shard_indices(
            n,
            self.rank,
            self.world_size,
            self.seed,
            epoch,
            drop_last=self.drop_last,
            device=self.device,
        )

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(transformed images, labels) for every batch of ``epoch``; no host-device copies.

        Images are gathered and transformed ``chunk_batches`` batches at a time and each batch
        is a view of that: a small model's step is bound by kernel launches, and one set of
        gather and augmentation kernels per chunk instead of per batch takes the data phase
        off the step (the random draws are per image either way)."""
        order = self.order(epoch).contiguous()  # every world_size-th index: a strided view
        chunk = self.batch_size * self.chunk_batches
        for begin in range(0, len(order), chunk):
            chosen = order[begin : begin + chunk]
            images = self.images.index_select(0, chosen)
            if self.transform is not None:
                images = self.transform(images, self.generator)
            labels = self.labels.index_select(0, chosen)
            for start in range(0, len(chosen), self.batch_size):
                stop = start + self.batch_size
                yield images[start:stop], labels[start:stop]
