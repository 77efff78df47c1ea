"""A face record's rows: the arrays of each analysed frame (and person), filled from the detector's faces.

``people: target`` (what the challenges label) keeps one row per analysed
frame: the target face followed as a track (:class:`TargetRows`). ``all``
keeps one row per analysed frame and person, with the person's track id in a
``person`` array (rows by frame, then person; a frame with nobody gets one row
with ``person`` -1 and no face), so every analysed frame still has a row
(:class:`PeopleRows`). Both fill a face's cells the one way
(:func:`fill_face`), so the two layouts cannot drift apart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from affectflow.core.options import one_of
from affectflow.faces.crops import CROP_SHAPES, crop_box, crop_square
from affectflow.faces.detection import Detection, FaceDetector
from affectflow.faces.tracks import PEOPLE, FramePeople, PeopleTracker, TargetTracker
from affectflow.faces.video import FrameBatch

#: one face row's arrays: name -> (shape after the row axis, dtype, fill value for a frame without a face)
RowSpec = dict[str, tuple[tuple[int, ...], Any, Any]]
#: ``n_faces`` is int16: a frame with more faces than this says this many
MAX_N_FACES = 32767


@dataclass(frozen=True)
class RowSettings:
    """What decides a video's face rows, typed for this package (the config's ``faces`` section is the stage's
    :class:`~affectflow.stages.faces.FacesOptions`, whose defaults these are): which frames are analysed
    (``frame_stride``), how faces are cropped (``crop_size``, ``margin``, ``align``, ``crop_shape``) and laid out
    (``people``).
    ``batch_size``, frames per detector call, changes no row."""

    frame_stride: int = 1
    batch_size: int = 32
    crop_size: int = 224
    margin: float = 0.2
    align: bool = False
    people: str = "target"
    crop_shape: str = "square"

    def __post_init__(self) -> None:
        one_of("people", self.people, PEOPLE)
        one_of("crop_shape", self.crop_shape, CROP_SHAPES)

    @property
    def every_person(self) -> bool:
        """``people: all``: a row per analysed frame and person."""
        return self.people == "all"


def row_spec(n_landmarks: int, crop_size: int, people: bool = False) -> RowSpec:
    """The arrays of a face record's rows, for a detector giving ``n_landmarks`` points and square crops
    (``people``: with each row's person, ``people: all``)."""
    spec: RowSpec = {
        "frame_index": ((), np.int32, 0), "timestamps": ((), np.float64, np.nan),
        "has_face": ((), bool, False), "bbox": ((4,), np.float32, np.nan),
        "score": ((), np.float32, 0.0), "landmarks": ((n_landmarks, 2), np.float32, np.nan),
        "crops": ((crop_size, crop_size, 3), np.uint8, 0), "n_faces": ((), np.int16, 0),
    }
    if people:
        spec["person"] = ((), np.int32, -1)
    return spec


def empty_rows(spec: RowSpec, n: int) -> dict[str, np.ndarray]:
    """``n`` rows without a face: every array at its fill value."""
    return {name: np.full((n, *shp), fill, dt) for name, (shp, dt, fill) in spec.items()}


def row_bytes(spec: RowSpec) -> int:
    """The bytes one row of ``spec`` takes (crops mostly), to bound the rows held in memory."""
    return sum(int(np.prod(shape, dtype=np.int64)) * np.dtype(dt).itemsize for shape, dt, _ in spec.values())


def usable(d: Detection) -> bool:
    """A box with finite corners and positive area (a box may reach past the frame's edges)."""
    return bool(np.all(np.isfinite(d.bbox))) and d.area > 0


def analysed_frames(a: dict[str, np.ndarray], where: np.ndarray) -> int:
    """The analysed frames among rows ``where`` (a frame has several rows with ``people: all``)."""
    return int(np.unique(a["frame_index"][where]).size) if "person" in a else int(where.sum())


@dataclass(frozen=True)
class CroppedFace:
    """A detection ready to become a row: its keypoints (the row's first ones) and its crop."""

    detection: Detection
    landmarks: np.ndarray
    crop: np.ndarray


def fill_face(a: dict[str, np.ndarray], r: int, face: CroppedFace) -> None:
    """Row ``r`` of ``a`` holds ``face``: the one way both layouts fill a face's cells, so that ``target`` and
    ``all`` rows of the same face cannot drift apart (the frame's cells are the caller's)."""
    d = face.detection
    a["has_face"][r], a["score"][r], a["bbox"][r] = True, d.score, d.bbox
    a["landmarks"][r, : len(face.landmarks)] = face.landmarks
    a["crops"][r] = face.crop


def _fill_frame(a: dict[str, np.ndarray], r: int, index: int, timestamp: float, n_faces: int) -> None:
    a["frame_index"][r], a["timestamps"][r], a["n_faces"][r] = index, timestamp, min(n_faces, MAX_N_FACES)


@dataclass
class _Rows:
    """What both layouts share: the detector, the settings, the arrays of a row, and how a face is cropped."""

    detector: FaceDetector
    settings: RowSettings
    spec: RowSpec

    def cropped(self, frame: np.ndarray, d: Detection) -> CroppedFace:
        """``d`` with its keypoints cut to the row's and its square crop from ``frame``."""
        k = self.spec["landmarks"][0][0]
        lm = np.asarray(d.landmarks, np.float32).reshape(-1, 2)[:k]
        s = self.settings
        if d.crop is not None and not s.align and d.crop.shape[:2] == (s.crop_size, s.crop_size):  # faces.crop_on
            return CroppedFace(d, lm, d.crop)
        if s.crop_shape == "box":
            return CroppedFace(d, lm, crop_box(frame, d.bbox, s.crop_size, float(s.margin)))
        return CroppedFace(d, lm, crop_square(frame, d.bbox, s.crop_size, float(s.margin), lm, s.align))

    def detected(self, batch: FrameBatch) -> Iterator[tuple[int, float, np.ndarray, list[Detection]]]:
        """(frame index, time, pixels, usable faces) of each frame of ``batch``, the detector run once on all."""
        faces = ([d for d in found if usable(d)] for found in self.detector.detect(batch.frames))
        return zip(batch.indices, batch.timestamps, batch.frames, faces, strict=True)


@dataclass
class TargetRows(_Rows):
    """``people: target``: one row per analysed frame, the target face followed and cropped."""

    tracker: TargetTracker

    def batch(self, batch: FrameBatch) -> dict[str, np.ndarray]:
        """The rows of ``batch``'s frames."""
        a = empty_rows(self.spec, len(batch.frames))
        for r, (i, t, frame, faces) in enumerate(self.detected(batch)):
            _fill_frame(a, r, i, t, len(faces))
            best = self.tracker.update(faces)
            if best is not None:
                fill_face(a, r, self.cropped(frame, best))
        return a

    def finish(self) -> dict[str, np.ndarray] | None:
        """Nothing waits: every frame's row was given with its batch."""
        return None


@dataclass
class _FrameFaces:
    """One analysed frame waiting for its people to be final: its faces, each already cropped (the frame's
    pixels are not kept)."""

    index: int
    timestamp: float
    faces: list[CroppedFace]


@dataclass
class PeopleRows(_Rows):
    """``people: all``: one row per analysed frame and person (:class:`PeopleTracker`), by frame then
    person; a frame with nobody gets one row without a face (person -1). The tracker settles a frame's people a
    few frames late, so those frames' crops wait here (at most ``min_hits`` frames' worth)."""

    tracker: PeopleTracker
    waiting: deque[_FrameFaces] = field(default_factory=deque)

    def batch(self, batch: FrameBatch) -> dict[str, np.ndarray]:
        """The rows of the frames whose people became final with ``batch`` (earlier frames' among them)."""
        done: list[tuple[_FrameFaces, FramePeople]] = []
        for i, t, frame, faces in self.detected(batch):
            self.waiting.append(_FrameFaces(int(i), float(t), [self.cropped(frame, d) for d in faces]))
            done += [(self.waiting.popleft(), p) for p in self.tracker.update(faces)]
        return self._rows(done)

    def finish(self) -> dict[str, np.ndarray] | None:
        """The rows of the frames still waiting at the end of the video (None: none)."""
        done = [(self.waiting.popleft(), p) for p in self.tracker.flush()]
        assert not self.waiting, "every analysed frame is final at the end of the video"
        return self._rows(done) if done else None

    def _rows(self, done: list[tuple[_FrameFaces, FramePeople]]) -> dict[str, np.ndarray]:
        a = empty_rows(self.spec, sum(max(1, len(p.people)) for _, p in done))
        r = 0
        for f, p in done:
            for person, di in p.people or ((-1, -1),):
                _fill_frame(a, r, f.index, f.timestamp, len(f.faces))
                a["person"][r] = person
                if di >= 0:
                    fill_face(a, r, f.faces[di])
                r += 1
        return a


def face_rows(detector: FaceDetector, settings: RowSettings, target: TargetTracker) -> TargetRows | PeopleRows:
    """The row builder of ``settings.people`` for one video; ``target``: the video's target tracker (``people:
    all`` gives its people tracker the same memory)."""
    spec = row_spec(int(detector.n_landmarks), settings.crop_size, people=settings.every_person)
    if settings.every_person:
        return PeopleRows(detector, settings, spec, PeopleTracker(memory=target.memory))
    return TargetRows(detector, settings, spec, target)
