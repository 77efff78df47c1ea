"""The faces stage: every analysed frame of every video of a shard -> one face record per video.

``faces.people: target`` (the default, what the challenges label) keeps one row
per analysed frame: the target face followed as a track. ``all`` keeps one row
per analysed frame and person, with the person's track id in a ``person``
array (rows by frame, then person; a frame with nobody gets one row with
``person`` -1 and no face), so every analysed frame still has a row.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from affectflow.core import joblog
from affectflow.core.device import DEVICES, is_cuda
from affectflow.core.job import Job
from affectflow.core.options import StageOptions, added, at_least, one_of, runtime
from affectflow.data.units import Unit
from affectflow.faces.crops import crop_square
from affectflow.faces.detection import DETECTOR_ENGINES, SerialDetector, TimedDetector
from affectflow.faces.detectors import DETECTORS, Detection, FaceDetector, make_detector
from affectflow.faces.organiser import OrganiserCropsSource
from affectflow.faces.tracks import PEOPLE, FramePeople, PeopleTracker, TargetTracker, frame_scale
from affectflow.faces.video import FrameBatch, PrefetchEach, VideoInfo, iter_batches, prefetch
from affectflow.io.shards import apply_bad_video_policy
from affectflow.io.store import Provenance, ShardWriter, VideoRecord
from affectflow.media.decode import REPEATED_TIME_STEP_S, MediaError
from affectflow.models.manifest import PreparedModel
from affectflow.plan.rerun import stage_key
from affectflow.stages.media import BAD_VIDEO_POLICIES, accepted_units

log = logging.getLogger("affectflow.faces")

#: bump when the faces shard's content changes for the same videos and options (docs/reruns.md)
STAGE_VERSION = 2  # 2: frame times made strictly increasing; the target face followed as a track
#: ``faces.crop_compression``: ``auto`` is :func:`crop_storage`'s choice
CROP_COMPRESSIONS = ("auto", "lzf", "none")
#: registry model of each detector that has weights (its fingerprint is part of the faces rerun key)
DETECTOR_MODELS = {"mediapipe": "mediapipe_face_short_range", "mediapipe_full": "mediapipe_face_full_range",
                   "retinaface": "retinaface", "retinaface_mnet025": "retinaface_mnet025"}
#: detectors whose weights are downloaded: fetched once by the workflow's fetch_model rule (MediaPipe's ship in
#: its package; the faces job finds them itself)
FETCHED_DETECTORS = ("retinaface", "retinaface_mnet025")
#: decoded batches each video's decoder may hold ready ahead of detection
PREFETCH_DEPTH = 2
#: the name of each video's decoding thread (:func:`iter_faces`)
DECODE_THREAD = "decode"


@dataclass(frozen=True)
class FacesOptions(StageOptions):
    """Config ``faces`` (plus the workflow-wide ``on_bad_video``).

    ``batch_size`` (frames per detector call), ``contact_sheets`` (pictures to
    look at) and ``crop_compression`` (how crops are stored, not their pixels)
    never change the face rows, so they are runtime settings. So are
    ``detector_engine`` and ``device`` (``retinaface_mnet025`` only): both
    engines run the same verified ONNX file and agree to a few thousandths of
    a pixel, as a CPU and a GPU do (docs/models.md).

    ``people`` (``target`` or ``all``) changes the rows; it was added after
    shards existed, so at its default it stays out of the rerun key
    (:func:`~affectflow.core.options.added`) and those shards keep theirs.
    """

    SECTION = "faces"
    TOP_LEVEL = ("on_bad_video",)

    detector: str = "retinaface_mnet025"
    crop_size: int = 224
    margin: float = 0.2
    min_score: float = 0.5
    frame_stride: int = 1
    align: bool = False
    people: str = added("target")
    organiser_crops_dir: str | None = None
    on_bad_video: str = "skip"
    batch_size: int = runtime(32)
    contact_sheets: bool = runtime(True)
    crop_compression: str = runtime("auto")
    detector_engine: str = runtime("auto")
    device: str = runtime("auto")

    def check(self) -> None:
        one_of("detector", self.detector, DETECTORS)
        one_of("detector_engine", self.detector_engine, DETECTOR_ENGINES)
        one_of("device", self.device, DEVICES)
        for name in ("crop_size", "frame_stride", "batch_size"):
            at_least(name, getattr(self, name), 1)
        one_of("crop_compression", self.crop_compression, CROP_COMPRESSIONS)
        at_least("margin", self.margin, 0)
        at_least("min_score", self.min_score, 0)
        one_of("on_bad_video", self.on_bad_video, BAD_VIDEO_POLICIES)
        one_of("people", self.people, PEOPLE)
        if self.detector == "organiser" and self.people == "all":
            raise ValueError("people 'all' needs a detector: the organiser's crops are one face per frame")
        if self.detector == "organiser" and not self.organiser_crops_dir:
            raise ValueError("detector 'organiser' needs faces.organiser_crops_dir (a folder of <video_id>/00001.jpg)")

    def detector_model(self) -> str | None:
        """The registry model of the detector's weights (None: the organiser's crops)."""
        return DETECTOR_MODELS.get(self.detector)

    def fetched_model(self) -> str | None:
        """The detector's model when the workflow fetches its weights (rule fetch_model, on the submit host) and
        the faces jobs read them from its manifest: a stand-in too, when ``features.standins`` names it."""
        return self.detector_model() if self.detector in FETCHED_DETECTORS else None


@dataclass
class FacesStageResult:
    """What the stage wrote and what it skipped (video_id, reason); how long it took and how much of that the
    detector's calls took (``detect_calls`` calls; zero with the organiser's crops). Two results are equal when
    they wrote and skipped the same: the timings are not compared."""

    written: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = field(default=0.0, compare=False)
    detect_s: float = field(default=0.0, compare=False)
    detect_calls: int = field(default=0, compare=False)


def _usable(d: Detection) -> bool:
    """A box with finite corners and positive area (a box may reach past the frame's edges)."""
    return bool(np.all(np.isfinite(d.bbox))) and d.area > 0


@dataclass(frozen=True)
class VideoDone:
    """The last item :func:`iter_faces` yields for a video: its attributes, known once it is decoded to the end."""

    attrs: dict[str, Any]


def iter_faces(path: str | os.PathLike[str], detector: FaceDetector, cfg: FacesOptions | Mapping[str, Any] | None,
               video_id: str | None = None, progress: bool = True, side: str = "", *,
               ffmpeg_threads: int | None = None) -> Iterator[dict[str, np.ndarray] | VideoDone]:
    """Decode ``path`` once, detect faces in every ``frame_stride``-th frame, follow the target face as a track
    (:mod:`affectflow.faces.tracks`; ``side``: the unit's person of a two-person video), crop it.

    Yields each decoded batch's rows (frame_index, timestamps, has_face, bbox,
    score, landmarks, crops, n_faces) as soon as they are ready, so memory does
    not grow with the video's length, then one :class:`VideoDone` with the
    video's attributes (sizes, counts, warnings). Decoding runs one background
    thread ahead of detection; ``ffmpeg_threads``: FFmpeg's threads for it
    (default: one per core, at least :data:`MIN_CODEC_THREADS`, so that a
    damaged video gives the rows it gives in the faces stage).
    """
    opts = FacesOptions.coerce(cfg)
    every = opts.people == "all"
    spec = _row_spec(int(detector.n_landmarks), opts.crop_size, people=every)
    info = VideoInfo(path=str(path))
    if ffmpeg_threads is None:
        ffmpeg_threads = codec_threads(os.cpu_count() or 1, 1)
    batches = prefetch(iter_batches(path, info, frame_stride=opts.frame_stride, batch_size=opts.batch_size,
                                    codec_threads=ffmpeg_threads), depth=PREFETCH_DEPTH, name=DECODE_THREAD)
    tracker = TargetTracker(side=side)
    rows: _TargetRows | _PeopleRows = (_PeopleRows(detector, PeopleTracker(memory=tracker.memory), opts, spec)
                                       if every else _TargetRows(detector, tracker, opts, spec))
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
                               n_several=0 if every else n_several)
    for w in warnings:
        log.warning("%s: %s", vid, w)
    if info.n_frames_expected and info.n_frames_expected != info.n_frames_decoded:
        log.warning("%s: container says %d frames, %d decoded", vid, info.n_frames_expected, info.n_frames_decoded)
    yield VideoDone({
        "width": info.width, "height": info.height, "rotation": info.rotation,
        "n_frames_decoded": info.n_frames_decoded, "detector": detector.name, "frame_stride": opts.frame_stride,
        "n_with_face": n_face, "warnings": warnings, "side": side, "target_switches": tracker.switches,
        **({"people": rows.tracker.n_people} if isinstance(rows, _PeopleRows) else {}),
    })


def stream_faces(path: str | os.PathLike[str], detector: FaceDetector, cfg: FacesOptions | Mapping[str, Any] | None,
                 append: Callable[[dict[str, np.ndarray]], None], video_id: str | None = None,
                 progress: bool = True, side: str = "", *, ffmpeg_threads: int | None = None) -> dict[str, Any]:
    """:func:`iter_faces` with each batch's rows handed to ``append``; returns the video's attributes."""
    return _drain_faces(iter_faces(path, detector, cfg, video_id=video_id, progress=progress, side=side,
                                   ffmpeg_threads=ffmpeg_threads), append)


def _drain_faces(items: Iterable[dict[str, np.ndarray] | VideoDone],
                 append: Callable[[dict[str, np.ndarray]], None]) -> dict[str, Any]:
    """Rows of one video's :func:`iter_faces` items to ``append``; its attributes."""
    for item in items:
        if isinstance(item, VideoDone):
            return item.attrs
        append(item)
    raise RuntimeError("the video's face rows ended without its attributes")


#: one face row's arrays: name -> (shape after the row axis, dtype, fill value for a frame without a face)
_RowSpec = dict[str, tuple[tuple[int, ...], Any, Any]]


def _row_spec(n_landmarks: int, crop_size: int, people: bool = False) -> _RowSpec:
    """The arrays of a face record's rows, for a detector giving ``n_landmarks`` points and square crops
    (``people``: with each row's person, ``faces.people: all``)."""
    spec: _RowSpec = {
        "frame_index": ((), np.int32, 0), "timestamps": ((), np.float64, np.nan),
        "has_face": ((), bool, False), "bbox": ((4,), np.float32, np.nan),
        "score": ((), np.float32, 0.0), "landmarks": ((n_landmarks, 2), np.float32, np.nan),
        "crops": ((crop_size, crop_size, 3), np.uint8, 0), "n_faces": ((), np.int16, 0),
    }
    if people:
        spec["person"] = ((), np.int32, -1)
    return spec


def _stream_rows(batches: Iterator[FrameBatch], info: VideoInfo, rows: _TargetRows | _PeopleRows, *, desc: str,
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
        n_face += _n_frames(a, a["has_face"])
        n_several += _n_frames(a, a["n_faces"] > 1)
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


def _n_frames(a: dict[str, np.ndarray], where: np.ndarray) -> int:
    """The analysed frames among rows ``where`` (a frame has several rows with ``faces.people: all``)."""
    return int(np.unique(a["frame_index"][where]).size) if "person" in a else int(where.sum())


def _empty_rows(spec: _RowSpec, n: int) -> dict[str, np.ndarray]:
    return {name: np.full((n, *shp), fill, dt) for name, (shp, dt, fill) in spec.items()}


@dataclass
class _TargetRows:
    """``faces.people: target``: one row per analysed frame, the target face followed and cropped."""

    detector: FaceDetector
    tracker: TargetTracker
    opts: FacesOptions
    spec: _RowSpec

    def batch(self, batch: FrameBatch) -> dict[str, np.ndarray]:
        size, margin, align = self.opts.crop_size, float(self.opts.margin), self.opts.align
        k = self.spec["landmarks"][0][0]
        a = _empty_rows(self.spec, len(batch.frames))
        for r, (i, t, frame, faces) in enumerate(zip(batch.indices, batch.timestamps, batch.frames,
                                                     self.detector.detect(batch.frames), strict=True)):
            faces = [d for d in faces if _usable(d)]
            a["frame_index"][r], a["timestamps"][r], a["n_faces"][r] = i, t, min(len(faces), 32767)
            best = self.tracker.update(faces)
            if best is None:
                continue
            a["has_face"][r], a["score"][r], a["bbox"][r] = True, best.score, best.bbox
            lm = np.asarray(best.landmarks, np.float32).reshape(-1, 2)[:k]
            a["landmarks"][r, : len(lm)] = lm
            a["crops"][r] = crop_square(frame, best.bbox, size, margin, lm, align)
        return a

    def finish(self) -> None:
        return None


@dataclass
class _FrameFaces:
    """One analysed frame waiting for its people to be final: its detections, each already cropped (the frame's
    pixels are not kept)."""

    index: int
    timestamp: float
    faces: list[Detection]
    landmarks: list[np.ndarray]
    crops: list[np.ndarray]


@dataclass
class _PeopleRows:
    """``faces.people: all``: one row per analysed frame and person (:class:`PeopleTracker`), by frame then
    person; a frame with nobody gets one row without a face (person -1). The tracker settles a frame's people a
    few frames late, so those frames' crops wait here (at most ``min_hits`` frames' worth)."""

    detector: FaceDetector
    tracker: PeopleTracker
    opts: FacesOptions
    spec: _RowSpec
    waiting: deque[_FrameFaces] = field(default_factory=deque)

    def batch(self, batch: FrameBatch) -> dict[str, np.ndarray]:
        size, margin, align = self.opts.crop_size, float(self.opts.margin), self.opts.align
        k = self.spec["landmarks"][0][0]
        done: list[tuple[_FrameFaces, FramePeople]] = []
        for i, t, frame, faces in zip(batch.indices, batch.timestamps, batch.frames,
                                      self.detector.detect(batch.frames), strict=True):
            faces = [d for d in faces if _usable(d)]
            lms = [np.asarray(d.landmarks, np.float32).reshape(-1, 2)[:k] for d in faces]
            crops = [crop_square(frame, d.bbox, size, margin, lm, align) for d, lm in zip(faces, lms, strict=True)]
            self.waiting.append(_FrameFaces(int(i), float(t), faces, lms, crops))
            done += [(self.waiting.popleft(), p) for p in self.tracker.update(faces)]
        return self._rows(done)

    def finish(self) -> dict[str, np.ndarray] | None:
        done = [(self.waiting.popleft(), p) for p in self.tracker.flush()]
        assert not self.waiting, "every analysed frame is final at the end of the video"
        return self._rows(done) if done else None

    def _rows(self, done: list[tuple[_FrameFaces, FramePeople]]) -> dict[str, np.ndarray]:
        a = _empty_rows(self.spec, sum(max(1, len(p.people)) for _, p in done))
        r = 0
        for f, p in done:
            for person, di in p.people or ((-1, -1),):
                a["frame_index"][r], a["timestamps"][r] = f.index, f.timestamp
                a["n_faces"][r], a["person"][r] = min(len(f.faces), 32767), person
                if di >= 0:
                    d, lm = f.faces[di], f.landmarks[di]
                    a["has_face"][r], a["score"][r], a["bbox"][r] = True, d.score, d.bbox
                    a["landmarks"][r, : len(lm)] = lm
                    a["crops"][r] = f.crops[di]
                r += 1
        return a


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


def detect_video(path: str | os.PathLike[str], detector: FaceDetector, cfg: FacesOptions | Mapping[str, Any] | None,
                 video_id: str | None = None, progress: bool = True, side: str = "") -> VideoRecord:
    """:func:`stream_faces` into memory: the whole video's rows as one record (for short videos and inspection)."""
    parts: list[dict[str, np.ndarray]] = []
    attrs = stream_faces(path, detector, cfg, parts.append, video_id=video_id, progress=progress, side=side)
    arrays = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}  # iter_batches: >= 1 frame
    return VideoRecord(video_id=video_id or Path(path).stem, arrays=arrays, attrs=attrs)


def run_faces_stage(
    units: list[Unit],
    out_path: str | os.PathLike[str],
    faces_cfg: FacesOptions | Mapping[str, Any] | None,
    on_bad_video: str | None = None,
    *,
    models_dir: str | os.PathLike[str] | None = None,
    model_pins: Mapping[str, str] | None = None,
    detector: FaceDetector | None = None,
    progress: bool = True,
    media_shard: str | os.PathLike[str] | None = None,
    key: str | None = None,
    threads: int = 1,
    features: Mapping[str, Any] | None = None,
) -> FacesStageResult:
    """Write the faces shard ``out_path`` (``faces/{detector}/{shard}.h5``) for ``units``.

    The shard appears only when every video was processed or skipped; a video
    that cannot be decoded is skipped with a warning (``on_bad_video="skip"``)
    and listed in the shard's ``skipped`` attribute, or raises naming the file
    (``"fail"``). A wrong configuration or missing weights always raises.
    ``detector`` overrides the one ``faces_cfg`` names (for reuse across shards).
    ``units`` are the shard's units; with ``media_shard`` only those the media
    stage accepted are read. ``key``: the rerun key the workflow planned the job
    with (checked, then written into the shard's provenance).

    ``threads`` (the job's): up to this many videos are processed at once, each
    in its own background thread that decodes it, detects its faces (the one
    detector, a call at a time: a batched GPU detector wants one caller) and
    crops them, while the stage's thread writes the videos' rows in the units'
    order. Each decoder gets an equal share of the threads for FFmpeg
    (:func:`codec_threads`); a video ahead of the one being written holds at
    most :data:`ROWS_AHEAD_BYTES` of rows. The shard is the same for any
    ``threads``: rows, attributes, order and skipped videos.

    ``features``: the config's ``features`` section, which ``crop_compression:
    auto`` reads to tell whether the face models will run on a GPU
    (:func:`crop_storage`).
    """
    opts = FacesOptions.coerce(faces_cfg, on_bad_video=on_bad_video)
    rerun = stage_key("faces", opts, expected=key, units=units)
    if media_shard is not None:
        units = accepted_units(media_shard, units)
    source: OrganiserCropsSource | None = None
    if opts.detector == "organiser":
        source = OrganiserCropsSource(opts.organiser_crops_dir, opts.crop_size, opts.frame_stride)
        name, sha = source.name, ""
    else:
        if detector is None:
            detector = make_detector(opts.detector, opts.min_score, models_dir=models_dir, model_pins=model_pins,
                                     engine=opts.detector_engine, device=opts.device, batch_size=opts.batch_size)
        name, sha = detector.name, detector.weights_sha256
    raw = ("crops",) if crop_storage(opts.crop_compression, features) == "none" else ()
    result = FacesStageResult()
    t0 = time.perf_counter()
    with ShardWriter(out_path, Provenance.of(rerun, model=name, weights_sha256=sha)) as w:
        if source is not None:
            for unit in units:
                _add_or_skip(result, unit, opts, partial(_add_organiser, w, source, unit, raw))
        else:
            assert detector is not None
            _add_detected(w, units, detector, opts, result, raw=raw, threads=threads, progress=progress)
        w.set_skipped(result.skipped)
    result.seconds = time.perf_counter() - t0
    log.info("%s: %d video(s) written, %d skipped, in %.1f s%s", out_path, len(result.written),
             len(result.skipped), result.seconds,
             f"; the detector's {result.detect_calls} call(s) took {result.detect_s:.1f} s" if result.detect_calls
             else "")
    return result


def _add_or_skip(result: FacesStageResult, unit: Unit, opts: FacesOptions, add: Callable[[], None]) -> None:
    """Run ``add`` for ``unit``: listed as written, or as skipped by the bad-video policy when it cannot be read."""
    try:
        add()
    except MediaError as e:  # VideoError is one
        apply_bad_video_policy(result.skipped, unit.video_id, e, opts.on_bad_video)
        return
    result.written.append(unit.video_id)


def _add_organiser(w: ShardWriter, source: OrganiserCropsSource, unit: Unit, raw: tuple[str, ...]) -> None:
    """The organisers' crops of ``unit`` into ``w``."""
    w.add(source.read(unit), uncompressed=raw)


def _add_video(w: ShardWriter, unit: Unit, items: Iterable[dict[str, np.ndarray] | VideoDone], *,
               raw: tuple[str, ...]) -> None:
    """``unit``'s face rows (:func:`iter_faces` items, being made: ``items``) into ``w``; removed again if it fails
    part-way."""
    with w.video(unit.video_id, uncompressed=raw) as out:
        out.attrs = _drain_faces(items, out.append)


def _add_detected(w: ShardWriter, units: list[Unit], detector: FaceDetector, opts: FacesOptions,
                  result: FacesStageResult, *, raw: tuple[str, ...], threads: int, progress: bool) -> None:
    """Detect the faces of ``units``' videos into ``w`` in the units' order, up to ``threads`` videos at once.

    Leaving this (done, failed or interrupted) stops every video's thread and
    closes its video before the shard is finished or removed.
    """
    workers = max(1, min(threads, len(units)))
    codec = codec_threads(threads, workers)
    timed = TimedDetector(detector)
    shared = SerialDetector(timed) if workers > 1 else timed
    sources = [partial(iter_faces, u.path, shared, opts, video_id=u.video_id, progress=progress, side=u.side,
                       ffmpeg_threads=codec) for u in units]
    try:
        with PrefetchEach(sources, workers, depth=rows_ahead(opts, int(detector.n_landmarks)),
                          name="faces") as videos:
            for unit, items in zip(units, videos, strict=True):
                _add_or_skip(result, unit, opts, partial(_add_video, w, unit, items, raw=raw))
    finally:
        result.detect_s, result.detect_calls = timed.seconds, timed.calls


#: bytes of face rows (crops mostly) each video processed ahead of the one being written may hold. Videos
#: shorter than this (about 1,700 analysed frames at 224 px crops) are processed wholly in parallel; a
#: longer one waits for the writer once it is this far ahead
ROWS_AHEAD_BYTES = 256 * 2**20


def rows_ahead(opts: FacesOptions, n_landmarks: int = 5) -> int:
    """Batches of rows a video ahead of the one being written may hold: :data:`ROWS_AHEAD_BYTES` worth."""
    spec = _row_spec(n_landmarks, opts.crop_size)
    row = sum(int(np.prod(shape, dtype=np.int64)) * np.dtype(dt).itemsize for shape, dt, _ in spec.values())
    return max(PREFETCH_DEPTH, ROWS_AHEAD_BYTES // (row * opts.batch_size))


#: FFmpeg threads of a video's decoder at least: with frame threading (2 or more) the frames salvaged from a damaged
#: video are the same for any number (one thread keeps frames that several drop), so the shard does not depend on
#: the job's threads
MIN_CODEC_THREADS = 2


def codec_threads(threads: int, workers: int) -> int:
    """FFmpeg threads for each of ``workers`` videos decoded at once by a job with ``threads``: an equal share of
    the job's threads, so that the decoders together ask for about the cores the job has (FFmpeg's own choice is
    one per core of the machine for every decoder), and never fewer than :data:`MIN_CODEC_THREADS`."""
    return max(MIN_CODEC_THREADS, threads // max(1, workers))


def crop_storage(choice: str, features: Mapping[str, Any] | None = None) -> str:
    """``lzf`` or ``none``: how the faces shard stores crops, for ``faces.crop_compression: choice``.

    ``auto`` stores them raw when the face models will run on a GPU (``features.gpu``, or ``features.device``
    ``cuda``, or ``auto`` on a machine where torch sees CUDA; ``cpu`` wins over ``gpu``): a GPU embeds crops
    faster than lzf decompresses them (about 1,000 crops/s a reader thread, docs/performance.md), so
    compressed crops would set its pace. Elsewhere lzf: a CPU model is far slower than decompression, and
    rows without a face, zeros, then cost almost no disk.
    """
    if choice != "auto":
        return choice
    f = features or {}
    device = str(f.get("device", "auto"))
    if device == "cpu":  # the face models stay on the CPU, whatever the jobs are given
        return "lzf"
    if f.get("gpu") or is_cuda(device):
        return "none"
    # device auto without features.gpu: the face models run where their jobs run, on a workstation this machine;
    # asking torch costs the job about 2 s and 150 MB once, small beside decoding a shard's videos
    from affectflow.core.device import resolve_device

    return "none" if resolve_device("auto") != "cpu" else "lzf"


def run(job: Job) -> None:
    """The rule: ``params.units`` and ``input.media`` -> ``output[0]``, the faces shard."""
    joblog.setup(job.log)
    models_dir, pins = job.config["models_dir"], job.config["model_pins"]
    manifest = getattr(job.input, "detector", None)  # the detector's weights, fetched (FacesOptions.fetched_model)
    if manifest:
        prepared = PreparedModel.for_job(manifest, models_dir)
        models_dir, pins = prepared.root, prepared.pins
    run_faces_stage(
        [Unit(**u) for u in job.params.units],
        job.output[0],
        FacesOptions.from_config(job.config),
        models_dir=models_dir,
        model_pins=pins,
        media_shard=job.input.media,
        key=job.params.key,
        threads=job.threads,
        features=job.config.get("features"),
    )
