"""Face crops as a network's input: checked, resized and normalised the way upstream does it.

:func:`preprocessing` gives a model's input side and normalisation by emotiefflib's rules;
:func:`preprocess` is emotiefflib's ONNX recogniser's pre-processing (``cv2.resize``), and
:func:`preprocess_pil` its torch recogniser's (PIL), so each engine sees the inputs its upstream
counterpart would. The torch engine resizes on the device instead
(:meth:`affectflow.models.runtimes.torch_runtime.TorchRuntime.images`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Preprocessing:
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def preprocessing(name: str) -> Preprocessing:
    """Input side and normalisation, by emotiefflib's rules on the model name (facial_analysis.py)."""
    if "mbf_" in name:
        return Preprocessing(112, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    imagenet = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    if "_b2_" in name:
        return Preprocessing(260, *imagenet)
    if "ddamfnet" in name:
        return Preprocessing(112, *imagenet)
    return Preprocessing(224, *imagenet)


def as_crop_list(crops: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """RGB uint8 crops, (N,H,W,3) or a list of (H,W,3) of any sizes, as a checked list."""
    if isinstance(crops, np.ndarray):
        if crops.ndim == 3:
            crops = crops[None]
        if crops.ndim != 4 or crops.shape[-1] != 3:
            raise ValueError(f"expected RGB crops shaped (N,H,W,3), got {crops.shape}")
    items = list(crops)
    for i, img in enumerate(items):
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[-1] != 3 or 0 in img.shape:
            raise ValueError(f"crop {i}: expected a non-empty RGB image (H,W,3), got {getattr(img, 'shape', img)}")
        if img.dtype != np.uint8:
            raise ValueError(f"crop {i}: expected uint8 pixels, got {img.dtype}")
    return items


def _normalise(resized: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """(N,S,S,3) uint8 -> (N,3,S,S) float32: /255, minus mean, over std."""
    x = resized.astype(np.float32) * np.float32(1 / 255)
    x -= np.asarray(prep.mean, np.float32)
    x /= np.asarray(prep.std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def preprocess(crops: Sequence[np.ndarray], prep: Preprocessing) -> np.ndarray:
    """emotiefflib ``EmotiEffLibRecognizerOnnx._preprocess`` for a batch: cv2.resize (bilinear), /255, normalise."""
    s = prep.size
    resized = np.empty((len(crops), s, s, 3), np.uint8)
    for i, img in enumerate(crops):
        resized[i] = img if img.shape[:2] == (s, s) else cv2.resize(np.ascontiguousarray(img), (s, s))
    return _normalise(resized, prep)


def preprocess_pil(crops: Sequence[np.ndarray], prep: Preprocessing) -> np.ndarray:
    """emotiefflib ``EmotiEffLibRecognizerTorch._preprocess``: torchvision ``Resize`` on a PIL image is
    ``PIL.Image.resize(..., BILINEAR)``, then ``ToTensor`` and ``Normalize``."""
    from PIL import Image

    s = prep.size
    resized = np.empty((len(crops), s, s, 3), np.uint8)
    for i, img in enumerate(crops):
        resized[i] = np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((s, s), Image.BILINEAR))
    return _normalise(resized, prep)
