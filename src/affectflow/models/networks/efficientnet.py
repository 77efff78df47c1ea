"""EfficientNet-B0/B2 as timm's ``tf_efficientnet_b*_ns`` defines it, in plain torch (no timm, no torchvision).

EmotiEffLib's EfficientNet models (``enet_b0_8_best_vgaf``, ``enet_b0_8_best_afew``,
``enet_b0_8_va_mtl``, ``enet_b2_8``) are these timm networks with the classifier replaced by
``nn.Sequential(nn.Linear(features, n))``. This module rebuilds them with the same module names (so
a timm state dict loads into it) for the torch engine and the random-weight stand-ins
(:mod:`affectflow.models.standins.face`): an :class:`EfficientNet` maps (N, 3, S, S) float32 images
to (N, n) outputs, its classifier's input being the 1280-d (B0) or 1408-d (B2) embedding. The
builders registered as ``efficientnet_b0`` / ``efficientnet_b2`` make them.

Details: docs/models.md, section "EfficientNet-B0/B2".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from affectflow.models.networks.channels import make_divisible
from affectflow.models.networks.registry import register_network

BN_EPS_TF = 1e-3
# (block type, repeats, kernel, stride, expansion, out channels) of EfficientNet-B0.
B0_STAGES: tuple[tuple[str, int, int, int, int, int], ...] = (
    ("ds", 1, 3, 1, 1, 16),
    ("ir", 2, 3, 2, 6, 24),
    ("ir", 2, 5, 2, 6, 40),
    ("ir", 3, 3, 2, 6, 80),
    ("ir", 3, 5, 1, 6, 112),
    ("ir", 4, 5, 2, 6, 192),
    ("ir", 1, 3, 1, 6, 320),
)
# variant -> (width multiplier, depth multiplier)
VARIANTS: dict[str, tuple[float, float]] = {"b0": (1.0, 1.0), "b2": (1.1, 1.2)}


def _same_pad(size: int, k: int, s: int) -> tuple[int, int]:
    total = max((math.ceil(size / s) - 1) * s + k - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """timm ``Conv2dSame``: TensorFlow 'same' padding computed from the input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel_size
        top, bottom = _same_pad(int(x.shape[-2]), kh, self.stride[0])
        left, right = _same_pad(int(x.shape[-1]), kw, self.stride[1])
        x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def conv(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, bias: bool = False) -> nn.Conv2d:
    if stride > 1:
        return Conv2dSame(cin, cout, k, stride=stride, padding=0, groups=groups, bias=bias)
    return nn.Conv2d(cin, cout, k, stride=1, padding=k // 2, groups=groups, bias=bias)


class BatchNormAct2d(nn.BatchNorm2d):
    """timm ``BatchNormAct2d``: BatchNorm (eps 1e-3) followed by SiLU or nothing."""

    def __init__(self, n: int, act: bool = True) -> None:
        super().__init__(n, eps=BN_EPS_TF)
        self.drop = nn.Identity()
        self.act: nn.Module = nn.SiLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(super().forward(x)))


class SqueezeExcite(nn.Module):
    def __init__(self, chs: int, rd: int) -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(chs, rd, 1, bias=True)
        self.act1 = nn.SiLU(inplace=True)
        self.conv_expand = nn.Conv2d(rd, chs, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.conv_expand(self.act1(self.conv_reduce(s))))


class DepthwiseSeparableConv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int) -> None:
        super().__init__()
        self.has_skip = stride == 1 and cin == cout
        self.conv_dw = conv(cin, cin, k, stride, groups=cin)
        self.bn1 = BatchNormAct2d(cin)
        self.se = SqueezeExcite(cin, max(1, round(cin * 0.25)))
        self.conv_pw = conv(cin, cout)
        self.bn2 = BatchNormAct2d(cout, act=False)
        self.drop_path = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_pw(self.se(self.bn1(self.conv_dw(x)))))
        return self.drop_path(y) + x if self.has_skip else y


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = make_divisible(cin * expand)
        self.has_skip = stride == 1 and cin == cout
        self.conv_pw = conv(cin, mid)
        self.bn1 = BatchNormAct2d(mid)
        self.conv_dw = conv(mid, mid, k, stride, groups=mid)
        self.bn2 = BatchNormAct2d(mid)
        self.se = SqueezeExcite(mid, max(1, round(cin * 0.25)))
        self.conv_pwl = conv(mid, cout)
        self.bn3 = BatchNormAct2d(cout, act=False)
        self.drop_path = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.se(self.bn2(self.conv_dw(self.bn1(self.conv_pw(x)))))
        y = self.bn3(self.conv_pwl(y))
        return self.drop_path(y) + x if self.has_skip else y


class EfficientNet(nn.Module):
    """timm ``EfficientNet`` (tf_ variant) with EmotiEffLib's ``classifier = Sequential(Linear)``.

    ``forward`` returns the logits; ``forward_features`` the pooled embedding
    (the classifier's input).
    """

    def __init__(self, variant: str = "b0", num_classes: int = 8) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown EfficientNet variant {variant!r}; known: {sorted(VARIANTS)}")
        width, depth = VARIANTS[variant]
        self.variant = variant
        stem = make_divisible(32 * width)
        self.conv_stem = conv(3, stem, 3, stride=2)
        self.bn1 = BatchNormAct2d(stem)
        stages, cin = [], stem
        for kind, repeats, k, stride, expand, cout in B0_STAGES:
            cout = make_divisible(cout * width)
            blocks: list[nn.Module] = []
            for i in range(math.ceil(repeats * depth)):
                s = stride if i == 0 else 1
                if kind == "ds":
                    blocks.append(DepthwiseSeparableConv(cin, cout, k, s))
                else:
                    blocks.append(InvertedResidual(cin, cout, k, s, expand))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.num_features = make_divisible(1280 * width)
        self.conv_head = conv(cin, self.num_features)
        self.bn2 = BatchNormAct2d(self.num_features)
        self.global_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.classifier = nn.Sequential(nn.Linear(self.num_features, num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.conv_stem(x))
        x = self.blocks(x)
        return self.global_pool(self.bn2(self.conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))


@register_network("efficientnet_b0")
def efficientnet_b0(num_outputs: int) -> EfficientNet:
    """EfficientNet-B0 (``tf_efficientnet_b0_ns``) with ``num_outputs`` classifier outputs: EmotiEffNet-B0."""
    return EfficientNet("b0", num_classes=num_outputs)


@register_network("efficientnet_b2")
def efficientnet_b2(num_outputs: int) -> EfficientNet:
    """EfficientNet-B2 (``tf_efficientnet_b2_ns``) with ``num_outputs`` classifier outputs: EmotiEffNet-B2."""
    return EfficientNet("b2", num_classes=num_outputs)
