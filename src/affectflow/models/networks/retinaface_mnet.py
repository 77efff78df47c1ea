"""RetinaFace with a MobileNetV1-0.25 backbone, in plain torch, as yakhyo/retinaface-pytorch defines it.

uniface's ``retinaface_mv1_0.25.onnx`` (registry ``retinaface_mnet025``) is this network exported by
yakhyo/retinaface-pytorch ``scripts/onnx_export.py``: input ``"input"`` (N, 3, H, W) float32 BGR minus
(104, 117, 123); outputs ``"loc"`` (N, A, 4), ``"conf"`` (N, A, 2) after a softmax (the model is in eval
mode when exported) and ``"landmarks"`` (N, A, 10); opset 16; with ``--dynamic`` the batch, height and
width axes are dynamic. Anchors A = 2 per cell of the stride 8, 16 and 32 maps, in (stride, row, column,
anchor) order; :func:`prior_boxes` gives them.

The modules carry upstream's names (``models/common.py``, ``models/backbones/mobilenetv1.py``,
``models/retinaface.py``; torchvision's ``IntermediateLayerGetter`` becomes :class:`StageFeatures`), so
an upstream state dict loads as is. Nothing here is ever unpickled: :func:`from_onnx` fills the module
from the initialisers of an (already verified) ONNX file, the very file onnxruntime runs.

Details: docs/models.md, section "Face detectors".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from affectflow.models.networks.channels import make_divisible

# yakhyo/retinaface-pytorch config.py cfg_mnet_025
MIN_SIZES: tuple[tuple[int, int], ...] = ((16, 32), (64, 128), (256, 512))
STEPS: tuple[int, ...] = (8, 16, 32)
VARIANCE: tuple[float, float] = (0.1, 0.2)
IN_CHANNEL, OUT_CHANNEL = 32, 64
NUM_ANCHORS = 2
# uniface RetinaFace.preprocess: BGR pixels minus this mean, no scaling
MEAN_BGR: tuple[float, float, float] = (104.0, 117.0, 123.0)
# scripts/onnx_export.py
OPSET = 16
INPUT_NAME = "input"
OUTPUT_NAMES: tuple[str, str, str] = ("loc", "conf", "landmarks")
DYNAMIC_AXES: dict[str, dict[int, str]] = {
    "input": {0: "batch_size", 2: "height", 3: "width"},
    "loc": {0: "batch_size"},
    "conf": {0: "batch_size"},
    "landmarks": {0: "batch_size"},
}


# ---------------------------------------------------------------- building blocks (models/common.py)
class Conv2dNormActivation(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> LeakyReLU; upstream's default slope is LeakyReLU's own 0.01."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, activation: bool = True, negative_slope: float | None = None) -> None:
        padding = (kernel_size - 1) // 2
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if activation:
            layers.append(nn.LeakyReLU(0.01 if negative_slope is None else negative_slope, inplace=True))
        super().__init__(*layers)


class DepthWiseSeparableConv2d(nn.Sequential):
    """Depthwise 3x3 then pointwise 1x1, each with BatchNorm and LeakyReLU(0.1)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(
            Conv2dNormActivation(in_channels, in_channels, 3, stride, groups=in_channels, negative_slope=0.1),
            Conv2dNormActivation(in_channels, out_channels, 1, negative_slope=0.1),
        )


class SSH(nn.Module):
    """Single Stage Headless context module: 3x3, 5x5 and 7x7 receptive fields, concatenated."""

    def __init__(self, in_channel: int, out_channels: int) -> None:
        super().__init__()
        if out_channels % 4:
            raise ValueError("SSH output channels must be divisible by 4")
        leaky = 0.1 if out_channels <= 64 else 0.0
        q = out_channels // 4
        self.conv3X3 = Conv2dNormActivation(in_channel, out_channels // 2, 3, activation=False)
        self.conv5X5_1 = Conv2dNormActivation(in_channel, q, 3, negative_slope=leaky)
        self.conv5X5_2 = Conv2dNormActivation(q, q, 3, activation=False)
        self.conv7X7_2 = Conv2dNormActivation(q, q, 3, negative_slope=leaky)
        self.conv7x7_3 = Conv2dNormActivation(q, q, 3, activation=False)

    def forward(self, x: Tensor) -> Tensor:
        conv3x3 = self.conv3X3(x)
        conv5x5 = self.conv5X5_2(self.conv5X5_1(x))
        # upstream runs conv5X5_1 a second time here (same result); kept so the traced graph is upstream's
        conv7x7 = self.conv7x7_3(self.conv7X7_2(self.conv5X5_1(x)))
        return F.relu(torch.cat([conv3x3, conv5x5, conv7x7], dim=1))


class FPN(nn.Module):
    """Feature pyramid: 1x1 laterals, top-down nearest upsampling and 3x3 merges."""

    def __init__(self, in_channels_list: Sequence[int], out_channels: int) -> None:
        super().__init__()
        leaky = 0.1 if out_channels <= 64 else 0.0
        self.output1 = Conv2dNormActivation(in_channels_list[0], out_channels, 1, negative_slope=leaky)
        self.output2 = Conv2dNormActivation(in_channels_list[1], out_channels, 1, negative_slope=leaky)
        self.output3 = Conv2dNormActivation(in_channels_list[2], out_channels, 1, negative_slope=leaky)
        self.merge1 = Conv2dNormActivation(out_channels, out_channels, 3, negative_slope=leaky)
        self.merge2 = Conv2dNormActivation(out_channels, out_channels, 3, negative_slope=leaky)

    def forward(self, inputs: Sequence[Tensor]) -> list[Tensor]:
        output1 = self.output1(inputs[0])
        output2 = self.output2(inputs[1])
        output3 = self.output3(inputs[2])
        output2 = self.merge2(output2 + F.interpolate(output3, size=output2.shape[2:], mode="nearest"))
        output1 = self.merge1(output1 + F.interpolate(output2, size=output1.shape[2:], mode="nearest"))
        return [output1, output2, output3]


# ---------------------------------------------------------------- backbone (models/backbones/mobilenetv1.py)
class StageFeatures(nn.Module):
    """MobileNetV1's three stages (strides 8, 16, 32) as torchvision's ``IntermediateLayerGetter`` keeps them.

    The getter drops the classifier (``avgpool``, ``fc``), so RetinaFace's state dict holds only
    ``fx.stage1``, ``fx.stage2`` and ``fx.stage3``.
    """

    def __init__(self, width_mult: float = 0.25) -> None:
        super().__init__()
        f = [make_divisible(c * width_mult) for c in (32, 64, 128, 256, 512, 1024)]
        dw = DepthWiseSeparableConv2d
        self.stage1 = nn.Sequential(
            Conv2dNormActivation(3, f[0], 3, 2, negative_slope=0.1),
            dw(f[0], f[1], 1), dw(f[1], f[2], 2), dw(f[2], f[2], 1), dw(f[2], f[3], 2), dw(f[3], f[3], 1),
        )
        self.stage2 = nn.Sequential(dw(f[3], f[4], 2), *(dw(f[4], f[4], 1) for _ in range(5)))
        self.stage3 = nn.Sequential(dw(f[4], f[5], 2), dw(f[5], f[5], 1))

    def forward(self, x: Tensor) -> list[Tensor]:
        c1 = self.stage1(x)
        c2 = self.stage2(c1)
        return [c1, c2, self.stage3(c2)]


# ---------------------------------------------------------------- heads and network (models/retinaface.py)
class _Head(nn.Module):
    """One 1x1 conv per pyramid level; outputs (N, H*W*A, width) concatenated over the levels."""

    attr = ""
    width = 0

    def __init__(self, in_channels: int = 64, num_anchors: int = NUM_ANCHORS, fpn_num: int = 3) -> None:
        super().__init__()
        convs = nn.ModuleList(nn.Conv2d(in_channels, num_anchors * self.width, kernel_size=(1, 1))
                              for _ in range(fpn_num))
        setattr(self, self.attr, convs)

    def forward(self, x: Sequence[Tensor]) -> Tensor:
        convs: nn.ModuleList = getattr(self, self.attr)
        outs = [conv(f).permute(0, 2, 3, 1).contiguous() for f, conv in zip(x, convs, strict=True)]
        return torch.cat([o.view(o.shape[0], -1, self.width) for o in outs], dim=1)


class ClassHead(_Head):
    attr, width = "class_head", 2


class BboxHead(_Head):
    attr, width = "bbox_head", 4


class LandmarkHead(_Head):
    attr, width = "landmark_head", 10


class RetinaFace(nn.Module):
    """RetinaFace MobileNet-0.25: ``forward`` returns (loc, conf, landmarks); conf is softmaxed in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.fx = StageFeatures(0.25)
        self.fpn = FPN([IN_CHANNEL * 2, IN_CHANNEL * 4, IN_CHANNEL * 8], OUT_CHANNEL)
        self.ssh1 = SSH(OUT_CHANNEL, OUT_CHANNEL)
        self.ssh2 = SSH(OUT_CHANNEL, OUT_CHANNEL)
        self.ssh3 = SSH(OUT_CHANNEL, OUT_CHANNEL)
        self.class_head = ClassHead(OUT_CHANNEL)
        self.bbox_head = BboxHead(OUT_CHANNEL)
        self.landmark_head = LandmarkHead(OUT_CHANNEL)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        fpn = self.fpn(self.fx(x))
        features = [self.ssh1(fpn[0]), self.ssh2(fpn[1]), self.ssh3(fpn[2])]
        classifications = self.class_head(features)
        loc = self.bbox_head(features)
        landmarks = self.landmark_head(features)
        conf = classifications if self.training else F.softmax(classifications, dim=-1)
        return loc, conf, landmarks


# ---------------------------------------------------------------- priors (layers/functions/prior_box.py)
def feature_map_sizes(height: int, width: int) -> list[tuple[int, int]]:
    """(rows, columns) of the stride 8, 16, 32 maps: every stride-2 conv gives ceil(size / 2)."""
    return [(math.ceil(height / s), math.ceil(width / s)) for s in STEPS]


def num_priors(height: int, width: int) -> int:
    return sum(h * w * NUM_ANCHORS for h, w in feature_map_sizes(height, width))


def prior_boxes(height: int, width: int) -> np.ndarray:
    """(A, 4) anchors cx, cy, w, h in input pixels, in the order of the outputs (float64).

    Upstream's ``PriorBox`` gives the same anchors divided by the input size; decoding in pixels
    skips a divide-and-multiply round trip.
    """
    out = []
    for (rows, cols), step, sizes in zip(feature_map_sizes(height, width), STEPS, MIN_SIZES, strict=True):
        cy, cx = np.meshgrid((np.arange(rows) + 0.5) * step, (np.arange(cols) + 0.5) * step, indexing="ij")
        s = np.asarray(sizes, np.float64)
        grid = np.broadcast_arrays(cx[..., None], cy[..., None], s, s)  # each (rows, cols, anchors)
        out.append(np.stack(grid, axis=-1).reshape(-1, 4))
    return np.concatenate(out)


def prior_boxes_torch(height: int, width: int, device: Any = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
    """:func:`prior_boxes` built on ``device``."""
    out = []
    for (rows, cols), step, sizes in zip(feature_map_sizes(height, width), STEPS, MIN_SIZES, strict=True):
        ys = (torch.arange(rows, device=device, dtype=torch.float64) + 0.5) * step
        xs = (torch.arange(cols, device=device, dtype=torch.float64) + 0.5) * step
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")
        s = torch.tensor(sizes, device=device, dtype=torch.float64).expand(rows, cols, len(sizes))
        grid = [cx[..., None].expand_as(s), cy[..., None].expand_as(s), s, s]
        out.append(torch.stack(grid, dim=-1).reshape(-1, 4))
    return torch.cat(out).to(dtype)


# ---------------------------------------------------------------- weights from an ONNX export
def from_onnx(model: Any, *, what: str = "RetinaFace MobileNet-0.25") -> RetinaFace:
    """A :class:`RetinaFace` (eval mode, float32, CPU) holding the weights of its ONNX export ``model``
    (:func:`affectflow.models.catalogue.onnx_weights.load_onnx_weights`; SSH's ``conv5X5_1`` runs twice per forward
    pass, and the export may hold that call once or twice)."""
    from affectflow.models.catalogue.onnx_weights import load_onnx_weights

    return load_onnx_weights(RetinaFace(), model, torch.zeros(1, 3, 64, 64), what=what)
