"""The locator's network: a small 3D U-Net (about 0.3 M parameters, 1.2 MB) for whole scans at 6 mm.

Four levels (``features`` channels, default 8-16-32-64), each a 3x3x3 convolution with batch
normalisation and leaky ReLU; strided convolutions down, transposed convolutions up, skip connections by
concatenation. Sized so that a whole-body scan (about 80 x 80 x 160 voxels at 6 mm) runs in about a second
on two CPU cores and a training step on two 48 x 48 x 80 crops takes about 1.5 s. Batch rather than
instance normalisation: the network is trained on crops and run on whole scans, and instance statistics of
a crop (mostly body) differ from those of a whole scan (mostly air); batch statistics, frozen at
inference, do not depend on what the input holds.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm3d(cout), nn.LeakyReLU(0.01, inplace=True))


class LocatorNet(nn.Module):
    """3D U-Net: (N, in_channels, I, J, K) -> (N, classes, I, J, K) logits; I, J, K multiples of 8."""

    def __init__(self, in_channels: int = 1, classes: int = 5, features: tuple[int, ...] = (8, 16, 32, 64)) -> None:
        super().__init__()
        f = tuple(features)
        self.stem = _block(in_channels, f[0])
        self.down = nn.ModuleList(nn.Sequential(_block(f[n], f[n + 1], stride=2), _block(f[n + 1], f[n + 1]))
                                  for n in range(len(f) - 1))
        self.up = nn.ModuleList(nn.ConvTranspose3d(f[n + 1], f[n], 2, stride=2) for n in reversed(range(len(f) - 1)))
        self.merge = nn.ModuleList(_block(2 * f[n], f[n]) for n in reversed(range(len(f) - 1)))
        self.head = nn.Conv3d(f[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            y = merge(torch.cat([up(y), skips.pop()], dim=1))
        return self.head(y)
