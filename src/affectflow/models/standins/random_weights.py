"""Random weights for a stand-in network: initialisations like trained networks' starting points, never like
their results.

timm's EfficientNet initialisation for convolutions, torch's default for linear layers (so logits
stay O(1)), random BatchNorm (and, where the exporter would otherwise merge identical tensors,
GroupNorm) scale and shift; residual branches started small where a deep stack of them would
otherwise make the network chaotic. Run inside a seeded block
(:mod:`affectflow.models.standins.seeding`): the draws are the weights.

Details: docs/models.md, section "Face stand-ins".
"""

from __future__ import annotations

import zlib
from typing import Any


def randomise(model: Any) -> None:
    """timm's ``_init_weight_goog`` for convs, torch's ``U(+-1/sqrt(fan_in))`` for linears, random BN affine, PReLU."""
    import math

    import torch
    from torch import nn

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                m.weight.normal_(0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    m.bias.normal_(0, 0.1)
            elif isinstance(m, nn.Linear):
                r = 1.0 / math.sqrt(m.weight.shape[1])
                m.weight.uniform_(-r, r)
                if m.bias is not None:
                    m.bias.uniform_(-r, r)
            elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
            elif isinstance(m, nn.PReLU):
                m.weight.uniform_(0.15, 0.35)


def damp_residual_branches(model: Any) -> None:
    """Residual branches start small (their last BatchNorm's scale in [0.05, 0.15]), as trained deep residual
    networks have them. DDAMNet stacks 31 residual blocks: at full scale, random branches make the network
    chaotic, so float rounding (which differs with batch size) grows to the size of the outputs."""
    import torch

    with torch.no_grad():
        for m in model.modules():
            if getattr(m, "residual", False) and hasattr(m, "project"):
                m.project.bn.weight.uniform_(0.05, 0.15)
                m.project.bn.bias.normal_(0, 0.02)


def randomise_groupnorm(model: Any) -> None:
    """Random GroupNorm scale/shift (as for BatchNorm): trained ones are all different, and the ONNX exporter
    stores identical tensors once, so untouched ones (all 1, all 0) would give a file with fewer weights."""
    import torch
    from torch import nn

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.GroupNorm) and m.affine:
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)


def model_seed(name: str, seed: int) -> int:
    """Different models get different weights for the same ``seed`` (B0 VGAF and AFEW share an architecture)."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63)
