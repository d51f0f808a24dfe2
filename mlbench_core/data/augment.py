"""Whole-batch image augmentation on any device: random crop with padding, flip, normalisation.

The reference CIFAR-10 pipeline (torchvision: RandomCrop(32, padding=4), RandomHorizontalFlip,
ToTensor, Normalize) runs per image in Python. Here each step is a handful of tensor operations
on the whole N x C x H x W batch where the data already lives (the GPU for CIFAR), with the
randomness drawn from an explicit ``torch.Generator`` so that a run is reproducible. The
generator must live on the batch's device (``torch.Generator(device=x.device)``).

Order matches the reference: crop and flip the uint8 images (zero padding = black pixels),
then scale to [0, 1] and normalise per channel. ``CifarAugment`` does the crop and the flip in
one gather and the normalisation in one multiply-add, with its constants kept on the device:
few kernel launches and no host-to-device copy per batch (``random_crop_flip``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

# Per-channel mean and standard deviation of the 50,000 CIFAR-10 training images in [0, 1].
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def _check(x: torch.Tensor, generator: torch.Generator) -> None:
    if x.dim() != 4:
        raise ValueError(f"expected an N x C x H x W batch, got shape {tuple(x.shape)}")
    if generator.device.type != x.device.type:
        raise ValueError(
            f"the generator is on {generator.device} but the batch on {x.device}; "
            "create it with torch.Generator(device=x.device)"
        )


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Each image zero-padded by ``padding`` on every side, then cropped back to H x W at a
    uniformly random offset (one offset per image), keeping dtype and device."""
    _check(x, generator)
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if padding == 0:
        return x
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    span = 2 * padding + 1
    dy = torch.randint(0, span, (n,), generator=generator, device=x.device)
    dx = torch.randint(0, span, (n,), generator=generator, device=x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)  # N x H source rows
    cols = dx[:, None] + torch.arange(w, device=x.device)  # N x W source columns
    batch = torch.arange(n, device=x.device)[:, None, None]
    # Advanced indexing on dims 0, 2, 3 around the channel slice gives N x H x W x C.
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def random_flip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Each image mirrored left-right with probability ``p``."""
    _check(x, generator)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def normalize(
    x: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """(x / 255 - mean) / std per channel for uint8 input; (x - mean) / std for float input."""
    if x.dim() != 4 or x.shape[1] != len(mean) or len(mean) != len(std):
        raise ValueError(
            f"{len(mean)} means and {len(std)} stds for a batch of shape {tuple(x.shape)}"
        )
    if any(s <= 0 for s in std):
        raise ValueError(f"std must be positive, got {tuple(std)}")
    m = torch.tensor(mean, dtype=dtype, device=x.device)[None, :, None, None]
    s = torch.tensor(std, dtype=dtype, device=x.device)[None, :, None, None]
    out = x.to(dtype)
    if x.dtype == torch.uint8:
        out = out / 255.0
    return (out - m) / s


def random_crop_flip(
    x: torch.Tensor, padding: int, generator: torch.Generator, p: float = 0.5
) -> torch.Tensor:
    """``random_flip(random_crop(x, padding, g), g, p)`` in one gather: the same random draws
    in the same order, so the same result, from a padded copy and one indexing kernel. The
    output is N x C x H x W laid out as N x H x W x C (a permuted view); ``.contiguous()``
    or a dtype conversion with ``memory_format`` restores the usual layout."""
    _check(x, generator)
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if padding == 0:
        return random_flip(x, generator, p)
    n, _, h, w = x.shape
    device = x.device
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    span = 2 * padding + 1
    dy = torch.randint(0, span, (n,), generator=generator, device=device)
    dx = torch.randint(0, span, (n,), generator=generator, device=device)
    flip = torch.rand(n, generator=generator, device=device) < p
    ahead = torch.arange(w, device=device)
    # A mirrored crop reads the window's columns right to left.
    cols = dx[:, None] + torch.where(flip[:, None], ahead.flip(0), ahead)  # N x W
    rows = dy[:, None] + torch.arange(h, device=device)  # N x H
    batch = torch.arange(n, device=device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # N x H x W x C
    return out.permute(0, 3, 1, 2)


class CifarAugment:
    """The CIFAR-10 training transform for whole batches: crop(pad 4), flip, normalise."""

    def __init__(
        self,
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
        padding: int = 4,
        flip: bool = True,
    ) -> None:
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"need one positive std per mean, got {tuple(mean)}, {tuple(std)}")
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.padding = padding
        self.flip = flip
        # Per device: mean, std, and the scale and shift of x * scale + shift (uint8 input).
        self._consts: dict[torch.device, tuple[torch.Tensor, ...]] = {}

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augmented float32 batch from a uint8 (or float) N x 3 x H x W batch."""
        if self.flip:
            out = random_crop_flip(x, self.padding, generator)
        else:
            out = random_crop(x, self.padding, generator)
        return self._normalize(out)

    def eval(self, x: torch.Tensor) -> torch.Tensor:
        """The evaluation transform: normalisation only (exactly ``normalize``)."""
        if x.dim() != 4 or x.shape[1] != len(self.mean):
            raise ValueError(f"{len(self.mean)} means for a batch of shape {tuple(x.shape)}")
        mean, std, _, _ = self._constants(x.device)
        out = x.to(torch.float32)
        if x.dtype == torch.uint8:
            out = out / 255.0
        return (out - mean) / std

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``normalize`` as one conversion (into the contiguous layout) and one multiply-add:
        equal to it up to float rounding."""
        if x.dtype != torch.uint8:
            return self.eval(x.contiguous())
        _, _, scale, shift = self._constants(x.device)
        out = x.to(torch.float32, memory_format=torch.contiguous_format)
        return torch.addcmul(shift, out, scale)

    def _constants(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        """Per-channel constants as 1 x C x 1 x 1 float32 tensors, copied to ``device`` once."""
        if device not in self._consts:
            mean = torch.tensor(self.mean, dtype=torch.float64)
            std = torch.tensor(self.std, dtype=torch.float64)
            values = (mean, std, 1.0 / (std * 255.0), -mean / std)
            self._consts[device] = tuple(
                v.to(torch.float32).reshape(1, -1, 1, 1).to(device) for v in values
            )
        return self._consts[device]
