"""Whole-batch augmentation: shapes, dtypes, determinism, and that crops and flips happen."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mlbench_core.data.augment import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CifarAugment,
    normalize,
    random_crop,
    random_crop_flip,
    random_flip,
)


def batch(n: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_crop_keeps_shape_dtype_and_is_a_shifted_window() -> None:
    x = batch()
    out = random_crop(x, 4, gen(1))
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = F.pad(x, (4, 4, 4, 4))
    offsets = []
    for i in range(len(x)):  # the test may loop; the code under test does not
        matches = [
            (dy, dx)
            for dy in range(9)
            for dx in range(9)
            if torch.equal(out[i], padded[i, :, dy : dy + 32, dx : dx + 32])
        ]
        assert len(matches) == 1, f"image {i} is not one window of its padded image"
        offsets.append(matches[0])
    assert len(set(offsets)) > 10  # offsets vary per image
    assert any(o != (4, 4) for o in offsets)  # something really moved
    assert bool((out == 0).any())  # zero padding entered some images (inputs are >= 1)


def test_flip_mirrors_about_half_the_images() -> None:
    x = batch(200)
    out = random_flip(x, gen(2))
    flipped = [torch.equal(out[i], x[i].flip(2)) for i in range(len(x))]
    kept = [torch.equal(out[i], x[i]) for i in range(len(x))]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 60 < sum(flipped) < 140
    assert random_flip(x, gen(2), p=0.0).equal(x)
    assert random_flip(x, gen(2), p=1.0).equal(x.flip(3))


def test_same_generator_seed_same_result_different_seed_differs() -> None:
    x = batch()
    aug = CifarAugment()
    a, b, c = aug(x, gen(7)), aug(x, gen(7)), aug(x, gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == torch.float32


def test_normalize_per_channel() -> None:
    x = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    out = normalize(x, CIFAR10_MEAN, CIFAR10_STD)
    for c in range(3):
        expected = (1.0 - CIFAR10_MEAN[c]) / CIFAR10_STD[c]
        assert torch.allclose(out[:, c], torch.full((2, 4, 4), expected))
    floats = torch.ones(2, 3, 4, 4)
    assert torch.allclose(normalize(floats, (0.5,) * 3, (0.25,) * 3), torch.full_like(floats, 2.0))
    assert torch.equal(CifarAugment().eval(x), out)


def test_float_batches_are_augmented_too() -> None:
    x = batch().float()
    assert random_crop(x, 4, gen(3)).dtype == torch.float32
    assert torch.equal(random_crop(x, 4, gen(3)), random_crop(batch(), 4, gen(3)).float())


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: random_crop(torch.zeros(3, 32, 32), 4, gen(0)), "N x C x H x W"),
        (lambda: random_crop(batch(), -1, gen(0)), "padding"),
        (lambda: random_flip(batch(), gen(0), p=2.0), "p must be"),
        (lambda: normalize(batch(), (0.5, 0.5), (0.2, 0.2)), "2 means"),
        (lambda: normalize(batch(), (0.5,) * 3, (0.0,) * 3), "std must be positive"),
    ],
)
def test_bad_arguments(call: object, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        call()  # type: ignore[operator]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_the_gpu_with_a_gpu_generator() -> None:
    x = batch().cuda()
    out = CifarAugment()(x, torch.Generator(device="cuda").manual_seed(0))
    assert out.device.type == "cuda" and out.shape == x.shape
    with pytest.raises(ValueError, match="generator is on"):
        random_crop(x, 4, gen(0))


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_fused_crop_flip_equals_crop_then_flip(p: float) -> None:
    x = batch(100)
    fused = random_crop_flip(x, 4, gen(5), p=p)
    g = gen(5)
    assert torch.equal(fused.contiguous(), random_flip(random_crop(x, 4, g), g, p=p))
    assert fused.dtype == torch.uint8 and fused.shape == x.shape
    assert torch.equal(random_crop_flip(x, 0, gen(5), p=p), random_flip(x, gen(5), p=p))


def test_cifar_augment_is_crop_flip_normalize() -> None:
    x = batch(50)
    g = gen(9)
    expected = normalize(random_flip(random_crop(x, 4, g), g), CIFAR10_MEAN, CIFAR10_STD)
    out = CifarAugment()(x, gen(9))
    assert out.is_contiguous() and out.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    g = gen(9)
    no_flip = normalize(random_crop(x, 4, g), CIFAR10_MEAN, CIFAR10_STD)
    torch.testing.assert_close(CifarAugment(flip=False)(x, gen(9)), no_flip, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="positive std"):
        CifarAugment(std=(0.1, 0.0, 0.1))
