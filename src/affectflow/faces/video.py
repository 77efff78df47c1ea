"""Decode a video once, in display orientation, in batches of analysed frames."""

from __future__ import annotations

import heapq
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

import av
import cv2
import numpy as np

from affectflow.faces.errors import VideoError
from affectflow.media.decode import (
    VideoClock,
    ffmpeg_url,
    strictly_increasing,
    too_many_missing,
)

T = TypeVar("T")
log = logging.getLogger("affectflow.faces")

#: FFmpeg threads of a video's decoder at least: with frame threading (2 or more) the frames salvaged from a damaged
#: video are the same for any number (one thread keeps frames that several drop), so the shard does not depend on
#: the job's threads
MIN_CODEC_THREADS = 2


@dataclass
class FrameBatch:
    """Analysed frames: their index in decoding order (where the decoder lost frames, the faces stage numbers
    them among the media stage's frames once the video is decoded), presentation time (s) and RGB pixels."""

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
    n_size_changes: int = 0  # times the frame size changed mid-stream (a webcam renegotiating; joined recordings)


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
                 batch_size: int = 32, codec_threads: int = 0) -> Iterator[FrameBatch]:
    """Decode ``path`` once and yield batches of every ``frame_stride``-th frame.

    Frame ``i`` is the i-th frame in presentation order (0-based); its time is
    ``(pts - first frame's pts) * time_base`` by the media stage's rule
    (:class:`~affectflow.media.decode.VideoClock`: joined MPEG recordings made
    one timeline, frames before an MPEG capture's first keyframe left out), so
    faces and media timestamps agree, variable frame rate included.
    Frames are rotated upright when the stream carries a display matrix. A
    batch holds frames of one size: a frame whose size differs from the one
    before (a resolution change mid-stream) starts a new batch, since
    detectors run a batch at one input size.
    A file FFmpeg cannot open or read, or whose decoded frames fall well short
    of those its container lists, raises :class:`VideoError` naming the file
    (packets the decoder rejects are passed over: :class:`_DecodedFrames`).
    ``info`` is updated as decoding goes on. ``codec_threads``: FFmpeg's
    decoding threads for this video (0: FFmpeg's choice, about one per core),
    so that several videos decoded at once can share a job's cores. The frames
    of a sound file are the same for any number; so are those salvaged from a
    damaged one for any number from 2 (frame threading drops a frame that fails
    to decode, where one thread conceals it and outputs it).
    """
    if frame_stride < 1 or batch_size < 1 or codec_threads < 0:
        raise ValueError("frame_stride and batch_size must be >= 1, codec_threads >= 0")
    p = Path(path)
    container = _open_video(p)
    with container:
        stream = _video_stream(container, p, info, codec_threads)
        frames = _DecodedFrames(container, stream, p)
        batch = yield from _full_batches(frames, stream, p, info, frame_stride, batch_size)
        if frames.n_rejected:
            log.warning("%s: the decoder rejected %d packet(s) (%s)", p, frames.n_rejected, frames.first_error)
        info.n_frames_expected = frames.clock.listed(info.n_frames_expected)
        _check_decoded(p, info, frames.n_preroll)
        if len(batch):
            yield batch


def codec_threads(threads: int, workers: int) -> int:
    """FFmpeg threads for each of ``workers`` videos decoded at once by a job with ``threads``: an equal share of
    the job's threads, so that the decoders together ask for about the cores the job has (FFmpeg's own choice is
    one per core of the machine for every decoder), and never fewer than :data:`MIN_CODEC_THREADS`."""
    return max(MIN_CODEC_THREADS, threads // max(1, workers))


def _open_video(p: Path) -> Any:
    """The opened container of the video file ``p``; :class:`VideoError` when it is missing or unreadable."""
    if not p.is_file():
        raise VideoError(f"{p}: video file does not exist")
    try:
        return av.open(ffmpeg_url(p))
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VideoError(f"{p}: cannot open video ({str(e).replace(ffmpeg_url(p), str(p))})") from e


def _video_stream(container: Any, p: Path, info: VideoInfo, codec_threads: int = 0) -> Any:
    """The first video stream of ``container``, set to threaded decoding on ``codec_threads`` threads (0: FFmpeg's
    choice); ``info`` gets its listed frame count."""
    if not container.streams.video:
        raise VideoError(f"{p}: no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stream.thread_count = codec_threads
    info.n_frames_expected = int(stream.frames or 0)
    return stream


class _DecodedFrames:
    """The frames of ``stream`` in decode order, counting the edit list's pre-roll packets met on the way.

    A packet the decoder rejects is passed over, not raised: FFmpeg's frame-
    threaded decoder reports such errors or not depending on its number of
    threads and their timing, so raising them would make a damaged video's
    fate depend on the threads. What was lost shows in the frame count, which
    :func:`_check_decoded` judges against the container's.

    A container of decode times only (AVI, :attr:`VideoClock.decode_times`)
    gives its k-th shown frame the k-th chunk time (a queue), since the decoder
    shows frames in order. That is exact while nothing is lost; a lost frame
    shifts the queue by one, and frame threading says so late, after frames
    that follow the loss were shown. The decoder also hands each frame the time
    of the chunk it came in (``frame.pts``): exact across losses, but in a
    stream with B-frames a decode time, not the time it is shown. So from the
    first frame whose own time is not the queue's (a loss, or B-frames), frames
    are held :data:`REORDER_WINDOW` deep and each is given, in the order they
    are shown, the smallest own time of those held: the k-th shown frame gets
    the k-th time of the frames that were decoded. That is exact for a sound
    stream with or without B-frames, and for a damaged stream without them; in
    a damaged stream with B-frames, the frames between a lost frame's decode
    and display places are a frame off (which frame was lost, in the order
    frames are shown, the file does not say).
    """

    #: frames a decoder may hold back to show them in order (H.264's most): how many are held to order their times
    REORDER_WINDOW = 16

    def __init__(self, container: Any, stream: Any, path: str | os.PathLike[str] | None = None) -> None:
        self.container = container
        self.stream = stream
        self.clock = VideoClock(container, stream, path)
        self.n_preroll = 0
        self.n_rejected = 0  # packets the decoder reported as undecodable
        self.first_error = ""

    def __iter__(self) -> Iterator[tuple[av.VideoFrame, int | None]]:
        """Each shown frame with its time on the clock (stream time base; None: the file gives none)."""
        if self.clock.decode_times:
            yield from self._at_decode_times()
            return
        for f, _ in self._decoded(None):
            if self.clock.shows(f.pts):
                yield f, f.pts

    def _decoded(self, times: deque[int] | None) -> Iterator[tuple[av.VideoFrame, int | None]]:
        """Every frame the decoder shows, with the first of ``times`` (the chunk times of frames not yet shown,
        kept here; None: no queue)."""
        for packet in self.container.demux(self.stream):
            if packet.is_discard and packet.size > 0:
                self.n_preroll += 1  # an edit list's pre-roll: decoded for reference, never shown
            self.clock.admit(packet)  # every packet is decoded: one that shows no frame may carry parameter sets
            if self.clock.repeated:
                continue  # ... except a chunk the demuxer read again: its frame was shown already
            if times is not None and packet.size and packet.pts is not None:
                times.append(packet.pts)
            try:
                frames = packet.decode()
            except av.FFmpegError as e:
                self.n_rejected += 1
                self.first_error = self.first_error or str(e)
                if times and packet.size:
                    times.pop()  # its frame is lost
                continue
            for f in frames:
                yield f, (times.popleft() if times else None)

    def _at_decode_times(self) -> Iterator[tuple[av.VideoFrame, int | None]]:
        """The frames of a decode-time container, each at the queue's time until a frame's own time differs, then
        at the smallest own time of the frames held (see the class)."""
        held: deque[av.VideoFrame] = deque()
        times: list[int] = []  # a heap: the own times of the frames held (the queue's where a frame has none)
        for f, queued in self._decoded(deque()):
            mine = f.pts if f.pts is not None else queued
            if not held and mine == queued:
                yield f, queued
                continue
            held.append(f)
            if mine is not None:
                heapq.heappush(times, mine)
            if len(held) > self.REORDER_WINDOW:
                yield held.popleft(), (heapq.heappop(times) if times else None)
        while held:
            yield held.popleft(), (heapq.heappop(times) if times else None)


def _full_batches(frames: _DecodedFrames, stream: Any, p: Path, info: VideoInfo, frame_stride: int,
                  batch_size: int) -> Generator[FrameBatch, None, FrameBatch]:
    """Yield every full batch of analysed frames (timed, upright RGB) and return the last, partial one.

    ``info`` is updated frame by frame; an FFmpeg error reading the file raises :class:`VideoError`.
    """
    tb = float(stream.time_base) if stream.time_base else 0.0
    rate = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
    batch = FrameBatch()
    last_t: float | None = None
    try:
        for i, (frame, pts) in enumerate(frames):
            if pts is not None and tb:
                t = (pts - frames.clock.zero) * tb
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
            if len(batch) and batch.frames[-1].shape != rgb.shape:
                info.n_size_changes += 1
                log.info("%s: frame %d is %dx%d, the frames before it %dx%d", p, i, rgb.shape[1], rgb.shape[0],
                         batch.frames[-1].shape[1], batch.frames[-1].shape[0])
                yield batch
                batch = FrameBatch()
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


class _Lane(Generic[T]):
    """One background thread running an iterator, at most ``depth`` items ahead of its consumer.

    The thread calls ``open_items`` itself, so opening (a video container)
    costs the consumer nothing, and closes what it opened itself when it stops
    (a generator running in one thread cannot be closed from another). An
    exception in the producer is handed over and raised in the consumer, in
    its place in the sequence of items.
    """

    def __init__(self, open_items: Callable[[], Iterator[T]], depth: int, name: str) -> None:
        self._q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._consumed = False
        self._thread = threading.Thread(target=self._produce, args=(open_items,), name=name, daemon=True)
        self._thread.start()

    def _produce(self, open_items: Callable[[], Iterator[T]]) -> None:
        items: Iterator[T] | None = None
        try:
            items = open_items()
            for item in items:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as e:  # handed to the consumer
            self._put(e)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # closes the container when the consumer stopped early

    def _put(self, item: Any) -> bool:
        """Queue ``item`` unless the consumer stopped first (False): a full queue never blocks a stopped lane."""
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        if self._consumed:  # the end or the error was handed over already: nothing more will come
            return
        while True:
            item = self._q.get()
            if item is _DONE or isinstance(item, BaseException):
                self._consumed = True
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        """Ask the producer to stop after the item it is making (without waiting: :meth:`close` waits)."""
        self._stop.set()

    def close(self) -> None:
        """Stop the producer and wait for it (it closes what it opened); what it queued is dropped."""
        self.stop()
        while self._thread.is_alive():  # unblock a producer waiting on a full queue
            self._drain()
            self._thread.join(timeout=0.05)
        self._drain()  # free the items left (decoded frames)

    def _drain(self) -> None:
        try:
            while True:
                self._q.get_nowait()
        except queue.Empty:
            pass


def prefetch(batches: Iterator[T], depth: int = 2, name: str = "prefetch") -> Iterator[T]:
    """Run ``batches`` in a background thread, ``depth`` batches ahead, so decoding overlaps detection.

    FFmpeg decodes without holding the GIL, so this pays off even on two cores;
    so do HDF5 reads and lzf decompression (the face features stage's input).
    An exception in the producer is raised here, in the consumer. ``name``: the
    thread's, which says what it runs (in profiles, and to a meter that wraps
    ``prefetch``).
    """
    lane = _Lane(lambda: batches, depth, name=name)
    try:
        yield from lane
    finally:
        lane.close()


class PrefetchEach(Generic[T]):
    """Several iterators run ahead in parallel, handed to one consumer strictly in their order.

    ``sources[i]()`` opens the i-th iterator (e.g. :func:`iter_batches` of a
    shard's i-th video). Iterating yields one iterator per source, in order;
    while the consumer works on the i-th, the following ones already run in
    background threads, ``workers`` sources at most (the consumer's included)
    and each at most ``depth`` items ahead, so memory stays bounded. The
    consumer sees the same items, errors included, in the same order as when
    it ran the sources one after another: each source's error is raised when
    the consumer reaches it, and the consumer may go on to the next source.
    A source is stopped (and what it opened closed) when the consumer moves
    past it; :meth:`close` (or leaving the ``with`` block) stops them all, so
    no thread outlives a failure. With one worker this is :func:`prefetch` of
    one source after another.
    """

    def __init__(self, sources: Sequence[Callable[[], Iterator[T]]], workers: int = 1, depth: int = 2,
                 name: str = "prefetch") -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._sources = list(sources)
        self._workers = workers
        self._depth = depth
        self._name = name
        self._lanes: dict[int, _Lane[T]] = {}
        self._next = 0  # the index of the next source to start

    def __enter__(self) -> PrefetchEach[T]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __iter__(self) -> Iterator[Iterator[T]]:
        for i in range(len(self._sources)):
            self._start_up_to(i + self._workers)
            lane = self._lanes.get(i)
            if lane is None:  # close() came first
                return
            try:
                yield iter(lane)
            finally:
                done = self._lanes.pop(i, None)  # None: close() stopped it already
                if done is not None:
                    done.close()

    def _start_up_to(self, end: int) -> None:
        """Start the sources before index ``end`` that are not started yet."""
        while self._next < min(end, len(self._sources)):
            i = self._next
            self._lanes[i] = _Lane(self._sources[i], self._depth, name=f"{self._name}-{i}")
            self._next += 1

    def close(self) -> None:
        """Stop every source still running and wait for its thread; none is started after this."""
        self._next = len(self._sources)
        lanes = list(self._lanes.values())
        self._lanes.clear()
        for lane in lanes:  # all asked first: one waited for does not leave the others working (and queueing
            lane.stop()     # calls on a shared detector) meanwhile
        for lane in lanes:
            lane.close()
