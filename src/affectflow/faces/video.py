"""Decode a video once, in display orientation, in batches of analysed frames."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import av
import cv2
import numpy as np

from affectflow.faces.errors import VideoError
from affectflow.media.decode import (
    ffmpeg_url,
    strictly_increasing,
    too_many_missing,
)

T = TypeVar("T")


@dataclass
class FrameBatch:
    """Analysed frames: their decode index, presentation time (s) and RGB pixels."""

    indices: list[int] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.indices)


@dataclass
class VideoInfo:
    """Filled while decoding: display size, rotation applied, frames decoded so far."""

    path: str
    width: int = 0
    height: int = 0
    rotation: int = 0
    n_frames_expected: int = 0
    n_frames_decoded: int = 0
    n_timestamps_repaired: int = 0  # frames whose time was not after the previous one's (media.strictly_increasing)


def rotate_upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """Apply a display-matrix rotation (degrees counter-clockwise, as FFmpeg/PyAV report it)."""
    r = int(round(rotation)) % 360
    if r == 90:
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    if r == 270:
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    if r == 180:
        return cv2.rotate(image, cv2.ROTATE_180)
    return image


def iter_batches(path: str | os.PathLike[str], info: VideoInfo, frame_stride: int = 1,
                 batch_size: int = 32) -> Iterator[FrameBatch]:
    """Decode ``path`` once and yield batches of every ``frame_stride``-th frame.

    Frame ``i`` is the i-th frame in presentation order (0-based); its time is
    ``(pts - stream.start_time) * time_base``, the convention of the media
    stage, so faces and media timestamps agree, variable frame rate included.
    Frames are rotated upright when the stream carries a display matrix.
    Anything FFmpeg cannot decode raises :class:`VideoError` naming the file.
    ``info`` is updated as decoding goes on.
    """
    if frame_stride < 1 or batch_size < 1:
        raise ValueError("frame_stride and batch_size must be >= 1")
    p = Path(path)
    container = _open_video(p)
    with container:
        stream = _video_stream(container, p, info)
        frames = _DecodedFrames(container, stream)
        batch = yield from _full_batches(frames, stream, p, info, frame_stride, batch_size)
        _check_decoded(p, info, frames.n_preroll)
        if len(batch):
            yield batch


def _open_video(p: Path) -> Any:
    """The opened container of the video file ``p``; :class:`VideoError` when it is missing or unreadable."""
    if not p.is_file():
        raise VideoError(f"{p}: video file does not exist")
    try:
        return av.open(ffmpeg_url(p))
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VideoError(f"{p}: cannot open video ({str(e).replace(ffmpeg_url(p), str(p))})") from e


def _video_stream(container: Any, p: Path, info: VideoInfo) -> Any:
    """The first video stream of ``container``, set to threaded decoding; ``info`` gets its listed frame count."""
    if not container.streams.video:
        raise VideoError(f"{p}: no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    info.n_frames_expected = int(stream.frames or 0)
    return stream


class _DecodedFrames:
    """The frames of ``stream`` in decode order, counting the edit list's pre-roll packets met on the way."""

    def __init__(self, container: Any, stream: Any) -> None:
        self.container = container
        self.stream = stream
        self.n_preroll = 0

    def __iter__(self) -> Iterator[av.VideoFrame]:
        for packet in self.container.demux(self.stream):
            if packet.is_discard and packet.size > 0:
                self.n_preroll += 1  # an edit list's pre-roll: decoded for reference, never shown
            yield from packet.decode()


def _full_batches(frames: _DecodedFrames, stream: Any, p: Path, info: VideoInfo, frame_stride: int,
                  batch_size: int) -> Generator[FrameBatch, None, FrameBatch]:
    """Yield every full batch of analysed frames (timed, upright RGB) and return the last, partial one.

    ``info`` is updated frame by frame; an FFmpeg error raises :class:`VideoError`.
    """
    tb = float(stream.time_base) if stream.time_base else 0.0
    start = stream.start_time or 0
    rate = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
    batch = FrameBatch()
    last_t: float | None = None
    try:
        for i, frame in enumerate(frames):
            if frame.pts is not None and tb:
                t = (frame.pts - start) * tb
            elif last_t is not None:
                t = last_t + 1.0 / rate
            else:
                t = 0.0
            fixed, changed = strictly_increasing(np.array([t]), last_t)  # the media stage's rule
            t, info.n_timestamps_repaired = float(fixed[0]), info.n_timestamps_repaired + changed
            last_t = t
            info.n_frames_decoded = i + 1
            if i % frame_stride:
                continue
            rgb = rotate_upright(frame.to_ndarray(format="rgb24"), frame.rotation or 0)
            if i == 0 or not info.width:
                info.rotation = int(round(frame.rotation or 0)) % 360
                info.height, info.width = rgb.shape[:2]
            batch.indices.append(i)
            batch.timestamps.append(float(t))
            batch.frames.append(rgb)
            if len(batch) >= batch_size:
                yield batch
                batch = FrameBatch()
    except av.FFmpegError as e:
        raise VideoError(
            f"{p}: decoding failed after {info.n_frames_decoded} frames ({e}); the file is truncated or corrupt"
        ) from e
    return batch


def _check_decoded(p: Path, info: VideoInfo, n_preroll: int) -> None:
    """Take the pre-roll out of ``info``'s listed frame count; raise :class:`VideoError` when ``p`` decoded to
    no frames, or to too few of those its container lists."""
    if info.n_frames_decoded == 0:
        raise VideoError(f"{p}: video stream decodes to no frames")
    # The container's count includes the pre-roll frames an edit list hides (a stream-copy cut).
    info.n_frames_expected = max(0, info.n_frames_expected - n_preroll)
    if too_many_missing(info.n_frames_decoded, info.n_frames_expected):
        # FFmpeg's threaded decoder stops quietly at a cut-off file; the container's index tells
        raise VideoError(
            f"{p}: only {info.n_frames_decoded} of the {info.n_frames_expected} frames the container lists "
            "could be decoded; the file is truncated or corrupt"
        )


_DONE = object()


def prefetch(batches: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Run ``batches`` in a background thread, ``depth`` batches ahead, so decoding overlaps detection.

    FFmpeg decodes without holding the GIL, so this pays off even on two cores;
    so do HDF5 reads and lzf decompression (the face features stage's input).
    An exception in the producer is raised here, in the consumer.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        try:
            for b in batches:
                while not stop.is_set():
                    try:
                        q.put(b, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as e:  # handed to the consumer
            q.put(e)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # closes the container when the consumer stopped early

    t = threading.Thread(target=produce, name="prefetch", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                pass
            t.join(timeout=0.05)
