"""DeviceResidentLoader: the shard order of partition.shard_indices, drawn on the data's device,
whole batches gathered and transformed there, labels kept with their images."""

from __future__ import annotations

import pytest
import torch

from mlbench_core.data.augment import CifarAugment
from mlbench_core.data.device_resident import DeviceResidentLoader
from mlbench_core.data.partition import shard_indices


def numbered(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose pixels are their own index (mod 256) and labels equal to the index."""
    images = (torch.arange(n) % 256).to(torch.uint8)[:, None, None, None].expand(n, 3, 4, 4)
    return images.contiguous(), torch.arange(n)


@pytest.mark.parametrize(("rank", "world"), [(0, 1), (1, 3)])
def test_batches_follow_the_shard_order_and_keep_labels_with_images(rank: int, world: int) -> None:
    n, batch = 100, 16
    images, labels = numbered(n)
    loader = DeviceResidentLoader(
        images, labels, batch_size=batch, seed=5, rank=rank, world_size=world
    )
    expected = shard_indices(n, rank, world, seed=5, epoch=2)
    assert torch.equal(loader.order(2), expected)
    got = list(loader.batches(2))
    assert len(got) == loader.steps_per_epoch == len(loader) == -(-len(expected) // batch)
    assert [len(y) for _, y in got][:-1] == [batch] * (len(got) - 1)
    ys = torch.cat([y for _, y in got])
    assert torch.equal(ys, expected)
    for x, y in got:
        assert torch.equal(x[:, 0, 0, 0], (y % 256).to(torch.uint8))
    assert not torch.equal(loader.order(3), expected)  # a new order every epoch


def test_transform_gets_the_loader_generator_and_is_reproducible() -> None:
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (40,))

    def run(seed: int) -> list[torch.Tensor]:
        loader = DeviceResidentLoader(
            images, labels, batch_size=8, seed=1, transform=CifarAugment(), augment_seed=seed
        )
        return [x for x, _ in loader.batches(0)]

    a, b, c = run(7), run(7), run(8)
    assert all(x.dtype == torch.float32 and x.shape == (8, 3, 32, 32) for x in a)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_chunks_transform_several_batches_at_once_in_the_same_order(chunk: int) -> None:
    n, batch = 100, 16
    images, labels = numbered(n)
    calls: list[int] = []

    def transform(x: torch.Tensor, _generator: torch.Generator) -> torch.Tensor:
        calls.append(len(x))
        return x

    loader = DeviceResidentLoader(
        images, labels, batch_size=batch, seed=5, transform=transform, chunk_batches=chunk
    )
    got = list(loader.batches(1))
    assert [len(y) for _, y in got] == [16] * 6 + [4]  # batches do not depend on the chunk
    assert torch.equal(torch.cat([y for _, y in got]), shard_indices(n, 0, 1, seed=5, epoch=1))
    for x, y in got:
        assert torch.equal(x[:, 0, 0, 0], (y % 256).to(torch.uint8))
    sizes = [min(chunk * batch, n - i) for i in range(0, n, chunk * batch)]
    assert calls == sizes  # one transform per chunk


def test_drop_last_and_device_argument() -> None:
    images, labels = numbered(10)
    loader = DeviceResidentLoader(
        images, labels, batch_size=3, seed=0, world_size=4, drop_last=True, device="cpu"
    )
    assert loader.device == torch.device("cpu")
    assert loader.steps_per_epoch == 1  # 10 // 4 = 2 samples per rank, one batch
    assert [len(y) for _, y in loader.batches(0)] == [2]


def test_bad_arguments() -> None:
    images, labels = numbered(10)
    with pytest.raises(ValueError, match="batch_size"):
        DeviceResidentLoader(images, labels, batch_size=0, seed=0)
    with pytest.raises(ValueError, match="chunk_batches"):
        DeviceResidentLoader(images, labels, batch_size=2, seed=0, chunk_batches=0)
    with pytest.raises(ValueError, match="10 images but 9 labels"):
        DeviceResidentLoader(images, labels[:9], batch_size=2, seed=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_everything_stays_on_the_gpu() -> None:
    images = torch.randint(0, 256, (300, 3, 32, 32), dtype=torch.uint8)
    loader = DeviceResidentLoader(
        images, torch.randint(0, 10, (300,)), batch_size=64, seed=0, transform=CifarAugment(),
        device="cuda",
    )  # fmt: skip
    assert loader.images.is_cuda and loader.generator.device.type == "cuda"
    for x, y in loader.batches(0):
        assert x.is_cuda and y.is_cuda and x.is_contiguous()
    cpu = DeviceResidentLoader(images, torch.zeros(300, dtype=torch.long), batch_size=64, seed=0)
    assert torch.equal(loader.order(0).cpu().sort().values, cpu.order(0).sort().values)
