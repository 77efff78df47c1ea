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


def link_scores(tracks: np.ndarray, faces: np.ndarray, min_iou: float) -> np.ndarray:
    """(T, D): how well each face box (D x 4) continues each track box (T x 4); 0: not at all.

    The IoU where it reaches ``min_iou``; else ``min_iou / 2`` where each box's
    centre lies inside the other (fast motion); else 0. All pairs at once: a
    detector that passes dozens of boxes a frame (a low ``min_score``, a crowd)
    makes hundreds of pairs per frame, which pair-by-pair Python made the
    faces stage's bottleneck on a GPU. Float32 boxes, float64 ratios.
    """
    a, b = tracks[:, None, :], faces[None, :, :]
    wide = np.maximum(0.0, (np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])).astype(np.float64))
    tall = np.maximum(0.0, (np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])).astype(np.float64))
    inter = wide * tall
    areas = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = areas.astype(np.float64) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        overlap = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    centre_a = (a[..., 0:2] + a[..., 2:4]) / 2
    centre_b = (b[..., 0:2] + b[..., 2:4]) / 2
    inside = (np.all((b[..., 0:2] <= centre_a) & (centre_a <= b[..., 2:4]), axis=-1)
              & np.all((a[..., 0:2] <= centre_b) & (centre_b <= a[..., 2:4]), axis=-1))
    return np.where(overlap >= min_iou, overlap, np.where(inside, min_iou / 2, 0.0))


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
        used_t, used_d = set(), set()
        for ti, di in self._links(faces):
            if ti in used_t or di in used_d:
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

    def _links(self, faces: list[Detection]) -> list[tuple[int, int]]:
        """(track, face) index pairs that may continue each other, best link first; ties: the later track, then
        the later face. Assigned greedily in this order."""
        if not self.tracks or not faces:
            return []
        scores = link_scores(np.stack([t.bbox for t in self.tracks]),
                             np.stack([np.asarray(d.bbox, np.float32) for d in faces]), self.min_iou)
        ti, di = np.nonzero(scores > 0)
        order = np.lexsort((-di, -ti, -scores[ti, di]))
        return [(int(ti[k]), int(di[k])) for k in order]

    def _choose(self, seen: dict[int, Detection]) -> int | None:
        if not seen:
            return None
        if self.side == "left":
            return min(seen, key=lambda k: float(seen[k].bbox[0] + seen[k].bbox[2]))
        if self.side == "right":
            return max(seen, key=lambda k: float(seen[k].bbox[0] + seen[k].bbox[2]))
        return max(seen, key=lambda k: (seen[k].area, seen[k].score))
