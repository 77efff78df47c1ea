"""What every face detector gives and is: :class:`Detection`, the :class:`FaceDetector` protocol (fronted by
:class:`WrappedDetector`: timed by :class:`TimedDetector`, shared by threads through :class:`SerialDetector`),
and the greedy non-maximum suppression and the input scaling the RetinaFace detectors share (their torch NMS
is tested against this one).

Kept apart from :mod:`affectflow.faces.detectors` so that detectors in their own modules (the batched
RetinaFace MobileNet-0.25) use these without importing the module that builds them by name.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

#: how a detector with a network of its own runs it (``faces.detector_engine``; ``retinaface_mnet025``)
DETECTOR_ENGINES = ("auto", "onnx", "torch")


@dataclass(frozen=True)
class Detection:
    """One face: box (x0, y0, x1, y1) in pixels, confidence, keypoints (K x 2 pixels; K = 0 when none).

    Keypoint order: index 0 is the eye on the image's left (the person's right
    eye), index 1 the other eye, for both MediaPipe (6 points: eyes, nose tip,
    mouth centre, ear tragions) and RetinaFace (5 points: eyes, nose, mouth
    corners).
    """

    bbox: np.ndarray
    score: float
    landmarks: np.ndarray
    #: the face's square crop when the detector cut it where the frames are (faces.crop_on: detector)
    crop: np.ndarray | None = None

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = (float(v) for v in self.bbox)
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


@runtime_checkable
class FaceDetector(Protocol):
    """What the faces stage needs from a detector."""

    name: str
    weights_sha256: str
    n_landmarks: int

    def detect(self, frames_rgb: list[np.ndarray]) -> list[list[Detection]]:
        """All faces of each frame (same order as ``frames_rgb``)."""
        ...


class WrappedDetector:
    """A detector in front of another: it is the wrapped one to the faces stage (same name, weights and
    landmarks, so the shard's provenance records that one) and changes only how ``detect`` is called."""

    def __init__(self, detector: FaceDetector) -> None:
        self.detector = detector
        self.name = detector.name
        self.weights_sha256 = detector.weights_sha256
        self.n_landmarks = detector.n_landmarks

    def detect(self, frames_rgb: list[np.ndarray]) -> list[list[Detection]]:
        return self.detector.detect(frames_rgb)


class TimedDetector(WrappedDetector):
    """Adds up the wall time of its calls, so that the faces stage can say how much of its time the detector
    took: on a GPU machine, whether the detector or the host's work (decoding, tracking, cropping, writing)
    sets the pace. Not thread-safe by itself: with several videos at once the stage puts it behind a
    :class:`SerialDetector` (whose lock waits it then leaves out)."""

    def __init__(self, detector: FaceDetector) -> None:
        super().__init__(detector)
        self.seconds = 0.0
        self.calls = 0

    def detect(self, frames_rgb: list[np.ndarray]) -> list[list[Detection]]:
        t0 = time.perf_counter()
        try:
            return self.detector.detect(frames_rgb)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1


class SerialDetector(WrappedDetector):
    """A detector shared by several threads, one call at a time.

    The faces stage decodes and crops several videos at once, but their
    frames meet one detector: a GPU network runs a batch at a time anyway and
    reuses one pinned staging buffer, and a CPU runtime already uses every
    core for one call.
    """

    def __init__(self, detector: FaceDetector) -> None:
        super().__init__(detector)
        self._lock = threading.Lock()

    def detect(self, frames_rgb: list[np.ndarray]) -> list[list[Detection]]:
        with self._lock:
            return self.detector.detect(frames_rgb)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        xx0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.maximum(0.0, xx1 - xx0 + 1) * np.maximum(0.0, yy1 - yy0 + 1)
        order = rest[inter / (areas[i] + areas[rest] - inter) < iou]
    return np.asarray(keep, dtype=np.int64)


def input_scale(height: int, width: int, target_size: int, max_size: int, allow_upscaling: bool) -> float:
    """Scale that brings the short side to ``target_size`` with the long side at most ``max_size``."""
    scale = target_size / float(min(height, width))
    if not allow_upscaling:
        scale = min(1.0, scale)
    if round(scale * max(height, width)) > max_size:
        scale = max_size / float(max(height, width))
    return scale
