"""An AVI's own index: which frame a video chunk is, from where it lies in the file.

AVI stores no times: a video chunk is the next frame interval. FFmpeg's
demuxer numbers the chunks as it reads them, so a chunk whose header was
damaged (a bad sector, a broken copy) is passed over without a number, and
every frame after it comes out one frame early, with the labels of the frame
before it. The file's index lists every chunk with its place, so a packet's
position in the file (``packet.pos``) says which chunk it is, whatever was lost
before it. The index read is the OpenDML one (``indx`` pointing at ``ix##``
chunks, which cover every part of a file over 1 GB) where the file has it,
else ``idx1`` (the first part only, in a file over 1 GB: chunks past it are
counted on from the last one it lists).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np

#: one idx1 entry: chunk id, flags, offset, size (little-endian)
_ENTRY = np.dtype([("id", "S4"), ("flags", "<u4"), ("offset", "<u4"), ("size", "<u4")])
#: an OpenDML super index entry (an ``ix##`` chunk's place) and a standard index entry (a chunk's data)
_SUPER_ENTRY = np.dtype([("offset", "<u8"), ("size", "<u4"), ("duration", "<u4")])
_STD_ENTRY = np.dtype([("offset", "<u4"), ("size", "<u4")])
#: the chunk types of a video stream's frames: compressed, uncompressed
_VIDEO_CHUNKS = (b"dc", b"db")


@dataclass(frozen=True)
class ChunkIndex:
    """One video stream's chunks as ``idx1`` lists them, by place (a chunk's place is its time in frame
    intervals: empty chunks, which repeat the frame before, count too, as FFmpeg counts them)."""

    path: str
    #: the file position of each chunk's data (``packet.pos``) -> its place
    places: dict[int, int]
    headers: np.ndarray  # file position of each place's chunk header
    ids: np.ndarray  # each place's chunk id (``00dc``)
    sizes: np.ndarray  # each place's data size (0: an empty chunk)

    def __len__(self) -> int:
        return len(self.places)

    @property
    def frames(self) -> np.ndarray:
        """The places of the chunks that hold a frame (not empty), ascending."""
        return np.flatnonzero(self.sizes > 0)

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
    """FFmpeg's count of an AVI's video chunks (a packet's decode time) moved to the chunks' places in the index.

    The demuxer only ever passes chunks over, so a chunk's place minus FFmpeg's count (the shift) starts at 0
    and grows by the chunks lost between two it read, each of which must look damaged in the file. Anything
    else (a place that goes back, a shift that shrinks, a gap that is no damaged chunk) means the index
    itself is damaged: from there on FFmpeg's count is kept, moved by the shift found so far. A chunk the
    index does not list (past an OpenDML file's ``idx1``) is counted on from the last one it lists.
    """

    def __init__(self, index: ChunkIndex, origin: int = 0) -> None:
        self.index = index
        self.origin = origin  # FFmpeg's count of the first chunk: the stream's start, as read where it is read
        self.shift = 0
        self.last = -1  # the place of the last chunk read
        self.trusted = True
        self.lost: list[int] = []  # the places of chunks passed over (with data), ascending

    def time(self, pos: int | None, dts: int) -> int:
        """The decode time of the chunk at file position ``pos`` that FFmpeg counted as ``dts``."""
        place = self.index.places.get(pos) if self.trusted and pos is not None else None
        if place is None:
            return dts + self.shift
        if self.last < 0 and place == 0:
            self.origin = dts  # the first chunk read: FFmpeg's count starts at the stream's start (strh dwStart)
        shift = self.origin + place - dts
        if place <= self.last or shift != self.shift and not self._lost_between(place, shift - self.shift):
            self.trusted = False
            return dts + self.shift
        self.shift, self.last = shift, place
        return self.origin + place

    def _lost_between(self, place: int, n: int) -> bool:
        between = np.arange(self.last + 1, place)
        lost = between[self.index.sizes[between] > 0]
        if n <= 0 or len(lost) != n or not self.index.passed_over(lost):
            return False
        self.lost.extend(lost.tolist())
        return True


def read_chunk_index(path: str | os.PathLike[str], stream: int) -> ChunkIndex | None:
    """The index of video stream number ``stream`` of the AVI file at ``path``: its OpenDML index (``indx`` and
    the ``ix##`` chunks it points at, which list the chunks of every part of a file over 1 GB; FFmpeg writes it
    for any AVI) where it has a readable one, else ``idx1``; None for a file that is no AVI, has no such index
    (cut off before it, or never written) or whose index does not point at chunks of the stream."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"AVI ":
                return None
            size = os.fstat(f.fileno()).st_size
            odml = _odml_index(f, size, stream)
            if odml is not None:
                data, sizes, chunk_id = odml
                return ChunkIndex(os.fspath(path), dict(zip(data.tolist(), range(len(data)), strict=True)),
                                  data - 8, np.full(len(data), chunk_id, dtype="S4"), sizes)
            movi, entries = _movi_and_idx1(f, size)
            if movi is None or entries is None:
                return None
            mine = entries[np.isin(entries["id"], [b"%02d" % stream + kind for kind in _VIDEO_CHUNKS])]
            if not len(mine):
                return None
            base = _offset_base(f, movi, mine)
    except OSError:
        return None
    if base is None:
        return None
    headers = mine["offset"].astype(np.int64) + base
    return ChunkIndex(os.fspath(path), dict(zip((headers + 8).tolist(), range(len(mine)), strict=True)), headers,
                      mine["id"].copy(), mine["size"].astype(np.int64))


def _movi_and_idx1(f, size: int) -> tuple[int | None, np.ndarray | None]:
    """The position of the ``movi`` list's type (what idx1 offsets count from) and the idx1 entries, from the
    first RIFF chunk's top-level chunks."""
    pos, movi = 12, None
    while pos + 8 <= size:
        f.seek(pos)
        fourcc, length = struct.unpack("<4sI", f.read(8))
        if fourcc == b"LIST":
            if f.read(4) == b"movi":
                movi = pos + 8
        elif fourcc == b"idx1":
            if pos + 8 + length > size:
                return movi, None  # cut off inside the index
            raw = f.read(length - length % _ENTRY.itemsize)
            return movi, np.frombuffer(raw, dtype=_ENTRY)
        pos += 8 + length + (length & 1)
    return movi, None


def _offset_base(f, movi: int, entries: np.ndarray) -> int | None:
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


def _chunks(f, start: int, end: int):
    """The (fourcc, position, data length) of the chunks from ``start`` to ``end``, with a LIST's type read."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        fourcc, length = struct.unpack("<4sI", f.read(8))
        yield (f.read(4) if fourcc == b"LIST" else fourcc), pos, length
        pos += 8 + length + (length & 1)


def _odml_index(f, size: int, stream: int) -> tuple[np.ndarray, np.ndarray, bytes] | None:
    """The data positions and sizes of the chunks of video stream ``stream`` from its OpenDML indexes, and their
    chunk id; None without a readable one (not written, or a file cut off before an ``ix##`` it lists)."""
    hdrl = next(((pos, length) for kind, pos, length in _chunks(f, 12, size) if kind == b"hdrl"), None)
    if hdrl is None:
        return None
    strl = [(pos, length) for kind, pos, length in _chunks(f, hdrl[0] + 12, hdrl[0] + 8 + hdrl[1]) if kind == b"strl"]
    if stream >= len(strl):
        return None
    start, length = strl[stream]
    indx = next((pos for kind, pos, _ in _chunks(f, start + 12, start + 8 + length) if kind == b"indx"), None)
    if indx is None:
        return None
    f.seek(indx + 8)
    longs, _, kind, n, chunk_id = struct.unpack("<HBBI4s", f.read(12))
    if longs != 4 or kind != 0 or not n or chunk_id[2:] not in _VIDEO_CHUNKS:  # an index of indexes of frames
        return None
    f.seek(indx + 8 + 24)
    supers = np.frombuffer(f.read(n * _SUPER_ENTRY.itemsize), dtype=_SUPER_ENTRY)
    data, sizes = [], []
    for entry in supers:
        if len(supers) < n or int(entry["offset"]) + 32 > size:
            return None
        f.seek(int(entry["offset"]) + 8)
        longs, _, kind, count, part_id, base, _ = struct.unpack("<HBBI4sQI", f.read(24))
        if longs != 2 or kind != 1 or part_id != chunk_id:
            return None
        chunks = np.frombuffer(f.read(count * _STD_ENTRY.itemsize), dtype=_STD_ENTRY)
        if len(chunks) < count:
            return None
        data.append(chunks["offset"].astype(np.int64) + base)
        sizes.append((chunks["size"] & 0x7FFFFFFF).astype(np.int64))  # the top bit marks a frame that is no keyframe
    return np.concatenate(data), np.concatenate(sizes), chunk_id
