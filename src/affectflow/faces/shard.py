"""A shard's videos into its faces shard: several videos detected at once, written in the units' order.

The shard must not depend on how many videos ran at once (rows, attributes,
order, skipped videos), so each video's rows are made in a thread of its own
while one writer takes them strictly in order; a video ahead of the one being
written holds at most :data:`ROWS_AHEAD_BYTES` of rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from affectflow.core.progress import progress_bar
from affectflow.data.units import Unit
from affectflow.faces.decode_pool import DecodePool
from affectflow.faces.detection import FaceDetector, SerialDetector, TimedDetector
from affectflow.faces.organiser import OrganiserCropsSource
from affectflow.faces.rows import RowSettings, row_bytes, row_spec
from affectflow.faces.stream import PREFETCH_DEPTH, VideoDone, drain_faces, iter_faces, numbers_by_time
from affectflow.faces.video import PrefetchEach, codec_threads
from affectflow.io.shards import ShardSet, apply_bad_video_policy, media_frames
from affectflow.io.store import ShardWriter
from affectflow.media.decode import MediaError

#: bytes of face rows (crops mostly) each video processed ahead of the one being written may hold. Videos
#: shorter than this (about 1,700 analysed frames at 224 px crops) are processed wholly in parallel; a
#: longer one waits for the writer once it is this far ahead
ROWS_AHEAD_BYTES = 256 * 2**20

log = logging.getLogger("affectflow.faces.shard")


@dataclass
class FacesStageResult:
    """What the stage wrote and what it skipped (video_id, reason); how long it took, how much of that the
    detector's calls took (``detect_calls`` calls; zero with the organiser's crops) and starting the decoding
    processes (``faces.decode: process``: once per job, whatever its videos). Two results are equal when they
    wrote and skipped the same: the timings are not compared."""

    written: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = field(default=0.0, compare=False)
    detect_s: float = field(default=0.0, compare=False)
    detect_calls: int = field(default=0, compare=False)
    decode_start_s: float = field(default=0.0, compare=False)


def rows_ahead(settings: RowSettings, n_landmarks: int = 5) -> int:
    """Batches of rows a video ahead of the one being written may hold: :data:`ROWS_AHEAD_BYTES` worth."""
    row = row_bytes(row_spec(n_landmarks, settings.crop_size))
    return max(PREFETCH_DEPTH, ROWS_AHEAD_BYTES // (row * settings.batch_size))


def write_organiser(w: ShardWriter, units: list[Unit], source: OrganiserCropsSource, result: FacesStageResult, *,
                    on_bad_video: str, raw: tuple[str, ...]) -> None:
    """The organisers' crops of ``units`` into ``w`` (``raw``: the arrays stored uncompressed)."""
    for unit in units:
        _add_or_skip(result, unit, on_bad_video, partial(_add_organiser, w, source, unit, raw))


def write_detected(w: ShardWriter, units: list[Unit], detector: FaceDetector, settings: RowSettings,
                   result: FacesStageResult, *, on_bad_video: str, raw: tuple[str, ...], threads: int,
                   progress: bool, decode: str = "thread", media: ShardSet | None = None) -> None:
    """Detect the faces of ``units``' videos into ``w`` in the units' order, up to ``threads`` videos at once.

    Each video's thread decodes it, detects its faces (the one detector, a
    call at a time: a batched GPU detector wants one caller) and crops them;
    each decoder gets an equal share of the threads for FFmpeg
    (:func:`~affectflow.faces.video.codec_threads`). Leaving this (done, failed
    or interrupted) stops every video's thread and closes its video before the
    shard is finished or removed. ``decode``: ``process`` decodes each of those
    videos in a process of a :class:`~affectflow.faces.decode_pool.DecodePool`
    (same frames; the threads then detect and crop). ``media``: the shard's media shard, whose frame times
    number the frames of a video the decoder lost frames of (:func:`_add_video`).
    """
    workers = max(1, min(threads, len(units)))
    codec = codec_threads(threads, workers)
    timed = TimedDetector(detector)
    shared = SerialDetector(timed) if workers > 1 else timed
    t0 = time.perf_counter()
    try:
        with DecodePool(workers, depth=PREFETCH_DEPTH) if decode == "process" else nullcontext() as pool:
            result.decode_start_s = time.perf_counter() - t0 if pool is not None else 0.0
            sources = [partial(iter_faces, u.path, shared, settings, video_id=u.video_id, progress=progress,
                               side=u.side, ffmpeg_threads=codec, pool=pool) for u in units]
            with PrefetchEach(sources, workers, depth=rows_ahead(settings, int(detector.n_landmarks)),
                              name="faces") as videos, \
                    progress_bar(total=len(units), desc=f"faces {w.path.name}", unit="video", log=log,
                                 show=None if progress else False) as bar:
                for unit, items in zip(units, videos, strict=True):
                    _add_or_skip(result, unit, on_bad_video, partial(_add_video, w, unit, items, raw=raw,
                                                                     media=media))
                    bar.update(1)
    finally:
        result.detect_s, result.detect_calls = timed.seconds, timed.calls


def _add_or_skip(result: FacesStageResult, unit: Unit, on_bad_video: str, add: Callable[[], None]) -> None:
    """Run ``add`` for ``unit``: listed as written, or as skipped by the bad-video policy when it cannot be read."""
    try:
        add()
    except MediaError as e:  # VideoError is one
        apply_bad_video_policy(result.skipped, unit.video_id, e, on_bad_video)
        return
    result.written.append(unit.video_id)


def _add_organiser(w: ShardWriter, source: OrganiserCropsSource, unit: Unit, raw: tuple[str, ...]) -> None:
    """The organisers' crops of ``unit`` into ``w``."""
    w.add(source.read(unit), uncompressed=raw)


#: a damaged video's warning when its frames cannot be numbered by the media stage's times
NUMBERED_AS_DECODED = ("frames were lost to damaged data and the decoded frames' times do not match the media "
                       "stage's: frames are numbered in decoding order, so those after the damage are early")


def _add_video(w: ShardWriter, unit: Unit, items: Iterable[dict[str, np.ndarray] | VideoDone], *,
               raw: tuple[str, ...], media: ShardSet | None = None) -> None:
    """``unit``'s face rows (:func:`~affectflow.faces.stream.iter_faces` items, being made: ``items``) into ``w``;
    removed again if it fails part-way.

    Rows stream in decoding order. Where the decoder passed over damaged data (fewer frames decoded than
    ``media`` found), they are then numbered by their places among the media stage's frame times, read for
    that video only (:func:`~affectflow.faces.stream.numbers_by_time`), so the frames after the damage keep
    their numbers (and their labels) instead of moving up to fill the gap. Only then: a file whose own times
    go back (repaired 1 ms apart) matches no media time, and its decoding order is its frames' order.
    """
    with w.video(unit.video_id, uncompressed=raw) as out:
        out.attrs = drain_faces(items, out.append)
        lost = media is not None and out.n and (
            int(out.attrs["n_frames_decoded"]) < int(media.read(unit.video_id, names=()).attrs["n_frames"]))
        if lost:
            numbers = numbers_by_time(out.appended("frame_index"), out.appended("timestamps"),
                                      media_frames(media, unit.video_id))
            if numbers is None:  # listed in problems.tsv with the video's other warnings
                out.attrs["warnings"] = [*out.attrs.get("warnings", []), NUMBERED_AS_DECODED]
            else:
                out.rewrite("frame_index", numbers)
