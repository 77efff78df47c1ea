"""Face tracks: follow one person across frames instead of taking the largest face frame by frame.

Detections of consecutive analysed frames are linked into tracks by overlap
(IoU, or each box's centre inside the other box, for fast motion); a track
survives ``memory`` analysed frames without a detection. The **target** is
chosen once, when no target track is alive: the largest face, or for a unit
with a ``side`` (Aff-Wild2's ``<video>_left`` / ``_right`` ids) the face
furthest to that side. It is then followed: a second person entering, two
faces' sizes crossing or a few frames without a detection never switch it.
Everything is decided frame by frame, so the faces stage keeps streaming.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from affectflow.faces.detectors import Detection

SIDES = ("", "left", "right")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, float(x1 - x0)) * max(0.0, float(y1 - y0))
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0


def _centre_inside(a: np.ndarray, b: np.ndarray) -> bool:
    cx, cy = (a[0] + a[2]) / 2, (a[1] + a[3]) / 2
    return bool(b[0] <= cx <= b[2] and b[1] <= cy <= b[3])


def _link(a: np.ndarray, b: np.ndarray, min_iou: float) -> float:
    """How well box ``b`` continues box ``a`` (0: not at all)."""
    overlap = iou(a, b)
    if overlap >= min_iou:
        return overlap
    return min_iou / 2 if _centre_inside(a, b) and _centre_inside(b, a) else 0.0


@dataclass
class Track:
    id: int
    bbox: np.ndarray
    last_seen: int


class TargetTracker:
    """The target face of one video, frame after frame (see the module docstring)."""

    def __init__(self, side: str = "", memory: int = 12, min_iou: float = 0.3) -> None:
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {side!r}")
        self.side, self.memory, self.min_iou = side, int(memory), float(min_iou)
        self.tracks: list[Track] = []
        self.target: int | None = None
        self.frame = -1
        # times the target, lost for longer than memory, was chosen again among several faces (so another
        # person may be followed from then on); re-finding the only face in view is not counted
        self.switches = 0
        self._next_id = 0

    def update(self, faces: list[Detection]) -> Detection | None:
        """The target's detection in this analysed frame (None: not detected in it)."""
        self.frame += 1
        # a track missed in up to `memory` frames may still be continued here
        self.tracks = [t for t in self.tracks if self.frame - t.last_seen - 1 <= self.memory]
        assigned: dict[int, Detection] = {}
        pairs = sorted(((_link(t.bbox, np.asarray(d.bbox), self.min_iou), ti, di)
                        for ti, t in enumerate(self.tracks) for di, d in enumerate(faces)), reverse=True)
        used_t, used_d = set(), set()
        for score, ti, di in pairs:
            if score <= 0 or ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            track = self.tracks[ti]
            track.bbox, track.last_seen = np.asarray(faces[di].bbox, np.float32), self.frame
            assigned[track.id] = faces[di]
        for di, d in enumerate(faces):
            if di not in used_d:
                track = Track(self._next_id, np.asarray(d.bbox, np.float32), self.frame)
                self._next_id += 1
                self.tracks.append(track)
                assigned[track.id] = d
        alive = {t.id for t in self.tracks}
        if self.target not in alive:
            if self.target is not None and len(assigned) > 1:
                self.switches += 1
            self.target = self._choose(assigned)
        return assigned.get(self.target) if self.target is not None else None

    def _choose(self, seen: dict[int, Detection]) -> int | None:
        if not seen:
            return None
        if self.side == "left":
            return min(seen, key=lambda k: float(seen[k].bbox[0] + seen[k].bbox[2]))
        if self.side == "right":
            return max(seen, key=lambda k: float(seen[k].bbox[0] + seen[k].bbox[2]))
        return max(seen, key=lambda k: (seen[k].area, seen[k].score))
