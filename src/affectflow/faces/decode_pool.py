"""Decoding in worker processes: a faces job's host work (demuxing, decoding, colour conversion) spread over
processes, the frames handed to the job in shared memory.

One process decodes in threads only as fast as the interpreter lets its
threads hand frames over; a GPU detector then waits on the host (docs/performance.md, "GPU"). With
``faces.decode: process`` each video the job works on at once is decoded by a
process of a :class:`DecodePool`, with :func:`~affectflow.faces.video.iter_batches`, the same
function the threads run, so the frames are the same bytes and the shard is the same.

Each worker process has ``depth + 1`` shared-memory slots of a batch of frames
each: it writes a decoded batch into a free slot and sends the slot's number,
the frames' indices and times; the job reads the frames in place (no copy) and
hands the slot back when it asks for the next batch, so a worker runs at most
``depth`` batches ahead. Frames larger than a slot (the size changes inside the
stream) and slots that do not fit ``/dev/shm`` travel pickled instead (a copy).
A worker that dies (a decoder crash) fails its video with :class:`VideoError`
and is replaced; stopping a video part-way stops its worker's decoding.

Workers are ``python -m affectflow.faces.decode_pool`` subprocesses talking
over two pipes (not :mod:`multiprocessing` processes: its ``spawn`` re-runs the
job's main script in the child, and a Snakemake job's main script is the job;
``fork`` would copy the locks of the detector's threads). The slots are
:class:`~multiprocessing.shared_memory.SharedMemory` of the job (its resource
tracker removes them if the job dies), which a worker maps as files of
``/dev/shm``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import mmap
import os
import secrets
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any, NoReturn

import av
import numpy as np

from affectflow.faces.errors import FaceStageError, VideoError
from affectflow.faces.video import FrameBatch, VideoInfo, iter_batches
from affectflow.media.decode import MediaError, ffmpeg_url

log = logging.getLogger("affectflow.faces")

#: ``faces.decode``: the job's threads decode (``thread``), or a process per video decoded at once (``process``)
DECODE_MODES = ("thread", "process")
#: seconds between checks that a worker is still alive while waiting for its next batch
POLL_S = 0.5
#: where shared memory lives on Linux; slots must fit in what is free there (containers often give 64 MB)
SHM_DIR = Path("/dev/shm")
#: seconds a worker may take to import what it decodes with
STARTUP_S = 60.0
#: how a decoder crashing on a damaged file ends its process (a fault of the video, not of the job)
CRASH_SIGNALS = (signal.SIGSEGV, signal.SIGABRT, signal.SIGFPE, signal.SIGILL)


@dataclass(frozen=True)
class _Task:
    """One video for a worker: :func:`iter_batches`'s arguments and the slots to write frames into."""

    number: int  # the worker's task count: messages of an earlier, stopped video are told apart by it
    path: str
    frame_stride: int
    batch_size: int
    codec_threads: int
    slots: tuple[str, ...]  # shared-memory names (none: frames travel pickled)
    slot_bytes: int
    tokens: int  # batches the worker may have out at once (the job's depth, plus the one it works on)


# ------------------------------------------------------------------------------------------- the worker process


class _Stopped(Exception):  # noqa: N818 - control flow, not an error
    """The job stopped the video (or went away)."""


class _WorkerLoop:
    """A worker: decode each task's video into its slots, a free slot at a time, until the job closes the pipe."""

    def __init__(self, jobs: Connection, out: Connection) -> None:
        self.jobs, self.out = jobs, out
        self.maps: dict[str, mmap.mmap] = {}
        self.free: deque[int] = deque()
        self.number = 0  # the task being decoded (log records are sent with it)

    def run(self) -> None:
        self.out.send(("ready", 0))
        while True:
            try:
                msg = self.jobs.recv()
            except EOFError:
                return
            if msg is None:
                return
            if msg[0] == "task":  # "free" and "stop" of a video already stopped are stale here
                try:
                    self.decode(msg[1])
                except OSError:  # the job went away mid-video (its pipe is closed): nothing left to tell it
                    return

    def decode(self, task: _Task) -> None:
        info = VideoInfo(path=task.path)
        self.free = deque(range(task.tokens))
        self.number = task.number
        try:
            maps = self._map(task)
            with contextlib.closing(iter_batches(task.path, info, frame_stride=task.frame_stride,
                                                 batch_size=task.batch_size,
                                                 codec_threads=task.codec_threads)) as gen:
                for batch in gen:
                    slot = self._take_slot(task.number)
                    shape, payload = _placed(batch, maps[slot] if maps else None, task.slot_bytes)
                    self.out.send(("batch", task.number, slot, batch.indices, batch.timestamps, shape, payload,
                                   asdict(info)))
            self.out.send(("done", task.number, asdict(info)))
        except _Stopped:
            self.out.send(("stopped", task.number, asdict(info)))
        except Exception as e:  # noqa: BLE001 - every failure goes back to the job, which raises it
            kind = "video" if isinstance(e, MediaError) else type(e).__name__
            self.out.send(("error", task.number, kind, str(e), asdict(info)))

    def _take_slot(self, number: int) -> int:
        """A free slot, waiting for the job to hand one back; :class:`_Stopped` once told to stop."""
        while not self.free:
            try:
                msg = self.jobs.recv()
            except EOFError:
                raise _Stopped from None
            if msg is None:
                raise _Stopped
            if msg[0] == "free" and msg[1] == number:
                self.free.append(msg[2])
            elif msg[0] == "stop" and msg[1] == number:
                raise _Stopped
        return self.free.popleft()

    def _map(self, task: _Task) -> list[mmap.mmap]:
        """The task's slots mapped (kept across videos while the job keeps the same slots)."""
        for name in set(self.maps) - set(task.slots):
            self.maps.pop(name).close()
        for name in task.slots:
            if name not in self.maps:
                with open(SHM_DIR / name, "r+b") as f:
                    self.maps[name] = mmap.mmap(f.fileno(), task.slot_bytes)
        return [self.maps[name] for name in task.slots]


class _ToJob(logging.Handler):
    """A worker's log records, sent to the job, which logs them as its own (so they reach the job's log)."""

    def __init__(self, loop: _WorkerLoop) -> None:
        super().__init__()
        self.loop = loop

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(OSError):
            self.loop.out.send(("log", self.loop.number, record.name, record.levelno, record.getMessage()))


def _placed(batch: FrameBatch, slot: mmap.mmap | None, slot_bytes: int) -> tuple[tuple[int, ...] | None, Any]:
    """The batch's frames written into ``slot``: their shape and no payload; or, when they do not fit, no shape
    and the frames themselves, to be pickled."""
    if not batch.frames:
        return None, []
    shape = (len(batch.frames), *batch.frames[0].shape)
    if slot is None or math.prod(shape) > slot_bytes:
        return None, batch.frames
    view = np.ndarray(shape, np.uint8, buffer=slot)
    for k, frame in enumerate(batch.frames):
        view[k] = frame
    del view  # a view left behind would keep the mapping from closing
    return shape, None


# ------------------------------------------------------------------------------------------- the job's side


def frame_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes of one RGB frame of ``path``'s first video stream (0 when it cannot be read here: the worker reports
    why, as :func:`iter_batches` would)."""
    try:
        with av.open(ffmpeg_url(path)) as container:
            ctx = container.streams.video[0].codec_context
            return int(ctx.width) * int(ctx.height) * 3
    except (av.FFmpegError, OSError, IndexError, ValueError):
        return 0


def slot_prefix(pid: int | None = None) -> str:
    """The start of the shared-memory names of a job's slots: whose they are shows in /dev/shm."""
    return f"affectflow_{pid or os.getpid()}_"


def _fits_shm(nbytes: int) -> bool:
    """Whether ``nbytes`` more fit in /dev/shm (with a tenth spare)."""
    if not SHM_DIR.is_dir():
        return False
    st = os.statvfs(SHM_DIR)
    return nbytes <= st.f_bavail * st.f_frsize * 0.9


class _Worker:
    """The job's side of one worker process: its pipes, its slots (made and removed here) and its video."""

    def __init__(self, depth: int) -> None:
        jobs_r, jobs_w = os.pipe()
        out_r, out_w = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(jobs_r), str(out_w), str(log.getEffectiveLevel())],
                pass_fds=(jobs_r, out_w), stdin=subprocess.DEVNULL)
        except OSError:
            for fd in (jobs_r, jobs_w, out_r, out_w):
                os.close(fd)
            raise
        os.close(jobs_r)
        os.close(out_w)
        self.jobs, self.out = Connection(jobs_w, readable=False), Connection(out_r, writable=False)
        self.n_slots = depth + 1
        self.slots: list[SharedMemory] = []
        self.retired: list[SharedMemory] = []  # unlinked, still mapped while frames of theirs are in use
        self.slot_bytes = 0
        self.n_tasks = 0

    def alive(self) -> bool:
        return self.process.poll() is None

    def ready(self, timeout: float = STARTUP_S) -> None:
        """Wait for the worker's first word (its imports done); :class:`FaceStageError` when it does not come."""
        if self.out.poll(timeout):
            with contextlib.suppress(EOFError, OSError):
                if self.out.recv()[0] == "ready":
                    return
        self.close(timeout=1.0)
        raise FaceStageError(f"a decoding process did not start (exit code {self.process.poll()}); run "
                             f"`{sys.executable} -m {__name__}` to see why")

    def _send(self, path: str, msg: tuple) -> None:
        try:
            self.jobs.send(msg)
        except OSError:  # the worker is gone: say how
            self._died(path)

    def batches(self, path: str, info: VideoInfo, frame_stride: int, batch_size: int,
                codec_threads: int) -> Iterator[FrameBatch]:
        """The video's batches as :func:`iter_batches` gives them, decoded by this worker."""
        self.n_tasks += 1
        number = self.n_tasks
        names = self._slots(frame_bytes(path) * batch_size)
        self._send(path, ("task", _Task(number, path, frame_stride, batch_size, codec_threads, names,
                                        self.slot_bytes, self.n_slots)))
        ended = False
        try:
            while True:
                msg = self._next(path, number)
                _update(info, msg[-1])
                if msg[0] == "batch":
                    _, _, slot, indices, timestamps, shape, payload, _ = msg
                    frames = list(payload) if shape is None else list(
                        np.ndarray(shape, np.uint8, buffer=self.slots[slot].buf))
                    yield FrameBatch(list(indices), list(timestamps), frames)
                    self._send(path, ("free", number, slot))  # the next batch is asked for: done with these frames
                    continue
                ended = True
                if msg[0] == "error":  # as iter_batches raised it: the file's fault, or the job's
                    _, _, kind, text, _ = msg
                    if kind == "video":
                        raise VideoError(text)
                    raise FaceStageError(f"{path}: decoding failed in its process ({kind}: {text})")
                return
        finally:
            if not ended:
                self._stop(path, number)

    def _next(self, path: str, number: int) -> tuple:
        """The worker's next message about task ``number`` (its log records logged here on the way)."""
        while True:
            if self.out.poll(POLL_S):
                try:
                    msg = self.out.recv()
                except (EOFError, OSError):  # gone, perhaps mid-message
                    break
                if msg[0] == "log":
                    logging.getLogger(msg[2]).log(msg[3], "%s", msg[4])
                elif msg[1] == number:
                    return msg
                continue  # a stopped video's last words
            if not self.alive():
                break
        self._died(path)

    def _died(self, path: str) -> NoReturn:
        """Raise what the worker's end says: a decoder crash is the video's (:class:`VideoError`); being killed
        (out of memory, a full /dev/shm) or failing otherwise is not, and fails the job (:class:`FaceStageError`)."""
        try:
            code = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        if code < 0 and -code in CRASH_SIGNALS:
            raise VideoError(f"{path}: the decoding process crashed ({signal.Signals(-code).name}) on this file; "
                             "it is likely corrupt")
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"ended with exit code {code}"
        raise FaceStageError(f"{path}: the decoding process {how} (out of memory, or /dev/shm full?); the video "
                             "itself may be fine")

    def _stop(self, path: str, number: int) -> None:
        """Stop the worker's decoding of video ``number`` and wait until it says so (or dies)."""
        with contextlib.suppress(OSError, ValueError):
            self.jobs.send(("stop", number))
        with contextlib.suppress(VideoError, FaceStageError):
            while self._next(path, number)[0] == "batch":
                pass

    def _slots(self, nbytes: int) -> tuple[str, ...]:
        """Slot names for batches of ``nbytes`` (made anew when too small); none when they would not fit."""
        if 0 < nbytes <= self.slot_bytes:
            return tuple(s.name for s in self.slots)
        if nbytes == 0:  # unreadable here: the worker will say why
            return tuple(s.name for s in self.slots)
        self._release_slots()
        if not _fits_shm(nbytes * self.n_slots):
            log.warning("decoded frames travel pickled: %d slots of %.0f MiB do not fit in %s", self.n_slots,
                        nbytes / 2**20, SHM_DIR)
            return ()
        try:
            for _ in range(self.n_slots):
                shm = SharedMemory(name=f"{slot_prefix()}{secrets.token_hex(6)}", create=True, size=nbytes)
                self.slots.append(shm)
                # reserved now: tmpfs gives pages when written, so slots that over-commit /dev/shm (several jobs,
                # a container's 64 MB) would end their worker with SIGBUS mid-batch
                os.posix_fallocate(shm._fd, 0, nbytes)
        except OSError as e:
            self._release_slots()
            log.warning("decoded frames travel pickled: %d slots of %.0f MiB do not fit in %s (%s)", self.n_slots,
                        nbytes / 2**20, SHM_DIR, e.strerror or e)
            return ()
        self.slot_bytes = nbytes
        return tuple(s.name for s in self.slots)

    def _release_slots(self) -> None:
        for shm in self.slots:
            with contextlib.suppress(FileNotFoundError):
                shm.unlink()
        self.retired, self.slots, self.slot_bytes = self.retired + self.slots, [], 0
        still = []
        for shm in self.retired:
            try:
                shm.close()
            except BufferError:  # a view still held: tried again later
                still.append(shm)
        self.retired = still

    def close(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.jobs.send(None)
        with contextlib.suppress(OSError):
            self.jobs.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(OSError):
            self.out.close()
        self._release_slots()


def _update(info: VideoInfo, state: dict[str, Any]) -> None:
    for name, value in state.items():
        setattr(info, name, value)


class DecodePool:
    """``processes`` decoding processes for one faces job; a video takes one for as long as it decodes.

    Use it as a context manager: leaving it ends the processes and frees
    their shared memory. :meth:`batches` is :func:`iter_batches` run in a
    worker; it waits for a free worker when all are busy.
    """

    def __init__(self, processes: int, depth: int = 2) -> None:
        if processes < 1 or depth < 1:
            raise ValueError("a decode pool needs processes >= 1 and depth >= 1")
        self._depth = depth
        self._lock = threading.Condition()
        self._closed = False
        self._idle: list[_Worker] = []
        self._busy: list[_Worker] = []
        try:
            for _ in range(processes):
                self._idle.append(_Worker(depth))
            for w in self._idle:
                w.ready()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def batches(self, path: str | os.PathLike[str], info: VideoInfo, frame_stride: int = 1, batch_size: int = 32,
                codec_threads: int = 0) -> Iterator[FrameBatch]:
        """Decode ``path`` in a worker process (arguments as :func:`iter_batches`); ``info`` is updated as it goes.

        A batch's frames are views of the worker's shared memory: valid until the next batch is asked for (or
        the iterator is closed), then written over. Copy what must live longer.
        """
        if frame_stride < 1 or batch_size < 1 or codec_threads < 0:
            raise ValueError("frame_stride and batch_size must be >= 1, codec_threads >= 0")
        worker = self._take()
        try:
            yield from worker.batches(str(path), info, frame_stride, batch_size, codec_threads)
        finally:
            self._give_back(worker)

    def _take(self) -> _Worker:
        with self._lock:
            while not self._idle and not self._closed:
                if not self._busy:
                    raise RuntimeError("the decode pool has no process left")
                self._lock.wait(POLL_S)
            if self._closed:
                raise RuntimeError("the decode pool is closed")
            worker = self._idle.pop()
            self._busy.append(worker)
        if not worker.alive():  # died while idle: a fresh one takes its place
            fresh = self._replace(worker)
            with self._lock:
                self._busy.append(fresh)
            return fresh
        return worker

    def _replace(self, worker: _Worker) -> _Worker:
        """A started worker in place of ``worker`` (gone); it is no longer counted."""
        with self._lock:
            if worker in self._busy:
                self._busy.remove(worker)
        worker.close(timeout=0)
        fresh = _Worker(self._depth)
        fresh.ready()
        return fresh

    def _give_back(self, worker: _Worker) -> None:
        if not worker.alive() and not self._closed:  # died on its video: a fresh one takes its place
            try:
                worker = self._replace(worker)
            except (OSError, FaceStageError) as e:
                log.warning("a decoding process could not be started again (%s): one fewer", e)
                with self._lock:
                    self._lock.notify_all()
                return
        with self._lock:
            if worker in self._busy:
                self._busy.remove(worker)
            if not self._closed:
                self._idle.append(worker)
                self._lock.notify()
                return
        worker.close()

    def close(self) -> None:
        """End the idle workers now (busy ones end as their videos are stopped) and free their slots."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._lock.notify_all()
        for w in idle:
            w.close()


def _worker_main(jobs_fd: int, out_fd: int, level: int) -> None:
    """A worker process: its videos' log records go to the job; Ctrl-C is the job's to handle (it stops us)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    loop = _WorkerLoop(Connection(jobs_fd, writable=False), Connection(out_fd, readable=False))
    root = logging.getLogger()
    root.handlers[:] = [_ToJob(loop)]
    root.setLevel(level)
    loop.run()


if __name__ == "__main__":  # a worker: python -m affectflow.faces.decode_pool JOBS_FD OUT_FD LOG_LEVEL
    _worker_main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
