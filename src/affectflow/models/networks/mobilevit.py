"""MobileViT-v2 (width 1.5) as timm's ``mobilevitv2_150`` defines it, in plain torch (no timm, no torchvision).

EmotiEffLib's ``mobilevit_va_mtl`` (MT-EmotiMobileViT) is a timm MobileViT whose classifier
``head.fc`` was replaced by a ``Linear(768, 10)`` (8 expression logits, valence, arousal); of
timm's MobileViTs only ``mobilevitv2_150`` has 768 features. timm cannot be installed here (it
imports torchvision, which has no CPU build for this torch), so this module rebuilds the network
with the same module names, so that a timm state dict loads into it, for the random-weight stand-in
of :mod:`affectflow.models.standins.face` and the torch engine. :func:`mobilevit_va_mtl` (registered as
``mobilevitv2_150``) gives (N, 3, 224, 224) -> (N, 10), the 768-d embedding being the input of ``head.fc``.

Details: docs/models.md, section "MobileViT-v2".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from affectflow.models.networks.channels import make_divisible
from affectflow.models.networks.registry import register_network

WIDTH = 1.5
EMBEDDING_DIM = 768
N_OUTPUTS = 10  # 8 AffectNet expressions + valence + arousal
PATCH = 2
# (out channels before the width multiplier, stride, inverted-residual depth, transformer depth or 0)
V2_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (64, 1, 1, 0),
    (128, 2, 2, 0),
    (256, 2, 1, 2),
    (384, 2, 1, 4),
    (512, 2, 1, 3),
)


class BatchNormAct2d(nn.BatchNorm2d):
    """timm ``BatchNormAct2d``: BatchNorm (eps 1e-5) followed by SiLU or nothing."""

    def __init__(self, n: int, act: bool = True) -> None:
        super().__init__(n)
        self.drop = nn.Identity()
        self.act: nn.Module = nn.SiLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(super().forward(x)))


class ConvNormAct(nn.Module):
    """timm ``ConvNormAct``: ``conv`` (no bias, padding ``(k - 1) // 2``), ``bn`` (BatchNormAct2d)."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=((stride - 1) + (k - 1)) // 2, groups=groups,
                              bias=False)
        self.bn = BatchNormAct2d(cout, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class InvertedResidual(nn.Module):
    """timm ByobNet ``BottleneckBlock(bottle_in=True, linear_out=True, group_size=1)`` with ``downsample=''``."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: float = 2.0) -> None:
        super().__init__()
        mid = make_divisible(cin * expansion)
        # ByobNet create_shortcut('' downsample): no shortcut when the shape changes, identity otherwise
        self.shortcut: nn.Module | None = nn.Identity() if stride == 1 and cin == cout else None
        self.conv1_1x1 = ConvNormAct(cin, mid, 1)
        self.conv2_kxk = ConvNormAct(mid, mid, 3, stride=stride, groups=mid)
        self.conv2b_kxk = nn.Identity()
        self.attn = nn.Identity()
        self.conv3_1x1 = ConvNormAct(mid, cout, 1, act=False)
        self.attn_last = nn.Identity()
        self.drop_path = nn.Identity()
        self.act = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3_1x1(self.attn(self.conv2b_kxk(self.conv2_kxk(self.conv1_1x1(x)))))
        y = self.drop_path(self.attn_last(y))
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        return self.act(y)


class GroupNorm1(nn.GroupNorm):
    """timm ``GroupNorm1``: GroupNorm with one group (eps 1e-5), over all of C, P and N."""

    def __init__(self, num_channels: int) -> None:
        super().__init__(1, num_channels)


class LinearSelfAttention(nn.Module):
    """Separable self-attention of MobileViT-v2 on ``[B, C, P, N]``: a softmax over the N patches of a single
    query channel weights the keys into one context vector per pixel position, which gates ``relu(value)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.embed_dim = dim
        self.qkv_proj = nn.Conv2d(dim, 1 + 2 * dim, 1, bias=True)
        self.attn_drop = nn.Dropout(0.0)
        self.out_proj = nn.Conv2d(dim, dim, 1, bias=True)
        self.out_drop = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        query, key, value = self.qkv_proj(x).split([1, self.embed_dim, self.embed_dim], dim=1)
        scores = self.attn_drop(F.softmax(query, dim=-1))
        context = (key * scores).sum(dim=-1, keepdim=True)
        out = F.relu(value) * context.expand_as(value)
        return self.out_drop(self.out_proj(out))


class ConvMlp(nn.Module):
    """timm ``ConvMlp``: 1x1 conv, SiLU, 1x1 conv (both with bias)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1, bias=True)
        self.norm = nn.Identity()
        self.act = nn.SiLU()
        self.drop = nn.Dropout(0.0)
        self.fc2 = nn.Conv2d(hidden, dim, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.norm(self.fc1(x)))))


class LinearTransformerBlock(nn.Module):
    """Pre-norm block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.norm1 = GroupNorm1(dim)
        self.attn = LinearSelfAttention(dim)
        self.drop_path1 = nn.Identity()
        self.norm2 = GroupNorm1(dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))
        self.drop_path2 = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class MobileVitV2Block(nn.Module):
    """timm ``MobileVitV2Block`` (``bottle_ratio=0.5``, depthwise ``conv_kxk``, 2x2 patches, no fusion)."""

    def __init__(self, chs: int, depth: int, bottle_ratio: float = 0.5, patch_size: int = PATCH) -> None:
        super().__init__()
        dim = make_divisible(bottle_ratio * chs)
        self.conv_kxk = ConvNormAct(chs, chs, 3, groups=chs)
        self.conv_1x1 = nn.Conv2d(chs, dim, 1, bias=False)
        self.transformer = nn.Sequential(*(LinearTransformerBlock(dim) for _ in range(depth)))
        self.norm = GroupNorm1(dim)
        self.conv_proj = ConvNormAct(dim, chs, 1, act=False)
        self.patch_size = (patch_size, patch_size)
        self.patch_area = patch_size * patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        ph, pw = self.patch_size
        new_h, new_w = math.ceil(H / ph) * ph, math.ceil(W / pw) * pw
        nh, nw = new_h // ph, new_w // pw
        n = nh * nw
        if new_h != H or new_w != W:
            x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=True)
        x = self.conv_1x1(self.conv_kxk(x))
        C = x.shape[1]
        # unfold: [B, C, H, W] -> [B, C, P, N]
        x = x.reshape(B, C, nh, ph, nw, pw).permute(0, 1, 3, 5, 2, 4).reshape(B, C, -1, n)
        x = self.norm(self.transformer(x))
        # fold: [B, C, P, N] -> [B, C, H, W]
        x = x.reshape(B, C, ph, pw, nh, nw).permute(0, 1, 4, 2, 5, 3).reshape(B, C, nh * ph, nw * pw)
        return self.conv_proj(x)


class SelectAdaptivePool2d(nn.Module):
    """timm ``SelectAdaptivePool2d(pool_type='avg', flatten=True)``."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flatten(self.pool(x))


class ClassifierHead(nn.Module):
    """timm ``ClassifierHead``: ``global_pool``, ``drop``, ``fc``, ``flatten`` (identity)."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.global_pool = SelectAdaptivePool2d()
        self.drop = nn.Dropout(0.0)
        self.fc = nn.Linear(in_features, num_classes)
        self.flatten = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flatten(self.fc(self.drop(self.global_pool(x))))


class MobileViTV2(nn.Module):
    """timm ``ByobNet`` with ``mobilevitv2_*``'s config: ``stem``, ``stages``, ``final_conv`` (identity), ``head``.

    ``forward`` returns the logits; ``forward_features`` the pooled embedding
    (``head.fc``'s input).
    """

    def __init__(self, width: float = WIDTH, num_classes: int = N_OUTPUTS) -> None:
        super().__init__()
        stem = int(32 * width)
        self.stem = ConvNormAct(3, stem, 3, stride=2)
        stages, cin = [], stem
        for chs, stride, depth, t_depth in V2_STAGES:
            cout = make_divisible(int(chs * width))
            blocks: list[nn.Module] = []
            for i in range(depth):
                blocks.append(InvertedResidual(cin, cout, stride if i == 0 else 1))
                cin = cout
            if t_depth:
                blocks.append(MobileVitV2Block(cout, t_depth))
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.num_features = cin
        self.final_conv = nn.Identity()
        self.head = ClassifierHead(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_conv(self.stages(self.stem(x)))
        return self.head.global_pool(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.final_conv(self.stages(self.stem(x))))


@register_network("mobilevitv2_150")
def mobilevit_va_mtl(num_outputs: int = N_OUTPUTS) -> MobileViTV2:
    """The module tree of EmotiEffLib's ``mobilevit_va_mtl``: timm ``mobilevitv2_150``, ``head.fc`` 768 -> 10."""
    return MobileViTV2(WIDTH, num_outputs)

