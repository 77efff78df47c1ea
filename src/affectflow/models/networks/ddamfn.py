"""DDAMFN's network (DDAMNet: MixedFeatureNet + dual-direction attention) in plain torch, with upstream's names.

The paper uses DDAMFN (Zhang et al., 2023) and a multi-task version, MT-DDAMFN (8 expression
logits, then valence and arousal). The modules keep upstream's names and parameter order, so an
upstream state dict loads as is. :mod:`affectflow.models.runtimes.ddamfn` loads and runs the
files; the stand-ins (:mod:`affectflow.models.standins.face`) are built from the ``ddamnet``
builder registered here.

Details: docs/models.md, section "DDAMFN".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from affectflow.models.networks.registry import register_network

INPUT_SIZE = 112
EMBEDDING_DIM = 512
NUM_HEADS = 2


# ---------------------------------------------------------------- MixedFeatureNet (upstream module names)
class ConvBlock(nn.Module):
    def __init__(self, in_c: int, out_c: int, kernel=(1, 1), stride=(1, 1), padding=(0, 0), groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c)
        self.prelu = nn.PReLU(out_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn(self.conv(x)))


class LinearBlock(nn.Module):
    def __init__(self, in_c: int, out_c: int, kernel=(1, 1), stride=(1, 1), padding=(0, 0), groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), -1)


class HSwish(nn.Module):
    """x * relu6(x + 3) / 6 (upstream ``h_swish``; parameter-free)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (nn.functional.relu6(x + 3) / 6)


class _CoordAttention(nn.Module):
    """Coordinate attention's shared part: per-row and per-column gates from the two directional summaries.

    Subclasses call :meth:`_add_gate_layers` where upstream creates those
    layers, so parameters keep upstream's order in the state dict.
    """

    def _add_gate_layers(self, inp: int, oup: int, groups: int) -> None:
        mip = max(8, inp // groups)
        self.conv1 = nn.Conv2d(inp, mip, 1)
        self.bn1 = nn.BatchNorm2d(mip)
        self.conv2 = nn.Conv2d(mip, oup, 1)
        self.conv3 = nn.Conv2d(mip, oup, 1)
        self.relu = HSwish()

    def gates(self, x_h: torch.Tensor, x_w: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(row gate, column gate), each broadcast to (N, C, h, w); ``x_w`` comes transposed (N, C, w, 1)."""
        y = self.relu(self.bn1(self.conv1(torch.cat([x_h, x_w], dim=2))))
        x_h, x_w = torch.split(y, [h, w], dim=2)
        a_h = self.conv2(x_h).sigmoid().expand(-1, -1, h, w)
        a_w = self.conv3(x_w.permute(0, 1, 3, 2)).sigmoid().expand(-1, -1, h, w)
        return a_h, a_w


class PooledCoordAtt(_CoordAttention):
    """MixedFeatureNet's coordinate attention (average pooling along each axis)."""

    def __init__(self, inp: int, oup: int, groups: int = 32):
        super().__init__()
        self.pool_h = nn.AdaptiveAvgPool2d((None, 1))
        self.pool_w = nn.AdaptiveAvgPool2d((1, None))
        self._add_gate_layers(inp, oup, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        a_h, a_w = self.gates(self.pool_h(x), self.pool_w(x).permute(0, 1, 3, 2), h, w)
        return x * a_w * a_h


class MDConv(nn.Module):
    """Mixed depth-wise convolution. Upstream defines ``bn`` and ``prelu`` but never applies them: kept, unused."""

    def __init__(self, channels: int, kernel_sizes: Sequence[int], splits: Sequence[int], stride):
        super().__init__()
        self.splits = list(splits)
        self.mixed_depthwise_conv = nn.ModuleList(
            nn.Conv2d(c, c, k, stride=stride, padding=k // 2, groups=c, bias=False)
            for k, c in zip(kernel_sizes, splits, strict=True))
        self.bn = nn.BatchNorm2d(channels)
        self.prelu = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.splits) == 1:
            return self.mixed_depthwise_conv[0](x)
        parts = torch.split(x, self.splits, dim=1)
        return torch.cat([conv(t) for conv, t in zip(self.mixed_depthwise_conv, parts, strict=True)], dim=1)


class DepthWise(nn.Module):
    def __init__(self, c: int, groups: int, residual: bool = True):
        super().__init__()
        self.conv = ConvBlock(c, groups)
        self.conv_dw = ConvBlock(groups, groups, (3, 3), (1, 1), (1, 1), groups=groups)
        self.project = LinearBlock(groups, c)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.conv_dw(self.conv(x)))
        return x + y if self.residual else y


class MixDepthWise(nn.Module):
    def __init__(self, in_c: int, out_c: int, stride, groups: int, kernel_sizes: Sequence[int],
                 splits: Sequence[int], residual: bool = False):
        super().__init__()
        self.conv = ConvBlock(in_c, groups)
        self.conv_dw = MDConv(groups, kernel_sizes, splits, stride)
        self.CA = PooledCoordAtt(groups, groups)
        self.project = LinearBlock(groups, out_c)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.CA(self.conv_dw(self.conv(x))))
        return x + y if self.residual else y


class MixResidual(nn.Module):
    def __init__(self, c: int, num_block: int, groups: int, kernel_sizes: Sequence[int], splits: Sequence[int]):
        super().__init__()
        self.model = nn.Sequential(*(MixDepthWise(c, c, (1, 1), groups, kernel_sizes, splits, residual=True)
                                     for _ in range(num_block)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MixedFeatureNet(nn.Module):
    """The backbone up to ``conv_6_sep`` (512x7x7 for a 112 px input): the part DDAMNet keeps."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvBlock(3, 64, (3, 3), (2, 2), (1, 1))
        self.conv2_dw = ConvBlock(64, 64, (3, 3), (1, 1), (1, 1), groups=64)
        self.conv_23 = MixDepthWise(64, 64, (2, 2), 128, [3, 5, 7], [64, 32, 32])
        self.conv_3 = MixResidual(64, 9, 128, [3, 5], [96, 32])
        self.conv_34 = MixDepthWise(64, 128, (2, 2), 256, [3, 5, 7], [128, 64, 64])
        self.conv_4 = MixResidual(128, 16, 256, [3, 5], [192, 64])
        self.conv_45 = MixDepthWise(128, 256, (2, 2), 1024, [3, 5, 7, 9], [256, 256, 256, 256])
        self.conv_5 = MixResidual(256, 6, 512, [3, 5, 7], [172, 170, 170])
        self.conv_6_sep = ConvBlock(256, 512)

    def stages(self) -> list[nn.Module]:
        return [self.conv1, self.conv2_dw, self.conv_23, self.conv_3, self.conv_34, self.conv_4, self.conv_45,
                self.conv_5, self.conv_6_sep]


# ---------------------------------------------------------------- DDAMNet
class LinearCoordAtt(_CoordAttention):
    """DDAM's attention head: coordinate attention with 1x7 / 7x1 depth-wise convolutions instead of pooling.
    Upstream also defines ``Linear`` (7x7) here and never uses it: kept, unused."""

    def __init__(self, inp: int = EMBEDDING_DIM, oup: int = EMBEDDING_DIM, groups: int = 32):
        super().__init__()
        self.Linear_h = LinearBlock(inp, inp, (1, 7), groups=inp)
        self.Linear_w = LinearBlock(inp, inp, (7, 1), groups=inp)
        self._add_gate_layers(inp, oup, groups)
        self.Linear = LinearBlock(oup, oup, (7, 7), groups=oup)
        self.flatten = Flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        a_h, a_w = self.gates(self.Linear_h(x), self.Linear_w(x).permute(0, 1, 3, 2), h, w)
        return a_w * a_h


class CoordAttHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.CoordAtt = LinearCoordAtt()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.CoordAtt(x)


class DDAMNet(nn.Module):
    """DDAMFN(++)'s network; ``num_class`` 8 (AffectNet-8) or 10 (MT-DDAMFN: 8 logits, valence, arousal).

    ``forward`` returns what upstream's does: (logits, feature map, [head attention maps]).
    Upstream defines ``bn`` (BatchNorm1d over the logits) and never applies it: kept, unused.
    """

    def __init__(self, num_class: int = 8, num_head: int = NUM_HEADS) -> None:
        super().__init__()
        self.features = nn.Sequential(*MixedFeatureNet().stages())
        self.num_head = num_head
        for i in range(num_head):
            setattr(self, f"cat_head{i}", CoordAttHead())
        self.Linear = LinearBlock(EMBEDDING_DIM, EMBEDDING_DIM, (7, 7), groups=EMBEDDING_DIM)
        self.flatten = Flatten()
        self.fc = nn.Linear(EMBEDDING_DIM, num_class)
        self.bn = nn.BatchNorm1d(num_class)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        feats = self.features(x)
        heads = [getattr(self, f"cat_head{i}")(feats) for i in range(self.num_head)]
        y = heads[0]
        for h in heads[1:]:
            y = torch.max(y, h)
        out = self.fc(self.flatten(self.Linear(feats * y)))
        return out, feats, heads


@register_network("ddamnet")
def ddamnet(num_outputs: int) -> DDAMNet:
    """DDAMNet with ``num_outputs`` outputs: 8 (DDAMFN++, AffectNet-8) or 10 (MT-DDAMFN)."""
    return DDAMNet(num_class=num_outputs)
