"""Decoding ahead: several sources run in background threads, handed over strictly in order, bounded, and
stopped (what they opened closed) whatever the consumer does."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from affectflow.faces.errors import VideoError
from affectflow.faces.video import MIN_CODEC_THREADS, PrefetchEach, VideoInfo, codec_threads, iter_batches, prefetch
from affectflow.testing.media import ffmpeg


class Sources:
    """Numbered generator sources that record how many are open at once and how far each ran ahead."""

    def __init__(self, sizes: list[int], fail_at: dict[int, int] | None = None, delay: float = 0.0) -> None:
        self.sizes, self.fail_at, self.delay = sizes, fail_at or {}, delay
        self.lock = threading.Lock()
        self.open: set[int] = set()
        self.most_open = 0
        self.produced = [0] * len(sizes)
        self.closed: list[int] = []

    def source(self, k: int) -> Callable[[], Iterator[tuple[int, int]]]:
        def gen() -> Iterator[tuple[int, int]]:
            with self.lock:
                self.open.add(k)
                self.most_open = max(self.most_open, len(self.open))
            try:
                for j in range(self.sizes[k]):
                    if self.fail_at.get(k) == j:
                        raise VideoError(f"source {k} broke at item {j}")
                    time.sleep(self.delay)
                    self.produced[k] += 1
                    yield k, j
            finally:
                with self.lock:
                    self.open.discard(k)
                    self.closed.append(k)

        return gen

    def all(self) -> list[Callable[[], Iterator[tuple[int, int]]]]:
        return [self.source(k) for k in range(len(self.sizes))]


def ours() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("test-", "prefetch"))]


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_items_come_in_source_order_and_errors_at_their_turn(workers: int) -> None:
    src = Sources([5, 0, 7, 3, 6], fail_at={2: 4})
    got: list[tuple[int, int]] = []
    errors: list[tuple[int, str]] = []
    with PrefetchEach(src.all(), workers, depth=2, name="test-") as each:
        for k, items in enumerate(each):
            try:
                got.extend(items)
            except VideoError as e:
                errors.append((k, str(e)))
    expect = [(k, j) for k, n in enumerate([5, 0, 4, 3, 6]) for j in range(n)]
    assert got == expect  # the broken source's items before its error, then the next sources'
    assert errors == [(2, "source 2 broke at item 4")]
    assert sorted(src.closed) == [0, 1, 2, 3, 4] and not src.open and not ours()


def test_at_most_workers_sources_open_and_each_at_most_depth_ahead() -> None:
    src = Sources([20] * 6)
    with PrefetchEach(src.all(), workers=3, depth=2, name="test-") as each:
        for k, items in enumerate(each):
            time.sleep(0.2)  # a slow consumer: the sources ahead fill their queues and wait
            ahead = src.produced[k + 1:]
            assert all(n <= 3 for n in ahead)  # depth queued + one in the producer's hand
            assert sum(n > 0 for n in ahead) <= 2  # the consumer's source and two more
            assert len(list(items)) == 20
    assert src.most_open <= 3 and not ours()


def test_a_consumer_that_fails_or_stops_early_leaves_no_thread_and_closes_every_source() -> None:
    src = Sources([50] * 5, delay=0.001)
    with pytest.raises(KeyboardInterrupt), PrefetchEach(src.all(), workers=3, name="test-") as each:
        for items in each:
            next(iter(items))
            raise KeyboardInterrupt  # e.g. the detector, mid-video
    assert not ours() and not src.open and sorted(src.closed) == [0, 1, 2]  # the others never opened

    src = Sources([50] * 5, delay=0.001)
    with PrefetchEach(src.all(), workers=2, name="test-") as each:
        for k, items in enumerate(each):
            if k == 1:
                break
            next(iter(items))  # the rest of this source is dropped when the consumer moves on
    assert not ours() and not src.open and src.produced[0] < 50


def test_prefetch_of_one_iterator_raises_in_the_consumer_and_closes_it() -> None:
    src = Sources([4], fail_at={0: 2})
    got = []
    with pytest.raises(VideoError, match="item 2"):
        for item in prefetch(src.source(0)()):
            got.append(item)
    assert got == [(0, 0), (0, 1)] and src.closed == [0] and not ours()
    assert list(PrefetchEach([], workers=2)) == []
    with pytest.raises(ValueError, match="workers"):
        PrefetchEach([], workers=0)


def decode(path, n: int) -> tuple[list[tuple[int, float, bytes]], VideoInfo, str | None]:
    """Every frame (index, time, pixels) of ``path`` decoded on ``n`` FFmpeg threads, its info and its error."""
    info = VideoInfo(str(path))
    frames: list[tuple[int, float, bytes]] = []
    try:
        for b in iter_batches(path, info, batch_size=8, codec_threads=n):
            frames += [(i, t, f.tobytes()) for i, t, f in zip(b.indices, b.timestamps, b.frames, strict=True)]
    except VideoError as e:
        return frames, info, str(e)
    return frames, info, None


def test_codec_threads_change_no_pixel(video_factory) -> None:
    path = video_factory("v.mp4", duration=1.0, fps=25, audio="none", size="320x240")
    ref = decode(path, 0)
    assert len(ref[0]) == 25 and ref[2] is None
    for n in (1, 2, 3):
        assert decode(path, n) == ref
    with pytest.raises(ValueError, match="codec_threads"):
        next(iter_batches(path, VideoInfo(str(path)), codec_threads=-1))


@pytest.mark.parametrize("kept", [0.5, 0.97, 0.99])
def test_a_cut_off_video_decodes_alike_on_any_number_of_threads_from_two(video_factory, tmp_path, kept) -> None:
    # One thread conceals a frame that fails to decode and outputs it, frame threading drops it; which threads
    # report the error depends on their timing. From 2 threads on, the frames and the verdict are the same.
    made = video_factory("made.mp4", duration=4.0, fps=25, audio="none", size="320x240")
    whole = tmp_path / "whole.mp4"
    ffmpeg("-i", str(made), "-c", "copy", "-movflags", "+faststart", str(whole))  # the index first: it opens
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * kept)])
    ref = decode(cut, MIN_CODEC_THREADS)
    assert len(ref[0]) < 100 and (ref[2] is None or "truncated or corrupt" in ref[2])
    for n in (3, 4, 8):
        assert decode(cut, n) == ref


def test_codec_threads_share_the_jobs_threads() -> None:
    assert codec_threads(1, 1) == codec_threads(2, 2) == codec_threads(3, 3) == MIN_CODEC_THREADS == 2
    assert codec_threads(8, 2) == 4 and codec_threads(4, 1) == 4  # one video in the shard: all the job's threads


def test_a_resolution_change_mid_stream_starts_a_new_batch(video_factory, tmp_path) -> None:
    """A webcam that renegotiates: 320x240 then 480x360 frames on one clock. Every frame is decoded, each batch
    holds frames of one size (detectors run a batch at one input size), and the frame indices run on."""
    from affectflow.testing.corpus import joined_continuous

    parts = [video_factory(f"{w}.ts", duration=0.4, fps=25, audio="tone", size=f"{w}x{w * 3 // 4}") for w in (320, 480)]
    webcam = joined_continuous(tmp_path / "webcam.ts", parts)
    info = VideoInfo(str(webcam))
    batches = list(iter_batches(webcam, info, batch_size=4))
    assert [len(b) for b in batches] == [4, 4, 2, 4, 4, 2]  # 10 + 10 frames: the batch before the change ends early
    assert [{f.shape for f in b.frames} for b in batches] == [{(240, 320, 3)}] * 3 + [{(360, 480, 3)}] * 3
    assert [i for b in batches for i in b.indices] == list(range(20))
    assert info.n_size_changes == 1 and (info.width, info.height) == (320, 240)  # the first frame's size


NOISE_THEN_PATTERN = ("-f", "lavfi", "-i", "nullsrc=s=160x120:r=24:d=2,geq=random(1)*255:128:128", "-f", "lavfi",
                      "-i", "testsrc=size=160x120:rate=24:duration=2", "-f", "lavfi", "-i", "sine=frequency=440",
                      "-filter_complex", "[0:v]format=yuv420p[a];[1:v]format=yuv420p[b];[a][b]concat=n=2:v=1[v]",
                      "-map", "[v]", "-map", "2:a")


@pytest.mark.parametrize("codec, chunk, zeroed", [
    (["libx264", "-bf", "0"], 24, 2500), (["mpeg4"], 24, 2500), (["mjpeg", "-q:v", "3"], 24, 2500),
    (["libx264", "-bf", "3"], 24, 2500), (["mpeg4", "-bf", "2"], 24, 2500),
    (["libx264", "-bf", "3", "-g", "48"], 10, 2500),
    (["libx264", "-bf", "0"], 41, 6000), (["libx264", "-bf", "3"], 41, 2500)],
    ids=["h264", "xvid", "mjpeg", "h264-bframes", "xvid-bframes", "h264-bframes-later", "h264-header-lost",
         "h264-bframes-header-lost"])
def test_an_avi_damaged_mid_stream_times_the_frames_after_the_damage_as_they_were(codec, chunk, zeroed,
                                                                                  tmp_path) -> None:
    """AVI stores decode times only, and a frame-threaded decoder reports a lost frame late. Each frame decoded
    from the damaged file shows the picture of the undamaged file's frame at its time (matched by pixels): the
    frames after the damage keep their times, and so their numbers and labels. In a stream with B-frames the
    few frames between the lost one's decode and display places may be a frame off (which frame the decoder
    lost, in the order frames are shown, the file does not say); every other frame is exact. One case is
    damaged in its first two seconds, noise that x264 codes without B-frames; B-frames come after. In the last
    two the damage reaches the next chunk's header, which the demuxer then passes over without counting it:
    the file's index (idx1) says which frame each chunk is, and the media stage lists the lost frame too."""
    import re

    import numpy as np

    from affectflow.media.decode import probe

    good = tmp_path / "good.avi"
    later = "-g" in codec
    source = NOISE_THEN_PATTERN if later else (
        "-f", "lavfi", "-i", "testsrc=size=160x120:rate=24", "-f", "lavfi", "-i", "sine=frequency=440", "-t", "3")
    ffmpeg(*source, "-c:v", *codec, *(() if later else ("-g", "12")),
           "-pix_fmt", "yuvj420p" if codec[0] == "mjpeg" else "yuv420p", "-c:a", "pcm_s16le", "-shortest", str(good))
    data = bytearray(good.read_bytes())
    at = [m.start() for m in re.finditer(b"00dc", data)][chunk] + 8  # into that frame's chunk
    data[at:at + zeroed] = bytes(zeroed)
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))

    def frames(path) -> list[tuple[float, np.ndarray]]:
        got = list(iter_batches(path, VideoInfo(str(path)), batch_size=8, codec_threads=4))
        return [(t, f.astype(float)) for b in got for t, f in zip(b.timestamps, b.frames, strict=True)]

    reference = frames(good)
    n = len(reference)
    assert [round(t * 24, 6) for t, _ in reference] == list(range(n)) and n in (72, 96)
    pictures = np.stack([f for _, f in reference])
    decoded = frames(damaged)
    assert n - 12 <= len(decoded) < n, len(decoded)  # frames were lost, not the whole file
    checked, off = 0, []
    for t, f in decoded:
        err = ((pictures - f) ** 2).mean(axis=(1, 2, 3))
        first, second = np.sort(err)[:2]
        if first < 0.3 * second:  # a clear match (a frame concealed from a damaged reference may match none)
            shown, at_time = int(err.argmin()), round(t * 24)
            if shown != at_time:
                off.append((at_time, shown))
            checked += 1
    assert checked >= len(decoded) - 8  # frames decoded from a damaged reference until the next keyframe are smeared
    np.testing.assert_allclose(probe(damaged).timestamps, np.arange(n) / 24, atol=1e-9)  # the media stage: all
    if "-bf" in codec and codec[codec.index("-bf") + 1] != "0" and not later:
        assert len(off) <= 4 and all(abs(a - b) == 1 and chunk - 4 <= a <= chunk + 4 for a, b in off), off
    else:
        assert off == []
