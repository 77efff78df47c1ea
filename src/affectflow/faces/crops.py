"""Face crops from a frame and a face box (a square around it, optionally rotated so the eyes are level, or the
box itself as EmotiEffLib cuts it), and how the faces shard stores them (:func:`crop_storage`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from affectflow.core.device import is_cuda, resolve_device
from affectflow.core.options import one_of

#: ``faces.crop_compression``: ``auto`` is :func:`crop_storage`'s choice
CROP_COMPRESSIONS = ("auto", "lzf", "none")
#: ``faces.crop_on``: where crops are cut: here (:func:`crop_square`) or by the detector where its frames are
#: (:mod:`affectflow.faces.device_crops`)
CROP_PLACES = ("host", "detector")
#: ``faces.crop_shape``: a square around the box (:func:`crop_square`), or the box itself stretched to a square
#: as EmotiEffLib's own code cuts faces (:func:`crop_box`)
CROP_SHAPES = ("square", "box")


def check_crop_settings(shape: str, place: str, align: bool, detector: str, detector_engine: str) -> None:
    """Refuse ``faces`` crop settings that cannot go together (``ValueError`` naming them)."""
    one_of("crop_shape", shape, CROP_SHAPES)
    one_of("crop_on", place, CROP_PLACES)
    if shape == "box" and align:
        raise ValueError("crop_shape 'box' cuts the detector's upright box as it is: not with align true")
    if place == "detector" and (align or detector == "organiser" or shape == "box"):
        raise ValueError("crop_on 'detector' cuts upright square crops of a detector's boxes: not with align true, "
                         "crop_shape box or the organiser's crops")
    if place == "detector" and (detector != "retinaface_mnet025" or detector_engine == "onnx"):
        raise ValueError(f"crop_on 'detector' needs retinaface_mnet025 with detector_engine torch (or auto on a "
                         f"GPU), not {detector!r} with {detector_engine!r}")


def crop_box(frame: np.ndarray, bbox: np.ndarray, size: int, margin: float = 0.0) -> np.ndarray:
    """The face as EmotiEffLib's own code cuts it: ``frame[y0:y1, x0:x1]`` of the box's corners truncated to
    whole pixels (``bbox.astype(int)``), resized to ``size`` x ``size`` with ``cv2.INTER_LINEAR``
    (``cv2.resize``'s default, which its preprocessing uses), so a face is stretched, not padded.

    Its models were trained on such crops; with ``size`` equal to a model's input (224 for the B0 models),
    the crop is exactly what that code feeds the network. ``margin`` grows the box by that share of its width
    and height on each side first; the box is clipped to the frame (numpy would wrap a negative corner).
    """
    x0, y0, x1, y1 = (float(v) for v in bbox)
    if not all(map(math.isfinite, (x0, y0, x1, y1))) or x1 <= x0 or y1 <= y0:
        raise ValueError(f"not a valid face box: {bbox!r}")
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    h, w = frame.shape[:2]
    left, top = max(0, int(x0 - dx)), max(0, int(y0 - dy))
    right, bottom = min(w, int(x1 + dx)), min(h, int(y1 + dy))
    if right <= left or bottom <= top:  # a box off the frame or under a pixel: nothing to show
        return np.zeros((size, size, *frame.shape[2:]), dtype=frame.dtype)
    return cv2.resize(frame[top:bottom, left:right], (size, size), interpolation=cv2.INTER_LINEAR)


def crop_square(frame: np.ndarray, bbox: np.ndarray, size: int, margin: float = 0.2,
                landmarks: np.ndarray | None = None, align: bool = False) -> np.ndarray:
    """A ``size`` x ``size`` crop around ``bbox`` (x0, y0, x1, y1 in pixels).

    The square has side ``max(w, h) * (1 + 2 * margin)`` (the box grows by
    ``margin`` of its size on each side) and is centred on the box; parts
    outside the frame are black. With ``align`` and finite eye keypoints
    (landmarks 0 and 1) the crop is rotated about the box centre so the eyes
    are level. Shrinking uses ``cv2.INTER_AREA``, enlarging ``cv2.INTER_LINEAR``.
    """
    left, top, n = square_of(bbox, margin)
    angle = eye_angle(landmarks) if align else None
    if angle is None:
        patch = _padded_slice(frame, left, top, n)
    else:
        x0, y0, x1, y1 = (float(v) for v in bbox)
        cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        # rotate by `angle` (counter-clockwise, degrees) about the box centre, then move it to the patch centre
        m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        m[0, 2] += n / 2.0 - cx
        m[1, 2] += n / 2.0 - cy
        patch = cv2.warpAffine(frame, m, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=(0, 0, 0))
    if n == size:
        return np.ascontiguousarray(patch)
    interp = cv2.INTER_AREA if n > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interp)


def square_of(bbox: np.ndarray, margin: float) -> tuple[int, int, int]:
    """The crop's square in frame pixels: left, top and side (see :func:`crop_square`); the one rule both the
    host's crops and the device's (:mod:`affectflow.faces.device_crops`) follow."""
    x0, y0, x1, y1 = (float(v) for v in bbox)
    if not all(map(math.isfinite, (x0, y0, x1, y1))) or x1 <= x0 or y1 <= y0:
        raise ValueError(f"not a valid face box: {bbox!r}")
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    n = max(1, int(round(max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin))))
    return int(round(cx - n / 2.0)), int(round(cy - n / 2.0)), n


def eye_angle(landmarks: np.ndarray | None) -> float | None:
    """Angle (degrees) of the line from eye 0 to eye 1; None when the eyes are unknown or coincide."""
    if landmarks is None or len(landmarks) < 2:
        return None
    (ax, ay), (bx, by) = (np.asarray(p, np.float64) for p in landmarks[:2])
    if not np.all(np.isfinite([ax, ay, bx, by])) or math.hypot(bx - ax, by - ay) < 1.0:
        return None
    return math.degrees(math.atan2(by - ay, bx - ax))


def _padded_slice(frame: np.ndarray, left: int, top: int, n: int) -> np.ndarray:
    """frame[top:top+n, left:left+n] with black where it lies outside the frame."""
    h, w = frame.shape[:2]
    out = np.zeros((n, n, *frame.shape[2:]), dtype=frame.dtype)
    sx0, sy0 = max(0, left), max(0, top)
    sx1, sy1 = min(w, left + n), min(h, top + n)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - top:sy1 - top, sx0 - left:sx1 - left] = frame[sy0:sy1, sx0:sx1]
    return out


def crop_storage(choice: str, features: Mapping[str, Any] | None = None) -> str:
    """``lzf`` or ``none``: how the faces shard stores crops, for ``faces.crop_compression: choice``.

    ``auto`` stores them raw when the face models will run on a GPU (``features.gpu``, or ``features.device``
    ``cuda``, or ``auto`` on a machine where torch sees CUDA; ``cpu`` wins over ``gpu``): a GPU embeds crops
    faster than lzf decompresses them (about 1,000 crops/s a reader thread, docs/performance.md), so
    compressed crops would set its pace. Elsewhere lzf: a CPU model is far slower than decompression, and
    rows without a face, zeros, then cost almost no disk.
    """
    if choice != "auto":
        return choice
    f = features or {}
    device = str(f.get("device", "auto"))
    if device == "cpu":  # the face models stay on the CPU, whatever the jobs are given
        return "lzf"
    if f.get("gpu") or is_cuda(device):
        return "none"
    # device auto without features.gpu: the face models run where their jobs run, on a workstation this machine;
    # asking torch costs the job about 2 s and 150 MB once, small beside decoding a shard's videos
    return "none" if resolve_device("auto") != "cpu" else "lzf"
