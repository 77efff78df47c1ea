"""An AVI's own index: which frame a video chunk is, from where it lies in the file.

AVI stores no times: a video chunk is the next frame interval. FFmpeg's
demuxer numbers the chunks as it reads them, so a chunk whose header was
damaged (a bad sector, a broken copy) is passed over without a number, and
every frame after it comes out one frame early, with the labels of the frame
before it. The file's index lists every chunk with its place, so a packet's
position in the file (``packet.pos``) says which chunk it is, whatever was lost
before it. The index read is the OpenDML one (``indx`` pointing at ``ix##``
chunks, which cover every part of a file over 1 GB: FFmpeg writes it for such
files) where the file has a readable one, else ``idx1`` (the first part only,
in a file over 1 GB: chunks past it are counted on from the last one it lists).
An index is only a help: one that cannot be read, or stops agreeing with the
file, leaves FFmpeg's count, as if there were none.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

#: one idx1 entry: chunk id, flags, offset, size (little-endian)
_ENTRY = np.dtype([("id", "S4"), ("flags", "<u4"), ("offset", "<u4"), ("size", "<u4")])
#: an OpenDML super index entry (an ``ix##`` chunk's place) and a standard index entry (a chunk's data)
_SUPER_ENTRY = np.dtype([("offset", "<u8"), ("size", "<u4"), ("duration", "<u4")])
_STD_ENTRY = np.dtype([("offset", "<u4"), ("size", "<u4")])
#: the chunk types of a video stream's frames: compressed, uncompressed
_VIDEO_CHUNKS = (b"dc", b"db")
#: what a damaged index can raise while it is read (a field that counts past its chunk, an offset past 2**63)
_UNREADABLE = (OSError, struct.error, ValueError, OverflowError, MemoryError)


@dataclass(frozen=True)
class ChunkIndex:
    """One video stream's chunks as its index lists them, by place (a chunk's place is its time in frame
    intervals from the stream's start: empty chunks, which repeat the frame before, count too, as FFmpeg
    counts them)."""

    path: str
    #: the file position of each chunk's data (``packet.pos``) -> its place
    places: dict[int, int]
    headers: np.ndarray  # file position of each place's chunk header
    ids: np.ndarray  # each place's chunk id (``00dc``)
    sizes: np.ndarray  # each place's data size (0: an empty chunk)
    start: int = 0  # FFmpeg's count of the first chunk (the stream header's dwStart)

    def __len__(self) -> int:
        return len(self.places)

    @property
    def n_empty(self) -> int:
        """Empty chunks: no frames, though the AVI header's frame count includes them."""
        return int((self.sizes == 0).sum())

    def passed_over(self, places: np.ndarray) -> bool:
        """Whether the chunks at ``places`` may be ones the demuxer passed over for a damaged header: none of
        them holds another chunk's header (a chunk id of letters and digits, not the entry's), which would mean
        that the index, not the file, is damaged."""
        try:
            with open(self.path, "rb") as f:
                for place in places.tolist():
                    f.seek(int(self.headers[place]))
                    found = f.read(4)
                    if found != self.ids[place] and len(found) == 4 and found.isalnum():
                        return False
        except OSError:
            return False
        return True


class ChunkPlaces:
    """The decode times of an AVI's video packets from their chunks' places in the index.

    Places are believed while the index agrees with the file: the chunks the demuxer did not read between two
    it read must be empty or look damaged (hold no other chunk's header), and every chunk it reads inside the
    index's span must be listed. Where that fails, the index itself is damaged, and FFmpeg's count is kept
    from there on, moved by what the index had found so far. A chunk read again (FFmpeg goes back over chunks
    when it turns to reading by the index, its "non-interleaved" mode, after many losses) is no new frame,
    nor is a chunk passed over that it reads late then: it stays a lost frame.
    """

    def __init__(self, index: ChunkIndex) -> None:
        self.index = index
        self.shift = 0  # the last place believed minus FFmpeg's count of it
        self.last = -1  # the furthest place read
        self.trusted = True
        self._end = max(index.places) if len(index) else -1  # the last chunk the index lists
        self._lost: set[int] = set()

    def lost(self) -> list[int]:
        """The places of the chunks with data that the demuxer passed over, ascending; once the stream is read,
        with those after the last chunk read (looked at in the file, as the others were)."""
        after = self._passed_over(len(self.index)) if self.trusted else None
        return sorted(self._lost.union(after or ()))

    def time(self, pos: int | None, dts: int, size: int) -> int | None:
        """The decode time of the chunk at file position ``pos`` (``size`` bytes) that FFmpeg counted as
        ``dts``; None for a chunk at or before the furthest place read (read again, or a lost one read late): no
        new frame, to pass over undecoded (a decoder fed a frame out of its order would show it out of order)."""
        place = self.index.places.get(pos) if self.trusted and pos is not None else None
        if place is None or self.index.sizes[place] != size:  # unlisted inside the index's span, or misdescribed
            if self.trusted and pos is not None and (place is not None or pos < self._end):
                self.trusted = False
            return dts + self.shift
        if place <= self.last:
            return None  # read before, or passed over before: its frame's turn has gone
        lost = self._passed_over(place)
        if lost is None:
            self.trusted = False
            return dts + self.shift
        self._lost.update(lost)
        self.last = place
        time = self.index.start + place
        self.shift = time - dts
        return time

    def _passed_over(self, end: int) -> list[int] | None:
        """The places of the chunks with data after the last one read and before ``end``, all of which must look
        damaged (the demuxer passed them over); None where one does not (the index is damaged)."""
        between = np.arange(self.last + 1, end)
        lost = between[self.index.sizes[between] > 0]
        return lost.tolist() if not len(lost) or self.index.passed_over(lost) else None


def read_chunk_index(path: str | os.PathLike[str], stream: int) -> ChunkIndex | None:
    """The index of video stream number ``stream`` of the AVI file at ``path``: its OpenDML index where it has a
    readable one, else ``idx1``; None for a file that is no AVI, has no such index (cut off before it, or never
    written) or whose index cannot be read or does not point at chunks of the stream."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"AVI ":
                return None
            size = os.fstat(f.fileno()).st_size
            strl = _stream_list(f, size, stream)
            start = _stream_start(f, *strl) if strl is not None else 0
            odml = None
            with contextlib.suppress(*_UNREADABLE):
                odml = _odml_index(f, size, *strl) if strl is not None else None
            if odml is not None and _in_file_order(odml[0]):
                data, sizes, chunk_id = odml
                return ChunkIndex(os.fspath(path), dict(zip(data.tolist(), range(len(data)), strict=True)),
                                  data - 8, np.full(len(data), chunk_id, dtype="S4"), sizes, start)
            return _idx1_index(f, size, stream, os.fspath(path), start)
    except _UNREADABLE:
        return None


def _idx1_index(f: BinaryIO, size: int, stream: int, path: str, start: int) -> ChunkIndex | None:
    movi, entries = _movi_and_idx1(f, size)
    if movi is None or entries is None:
        return None
    mine = entries[np.isin(entries["id"], [b"%02d" % stream + kind for kind in _VIDEO_CHUNKS])]
    base = _offset_base(f, movi, mine) if len(mine) else None
    if base is None:
        return None
    headers = mine["offset"].astype(np.int64) + base
    if not _in_file_order(headers):
        return None
    return ChunkIndex(path, dict(zip((headers + 8).tolist(), range(len(mine)), strict=True)), headers,
                      mine["id"].copy(), mine["size"].astype(np.int64), start)


def _in_file_order(positions: np.ndarray) -> bool:
    """Whether an index lists its chunks in the order they lie in the file, as the demuxer reads them: places
    are believed only so (an index out of that order is damaged)."""
    return bool(np.all(np.diff(positions) > 0))


def _chunks(f: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """The (fourcc, position, data length) of the chunks from ``start`` to ``end``, a LIST's type as its fourcc;
    none that would run past ``end``."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        fourcc, length = struct.unpack("<4sI", f.read(8))
        if pos + 8 + length > end:
            return
        yield (f.read(4) if fourcc == b"LIST" else fourcc), pos, length
        pos += 8 + length + (length & 1)


def _movi_and_idx1(f: BinaryIO, size: int) -> tuple[int | None, np.ndarray | None]:
    """The position of the ``movi`` list's type (what idx1 offsets count from) and the idx1 entries, from the
    first RIFF chunk's top-level chunks."""
    movi = None
    for kind, pos, length in _chunks(f, 12, size):
        if kind == b"movi":
            movi = pos + 8
        elif kind == b"idx1":
            f.seek(pos + 8)
            return movi, np.frombuffer(f.read(length - length % _ENTRY.itemsize), dtype=_ENTRY)
    return movi, None


def _offset_base(f: BinaryIO, movi: int, entries: np.ndarray) -> int | None:
    """What the index's offsets are counted from: the ``movi`` list's type (the usual) or the file's start (some
    writers); the one at whose sums the file holds more of the first entries' chunk ids (a damaged chunk may
    hold none). None: neither holds any (the index is damaged)."""
    found = {}
    for base in (movi, 0):
        found[base] = 0
        for entry in entries[:16]:
            f.seek(int(entry["offset"]) + base)
            found[base] += f.read(4) == entry["id"]
    best = max(found, key=found.get)
    return best if found[best] else None


def _stream_list(f: BinaryIO, size: int, stream: int) -> tuple[int, int] | None:
    """The position and length of stream ``stream``'s ``strl`` list in the file's header list."""
    hdrl = next(((pos, length) for kind, pos, length in _chunks(f, 12, size) if kind == b"hdrl"), None)
    if hdrl is None:
        return None
    strl = [(pos, length) for kind, pos, length in _chunks(f, hdrl[0] + 12, hdrl[0] + 8 + hdrl[1]) if kind == b"strl"]
    return strl[stream] if stream < len(strl) else None


def _stream_start(f: BinaryIO, start: int, length: int) -> int:
    """The stream header's ``dwStart``: FFmpeg's count of the stream's first chunk (0 where it cannot be read)."""
    strh = next((pos for kind, pos, n in _chunks(f, start + 12, start + 8 + length) if kind == b"strh" and n >= 32),
                None)
    if strh is None:
        return 0
    f.seek(strh + 8 + 28)
    return int(struct.unpack("<I", f.read(4))[0])


def _odml_index(f: BinaryIO, size: int, start: int, length: int) -> tuple[np.ndarray, np.ndarray, bytes] | None:
    """The data positions and sizes of the chunks of the stream whose ``strl`` is at ``start`` from its OpenDML
    indexes, and their chunk id; None without a readable one (not written, or a file cut off before an
    ``ix##`` it lists)."""
    indx = next(((pos, n) for kind, pos, n in _chunks(f, start + 12, start + 8 + length) if kind == b"indx"), None)
    if indx is None or indx[1] < 24:
        return None
    f.seek(indx[0] + 8)
    longs, _, kind, n, chunk_id = struct.unpack("<HBBI4s", f.read(12))
    if longs != 4 or kind != 0 or not 0 < n <= (indx[1] - 24) // _SUPER_ENTRY.itemsize \
            or chunk_id[2:] not in _VIDEO_CHUNKS:  # an index of indexes of frames
        return None
    f.seek(indx[0] + 8 + 24)
    data, sizes = [], []
    for entry in np.frombuffer(f.read(n * _SUPER_ENTRY.itemsize), dtype=_SUPER_ENTRY):
        at = int(entry["offset"])
        if at + 32 > size:
            return None
        f.seek(at)
        fourcc, cb, longs, _, kind, count, part_id, base, _ = struct.unpack("<4sIHBBI4sQI", f.read(32))
        if longs != 2 or kind != 1 or part_id != chunk_id or count > (cb - 24) // _STD_ENTRY.itemsize \
                or at + 8 + cb > size:
            return None
        chunks = np.frombuffer(f.read(count * _STD_ENTRY.itemsize), dtype=_STD_ENTRY)
        positions = chunks["offset"].astype(np.int64) + base
        if len(positions) and not (8 <= positions.min() and positions.max() <= size):
            return None
        data.append(positions)
        sizes.append((chunks["size"] & 0x7FFFFFFF).astype(np.int64))  # the top bit marks a frame that is no keyframe
    if not data:
        return None
    return np.concatenate(data), np.concatenate(sizes), chunk_id
