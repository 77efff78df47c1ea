"""The first conv layer's GroupNorm with statistics over the whole recording, so that chunks match it.

wav2vec 2.0 base-style encoders (``feat_extract_norm="group"``) normalise the
first convolution's output over time. Run on chunks, each chunk would get its
own statistics and the vectors would depend on where the cuts fall; these
helpers compute the statistics once over the whole recording (in bounded
pieces) and make the layer use them while the chunks run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from affectflow.core.vocabulary import SAMPLE_RATE


def group_norm_layer(model: Any) -> Any | None:
    """The first conv layer when it normalises over time (``feat_extract_norm="group"``), else None."""
    import torch

    fe = getattr(model, "feature_extractor", None)
    layers = getattr(fe, "conv_layers", None)
    if not layers:
        return None
    first = layers[0]
    return first if isinstance(getattr(first, "layer_norm", None), torch.nn.GroupNorm) else None


def group_norm_stats(audio: np.ndarray, layer0: Any, device: str) -> tuple[Any, Any]:
    """Per-channel mean and variance of the first conv layer's output over the whole recording.

    Computed in pieces of ~30 s that partition the conv output exactly, so
    memory stays bounded; these are the statistics ``GroupNorm`` would use on
    the unchunked recording.
    """
    import torch

    conv = layer0.conv
    k, s = int(conv.kernel_size[0]), int(conv.stride[0])
    step = max(1, (30 * SAMPLE_RATE) // s) * s
    s1 = torch.zeros(conv.out_channels, dtype=torch.float64, device=device)
    s2 = torch.zeros_like(s1)
    total = 0
    with torch.inference_mode():
        for a in range(0, len(audio), step):
            seg = audio[a : min(a + step + k - s, len(audio))]
            if len(seg) < k:
                break
            y = conv(torch.from_numpy(np.ascontiguousarray(seg))[None, None].to(device))[0].double()
            s1 += y.sum(dim=1)
            s2 += (y * y).sum(dim=1)
            total += y.shape[1]
    mean = s1 / total
    var = (s2 / total - mean * mean).clamp_min(0.0)
    return mean.float(), var.float()


@contextlib.contextmanager
def fixed_group_norm(layer0: Any | None, mean: Any, var: Any) -> Iterator[None]:
    """Within the block, ``layer0``'s GroupNorm uses the given whole-recording statistics."""
    if layer0 is None:
        yield
        return
    import torch

    gn = layer0.layer_norm

    class _FixedStatsNorm(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            scale = (gn.weight / torch.sqrt(var + gn.eps))[None, :, None]
            return (x - mean[None, :, None]) * scale + gn.bias[None, :, None]

    layer0.layer_norm = _FixedStatsNorm()
    try:
        yield
    finally:
        layer0.layer_norm = gn
