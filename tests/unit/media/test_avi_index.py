"""An AVI's idx1 index: each video chunk's place from where it lies, used only where it can be trusted."""

from __future__ import annotations

import struct
from pathlib import Path

import av
import numpy as np
import pytest

from affectflow.media.avi_index import read_chunk_index
from affectflow.media.decode import MediaError, VideoClock, probe
from affectflow.testing.media import ffmpeg


@pytest.fixture(scope="module")
def avi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s at 24 fps, H.264 without B-frames, with sound."""
    path = tmp_path_factory.mktemp("avi") / "clip.avi"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=24", "-f", "lavfi", "-i", "sine=frequency=440", "-t", "3",
           "-c:v", "libx264", "-bf", "0", "-g", "12", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", "-shortest",
           str(path))
    return path


def _idx1(data: bytes) -> tuple[int, int]:
    """Where the idx1 chunk starts, and its length."""
    at = data.rindex(b"idx1")
    return at, struct.unpack_from("<I", data, at + 4)[0]


def _times(path: Path) -> list[int]:
    """The decode time each video packet gets on the clock, in read order."""
    with av.open(str(path)) as c:
        clock = VideoClock(c, c.streams.video[0], path)
        out = []
        for p in c.demux(c.streams.video[0]):
            if p.size:
                clock.admit(p)
                out.append(int(p.dts))
        return out


def _lose_chunk_header(src: Path, dst: Path, k: int) -> bytes:
    """``src`` with the header of its k-th video chunk zeroed: the demuxer passes over that chunk uncounted."""
    data = bytearray(src.read_bytes())
    at = int(read_chunk_index(src, 0).headers[k])  # the index's places: checked against FFmpeg's packets above
    assert data[at:at + 4] == b"00dc"
    data[at:at + 8] = bytes(8)
    dst.write_bytes(bytes(data))
    return bytes(data)


def test_the_index_lists_every_video_chunk_at_its_place(avi: Path) -> None:
    index = read_chunk_index(avi, 0)
    assert index is not None and len(index) == 72 and np.flatnonzero(index.sizes > 0).tolist() == list(range(72))
    with av.open(str(avi)) as c:
        positions = [p.pos for p in c.demux(c.streams.video[0]) if p.size]
    assert [index.places[p] for p in positions] == list(range(72))
    assert read_chunk_index(avi, 1) is None  # the sound's chunks are no video frames


def test_a_chunk_passed_over_keeps_the_times_of_those_after_it(avi: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.avi"
    _lose_chunk_header(avi, damaged, 30)
    with av.open(str(damaged)) as c:  # FFmpeg alone: every frame after the lost chunk one frame early
        assert [int(p.dts) for p in c.demux(c.streams.video[0]) if p.size] == list(range(71))
    assert _times(damaged) == [*range(30), *range(31, 72)]
    assert np.allclose(probe(damaged).timestamps, np.arange(72) / 24)  # the lost frame is a frame of the video


def test_an_index_counted_from_the_files_start_is_read_too(avi: Path, tmp_path: Path) -> None:
    data = bytearray(avi.read_bytes())
    movi = data.index(b"movi")
    at, length = _idx1(bytes(data))
    entries = np.frombuffer(bytes(data[at + 8:at + 8 + length]), dtype=[("id", "S4"), ("flags", "<u4"),
                                                                      ("offset", "<u4"), ("size", "<u4")]).copy()
    entries["offset"] += movi  # some writers count from the file's start
    data[at + 8:at + 8 + length] = entries.tobytes()
    absolute = tmp_path / "absolute.avi"
    absolute.write_bytes(bytes(data))
    index = read_chunk_index(absolute, 0)
    assert index is not None and index.places == read_chunk_index(avi, 0).places


@pytest.mark.parametrize("damage", ["cut", "offsets", "not-avi", "empty", "swapped"])
def test_no_index_or_a_damaged_one_leaves_ffmpegs_count(avi: Path, tmp_path: Path, damage: str) -> None:
    data = bytearray(avi.read_bytes())
    at, length = _idx1(bytes(data))
    if damage == "cut":  # a download cut off before its index
        data = data[:at + 100]
    elif damage == "offsets":
        data[at + 8:at + 8 + length] = np.random.default_rng(0).integers(0, 255, length, dtype=np.uint8).tobytes()
    elif damage == "not-avi":
        data[8:12] = b"WAVE"
    elif damage == "swapped":  # two video entries in the wrong order: chunks out of the file's order
        _, entries = _entries(bytes(data))
        video = np.flatnonzero(entries["id"] == b"00dc")
        entries[[video[20], video[21]]] = entries[[video[21], video[20]]]
        data[at + 8:at + 8 + length] = entries.tobytes()
    else:
        data = bytearray()
    path = tmp_path / f"{damage}.avi"
    path.write_bytes(bytes(data))
    assert read_chunk_index(path, 0) is None
    assert read_chunk_index(tmp_path / "missing.avi", 0) is None


def test_chunks_past_the_index_are_counted_on_from_the_last_it_lists(avi: Path, tmp_path: Path) -> None:
    """As in an OpenDML file (over 1 GB), whose idx1 lists its first part only."""
    data = bytearray(_lose_chunk_header(avi, tmp_path / "scratch.avi", 10))
    at, length = _idx1(bytes(data))
    entries = np.frombuffer(bytes(data[at + 8:at + 8 + length]), dtype=[("id", "S4"), ("flags", "<u4"),
                                                                      ("offset", "<u4"), ("size", "<u4")])
    video = np.flatnonzero(entries["id"] == b"00dc")
    kept = entries[: video[50]]  # the index stops before the 51st video chunk
    data[at + 4:at + 8] = struct.pack("<I", kept.nbytes)
    data[at + 8:] = kept.tobytes()
    partial = tmp_path / "partial.avi"
    partial.write_bytes(bytes(data))
    assert len(read_chunk_index(partial, 0)) == 50
    assert _times(partial) == [*range(10), *range(11, 72)]


@pytest.mark.parametrize("k", [0, 71])
def test_a_first_or_last_chunk_passed_over_is_found_too(avi: Path, tmp_path: Path, k: int) -> None:
    damaged = tmp_path / "first.avi"
    _lose_chunk_header(avi, damaged, k)
    assert _times(damaged) == [t for t in range(72) if t != k]
    assert np.allclose(probe(damaged).timestamps, np.arange(72) / 24)


def test_an_index_that_misdescribes_the_chunks_read_is_left(avi: Path, tmp_path: Path) -> None:
    """Sizes that are not those of the chunks read (here all zeroed, as if every chunk were empty): the index
    is no help, and the header's frame count stands, so a file lacking frames is still told."""
    data = bytearray(_lose_chunk_header(avi, tmp_path / "scratch.avi", 10))
    at, entries = _entries(bytes(data))
    entries["size"][entries["id"] == b"00dc"] = 0
    data[at:at + entries.nbytes] = entries.tobytes()
    zeroed = tmp_path / "zeroed.avi"
    zeroed.write_bytes(bytes(data))
    assert _times(zeroed) == list(range(71))  # FFmpeg's count: the index found nothing before it was left
    found = probe(zeroed)
    assert found.n_frames == 71
    with av.open(str(zeroed)) as c:
        clock = VideoClock(c, c.streams.video[0], zeroed)
        for p in c.demux(c.streams.video[0]):
            clock.admit(p)
        assert clock.listed(72) == 72


def _entries(data: bytes) -> tuple[int, np.ndarray]:
    at, length = _idx1(data)
    return at + 8, np.frombuffer(data[at + 8:at + 8 + length], dtype=[("id", "S4"), ("flags", "<u4"),
                                                                       ("offset", "<u4"), ("size", "<u4")]).copy()


@pytest.mark.parametrize("damage", ["entry-lost", "entry-added"])
def test_a_damaged_index_is_left_where_it_stops_agreeing_with_the_file(avi: Path, tmp_path: Path,
                                                                      damage: str) -> None:
    """An index entry lost (its id garbled) would move every later chunk a place back, one added (a sound
    chunk's entry given a video id) a place on: from there FFmpeg's count is kept, moved by what the index
    had found before, so a header lost earlier still counts and the damaged index moves no frame."""
    data = bytearray(_lose_chunk_header(avi, tmp_path / "scratch.avi", 10))
    at, entries = _entries(bytes(data))
    video = np.flatnonzero(entries["id"] == b"00dc")
    if damage == "entry-lost":
        entries["id"][video[40]] = b"00dd"
    else:
        sound = np.flatnonzero(entries["id"] == b"01wb")
        entries["id"][sound[sound > video[40]][0]] = b"00dc"
    data[at:at + entries.nbytes] = entries.tobytes()
    damaged = tmp_path / f"{damage}.avi"
    damaged.write_bytes(bytes(data))
    assert _times(damaged) == [*range(10), *range(11, 72)]
    assert np.allclose(probe(damaged).timestamps, np.arange(72) / 24)


def test_the_header_count_still_tells_a_file_that_lacks_frames(avi: Path, tmp_path: Path) -> None:
    """The index lists what the file holds, the header what it should: a header that counts twice the frames
    the index lists is a file that lacks frames (an OpenDML file cut off past its first part alike)."""
    data = bytearray(avi.read_bytes())
    at = data.index(b"strh") + 8 + 32  # strh's dwLength
    struct.pack_into("<I", data, at, 144)
    longer = tmp_path / "longer.avi"
    longer.write_bytes(bytes(data))
    with pytest.raises(MediaError, match=r"only 72 of the 144 frames the container lists"):
        probe(longer)


def test_an_avi_with_empty_chunks_is_whole(tmp_path: Path) -> None:
    """Empty chunks repeat the frame before them (a capture's dropped frames; FFmpeg writes them for a variable
    frame rate): the AVI header counts them, the frames are the chunks with data, at their places."""
    from affectflow.faces.video import VideoInfo, iter_batches

    vfr = tmp_path / "dropped.avi"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=24", "-t", "2", "-vf", r"select=not(mod(n\,3))+eq(n\,1)",
           "-fps_mode", "passthrough", "-c:v", "mpeg4", str(vfr))
    index = read_chunk_index(vfr, 0)
    assert index is not None and len(index) == 46
    assert np.flatnonzero(index.sizes > 0).tolist() == [0, 1, *range(3, 46, 3)]
    with av.open(str(vfr)) as c:
        assert c.streams.video[0].frames == 46  # what the header lists: empty chunks too
    found = probe(vfr)
    assert found.n_frames == 17 and found.variable_frame_rate
    np.testing.assert_allclose(found.timestamps, np.flatnonzero(index.sizes > 0) / 24, atol=1e-9)
    info = VideoInfo(str(vfr))
    times = [t for b in iter_batches(vfr, info) for t in b.timestamps]
    np.testing.assert_allclose(times, np.flatnonzero(index.sizes > 0) / 24, atol=1e-9)
    assert info.n_frames_expected == info.n_frames_decoded == 17


def _as_opendml(avi: Path, dst: Path) -> None:
    """``avi`` with the OpenDML index a file over 1 GB has (``indx`` in the space FFmpeg's muxer keeps for it,
    pointing at one ``ix00`` chunk, at the end here) and its idx1 blanked: only the OpenDML index places the
    chunks. (A real file over 1 GB, with ``AVIX`` parts, was checked by hand: the same places.)"""
    data = bytearray(avi.read_bytes())
    chunks = read_chunk_index(avi, 0)
    ix00 = len(data)
    entries = np.zeros(len(chunks), dtype=[("offset", "<u4"), ("size", "<u4")])
    entries["offset"], entries["size"] = chunks.headers + 8, chunks.sizes
    data += b"ix00" + struct.pack("<IHBBI4sQI", 24 + entries.nbytes, 2, 0, 1, len(chunks), b"00dc", 0, 0)
    data += entries.tobytes()
    junk = data.index(b"JUNK", data.index(b"strl"))  # FFmpeg's room for indx
    room = struct.unpack_from("<I", data, junk + 4)[0]
    indx = struct.pack("<HBBI4s12xQII", 4, 0, 0, 1, b"00dc", ix00, 32 + entries.nbytes, len(chunks))
    data[junk:junk + 8 + room] = b"indx" + struct.pack("<I", room) + indx.ljust(room, b"\0")
    at, _ = _idx1(bytes(data))
    data[at:at + 4] = b"JUNK"
    dst.write_bytes(bytes(data))


def test_an_opendml_index_places_every_chunk(avi: Path, tmp_path: Path) -> None:
    odml = tmp_path / "odml.avi"
    _as_opendml(avi, odml)
    index = read_chunk_index(odml, 0)
    assert index is not None and index.places == read_chunk_index(avi, 0).places
    damaged = tmp_path / "damaged.avi"
    _lose_chunk_header(odml, damaged, 30)
    assert _times(damaged) == [*range(30), *range(31, 72)]
    assert np.allclose(probe(damaged).timestamps, np.arange(72) / 24)


def test_a_stream_that_starts_later_is_placed_from_its_start(avi: Path, tmp_path: Path) -> None:
    """``dwStart`` 5: FFmpeg counts the first chunk as 5, and the index's places follow from there."""
    data = bytearray(avi.read_bytes())
    struct.pack_into("<I", data, data.index(b"strh") + 8 + 28, 5)  # strh's dwStart
    later = tmp_path / "later.avi"
    later.write_bytes(bytes(data))
    damaged = tmp_path / "damaged.avi"
    _lose_chunk_header(later, damaged, 30)
    assert _times(damaged) == [*range(5, 35), *range(36, 77)]


@pytest.mark.parametrize("damage", ["ix-cut", "ix-count", "super-count", "base-overflow"])
def test_an_unreadable_opendml_index_is_no_index(avi: Path, tmp_path: Path, damage: str) -> None:
    """A file cut inside its last ``ix##``, or index fields that count past their chunk or point past 2**63:
    the index is passed over (idx1 where there is one), never an error that stops the shard's job."""
    odml = tmp_path / "odml.avi"
    _as_opendml(avi, odml)
    data = bytearray(odml.read_bytes())
    ix00, indx = data.rindex(b"ix00"), data.index(b"indx")
    if damage == "ix-cut":
        data = data[:ix00 + 100]
    elif damage == "ix-count":
        struct.pack_into("<I", data, ix00 + 12, 2**31)  # nEntriesInUse
    elif damage == "super-count":
        struct.pack_into("<I", data, indx + 12, 2**31)
    else:
        struct.pack_into("<Q", data, ix00 + 20, 2**63 + 5)  # qwBaseOffset
    bad = tmp_path / f"{damage}.avi"
    bad.write_bytes(bytes(data))
    assert read_chunk_index(bad, 0) is None  # idx1 is blanked in these files
    with av.open(str(bad)) as c:
        ffmpeg_count = [int(p.dts) for p in c.demux(c.streams.video[0]) if p.size]
    assert _times(bad) == ffmpeg_count


def test_many_lost_chunks_and_ffmpeg_reading_by_the_index_then(tmp_path: Path) -> None:
    """After many lost chunk headers FFmpeg turns to reading by the index ("non-interleaved" mode), going back
    over chunks it read and reading some it had passed over: those are no new frames, and every frame keeps
    its time, in the media stage and in the faces stage (matched by pixels)."""
    from affectflow.faces.video import VideoInfo, iter_batches

    good = tmp_path / "good.avi"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=24:duration=60", "-f", "lavfi", "-i",
           "sine=frequency=440:sample_rate=8000:duration=60", "-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p",
           "-c:a", "pcm_s16le", str(good))
    index = read_chunk_index(good, 0)
    data = bytearray(good.read_bytes())
    for k in range(5, len(index), 10):
        at = int(index.headers[k])
        data[at:at + 8] = bytes(8)
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))
    with av.open(str(damaged)) as c:
        read = [int(p.pos) for p in c.demux(c.streams.video[0]) if p.size]
    assert any(b <= a for a, b in zip(read, read[1:], strict=False))  # FFmpeg went back in the file: index mode
    np.testing.assert_allclose(probe(damaged).timestamps, np.arange(1440) / 24, atol=1e-9)
    pictures = [f for b in iter_batches(good, VideoInfo(str(good))) for f in b.frames]
    shown = [(t, f) for b in iter_batches(damaged, VideoInfo(str(damaged))) for t, f in zip(b.timestamps, b.frames,
                                                                                           strict=True)]
    assert 1296 <= len(shown) < 1440
    assert [round(t * 24) for t, f in shown if not np.array_equal(f, pictures[round(t * 24)])] == []
