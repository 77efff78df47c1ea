"""An AVI's own index (``idx1``): which frame a video chunk is, from where it lies in the file.

AVI stores no times: a video chunk is the next frame interval. FFmpeg's
demuxer numbers the chunks as it reads them, so a chunk whose header was
damaged (a bad sector, a broken copy) is passed over without a number, and
every frame after it comes out one frame early, with the labels of the frame
before it. The index at the end of the file lists every chunk with its place,
so a packet's position in the file (``packet.pos``) says which chunk it is,
whatever was lost before it. OpenDML files (AVI 2.0, over 1 GB) index their
later parts elsewhere (``indx``); packets past ``idx1`` keep FFmpeg's numbers,
counted on from the last indexed chunk read.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np

#: one idx1 entry: chunk id, flags, offset, size (little-endian)
_ENTRY = np.dtype([("id", "S4"), ("flags", "<u4"), ("offset", "<u4"), ("size", "<u4")])
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
        self.origin = origin  # FFmpeg's count of the first chunk (the stream's start)
        self.shift = 0
        self.last = -1  # the place of the last chunk read
        self.trusted = True
        self.lost: list[int] = []  # the places of chunks passed over (with data), ascending

    def time(self, pos: int | None, dts: int) -> int:
        """The decode time of the chunk at file position ``pos`` that FFmpeg counted as ``dts``."""
        place = self.index.places.get(pos) if self.trusted and pos is not None else None
        if place is None:
            return dts + self.shift
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
    """The ``idx1`` index of video stream number ``stream`` of the AVI file at ``path``; None for a file that is
    no AVI, has no such index (cut off before it, or never written) or whose index does not point at chunks of
    the stream."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"AVI ":
                return None
            movi, entries = _movi_and_idx1(f, os.fstat(f.fileno()).st_size)
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
