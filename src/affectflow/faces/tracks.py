"""Face tracks: follow one person across frames instead of taking the largest face frame by frame.

Detections of consecutive analysed frames are linked into tracks by overlap
(IoU, or each box's centre inside the other box, for fast motion); a track
survives ``memory`` analysed frames without a detection. The **target** is
chosen once, when no target track is alive: the largest face, or for a unit
with a ``side`` (Aff-Wild2's ``<video>_left`` / ``_right`` ids) the face
furthest to that side. It is then followed: a second person entering, two
faces' sizes crossing or a few frames without a detection never switch it.
Everything is decided frame by frame, so the faces stage keeps streaming.

:class:`PeopleTracker` (``faces.people: all``) keeps every person instead, each
with a persistent id: tracks are predicted forward at constant velocity and
matched to detections by one optimal assignment per frame, so two people who
cross keep their ids, and a new track becomes a person only once it has been
seen in a few consecutive frames, so one-frame false detections get no id.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from affectflow.faces.detectors import Detection

SIDES = ("", "left", "right")
#: ``faces.people``: follow one target face per frame, or keep every person with a track id
PEOPLE = ("target", "all")


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


def link_score(track: np.ndarray, face: np.ndarray, min_iou: float) -> float:
    """:func:`link_scores` of one track box and one face box, the same number: float32 differences and areas,
    float64 ratios, in scalar arithmetic. One face continuing one track is nearly every frame of a video,
    and NumPy's broadcasting costs more on a 1 x 1 than the faces stage's other work on the frame."""
    a0, a1, a2, a3 = (np.float32(v) for v in track)
    b0, b1, b2, b3 = (np.float32(v) for v in face)
    wide = max(0.0, float(min(a2, b2) - max(a0, b0)))
    tall = max(0.0, float(min(a3, b3) - max(a1, b1)))
    inter = wide * tall
    union = float((a2 - a0) * (a3 - a1) + (b2 - b0) * (b3 - b1)) - inter
    overlap = inter / union if union > 0 else 0.0
    if overlap >= min_iou:
        return overlap
    two = np.float32(2)
    ca0, ca1, cb0, cb1 = (a0 + a2) / two, (a1 + a3) / two, (b0 + b2) / two, (b1 + b3) / two
    inside = b0 <= ca0 <= b2 and b1 <= ca1 <= b3 and a0 <= cb0 <= a2 and a1 <= cb1 <= a3
    return min_iou / 2 if inside else 0.0


def frame_scale(old_hw: tuple[int, int], new_hw: tuple[int, int]) -> np.ndarray:
    """(4,) factors that carry a box x0, y0, x1, y1 from frames of ``old_hw`` to frames of ``new_hw``.

    A stream may change its picture size mid-way (a webcam renegotiating, recordings joined): the face
    stays where it was in the picture, but its box in pixels jumps, and a tracker that links by overlap
    in pixels would lose it for ``memory`` frames; its boxes are carried over to the new size instead.
    """
    sy, sx = new_hw[0] / old_hw[0], new_hw[1] / old_hw[1]
    return np.array([sx, sy, sx, sy], np.float64)


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

    def rescale(self, factors: np.ndarray) -> None:
        """The frames change size from here on (:func:`frame_scale`): carry every track's box over."""
        for t in self.tracks:
            t.bbox = (t.bbox * factors).astype(np.float32)

    def _links(self, faces: list[Detection]) -> list[tuple[int, int]]:
        """(track, face) index pairs that may continue each other, best link first; ties: the later track, then
        the later face. Assigned greedily in this order."""
        if not self.tracks or not faces:
            return []
        if len(self.tracks) == 1 and len(faces) == 1:
            return [(0, 0)] if link_score(self.tracks[0].bbox, faces[0].bbox, self.min_iou) > 0 else []
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


# ---------------------------------------------------------------- every person


@dataclass(frozen=True)
class FramePeople:
    """The people of one analysed frame, final: (person id, index of its face among the frame's detections),
    by person id. ``frame``: the frame's number among the analysed frames (0, 1, ...)."""

    frame: int
    people: tuple[tuple[int, int], ...]


@dataclass
class _Motion:
    """A track of :class:`PeopleTracker`: its last box, velocity (box units per analysed frame), the frame it was
    last seen in, its consecutive detections while tentative, its person id once confirmed."""

    bbox: np.ndarray
    last_seen: int
    first_seen: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    hits: int = 1
    person: int | None = None
    history: list[tuple[int, int]] = field(default_factory=list)  # (frame, face index) while tentative

    def predicted(self, frame: int) -> np.ndarray:
        return self.bbox + self.velocity * (frame - self.last_seen)


class PeopleTracker:
    """Every person of one video with a persistent id (``faces.people: all``).

    Each analysed frame, every track's box is predicted at constant velocity
    and the detections are assigned to the predictions by
    :func:`scipy.optimize.linear_sum_assignment` on :func:`link_scores`
    (confirmed people first, then tentative tracks, then new ones). Two faces
    that cross are told apart by where each was heading; while two predicted
    boxes overlap the velocities are kept as they were, so a detection taken by
    the wrong track during the overlap cannot turn it round. A person missed in
    up to ``memory`` analysed frames keeps the id (a short gap, an occlusion).

    A new track is tentative until it has been detected in ``min_hits``
    consecutive analysed frames; a miss before that drops it (a false
    detection, a reflection). Ids go to confirmed tracks in order of first
    appearance (then left to right): 0, 1, 2, ... So :meth:`update` returns the
    frames whose people are final, in order, a few frames late (at most
    ``min_hits - 1``); :meth:`flush` returns the rest at the end of the video.
    """

    def __init__(self, memory: int = 12, min_iou: float = 0.3, min_hits: int = 3, crossing_iou: float = 0.1) -> None:
        if min_hits < 1:
            raise ValueError(f"min_hits must be >= 1, got {min_hits}")
        self.memory, self.min_iou, self.min_hits = int(memory), float(min_iou), int(min_hits)
        self.crossing_iou = float(crossing_iou)
        self.tracks: list[_Motion] = []
        self.frame = -1
        self.n_people = 0
        self._pending: deque[tuple[int, dict[int, int]]] = deque()  # frames not yet final: confirmed people

    def update(self, faces: list[Detection]) -> list[FramePeople]:
        """Link this analysed frame's detections; the frames whose people are now final."""
        self.frame += 1
        f = self.frame
        self.tracks = [t for t in self.tracks if f - t.last_seen - 1 <= (self.memory if t.person is not None else 0)]
        boxes = [np.asarray(d.bbox, np.float64) for d in faces]
        free = set(range(len(faces)))
        crossing = self._crossing(f)
        self._pending.append((f, {}))
        for group in ([t for t in self.tracks if t.person is not None], [t for t in self.tracks if t.person is None]):
            for track, di in self._assign(group, boxes, free, f):
                free.discard(di)
                self._continue(track, boxes[di], di, f, frozen=id(track) in crossing)
        for di in sorted(free):
            self.tracks.append(_Motion(boxes[di], f, f, history=[(f, di)]))
        self.tracks = [t for t in self.tracks if t.person is not None or t.last_seen == f]  # a tentative miss
        self._confirm()
        return self._final(min((t.first_seen for t in self.tracks if t.person is None), default=f + 1))

    def rescale(self, factors: np.ndarray) -> None:
        """The frames change size from here on (:func:`frame_scale`): carry every box and velocity over."""
        for t in self.tracks:
            t.bbox, t.velocity = t.bbox * factors, t.velocity * factors

    def flush(self) -> list[FramePeople]:
        """The remaining frames at the end of the video (tentative tracks are dropped)."""
        self.tracks = [t for t in self.tracks if t.person is not None]
        return self._final(self.frame + 1)

    def _crossing(self, frame: int) -> set[int]:
        """The tracks (by ``id``) whose predicted box overlaps another's: their velocities are kept this frame."""
        if len(self.tracks) < 2:
            return set()
        pred = np.stack([t.predicted(frame) for t in self.tracks]).astype(np.float32)
        iou = link_scores(pred, pred, 0.0)
        np.fill_diagonal(iou, 0.0)
        return {id(self.tracks[i]) for i in np.flatnonzero((iou > self.crossing_iou).any(axis=1))}

    def _assign(self, group: list[_Motion], boxes: list[np.ndarray], free: set[int],
                frame: int) -> list[tuple[_Motion, int]]:
        """The optimal one-to-one links of ``group``'s predicted boxes to the free detections (score > 0)."""
        cols = sorted(free)
        if not group or not cols:
            return []
        pred = np.stack([t.predicted(frame) for t in group]).astype(np.float32)
        scores = link_scores(pred, np.stack([boxes[c] for c in cols]).astype(np.float32), self.min_iou)
        from scipy.optimize import linear_sum_assignment  # 0.3 s to import; the workflow parse never needs it

        rows, picked = linear_sum_assignment(scores, maximize=True)
        return [(group[r], cols[c]) for r, c in zip(rows, picked, strict=True) if scores[r, c] > 0]

    def _continue(self, track: _Motion, box: np.ndarray, di: int, frame: int, *, frozen: bool) -> None:
        step = frame - track.last_seen
        if not frozen:
            seen = (box - track.bbox) / step
            track.velocity = seen if track.hits == 1 else 0.5 * track.velocity + 0.5 * seen
        track.bbox, track.last_seen, track.hits = box, frame, track.hits + 1
        if track.person is None:
            track.history.append((frame, di))
        else:
            self._pending[-1][1][track.person] = di

    def _confirm(self) -> None:
        """Tentative tracks seen ``min_hits`` times become people: ids in order of first appearance, then x."""
        ready = [t for t in self.tracks if t.person is None and t.hits >= self.min_hits]
        first = self._pending[0][0] if self._pending else self.frame
        for t in sorted(ready, key=lambda t: (t.first_seen, float(t.bbox[0] + t.bbox[2]))):
            t.person, self.n_people = self.n_people, self.n_people + 1
            for frame, di in t.history:
                self._pending[frame - first][1][t.person] = di
            t.history = []

    def _final(self, before: int) -> list[FramePeople]:
        out = []
        while self._pending and self._pending[0][0] < before:
            frame, people = self._pending.popleft()
            out.append(FramePeople(frame, tuple(sorted(people.items()))))
        return out
