"""The faces stage: every analysed frame of every video of a shard -> one face record per video."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from affectflow.faces.crops import crop_square
from affectflow.faces.detectors import DETECTORS, Detection, FaceDetector, make_detector
from affectflow.faces.errors import FaceStageError
from affectflow.faces.organiser import OrganiserCropsSource
from affectflow.faces.video import VideoInfo, iter_batches, prefetch
from affectflow.media import MediaError, apply_bad_video_policy
from affectflow.store import Provenance, ShardWriter, VideoRecord
from affectflow.units import Unit

log = logging.getLogger("affectflow.faces")

DEFAULTS: dict[str, Any] = {
    "detector": "mediapipe",
    "crop_size": 224,
    "margin": 0.2,
    "min_score": 0.5,
    "frame_stride": 1,
    "batch_size": 32,
    "align": False,
    "organiser_crops_dir": None,
    "crop_compression": "lzf",
}
CROP_COMPRESSIONS = ("lzf", "none")
# Keys that change no array of the shard (so they stay out of its provenance).
_NOT_PROVENANCE = ("contact_sheets", "batch_size", "crop_compression")


def faces_config(faces_cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """``faces_cfg`` with defaults filled in and checked."""
    cfg = {**DEFAULTS, **dict(faces_cfg or {})}
    if cfg["detector"] not in DETECTORS:
        raise FaceStageError(f"unknown face detector {cfg['detector']!r}; choose one of {', '.join(DETECTORS)}")
    for key in ("crop_size", "frame_stride", "batch_size"):
        if int(cfg[key]) < 1:
            raise FaceStageError(f"faces.{key} must be >= 1, got {cfg[key]!r}")
    if cfg["crop_compression"] not in CROP_COMPRESSIONS:
        raise FaceStageError(f"faces.crop_compression must be one of {', '.join(CROP_COMPRESSIONS)}, "
                             f"got {cfg['crop_compression']!r}")
    if float(cfg["margin"]) < 0:
        raise FaceStageError(f"faces.margin must be >= 0, got {cfg['margin']!r}")
    if cfg["detector"] == "organiser" and not cfg.get("organiser_crops_dir"):
        raise FaceStageError("detector 'organiser' needs faces.organiser_crops_dir (a folder of <video_id>/00001.jpg)")
    return cfg


@dataclass
class FacesStageResult:
    """What the stage wrote and what it skipped (video_id, reason)."""

    written: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _usable(d: Detection) -> bool:
    """A box with finite corners and positive area (a box may reach past the frame's edges)."""
    return bool(np.all(np.isfinite(d.bbox))) and d.area > 0


def largest(faces: list[Detection]) -> Detection | None:
    """The face with the largest box (ties: the higher score)."""
    return max(faces, key=lambda d: (d.area, d.score)) if faces else None


def stream_faces(path: str | os.PathLike[str], detector: FaceDetector, cfg: Mapping[str, Any],
                 append: Callable[[dict[str, np.ndarray]], None], video_id: str | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Decode ``path`` once, detect faces in every ``frame_stride``-th frame, keep the largest, crop it.

    Each decoded batch's rows (frame_index, timestamps, has_face, bbox, score,
    landmarks, crops, n_faces) go to ``append`` as soon as they are ready, so
    memory does not grow with the video's length; returns the video's
    attributes (sizes, counts, warnings) once it is decoded to the end.
    """
    cfg = faces_config(cfg)
    size, margin, align = int(cfg["crop_size"]), float(cfg["margin"]), bool(cfg["align"])
    stride, bs = int(cfg["frame_stride"]), int(cfg["batch_size"])
    k = int(detector.n_landmarks)
    spec = {
        "frame_index": ((), np.int32, 0), "timestamps": ((), np.float64, np.nan),
        "has_face": ((), bool, False), "bbox": ((4,), np.float32, np.nan),
        "score": ((), np.float32, 0.0), "landmarks": ((k, 2), np.float32, np.nan),
        "crops": ((size, size, 3), np.uint8, 0), "n_faces": ((), np.int16, 0),
    }
    info = VideoInfo(path=str(path))
    vid = video_id or Path(path).stem
    n_rows = n_face = n_several = 0
    t0 = time.perf_counter()
    bar = tqdm(desc=f"faces {vid}", unit="frame", disable=not progress, leave=False, mininterval=1.0)
    try:
        for batch in prefetch(iter_batches(path, info, frame_stride=stride, batch_size=bs)):
            if n_rows == 0:
                bar.reset(total=info.n_frames_expected or None)
            a = {name: np.full((len(batch.frames), *shp), fill, dt) for name, (shp, dt, fill) in spec.items()}
            for r, (i, t, frame, faces) in enumerate(zip(batch.indices, batch.timestamps, batch.frames,
                                                         detector.detect(batch.frames), strict=True)):
                faces = [d for d in faces if _usable(d)]
                a["frame_index"][r], a["timestamps"][r], a["n_faces"][r] = i, t, min(len(faces), 32767)
                best = largest(faces)
                if best is None:
                    continue
                a["has_face"][r], a["score"][r], a["bbox"][r] = True, best.score, best.bbox
                lm = np.asarray(best.landmarks, np.float32).reshape(-1, 2)[:k]
                a["landmarks"][r, : len(lm)] = lm
                a["crops"][r] = crop_square(frame, best.bbox, size, margin, lm, align)
            append(a)
            n_rows += len(batch.frames)
            n_face += int(a["has_face"].sum())
            n_several += int((a["n_faces"] > 1).sum())
            bar.update(info.n_frames_decoded - bar.n)
    finally:
        bar.close()
    dt = time.perf_counter() - t0
    log.info("%s: %d frames decoded, %d analysed, %d with a face, %.1f frames/s", vid, info.n_frames_decoded,
             n_rows, n_face, info.n_frames_decoded / dt if dt > 0 else float("nan"))
    # Survivable oddities, listed per video like the media stage's (affectflow.problems collects them).
    warnings: list[str] = []
    if n_face == 0:
        warnings.append(f"no face detected in any of the {n_rows} analysed frames")
    if n_several:
        warnings.append(f"several faces in {n_several} of {n_rows} analysed frames: the largest one is kept")
    for w in warnings:
        log.warning("%s: %s", vid, w)
    if info.n_frames_expected and info.n_frames_expected != info.n_frames_decoded:
        log.warning("%s: container says %d frames, %d decoded", vid, info.n_frames_expected, info.n_frames_decoded)
    return {
        "width": info.width, "height": info.height, "rotation": info.rotation,
        "n_frames_decoded": info.n_frames_decoded, "detector": detector.name, "frame_stride": stride,
        "n_with_face": n_face, "warnings": warnings,
    }


def detect_video(path: str | os.PathLike[str], detector: FaceDetector, cfg: Mapping[str, Any],
                 video_id: str | None = None, progress: bool = True) -> VideoRecord:
    """:func:`stream_faces` into memory: the whole video's rows as one record (for short videos and inspection)."""
    parts: list[dict[str, np.ndarray]] = []
    attrs = stream_faces(path, detector, cfg, parts.append, video_id=video_id, progress=progress)
    arrays = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}  # iter_batches: >= 1 frame
    return VideoRecord(video_id=video_id or Path(path).stem, arrays=arrays, attrs=attrs)


def run_faces_stage(
    units: list[Unit],
    out_path: str | os.PathLike[str],
    faces_cfg: Mapping[str, Any] | None,
    on_bad_video: str = "skip",
    *,
    models_dir: str | os.PathLike[str] | None = None,
    model_pins: Mapping[str, str] | None = None,
    detector: FaceDetector | None = None,
    progress: bool = True,
) -> FacesStageResult:
    """Write the faces shard ``out_path`` (``faces/{detector}/{shard}.h5``) for ``units``.

    The shard appears only when every video was processed or skipped; a video
    that cannot be decoded is skipped with a warning (``on_bad_video="skip"``)
    and listed in the shard's ``skipped`` attribute, or raises naming the file
    (``"fail"``). A wrong configuration or missing weights always raises.
    ``detector`` overrides the one ``faces_cfg`` names (for reuse across shards).
    """
    if on_bad_video not in ("skip", "fail"):
        raise ValueError(f"on_bad_video must be 'skip' or 'fail', got {on_bad_video!r}")
    cfg = faces_config(faces_cfg)
    source: OrganiserCropsSource | None = None
    if cfg["detector"] == "organiser":
        source = OrganiserCropsSource(cfg["organiser_crops_dir"], int(cfg["crop_size"]), int(cfg["frame_stride"]))
        name, sha = source.name, ""
    else:
        if detector is None:
            detector = make_detector(cfg, models_dir=models_dir, model_pins=model_pins)
        name, sha = detector.name, detector.weights_sha256
    prov_cfg = {k: v for k, v in cfg.items() if k not in _NOT_PROVENANCE}
    raw = ("crops",) if cfg["crop_compression"] == "none" else ()
    result = FacesStageResult()
    with ShardWriter(out_path, Provenance(stage="faces", model=name, weights_sha256=sha, config=prov_cfg)) as w:
        for unit in units:
            try:
                if source is not None:
                    w.add(source.read(unit), uncompressed=raw)
                else:
                    assert detector is not None
                    # removed again if the video fails part-way
                    with w.video(unit.video_id, uncompressed=raw) as out:
                        out.attrs = stream_faces(unit.path, detector, cfg, out.append, video_id=unit.video_id,
                                                 progress=progress)
            except MediaError as e:  # VideoError is one
                apply_bad_video_policy(result.skipped, unit.video_id, e, on_bad_video)
                continue
            result.written.append(unit.video_id)
        w.set_skipped(result.skipped)
    return result
