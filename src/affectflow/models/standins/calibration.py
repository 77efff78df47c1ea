"""BatchNorm statistics for a random-weight stand-in, calibrated on seeded random pictures.

Random filters give activations of arbitrary scale; a trained network's BatchNorms hold the
statistics of real inputs. :func:`calibrate_batchnorm` sets each BatchNorm's running mean and
variance to those of its input on a set of pictures (one float64 pass, so the stored float32 values
do not depend on thread count or summation order): :func:`smooth_images` (a natural-image-like 1/f
spectrum) and, where the network needs it, :func:`white_noise_images`. Run inside a seeded block:
the pictures are drawn from the RNG.

Details: docs/models.md, section "Face stand-ins".
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any


def smooth_images(size: int, mean: Sequence[float], std: Sequence[float], n: int = 4) -> Any:
    """``n`` seeded random RGB ``size`` x ``size`` images with a natural-image-like 1/f spectrum (octaves of
    upsampled noise), in [0, 1], normalised with ``mean`` and ``std`` like the model's input; float64."""
    import torch
    import torch.nn.functional as F

    s = size
    img = torch.zeros(n, 3, s, s, dtype=torch.float64)
    side, amp = 4, 1.0
    while side < 2 * s:
        octave = torch.rand(n, 3, min(side, s), min(side, s), dtype=torch.float64) - 0.5
        img += amp * F.interpolate(octave, size=(s, s), mode="bilinear", align_corners=False)
        side, amp = side * 2, amp / 2
    lo = img.amin(dim=(1, 2, 3), keepdim=True)
    hi = img.amax(dim=(1, 2, 3), keepdim=True)
    img = (img - lo) / (hi - lo)
    mean_t = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    return (img - mean_t) / std_t


def white_noise_images(size: int, mean: Sequence[float], std: Sequence[float], n: int) -> Any:
    """``n`` seeded uniform random RGB ``size`` x ``size`` pictures in [0, 1] (white noise, the most
    high-frequency content a crop can have), normalised with ``mean`` and ``std``; float64."""
    import torch

    img = torch.rand(n, 3, size, size, dtype=torch.float64)
    mean_t = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    return (img - mean_t) / std_t


def _grouped_conv2d_f64(x: Any, weight: Any, bias: Any, stride: Any, padding: Any, groups: int) -> Any:
    """A grouped convolution as a sum of shifted products (float64 grouped convs are very slow in ATen)."""
    import torch
    import torch.nn.functional as F

    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    x = F.pad(x, (pw, pw, ph, ph))
    n, c, h, w = x.shape
    o, gi, kh, kw = weight.shape
    go = o // groups
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    xg = x.view(n, groups, gi, h, w)
    wg = weight.view(groups, go, gi, kh, kw)
    y = torch.zeros(n, groups, go, ho, wo, dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            xs = xg[..., i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
            if gi == 1 and go == 1:
                y += wg[:, 0, 0, i, j].view(1, groups, 1, 1, 1) * xs
            else:
                y += torch.einsum("goc,ngchw->ngohw", wg[..., i, j], xs)
    y = y.view(n, o, ho, wo)
    return y if bias is None else y + bias.view(1, o, 1, 1)


@contextlib.contextmanager
def _fast_float64_grouped_convs() -> Iterator[None]:
    """For the block, ``F.conv2d`` runs float64 grouped convolutions as :func:`_grouped_conv2d_f64` (the
    calibration pass of depthwise networks would otherwise take minutes); other convolutions are untouched."""
    import torch.nn.functional as F

    original = F.conv2d

    def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: ANN001, ANN202
        dil = (dilation, dilation) if isinstance(dilation, int) else tuple(dilation)
        if groups > 1 and x.dtype.is_floating_point and x.element_size() == 8 and dil == (1, 1) \
                and not isinstance(padding, str):
            return _grouped_conv2d_f64(x, weight, bias, stride, padding, groups)
        return original(x, weight, bias, stride, padding, dilation, groups)

    F.conv2d = conv2d
    try:
        yield
    finally:
        F.conv2d = original


def calibrate_batchnorm(model: Any, x: Any) -> None:
    """Set every BatchNorm's running mean/var to the statistics of its input on ``x`` (one float64 pass).

    A pre-hook sets the statistics just before each BatchNorm runs, so later
    layers see already-calibrated earlier ones. float64 keeps the float32 values
    stored afterwards independent of thread count and summation order. BatchNorm1d
    (one value per image) gets the channel-pooled variance.
    """
    import torch
    from torch import nn

    def hook(mod: nn.Module, args: tuple[Any, ...]) -> None:
        (inp,) = args
        dims = [0] + list(range(2, inp.dim()))
        mod.running_mean.copy_(inp.mean(dims))
        var = inp.var(dims, unbiased=False)
        # BatchNorm1d sees one value per image: a few images give a poor per-channel variance, pool it.
        mod.running_var.copy_(var if inp.dim() > 2 else var.mean().expand_as(var))

    handles = [m.register_forward_pre_hook(hook) for m in model.modules()
               if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
    try:
        model.double().eval()
        with torch.no_grad(), _fast_float64_grouped_convs():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.float()
