"""Small helpers shared by the learn, fuse and submit stages (no torch import).

* :class:`ShardSet` -- several shard files of one stage looked up by video id,
  with the reason the producing stage gave for every video it skipped;
* :func:`fill_nearest` -- put per-row values back on all frames of a video,
  frames without a value taking the nearest one (ties: the earlier frame).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from affectflow.core.errors import AffectflowError
from affectflow.core.vocabulary import SAMPLE_RATE
from affectflow.io.store import ShardReader, VideoRecord

log = logging.getLogger("affectflow.stages")


class StageInputError(AffectflowError, ValueError):
    """Stage inputs that do not fit together (duplicate videos, missing arrays)."""


class ShardSet:
    """Several shard files of one stage, looked up by video id (readers stay open until :meth:`close`)."""

    def __init__(self, paths: Sequence[str | os.PathLike[str]], stage: str, label: str | None = None) -> None:
        self.label, self.stage = label or stage, stage
        self.readers: list[ShardReader] = []
        self.where: dict[str, ShardReader] = {}
        self.skipped: dict[str, str] = {}
        self._dim: dict[str, int] = {}
        if not paths:
            raise StageInputError(f"{self.label}: no shard files given")
        try:
            for p in paths:
                r = ShardReader(p, stage=stage)
                self.readers.append(r)
                for vid, reason in r.skipped():
                    self.skipped[vid] = reason
                for vid in r.video_ids():
                    if vid in self.where:
                        raise StageInputError(f"{self.label}: video {vid!r} is in both {self.where[vid].path} and {p}")
                    self.where[vid] = r
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> ShardSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __contains__(self, vid: str) -> bool:
        return vid in self.where

    def __len__(self) -> int:
        return len(self.where)

    def video_ids(self) -> list[str]:
        return list(self.where)

    def read(self, vid: str, names: Sequence[str] | None = None) -> VideoRecord:
        """``vid``'s record from the shard that holds it (``names``: only those arrays, as ShardReader.read)."""
        return self.where[vid].read(vid, names=names)

    def why_missing(self, vid: str) -> str:
        if vid in self.skipped:
            return f"skipped by the {self.stage} stage ({self.label}): {self.skipped[vid]}"
        return f"not in the {self.stage} shards ({self.label})"

    def dim(self, array: str) -> int:
        """Width of ``array`` (N, D) as stored for any video (for videos that stored an empty 1-D array)."""
        if array not in self._dim:
            for vid in self.where:
                a = np.asarray(self.read(vid).arrays.get(array))
                if a.ndim == 2:
                    self._dim[array] = int(a.shape[1])
                    break
            else:
                raise StageInputError(f"{self.label}: no video stores a 2-D {array!r} array; cannot tell its width")
        return self._dim[array]

    def matrix(self, rec: VideoRecord, name: str) -> np.ndarray:
        """``rec.arrays[name]`` as a (N, D) matrix (an empty 1-D array becomes (0, D))."""
        if name not in rec.arrays:
            raise StageInputError(f"{self.label}: video {rec.video_id!r} has no {name!r} array")
        a = np.asarray(rec.arrays[name])
        if a.ndim == 2:
            return a
        if a.size == 0:
            return np.zeros((0, self.dim(name)), dtype=np.float32)
        raise StageInputError(f"{self.label}: video {rec.video_id!r}: {name!r} has shape {a.shape}, expected (N, D)")

    def close(self) -> None:
        for r in self.readers:
            with contextlib.suppress(Exception):
                r.close()
        self.readers = []


def media_frames(media: ShardSet, vid: str) -> np.ndarray:
    """Timestamps (s) of every frame of ``vid`` from the media shard; checked against its ``n_frames`` (the
    audio, most of the record, is not read)."""
    rec = media.read(vid, names=("timestamps",))
    times = np.asarray(rec.arrays["timestamps"], dtype=np.float64).ravel()
    n_attr = rec.attrs.get("n_frames")
    if n_attr is not None and int(n_attr) != times.shape[0]:
        raise StageInputError(f"media shard: video {vid!r} has n_frames={n_attr} but {times.shape[0]} timestamps")
    return times


def media_audio(rec: VideoRecord, shard: str | os.PathLike[str]) -> np.ndarray | None:
    """The 16 kHz audio of a media record (None when it has none: the caller skips the video); audio at
    another rate is an error naming the shard and video."""
    audio = rec.arrays.get("audio")
    if audio is None:
        return None
    sr = int(rec.attrs.get("sample_rate", SAMPLE_RATE))
    if sr != SAMPLE_RATE:
        raise StageInputError(f"{shard}: video {rec.video_id!r} audio is {sr} Hz, expected {SAMPLE_RATE}")
    return audio


def fill_nearest(rows: np.ndarray, frame_indices: np.ndarray, n_frames: int) -> np.ndarray:
    """Values known at ``frame_indices`` (sorted, unique) spread to all ``n_frames`` frames by nearest frame.

    ``rows[i]`` belongs to frame ``frame_indices[i]``; every other frame takes the
    value of the closest such frame (the earlier one on a tie). Raises when no
    frame has a value, because there is nothing to spread.
    """
    vals = np.asarray(rows)
    idx = np.asarray(frame_indices, dtype=np.int64).ravel()
    if idx.shape[0] != vals.shape[0]:
        raise ValueError(f"{idx.shape[0]} frame indices for {vals.shape[0]} rows")
    if idx.shape[0] == 0:
        raise ValueError("no frame has a value to spread")
    if np.any(np.diff(idx) <= 0) or idx[0] < 0 or idx[-1] >= n_frames:
        raise ValueError(f"frame indices must be sorted, unique and in 0..{n_frames - 1}")
    frames = np.arange(n_frames)
    right = np.clip(np.searchsorted(idx, frames), 0, idx.shape[0] - 1)
    left = np.clip(right - 1, 0, idx.shape[0] - 1)
    take_left = np.abs(frames - idx[left]) <= np.abs(idx[right] - frames)
    return vals[np.where(take_left, left, right)]


@dataclass
class StageResult:
    """What a shard stage wrote and what it skipped (video_id, reason)."""

    written: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def apply_bad_video_policy(
    skipped: list[tuple[str, str]], video_id: str, error: AffectflowError, on_bad_video: str
) -> None:
    """``on_bad_video``, the same in every stage: fail naming the file, or skip and record why."""
    if on_bad_video == "fail":
        log.error("video %r: %s (on_bad_video: fail)", video_id, error)  # into the job's log
        raise error
    log.warning("skipping video %r: %s", video_id, error)
    skipped.append((video_id, str(error)))
