"""Square face crops cut where the frames are (the detector's GPU, or the CPU) with torch, by
:func:`~affectflow.faces.crops.crop_square`'s rule.

A GPU detector already holds the batch's frames on the card; cutting the crops
there leaves the host nothing but decoding (docs/cluster.md). The crop is the
same square (:func:`~affectflow.faces.crops.square_of`), black outside the
frame, resized as OpenCV resizes it: pixel-area averaging when shrinking
(``INTER_AREA``: two small matrix products in float64), bilinear with
OpenCV's 11-bit fixed-point weights and its vectorised integer arithmetic when
enlarging (``INTER_LINEAR``). What still differs (sums in float64 against
OpenCV's, rounding at exact halves) moves a pixel by at most one grey level,
rarely (:data:`TOLERANCE`, tested on real frames). Rotated crops
(``faces.align``) stay on the host.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from affectflow.faces.crops import square_of
from affectflow.faces.detection import FaceDetector
from affectflow.faces.errors import FaceStageError

#: the most a crop's pixel may differ from crop_square's (grey levels), and the share of pixels that may differ
TOLERANCE = (1, 1e-3)
#: OpenCV's fixed-point scale of bilinear weights for 8-bit images (INTER_RESIZE_COEF_BITS = 11)
_LINEAR_COEF_SCALE = 2048


@lru_cache(maxsize=512)
def area_weights(n: int, size: int) -> np.ndarray:
    """(size, n) weights of shrinking ``n`` pixels to ``size`` (n > size): each output pixel averages the input it
    covers, partial pixels by their covered part (OpenCV's ``INTER_AREA``)."""
    if not n > size >= 1:
        raise ValueError(f"area weights shrink: not {n} pixels to {size}")
    w = np.zeros((size, n))
    scale = n / size
    for i in range(size):
        lo, hi = i * scale, (i + 1) * scale
        for j in range(int(math.floor(lo)), min(n, int(math.ceil(hi)))):
            w[i, j] = (min(hi, j + 1) - max(lo, j)) / scale
    return w


def _fixed(x: float) -> int:
    """OpenCV's ``saturate_cast<short>(x * INTER_RESIZE_COEF_SCALE)``: to the nearest, halves to even."""
    return int(np.rint(np.float32(x) * np.float32(_LINEAR_COEF_SCALE)))


@lru_cache(maxsize=512)
def linear_taps(n: int, size: int, rows: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Enlarging ``n`` pixels to ``size`` (OpenCV's ``INTER_LINEAR`` for 8-bit images): for each output pixel
    the two input pixels and their 11-bit weights. Positions are OpenCV's float32 half-pixel ones; across
    columns one past an edge is clamped with its weight moved to the edge pixel, across rows the row index is
    clamped and the weights kept (as OpenCV does)."""
    lo, hi = np.zeros(size, np.int64), np.zeros(size, np.int64)
    w0, w1 = np.zeros(size, np.int64), np.zeros(size, np.int64)
    scale = n / size
    for i in range(size):
        f = np.float32((i + 0.5) * scale - 0.5)
        j = int(np.floor(f))
        f = float(f - np.float32(j))
        if rows:
            lo[i], hi[i] = min(max(j, 0), n - 1), min(max(j + 1, 0), n - 1)
        else:
            if j < 0:
                j, f = 0, 0.0
            if j >= n - 1:
                j, f = n - 1, 0.0
            lo[i], hi[i] = j, min(j + 1, n - 1)
        w0[i], w1[i] = _fixed(1.0 - f), _fixed(f)
    return lo, hi, w0, w1


def crop_squares(frames: Any, index: np.ndarray, boxes: np.ndarray, size: int, margin: float) -> Any:
    """The ``size`` x ``size`` crops (K, size, size, 3) uint8, on ``frames``' device, of boxes ``boxes`` (K, 4:
    x0, y0, x1, y1 in pixels) in frames ``frames[index]`` ((N, H, W, 3) uint8 tensor)."""
    import torch

    out = torch.zeros((len(boxes), size, size, frames.shape[-1]), dtype=torch.uint8, device=frames.device)
    if not len(boxes):
        return out
    h, w = int(frames.shape[1]), int(frames.shape[2])
    for k, (f, box) in enumerate(zip(index, boxes, strict=True)):
        left, top, n = square_of(box, margin)
        x0, y0, x1, y1 = max(0, left), max(0, top), min(w, left + n), min(h, top + n)
        patch = torch.zeros((n, n, frames.shape[-1]), dtype=torch.uint8, device=frames.device)
        if x1 > x0 and y1 > y0:
            patch[y0 - top:y1 - top, x0 - left:x1 - left] = frames[int(f), y0:y1, x0:x1]
        out[k] = _resized(patch, size)
    return out


_DEVICE_CACHE: dict[tuple[Any, ...], Any] = {}


def _on_device(key: tuple[str, int, int], device: Any) -> Any:
    """The weights or taps of ``key`` (kind, n, size) as tensors on ``device``, copied there once."""
    import torch

    full = (*key, str(device))
    if full not in _DEVICE_CACHE:
        kind, n, size = key
        if kind == "area":
            _DEVICE_CACHE[full] = torch.from_numpy(area_weights(n, size)).to(device)
        else:
            lo, hi, w0, w1 = linear_taps(n, size, rows=kind == "rows")
            _DEVICE_CACHE[full] = (torch.from_numpy(lo).to(device), torch.from_numpy(hi).to(device),
                                   torch.from_numpy(w0).to(device, torch.int32),
                                   torch.from_numpy(w1).to(device, torch.int32))
    return _DEVICE_CACHE[full]


def _resized(patch: Any, size: int) -> Any:
    """An (n, n, C) uint8 patch resized to (size, size, C) as ``cv2.resize`` resizes it for a crop."""
    import torch

    n = int(patch.shape[0])
    if n == size:
        return patch
    if n > size:  # float64: no TF32 or float32 rounding moves a pixel across a half
        m = _on_device(("area", n, size), patch.device)
        resized = torch.einsum("yi,ijc,xj->yxc", m, patch.double(), m)
        return torch.floor(resized + 0.5).clamp_(0, 255).to(torch.uint8)
    xl, xh, a0, a1 = _on_device(("columns", n, size), patch.device)
    yl, yh, b0, b1 = _on_device(("rows", n, size), patch.device)
    p = patch.to(torch.int32)  # every product below fits in 31 bits
    across = p[:, xl] * a0[None, :, None] + p[:, xh] * a1[None, :, None]  # (n, size, C), weights x 2048
    # OpenCV's vectorised vertical pass: each row's product shifted down before the sum
    top = (b0[:, None, None] * (across[yl] >> 4)) >> 16
    bottom = (b1[:, None, None] * (across[yh] >> 4)) >> 16
    return ((top + bottom + 2) >> 2).clamp_(0, 255).to(torch.uint8)


def crops_by_detector(detector: FaceDetector, size: int | None, margin: float = 0.0) -> None:
    """Have ``detector`` (or the detector it wraps) cut every face's ``size`` crop where its frames are
    (``faces.crop_on: detector``), or, with ``size`` None, no longer (a detector reused for a job that crops on
    the host); :class:`FaceStageError` when it cannot."""
    inner: Any = detector
    while not hasattr(inner, "crop_on_device") and hasattr(inner, "detector"):
        inner = inner.detector  # a WrappedDetector's
    if size is None:
        if hasattr(inner, "crops"):
            inner.crops = None
        return
    if not hasattr(inner, "crop_on_device"):
        raise FaceStageError(f"faces.crop_on: detector needs a detector that holds its frames on its device "
                             f"(retinaface_mnet025 with detector_engine torch), not {detector.name!r}")
    inner.crop_on_device(size, margin)
