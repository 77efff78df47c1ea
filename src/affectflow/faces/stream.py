"""One video's face rows, made while it decodes: decoding, detection, the tracks and the crops in one pass.

Rows come out a decoded batch at a time (:func:`iter_faces`), so memory does
not grow with the video's length; the video's attributes (sizes, counts,
warnings) come last, once it is decoded to the end.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from affectflow.faces.decode_pool import DecodePool
from affectflow.faces.detection import FaceDetector
from affectflow.faces.rows import PeopleRows, RowSettings, TargetRows, analysed_frames, face_rows
from affectflow.faces.tracks import TargetTracker, frame_scale
from affectflow.faces.video import FrameBatch, VideoInfo, codec_threads, iter_batches, prefetch
from affectflow.io.store import VideoRecord
from affectflow.media.decode import REPEATED_TIME_STEP_S

log = logging.getLogger("affectflow.faces")

#: decoded batches each video's decoder may hold ready ahead of detection
PREFETCH_DEPTH = 2
#: the name of each video's decoding thread (:func:`iter_faces`)
DECODE_THREAD = "decode"


@dataclass(frozen=True)
class VideoDone:
    """The last item :func:`iter_faces` yields for a video: its attributes, known once it is decoded to the end."""

    attrs: dict[str, Any]


def iter_faces(path: str | os.PathLike[str], detector: FaceDetector, settings: RowSettings | None = None,
               video_id: str | None = None, progress: bool = True, side: str = "", *,
               ffmpeg_threads: int | None = None,
               pool: DecodePool | None = None) -> Iterator[dict[str, np.ndarray] | VideoDone]:
    """Decode ``path`` once, detect faces in every ``frame_stride``-th frame, follow the target face as a track
    (:mod:`affectflow.faces.tracks`; ``side``: the unit's person of a two-person video), crop it.

    Yields each decoded batch's rows (frame_index, timestamps, has_face, bbox,
    score, landmarks, crops, n_faces) as soon as they are ready, so memory does
    not grow with the video's length, then one :class:`VideoDone` with the
    video's attributes (sizes, counts, warnings). Decoding runs one background
    thread ahead of detection; ``ffmpeg_threads``: FFmpeg's threads for it
    (default: one per core, at least
    :data:`~affectflow.faces.video.MIN_CODEC_THREADS`, so that a damaged video
    gives the rows it gives in the faces stage). ``pool``: decode in one of its
    processes instead (the same frames; it runs ahead of detection itself).
    Rows are numbered in decoding order (the faces shard's writer renumbers
    those of a video the decoder lost frames of: :func:`numbers_by_time`).
    """
    s = settings or RowSettings()
    info = VideoInfo(path=str(path))
    if ffmpeg_threads is None:
        ffmpeg_threads = codec_threads(os.cpu_count() or 1, 1)
    if pool is None:
        batches = prefetch(iter_batches(path, info, frame_stride=s.frame_stride, batch_size=s.batch_size,
                                        codec_threads=ffmpeg_threads), depth=PREFETCH_DEPTH, name=DECODE_THREAD)
    else:  # a batch's frames live in the pool's shared memory until the next is asked for: no prefetch thread
        batches = pool.batches(path, info, frame_stride=s.frame_stride, batch_size=s.batch_size,
                               codec_threads=ffmpeg_threads)
    tracker = TargetTracker(side=side)
    rows = face_rows(detector, s, tracker)
    vid = video_id or Path(path).stem
    t0 = time.perf_counter()
    try:
        n_rows, n_face, n_several = yield from _stream_rows(batches, info, rows, desc=f"faces {vid}",
                                                            progress=progress)
    finally:
        batches.close()  # stops the decoder thread at once when the consumer stops early
    dt = time.perf_counter() - t0
    log.info("%s: %d frames decoded, %d analysed, %d with a face, %.1f frames/s", vid, info.n_frames_decoded,
             n_rows, n_face, info.n_frames_decoded / dt if dt > 0 else float("nan"))
    warnings = _video_warnings(info, tracker, side, n_rows=n_rows, n_face=n_face,
                               n_several=0 if s.every_person else n_several)
    for w in warnings:
        log.warning("%s: %s", vid, w)
    if info.n_frames_expected and info.n_frames_expected != info.n_frames_decoded:
        log.warning("%s: container says %d frames, %d decoded", vid, info.n_frames_expected, info.n_frames_decoded)
    yield VideoDone({
        "width": info.width, "height": info.height, "rotation": info.rotation,
        "n_frames_decoded": info.n_frames_decoded, "detector": detector.name, "frame_stride": s.frame_stride,
        "n_with_face": n_face, "warnings": warnings, "side": side, "target_switches": tracker.switches,
        **({"people": rows.tracker.n_people} if isinstance(rows, PeopleRows) else {}),
    })


def stream_faces(path: str | os.PathLike[str], detector: FaceDetector, settings: RowSettings | None,
                 append: Callable[[dict[str, np.ndarray]], None], video_id: str | None = None,
                 progress: bool = True, side: str = "", *, ffmpeg_threads: int | None = None) -> dict[str, Any]:
    """:func:`iter_faces` with each batch's rows handed to ``append``; returns the video's attributes."""
    return drain_faces(iter_faces(path, detector, settings, video_id=video_id, progress=progress, side=side,
                                  ffmpeg_threads=ffmpeg_threads), append)


def drain_faces(items: Iterable[dict[str, np.ndarray] | VideoDone],
                append: Callable[[dict[str, np.ndarray]], None]) -> dict[str, Any]:
    """Rows of one video's :func:`iter_faces` items to ``append``; its attributes."""
    for item in items:
        if isinstance(item, VideoDone):
            return item.attrs
        append(item)
    raise RuntimeError("the video's face rows ended without its attributes")


def detect_video(path: str | os.PathLike[str], detector: FaceDetector, settings: RowSettings | None = None,
                 video_id: str | None = None, progress: bool = True, side: str = "") -> VideoRecord:
    """:func:`stream_faces` into memory: the whole video's rows as one record (for short videos and inspection)."""
    parts: list[dict[str, np.ndarray]] = []
    attrs = stream_faces(path, detector, settings, parts.append, video_id=video_id, progress=progress, side=side)
    arrays = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}  # iter_batches: >= 1 frame
    return VideoRecord(video_id=video_id or Path(path).stem, arrays=arrays, attrs=attrs)


#: how far a decoded frame's time may be from the media stage's time of the frame it is (seconds); both
#: come from one clock (affectflow.media.decode.VideoClock) and agree to the microsecond
FRAME_TIME_TOLERANCE_S = 1e-3


def numbers_by_time(frame_index: np.ndarray, timestamps: np.ndarray, frame_times: np.ndarray) -> np.ndarray | None:
    """Rows' frame numbers as the frames' places among ``frame_times`` (the media stage's), for rows numbered
    in decoding order (``frame_index``) with their frames' ``timestamps``; None when the frames' times do not
    all lie within :data:`FRAME_TIME_TOLERANCE_S` of distinct media times in the same order (decoding order
    is then kept)."""
    index = np.asarray(frame_index, dtype=np.int64)
    decoded, first = np.unique(index, return_index=True)  # a frame's rows (people: several) share its time
    ts = np.asarray(timestamps, dtype=np.float64)[first]
    if not len(ts) or not len(frame_times):
        return None
    right = np.clip(np.searchsorted(frame_times, ts), 0, len(frame_times) - 1)
    left = np.maximum(right - 1, 0)
    places = np.where(np.abs(frame_times[left] - ts) < np.abs(frame_times[right] - ts), left, right)
    if np.abs(frame_times[places] - ts).max() > FRAME_TIME_TOLERANCE_S or np.any(np.diff(places) <= 0):
        return None
    return places[np.searchsorted(decoded, index)]


def _stream_rows(batches: Iterator[FrameBatch], info: VideoInfo, rows: TargetRows | PeopleRows, *, desc: str,
                 progress: bool) -> Generator[dict[str, np.ndarray], None, tuple[int, int, int]]:
    """Detect faces in the video's ``batches``, yielding each batch's rows (with a progress bar); returns
    the counts of analysed frames, of those with a face and of those with several faces.

    The bar counts the frames detection has reached, not those decoded: the
    decoder may be far ahead (or done) before detection starts. A batch holds
    frames of one size; where the size changes, the tracks are carried over
    (:func:`~affectflow.faces.tracks.frame_scale`).
    """
    n_rows = n_face = n_several = 0
    size: tuple[int, int] | None = None
    bar = tqdm(desc=desc, unit="frame", disable=not progress, leave=False, mininterval=1.0)

    def counted(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        nonlocal n_face, n_several
        n_face += analysed_frames(a, a["has_face"])
        n_several += analysed_frames(a, a["n_faces"] > 1)
        return a

    try:
        for batch in batches:
            if n_rows == 0:
                bar.reset(total=info.n_frames_expected or None)
            if batch.frames:
                if size is not None and batch.frames[0].shape[:2] != size:
                    rows.tracker.rescale(frame_scale(size, batch.frames[0].shape[:2]))
                size = batch.frames[0].shape[:2]
            yield counted(rows.batch(batch))
            n_rows += len(batch.frames)
            bar.update(batch.indices[-1] + 1 - bar.n)
        last = rows.finish()
        if last is not None:
            yield counted(last)
        bar.update(info.n_frames_decoded - bar.n)
    finally:
        bar.close()
    return n_rows, n_face, n_several


def _video_warnings(info: VideoInfo, tracker: TargetTracker, side: str, *, n_rows: int, n_face: int,
                    n_several: int) -> list[str]:
    """Survivable oddities, listed per video like the media stage's (affectflow.stages.problems collects them)."""
    warnings: list[str] = []
    if n_face == 0:
        warnings.append(f"no face detected in any of the {n_rows} analysed frames")
    if n_several:
        who = f"the {side} person" if side else "the largest face when first seen"
        warnings.append(f"several faces in {n_several} of {n_rows} analysed frames: one track followed ({who})")
    if tracker.switches:
        warnings.append(f"the target face was lost for more than {tracker.memory} analysed frames and chosen again "
                        f"among several faces {tracker.switches} time(s): another person may be followed after that")
    if info.n_size_changes:
        warnings.append(f"the picture size changes {info.n_size_changes} time(s) inside the stream: faces are "
                        f"followed across it, boxes and landmarks are in each part's pixels")
    if info.n_timestamps_repaired:
        warnings.append(f"{info.n_timestamps_repaired} decoded frame(s) with a timestamp not after the previous "
                        f"frame's: each set {REPEATED_TIME_STEP_S * 1000:g} ms after its predecessor")
    return warnings
