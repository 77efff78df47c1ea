"""Host work of a faces job, part by part: what one job's own process spends on a frame besides decoding.

With ``faces.decode: process`` the decoding leaves the job, and with
``faces.crop_on: detector`` so does cropping; what stays is following the
target, filling the rows and writing them to the shard, all under the
interpreter's lock, so those parts bound one faces job whatever its cores.

``faces_host_work``
    milliseconds a frame of the job's own work with the faces handed over with their crops (a GPU
    node's way): building the rows (:func:`~affectflow.faces.rows.face_rows`, the target followed) and
    appending them to a video of a shard (:class:`~affectflow.io.store.VideoAppender`, raw crops, the stage's
    batches); the value is the rate that bounds (1,000 / ms), against the same with the crops cut on
    the host (a workstation's way). Details: the cost of one host crop by how its square is resized
    (enlarged, kept, shrunk by 1.25 and by 2: OpenCV's ``INTER_AREA`` takes a general, slower path for
    a factor that is not whole), and the writer against appending that opens each array again per
    batch (how appending was done before).

The frames are one real demo frame and the faces the real RetinaFace weights find on it, repeated:
decoding is left out on purpose (``gpu_host_ceiling`` and ``faces_host_processes`` measure the stage
whole).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import Figure, Options, Skip, default_config, demo_videos, interleaved, median

BATCH = 64  # frames a batch: the config's faces.batch_size on a GPU node
SQUARES = {"enlarge_180": 180, "keep_224": 224, "shrink_280": 280, "shrink_448": 448}  # the crop's square, px
TARGET_FPS = 4000.0  # gpu_host_ceiling's target: one job's own work must not cap it


def _rows_builder(detector: Any, cfg: dict[str, Any]) -> Any:
    """The rows of a video whose every frame gets what ``detector`` (a free one) gives, the target followed."""
    from affectflow.faces.rows import RowSettings, face_rows
    from affectflow.faces.tracks import TargetTracker

    settings = RowSettings(crop_size=int(cfg["crop_size"]), margin=float(cfg["margin"]))
    return face_rows(detector, settings, TargetTracker())


def _batch(frame: np.ndarray, start: int) -> Any:
    from affectflow.faces.video import FrameBatch

    return FrameBatch(list(range(start, start + BATCH)), [i / 25.0 for i in range(start, start + BATCH)],
                      [frame] * BATCH)


def _rows_ms(rows: Any, frame: np.ndarray, batches: int) -> float:
    """Milliseconds a frame of building ``batches`` batches of rows."""
    import time

    t0 = time.perf_counter()
    for b in range(batches):
        rows.batch(_batch(frame, b * BATCH))
    return (time.perf_counter() - t0) / (batches * BATCH) * 1e3


def _write_ms(rows: dict[str, np.ndarray], out: Path, batches: int, reopen: bool) -> float:
    """Milliseconds a row of appending ``batches`` copies of ``rows`` to a video's group, raw crops, through
    :class:`~affectflow.io.store.VideoAppender` (the shard's writer); ``reopen``: each array opened again for
    every batch instead (the appending of before), the same chunks and filters."""
    import time

    import h5py

    from affectflow.io.store import VideoAppender, row_chunks

    n = len(next(iter(rows.values())))
    t0 = time.perf_counter()
    with h5py.File(out, "w") as f:
        grp = f.create_group("v")
        if not reopen:
            video = VideoAppender(grp, uncompressed=("crops",))
            for _ in range(batches):
                video.append(rows)
            video.close()
        else:
            for name, a in rows.items():
                grp.create_dataset(name, shape=(0, *a.shape[1:]), maxshape=(None, *a.shape[1:]), dtype=a.dtype,
                                   chunks=row_chunks(a), compression=None if name == "crops" else "lzf")
            for b in range(batches):
                for name, a in rows.items():
                    ds = grp[name]
                    ds.resize((b + 1) * n, axis=0)
                    ds[b * n:] = a
    seconds = time.perf_counter() - t0
    out.unlink()
    return seconds / (batches * n) * 1e3


def _crop_ms(frame: np.ndarray, side: int, size: int, margin: float, n: int) -> float:
    """Milliseconds of one host crop whose square is ``side`` px (resized to ``size``)."""
    import time

    from affectflow.faces.crops import crop_square

    h, w = frame.shape[:2]
    box_side = side / (1.0 + 2.0 * margin)
    cx, cy = w / 2.0, h / 2.0
    box = np.array([cx - box_side / 2, cy - box_side / 2, cx + box_side / 2, cy + box_side / 2])
    t0 = time.perf_counter()
    for _ in range(n):
        crop_square(frame, box, size, margin)
    return (time.perf_counter() - t0) / n * 1e3


def host_work(opts: Options, out: Path) -> Figure:
    fig = Figure("faces_host_work", "faces job's own work a frame (rows + shard writes), crops handed over vs cut "
                 "on the host", unit="frames/s", baseline_label="the same, crops cut on the host",
                 target=f">= {TARGET_FPS:,.0f} frames/s (one job's own work must not cap the host ceiling)")
    from affectflow.faces.detectors import make_detector
    from benchmarks.gpu import first_faces, free_detector

    videos = {p.name: p for p in demo_videos()}
    video = videos.get("calming_01.mp4") or next(iter(videos.values()))
    cfg = {**default_config()["faces"], "crop_compression": "none"}
    size, margin = int(cfg["crop_size"]), float(cfg["margin"])
    detector = make_detector(cfg["detector"], cfg["min_score"])
    faces, frame = first_faces(video, detector)
    handed = free_detector(detector, faces, frame=frame)  # the faces come with their crops (crop_on: detector)
    handed.crop_on_device(size, margin)
    bare = free_detector(detector, faces)  # the faces alone: the rows cut the crops
    batches = 4 if opts.quick else 24
    out.mkdir(parents=True, exist_ok=True)
    one_batch = _rows_builder(handed, cfg).batch(_batch(frame, 0))
    ms: dict[str, list[float]] = {}

    def arm(name: str, fn: Callable[[], float]) -> Callable[[], None]:
        return lambda: ms.setdefault(name, []).append(fn())

    interleaved({
        "rows_handed": arm("rows_handed", lambda: _rows_ms(_rows_builder(handed, cfg), frame, batches)),
        "rows_host_crops": arm("rows_host_crops", lambda: _rows_ms(_rows_builder(bare, cfg), frame, batches)),
        "write": arm("write", lambda: _write_ms(one_batch, out / "w.h5", batches, reopen=False)),
        "write_reopened": arm("write_reopened", lambda: _write_ms(one_batch, out / "r.h5", batches, reopen=True)),
    }, opts.reps)
    part = {k: median(v) for k, v in ms.items()}
    crops = {k: median([_crop_ms(frame, side, size, margin, 20 if opts.quick else 200) for _ in range(opts.reps)])
             for k, side in SQUARES.items()}
    handed_ms, host_ms = part["rows_handed"] + part["write"], part["rows_host_crops"] + part["write"]
    fig.value, fig.baseline = 1e3 / handed_ms, 1e3 / host_ms
    fig.ratio = fig.value / fig.baseline
    fig.target_met = fig.value >= TARGET_FPS
    face_side = max(d.bbox[2] - d.bbox[0] for d in faces)
    fig.details = {"video": video.name, "frame": f"{frame.shape[1]}x{frame.shape[0]}", "faces": len(faces),
                   "face_px": float(face_side), "batch": BATCH, "batches": batches, "ms_per_frame": part,
                   "all_runs_ms": ms, "crop_ms_by_square": crops, "crop_size": size,
                   "writer_reopened_ratio": part["write_reopened"] / part["write"]}
    fig.note = (
        f"one {fig.details['frame']} frame of {video.name} and the {len(faces)} face(s) the real detector finds on "
        f"it, {batches} batches of {BATCH}, median of {opts.reps}: rows {part['rows_handed']:.3f} ms a frame with "
        f"the crops handed over ({part['rows_host_crops']:.3f} cutting them here, the face {face_side:.0f} px), "
        f"shard writes {part['write']:.3f} ms a row (raw crops; {part['write_reopened']:.3f} opening each array "
        f"again per batch, {fig.details['writer_reopened_ratio']:.2f}x). One host crop by its square: "
        + ", ".join(f"{k} {v:.3f} ms" for k, v in crops.items())
        + f". With the crops handed over, both parts hold the interpreter's lock: {fig.value:,.0f} frames/s is what "
        "they leave one job, whatever its cores (a host crop's resize lets go of the lock, but takes the host's CPU)")
    return fig


def run(opts: Options) -> list[Figure]:
    try:
        return [host_work(opts, opts.workdir / "host_work")]
    except Skip as e:
        fig = Figure("faces_host_work", "faces job's own work a frame")
        fig.status, fig.note = "skipped", str(e)
        return [fig]
