"""Decoding in worker processes (faces.decode: process): the frames of iter_batches, errors included, and no
process or shared memory left behind whatever happens to a video."""

from __future__ import annotations

import logging
import os
import signal
import time

import numpy as np
import pytest

from affectflow.faces import decode_pool
from affectflow.faces.decode_pool import DecodePool
from affectflow.faces.errors import FaceStageError, VideoError
from affectflow.faces.video import VideoInfo, iter_batches
from affectflow.media.decode import MediaError
from affectflow.testing.faces import decode_processes, shm_left


def decoded(batches) -> tuple[list, str | None]:
    """Each batch's indices, times and frames (copied: a pool's frames are reused once the next is asked for),
    and the error that ended them."""
    got = []
    try:
        for b in batches:
            got.append((b.indices, b.timestamps, [f.copy() for f in b.frames]))
    except VideoError as e:
        return got, str(e)
    return got, None


def assert_same(a: tuple[list, str | None], b: tuple[list, str | None]) -> None:
    assert a[1] == b[1]
    assert len(a[0]) == len(b[0])
    for (ia, ta, fa), (ib, tb, fb) in zip(a[0], b[0], strict=True):
        assert ia == ib and ta == tb and len(fa) == len(fb)
        for x, y in zip(fa, fb, strict=True):
            assert x.dtype == y.dtype and np.array_equal(x, y)


@pytest.fixture(scope="module")
def pool():
    with DecodePool(2) as p:
        yield p
    assert not decode_processes() and not shm_left()


@pytest.fixture
def webcam(video_factory, tmp_path):
    """320x240 then 480x360 frames on one clock: the second size's batches do not fit the slots made for the
    first, so they travel pickled."""
    from affectflow.testing.corpus import joined_continuous

    parts = [video_factory(f"{w}.ts", duration=0.4, fps=25, audio="tone", size=f"{w}x{w * 3 // 4}") for w in (320, 480)]
    return joined_continuous(tmp_path / "web cam's.ts", parts)


def test_the_same_frames_and_info_as_iter_batches(pool, video_factory, webcam, tmp_path) -> None:
    plain = video_factory("odd name, ü.mp4", duration=1.0, fps=25, audio="none", size="320x240")
    vfr = video_factory("vfr.mp4", duration=1.0, fps=25, audio="none", vfr=True)
    for path, stride, batch in ((plain, 1, 8), (plain, 3, 4), (vfr, 1, 5), (webcam, 1, 4)):
        info_t, info_p = VideoInfo(str(path)), VideoInfo(str(path))
        ref = decoded(iter_batches(path, info_t, frame_stride=stride, batch_size=batch, codec_threads=2))
        got = decoded(pool.batches(path, info_p, frame_stride=stride, batch_size=batch, codec_threads=2))
        assert_same(ref, got)
        assert info_p == info_t and ref[1] is None, path
    assert VideoInfo(str(webcam)) != info_t and info_t.n_size_changes == 1


def test_bad_videos_fail_with_the_same_message(pool, video_factory, tmp_path) -> None:
    made = video_factory("made.mp4", duration=2.0, fps=25, audio="none", size="320x240")
    cut = tmp_path / "cut off.mp4"
    cut.write_bytes(made.read_bytes()[: made.stat().st_size // 2])
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    for path in (cut, text, tmp_path / "missing.mp4"):
        ref = decoded(iter_batches(path, VideoInfo(str(path)), batch_size=8, codec_threads=2))
        got = decoded(pool.batches(path, VideoInfo(str(path)), batch_size=8, codec_threads=2))
        assert got[1] is not None and str(path) in got[1]
        assert_same(ref, got)


def test_stopping_part_way_frees_the_worker(pool, video_factory) -> None:
    path = video_factory("v.mp4", duration=2.0, fps=25, audio="none", size="320x240")
    ref = decoded(iter_batches(path, VideoInfo(str(path)), batch_size=4, codec_threads=2))
    for _ in range(3):  # more videos stopped than workers: each stop hands its worker back
        it = pool.batches(path, VideoInfo(str(path)), batch_size=4, codec_threads=2)
        next(it)
        it.close()
    assert_same(ref, decoded(pool.batches(path, VideoInfo(str(path)), batch_size=4, codec_threads=2)))


def test_frames_too_large_for_shared_memory_travel_pickled(monkeypatch, video_factory) -> None:
    monkeypatch.setattr(decode_pool, "_fits_shm", lambda nbytes: False)  # a container's small /dev/shm
    path = video_factory("v.mp4", duration=1.0, fps=25, audio="none", size="320x240")
    ref = decoded(iter_batches(path, VideoInfo(str(path)), batch_size=8, codec_threads=2))
    before = set(shm_left())  # the module's pool's
    with DecodePool(1) as p:
        assert_same(ref, decoded(p.batches(path, VideoInfo(str(path)), batch_size=8, codec_threads=2)))
        assert set(shm_left()) == before  # none made


@pytest.mark.parametrize(("sig", "error", "says"), [
    (signal.SIGSEGV, VideoError, r"v\.mp4: the decoding process crashed \(SIGSEGV\) on this file"),  # a decoder
    (signal.SIGKILL, FaceStageError, r"v\.mp4: the decoding process was killed by SIGKILL \(out of memory"),
])
def test_a_worker_that_dies_fails_its_video_and_is_replaced(video_factory, sig, error, says) -> None:
    """A decoder that crashes on a file fails that video (skipped by the bad-video policy); one killed from
    outside (the OOM killer) fails the job: the video may be fine."""
    path = video_factory("v.mp4", duration=2.0, fps=25, audio="none", size="320x240")
    ref = decoded(iter_batches(path, VideoInfo(str(path)), batch_size=4, codec_threads=2))
    others = set(decode_processes())  # the module's pool's
    with DecodePool(1) as p:
        it = p.batches(path, VideoInfo(str(path)), batch_size=4, codec_threads=2)
        next(it)
        (pid,) = set(decode_processes()) - others
        os.kill(pid, sig)
        with pytest.raises(error, match=says) as info:
            for _ in it:
                pass
        assert (error is VideoError) == isinstance(info.value, MediaError)
        assert_same(ref, decoded(p.batches(path, VideoInfo(str(path)), batch_size=4, codec_threads=2)))
        (fresh,) = set(decode_processes()) - others
        assert fresh != pid
    deadline = time.monotonic() + 5
    while set(decode_processes()) - others and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(decode_processes()) == others


def test_a_worker_dead_while_idle_is_replaced(video_factory) -> None:
    path = video_factory("v.mp4", duration=1.0, fps=25, audio="none", size="320x240")
    others = set(decode_processes())
    with DecodePool(1) as p:
        (pid,) = set(decode_processes()) - others
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        got = decoded(p.batches(path, VideoInfo(str(path)), batch_size=8, codec_threads=2))
        assert got[1] is None and len(got[0]) == 4


def test_the_workers_log_reaches_the_job(webcam, caplog) -> None:
    """What the decoder says (a picture size change, rejected packets) lands in the job's log as in threads."""
    caplog.set_level(logging.INFO, logger="affectflow.faces")
    with DecodePool(1) as p:
        decoded(p.batches(webcam, VideoInfo(str(webcam)), batch_size=4, codec_threads=2))
    assert any(r.name == "affectflow.faces" and "the frames before it 320x240" in r.getMessage()
               for r in caplog.records), caplog.text


def test_a_pool_needs_a_process() -> None:
    with pytest.raises(ValueError, match="processes"):
        DecodePool(0)


def test_workers_end_when_their_job_is_killed(video_factory, tmp_path) -> None:
    """A job killed outright (Slurm's time limit, the OOM killer) leaves no decoding process behind."""
    import subprocess
    import sys

    path = video_factory("v.mp4", duration=4.0, fps=25, audio="none", size="320x240")
    code = (
        "import sys\n"
        "from affectflow.faces.decode_pool import DecodePool\n"
        "from affectflow.faces.video import VideoInfo\n"
        "from affectflow.testing.faces import decode_processes\n"
        "pool = DecodePool(2)\n"
        f"it = pool.batches({str(path)!r}, VideoInfo('v'), batch_size=2, codec_threads=2)\n"
        "next(it)\n"
        "print(*decode_processes(), flush=True)\n"
        "sys.stdin.read()\n"  # waits to be killed
    )
    job = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(p) for p in job.stdout.readline().split()]
        assert len(workers) == 2
        job.kill()
        job.wait(10)
        deadline = time.monotonic() + 10
        while any(os.path.exists(f"/proc/{p}") and "Z" not in _state(p) for p in workers):
            assert time.monotonic() < deadline, "a decoding process outlived its job"
            time.sleep(0.1)
    finally:
        job.kill()
        job.wait()


def _state(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
