"""ResNet-20 for CIFAR (He et al., 2016, section 4.2).

Three stages of three basic blocks each (6n+2 layers with n = 3) on 16, 32 and 64 channels,
global average pooling and a linear classifier: 269,722 parameters for 10 classes.

Shortcuts are **option A** of the paper: identity, and where a stage halves the resolution and
doubles the channels, the input is subsampled with stride 2 and zero-padded to the new width.
Option A adds no parameters, which is what gives the paper's 0.27M count. ``shortcut="B"``
selects a strided 1x1 convolution plus batch norm instead (what mlbench-core's ResNetCIFAR
used), 272,474 parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a parameter-free (option A) shortcut."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, shortcut: str = "A"
    ) -> None:
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.stride = stride
        self.pad = out_channels - in_channels
        self.projection: nn.Module | None = None
        if shortcut == "B" and (stride != 1 or self.pad):
            self.projection = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.projection is not None:
            return self.projection(x)
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            # Zero channels split evenly before and after, as in the paper's option A.
            x = F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCIFAR(nn.Module):
    """ResNet-(6n+2) for 32x32 images; ``blocks_per_stage=3`` is ResNet-20."""

    def __init__(
        self,
        num_classes: int = 10,
        blocks_per_stage: int = 3,
        width: int = 16,
        shortcut: str = "A",
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        layers: list[nn.Module] = []
        channels = width
        for stage in range(3):
            out_channels = width * 2**stage
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(channels, out_channels, stride, shortcut))
                channels = out_channels
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # He initialisation for the ReLU network, as in the paper (its reference [13]).
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.conv(x)))
        out = self.blocks(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


def resnet20(num_classes: int = 10, shortcut: str = "A") -> ResNetCIFAR:
    return ResNetCIFAR(num_classes=num_classes, blocks_per_stage=3, shortcut=shortcut)
