"""MobileFaceNet as EmotiEffLib's ``mbf_va_mtl`` uses it, in plain torch.

Architecture of emotiefflib 1.1.1 ``emotiefflib/backbones/mobilefacenet.py``
(adapted there from cavaface.pytorch), with the same module names so that its
state dict keys match: ``MobileFaceNet(fp16=False, num_features=512,
blocks=(1, 4, 6, 2), scale=2)``. The released ``mbf_va_mtl.pt`` is
``nn.Sequential(features=MobileFaceNet(...), fc=nn.Linear(512, 10))`` (its
printout in EmotiEffLib ``training_and_examples/ABAW/ABAW8/bah.ipynb``): 112x112
RGB input normalised with mean = std = 0.5, a 512-d embedding (GDC: 7x7
depthwise conv, flatten, linear without bias, BatchNorm1d), then 8 expression
logits followed by valence and arousal.

Upstream wraps the backbone's forward in ``torch.cuda.amp.autocast(fp16)``;
with ``fp16=False`` that is a no-op, so it is left out here.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from affectflow.models.networks.registry import register_network

EMBEDDING_DIM = 512
N_OUTPUTS = 10  # 8 AffectNet expressions + valence + arousal


class Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), -1)


class ConvBlock(nn.Module):
    def __init__(self, in_c: int, out_c: int, kernel=(1, 1), stride=(1, 1), padding=(0, 0), groups: int = 1):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_c, out_c, kernel, groups=groups, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(out_c),
            nn.PReLU(out_c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class LinearBlock(nn.Module):
    def __init__(self, in_c: int, out_c: int, kernel=(1, 1), stride=(1, 1), padding=(0, 0), groups: int = 1):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DepthWise(nn.Module):
    def __init__(self, in_c: int, out_c: int, residual: bool = False, kernel=(3, 3), stride=(2, 2),
                 padding=(1, 1), groups: int = 1):
        super().__init__()
        self.residual = residual
        self.layers = nn.Sequential(
            ConvBlock(in_c, out_c=groups, kernel=(1, 1), padding=(0, 0), stride=(1, 1)),
            ConvBlock(groups, groups, groups=groups, kernel=kernel, padding=padding, stride=stride),
            LinearBlock(groups, out_c, kernel=(1, 1), padding=(0, 0), stride=(1, 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x) if self.residual else self.layers(x)


class Residual(nn.Module):
    def __init__(self, c: int, num_block: int, groups: int, kernel=(3, 3), stride=(1, 1), padding=(1, 1)):
        super().__init__()
        self.layers = nn.Sequential(*(DepthWise(c, c, True, kernel, stride, padding, groups)
                                      for _ in range(num_block)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class GDC(nn.Module):
    def __init__(self, embedding_size: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            LinearBlock(512, 512, groups=512, kernel=(7, 7), stride=(1, 1), padding=(0, 0)),
            Flatten(),
            nn.Linear(512, embedding_size, bias=False),
            nn.BatchNorm1d(embedding_size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MobileFaceNet(nn.Module):
    def __init__(self, fp16: bool = False, num_features: int = EMBEDDING_DIM, blocks=(1, 4, 6, 2), scale: int = 2):
        super().__init__()
        self.scale = scale
        self.fp16 = fp16
        c1, c2 = 64 * scale, 128 * scale
        self.layers = nn.ModuleList([ConvBlock(3, c1, kernel=(3, 3), stride=(2, 2), padding=(1, 1))])
        if blocks[0] == 1:
            self.layers.append(ConvBlock(c1, c1, kernel=(3, 3), stride=(1, 1), padding=(1, 1), groups=64))
        else:
            self.layers.append(Residual(c1, num_block=blocks[0], groups=128))
        self.layers.extend([
            DepthWise(c1, c1, kernel=(3, 3), stride=(2, 2), padding=(1, 1), groups=128),
            Residual(c1, num_block=blocks[1], groups=128),
            DepthWise(c1, c2, kernel=(3, 3), stride=(2, 2), padding=(1, 1), groups=256),
            Residual(c2, num_block=blocks[2], groups=256),
            DepthWise(c2, c2, kernel=(3, 3), stride=(2, 2), padding=(1, 1), groups=512),
            Residual(c2, num_block=blocks[3], groups=256),
        ])
        self.conv_sep = ConvBlock(c2, 512, kernel=(1, 1), stride=(1, 1), padding=(0, 0))
        self.features = GDC(num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.features(self.conv_sep(x))


@register_network("mobilefacenet")
def mbf_va_mtl(num_outputs: int = N_OUTPUTS) -> nn.Sequential:
    """The module tree of EmotiEffLib's ``mbf_va_mtl.pt``: backbone ``features``, classifier ``fc``."""
    return nn.Sequential(OrderedDict(features=MobileFaceNet(), fc=nn.Linear(EMBEDDING_DIM, num_outputs)))
