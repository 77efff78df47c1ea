"""Align audio and text features with face frames (paper section 3.3).

Face descriptors exist per video frame, but audio embeddings come per audio window and text embeddings per
recognised speech segment. The paper brings both "to the shape of visual features using interp1d from
SciPy"; this module does exactly that and makes the corner cases explicit: audio is interpolated linearly
(edge vectors repeated, never extrapolated), a frame takes the embedding of the text segment it lies in
(``text_fill`` outside speech), and frames without a face follow ``missing_face`` (``drop``,
``carry_last`` or ``other_modalities``).

Output contract: an :class:`AlignedFeatures` with the matrix (one row per kept frame), a per-frame mask of
the frames kept, their indices, and the column slice of every modality.

Options and the full behaviour: docs/learning.md, section "Frame alignment".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.interpolate import interp1d

from affectflow.core.errors import AffectflowError

MissingFacePolicy = Literal["drop", "carry_last", "other_modalities"]
TextFill = Literal["zeros", "nearest"]
MISSING_FACE_POLICIES: tuple[str, ...] = ("drop", "carry_last", "other_modalities")
TEXT_FILLS: tuple[str, ...] = ("zeros", "nearest")
FACE_MISSING_COLUMN = "face_missing"


class AlignmentError(AffectflowError, ValueError):
    """Inputs that cannot be aligned (shapes, times, policies)."""


@dataclass(frozen=True)
class TimedVectors:
    """Vectors observed at given times (seconds), e.g. audio windows at their centres."""

    times: np.ndarray  # (N,)
    values: np.ndarray  # (N, D)

    def __post_init__(self) -> None:
        t = np.asarray(self.times, dtype=np.float64).ravel()
        v = np.asarray(self.values)
        if v.ndim != 2 or v.shape[0] != t.shape[0]:
            raise AlignmentError(f"TimedVectors: {t.shape[0]} times but values of shape {v.shape}")
        object.__setattr__(self, "times", t)
        object.__setattr__(self, "values", v)

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])


@dataclass(frozen=True)
class TextSegments:
    """Speech segments with one embedding each: times in seconds, ``start <= end``."""

    starts: np.ndarray  # (S,)
    ends: np.ndarray  # (S,)
    embeddings: np.ndarray  # (S, D)

    def __post_init__(self) -> None:
        s = np.asarray(self.starts, dtype=np.float64).ravel()
        e = np.asarray(self.ends, dtype=np.float64).ravel()
        emb = np.asarray(self.embeddings)
        if emb.ndim != 2 or not (s.shape[0] == e.shape[0] == emb.shape[0]):
            raise AlignmentError(f"TextSegments: {s.shape[0]} starts, {e.shape[0]} ends, embeddings {emb.shape}")
        if np.any(e < s):
            raise AlignmentError("TextSegments: a segment ends before it starts")
        object.__setattr__(self, "starts", s)
        object.__setattr__(self, "ends", e)
        object.__setattr__(self, "embeddings", emb)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])


@dataclass(frozen=True)
class AlignedFeatures:
    """One video's frame-aligned feature matrix.

    ``matrix`` has one row per kept frame (``frame_indices`` says which frame of
    the video each row is; ``mask`` is the same information as a boolean vector
    over all frames). ``columns`` maps modality name to its column slice;
    ``face_present`` says per kept row whether a real face vector is in it.
    """

    matrix: np.ndarray  # (n_kept, D_total) float32
    mask: np.ndarray  # (n_frames,) bool
    frame_indices: np.ndarray  # (n_kept,) int64
    columns: dict[str, slice] = field(default_factory=dict)
    face_present: np.ndarray | None = None  # (n_kept,) bool

    @property
    def n_frames(self) -> int:
        return int(self.mask.shape[0])

    def modality(self, name: str) -> np.ndarray:
        return self.matrix[:, self.columns[name]]

    def select(self, per_frame: np.ndarray) -> np.ndarray:
        """Pick the kept frames from any per-frame array (labels, timestamps)."""
        arr = np.asarray(per_frame)
        if arr.shape[0] != self.n_frames:
            raise AlignmentError(f"expected {self.n_frames} frames, got {arr.shape[0]}")
        return arr[self.frame_indices]

    def scatter(self, per_row: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """Put per-row values (predictions) back on all frames; dropped frames get ``fill``."""
        arr = np.asarray(per_row)
        out = np.full((self.n_frames, *arr.shape[1:]), fill, dtype=np.result_type(arr.dtype, np.float32))
        out[self.frame_indices] = arr
        return out


# ---------------------------------------------------------------- primitives


def _frame_times(frame_times: np.ndarray) -> np.ndarray:
    t = np.asarray(frame_times, dtype=np.float64).ravel()
    if not np.all(np.isfinite(t)):
        raise AlignmentError("frame times must be finite")
    return t


def interpolate_to_frames(stream: TimedVectors, frame_times: np.ndarray, kind: str = "linear") -> np.ndarray:
    """Interpolate a timestamped vector stream at the frame times (float32, (T, D)).

    Uses ``scipy.interpolate.interp1d`` along time like the paper; outside the
    observed range the nearest edge vector is repeated. Rows with NaN are
    ignored, times are sorted, and vectors sharing one time are averaged
    (interp1d needs strictly increasing x). A stream with a single vector is
    constant; a stream with none raises, because silently returning zeros would
    hide a missing extraction.
    """
    ft = _frame_times(frame_times)
    t, v = stream.times, np.asarray(stream.values, dtype=np.float64)
    ok = np.isfinite(t) & ~np.isnan(v).any(axis=1)
    t, v = t[ok], v[ok]
    if t.shape[0] == 0:
        raise AlignmentError("no valid vector to interpolate from (empty stream or all NaN)")
    uniq, inv = np.unique(t, return_inverse=True)
    if uniq.shape[0] != t.shape[0]:
        sums = np.zeros((uniq.shape[0], v.shape[1]))
        np.add.at(sums, inv, v)
        v = sums / np.bincount(inv)[:, None]
    t = uniq
    if t.shape[0] == 1:
        return np.repeat(v.astype(np.float32), ft.shape[0], axis=0)
    f = interp1d(t, v, kind=kind, axis=0, bounds_error=False, fill_value=(v[0], v[-1]), assume_sorted=True)
    return np.asarray(f(ft), dtype=np.float32)


def segments_to_frames(
    segments: TextSegments, frame_times: np.ndarray, fill: TextFill = "zeros"
) -> tuple[np.ndarray, np.ndarray]:
    """Give every frame the embedding of the segment it falls in.

    Returns ``(matrix (T, D) float32, covered (T,) bool)``. A frame at time t is
    inside a segment when ``start <= t <= end``; overlapping segments are
    averaged. Uncovered frames get zeros (``fill="zeros"``) or the embedding of
    the segment closest in time (``fill="nearest"``; ties go to the earlier
    segment). With no segment at all every frame is zero whatever the fill.
    """
    if fill not in TEXT_FILLS:
        raise AlignmentError(f"text fill must be one of {TEXT_FILLS}, got {fill!r}")
    ft = _frame_times(frame_times)
    emb = np.asarray(segments.embeddings, dtype=np.float64)
    n, d = ft.shape[0], emb.shape[1]
    out = np.zeros((n, d), dtype=np.float64)
    if segments.starts.shape[0] == 0 or n == 0:
        return out.astype(np.float32), np.zeros(n, dtype=bool)
    inside = (ft[:, None] >= segments.starts[None, :]) & (ft[:, None] <= segments.ends[None, :])  # (T, S)
    counts = inside.sum(axis=1)
    covered = counts > 0
    out[covered] = (inside[covered].astype(np.float64) @ emb) / counts[covered, None]
    if fill == "nearest" and not covered.all():
        t = ft[~covered, None]
        dist = np.maximum(segments.starts[None, :] - t, 0.0) + np.maximum(t - segments.ends[None, :], 0.0)
        order = np.lexsort((np.arange(segments.starts.shape[0]), segments.starts))  # earlier segment first on ties
        nearest = order[np.argmin(dist[:, order], axis=1)]
        out[~covered] = emb[nearest]
    return out.astype(np.float32), covered


def face_rows_to_frames(
    face_frame_indices: np.ndarray, face_values: np.ndarray, n_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Scatter face vectors stored only for detected frames onto all ``n_frames`` frames.

    Returns ``(features (n_frames, D) with NaN where no face, present (n_frames,) bool)``.
    """
    idx = np.asarray(face_frame_indices, dtype=np.int64).ravel()
    vals = np.asarray(face_values)
    if vals.ndim != 2 or vals.shape[0] != idx.shape[0]:
        raise AlignmentError(f"{idx.shape[0]} face frame indices but face values of shape {vals.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= n_frames):
        raise AlignmentError(f"face frame index outside 0..{n_frames - 1}")
    if np.unique(idx).shape[0] != idx.shape[0]:
        raise AlignmentError("a frame has more than one face vector; select one face per frame first")
    full = np.full((n_frames, vals.shape[1]), np.nan, dtype=np.float32)
    full[idx] = vals
    present = np.zeros(n_frames, dtype=bool)
    present[idx] = True
    return full, present


def _carry_last(face: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Forward-fill face rows over frames without a face (zeros before the first face)."""
    n = face.shape[0]
    last = np.where(present, np.arange(n), -1)
    np.maximum.accumulate(last, out=last)
    out = np.zeros_like(face)
    has = last >= 0
    out[has] = face[last[has]]
    return out


# ------------------------------------------------------------------ top level


def align_video(
    frame_times: np.ndarray,
    face: np.ndarray | None,
    face_present: np.ndarray | None = None,
    streams: Mapping[str, TimedVectors | TextSegments | np.ndarray] | None = None,
    *,
    missing_face: MissingFacePolicy = "drop",
    text_fill: TextFill = "zeros",
    face_name: str = "face",
    empty_stream: Literal["error", "zeros"] = "error",
) -> AlignedFeatures:
    """Build one video's frame-level matrix: face columns, then each stream, then (maybe) the indicator.

    ``face`` is a (T, Df) matrix over all T frames (rows of frames without a face
    are ignored, NaN is fine) and ``face_present`` a (T,) bool; when
    ``face_present`` is omitted it is taken as "row has no NaN". ``face=None``
    builds an audio/text-only matrix (all frames kept, no policy applied).
    ``streams`` maps a modality name to a :class:`TimedVectors` (interpolated),
    a :class:`TextSegments` (segment lookup with ``text_fill``) or an already
    frame-aligned (T, D) array. ``empty_stream="zeros"`` turns a stream without
    any vector (a silent clip) into zeros instead of an error.
    """
    if missing_face not in MISSING_FACE_POLICIES:
        raise AlignmentError(f"missing_face must be one of {MISSING_FACE_POLICIES}, got {missing_face!r}")
    ft = _frame_times(frame_times)
    n = ft.shape[0]
    if n > 1 and np.any(np.diff(ft) < 0):
        raise AlignmentError("frame times must be non-decreasing")
    blocks: list[tuple[str, np.ndarray]] = []
    present = np.ones(n, dtype=bool)

    if face is not None:
        fm, present = _face_columns(face, face_present, n, missing_face)
        blocks.append((face_name, fm))

    for name, stream in (streams or {}).items():
        if name in (face_name, FACE_MISSING_COLUMN):
            raise AlignmentError(f"stream name {name!r} is reserved")
        blocks.append((name, _stream_to_frames(name, stream, ft, text_fill, empty_stream)))

    if face is not None and missing_face == "other_modalities":
        blocks.append((FACE_MISSING_COLUMN, (~present).astype(np.float32)[:, None]))
    if not blocks:
        raise AlignmentError("nothing to align: no face matrix and no stream")

    keep = present if (face is not None and missing_face == "drop") else np.ones(n, dtype=bool)
    return _assemble(blocks, keep, present)


def _face_columns(face: np.ndarray, face_present: np.ndarray | None, n: int,
                  missing_face: MissingFacePolicy) -> tuple[np.ndarray, np.ndarray]:
    """The face block over all ``n`` frames with ``missing_face`` applied (zeros where no face, except
    ``carry_last``), and the per-frame presence mask."""
    fm = np.asarray(face, dtype=np.float32)
    if fm.ndim != 2 or fm.shape[0] != n:
        raise AlignmentError(f"face matrix {fm.shape} does not have one row per frame ({n})")
    if face_present is None:
        present = ~np.isnan(fm).any(axis=1)
    else:
        present = np.asarray(face_present, dtype=bool).ravel()
        if present.shape[0] != n:
            raise AlignmentError(f"face_present has {present.shape[0]} entries for {n} frames")
    if missing_face == "carry_last":
        fm = _carry_last(fm, present)
    else:
        fm = np.where(present[:, None], fm, 0.0).astype(np.float32)
    return fm, present


def _stream_to_frames(name: str, stream: TimedVectors | TextSegments | np.ndarray, ft: np.ndarray,
                      text_fill: TextFill, empty_stream: Literal["error", "zeros"]) -> np.ndarray:
    """One stream as a (T, D) block on the frame times ``ft``."""
    n = ft.shape[0]
    if isinstance(stream, TimedVectors):
        if stream.values.shape[0] == 0 or np.isnan(stream.values).any(axis=1).all():
            if empty_stream == "zeros":
                return np.zeros((n, stream.dim), dtype=np.float32)
            raise AlignmentError(f"stream {name!r} has no valid vector")
        return interpolate_to_frames(stream, ft)
    if isinstance(stream, TextSegments):
        return segments_to_frames(stream, ft, fill=text_fill)[0]
    arr = np.asarray(stream, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise AlignmentError(f"stream {name!r}: expected ({n}, D) frame-aligned array, got {arr.shape}")
    return arr


def _assemble(blocks: list[tuple[str, np.ndarray]], keep: np.ndarray, present: np.ndarray) -> AlignedFeatures:
    """Concatenate the blocks column-wise, keep the ``keep`` rows and name every block's column slice."""
    columns: dict[str, slice] = {}
    start = 0
    for name, b in blocks:
        columns[name] = slice(start, start + b.shape[1])
        start += b.shape[1]
    matrix = np.concatenate([b for _, b in blocks], axis=1)[keep]
    idx = np.flatnonzero(keep).astype(np.int64)
    return AlignedFeatures(
        matrix=np.ascontiguousarray(matrix, dtype=np.float32),
        mask=keep,
        frame_indices=idx,
        columns=columns,
        face_present=present[keep],
    )
