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
    """One video stream's chunks as ``idx1`` lists them."""

    #: the file position of each chunk's data (``packet.pos``) -> its place among the stream's chunks (its time, in
    #: frame intervals: empty chunks, which repeat a frame, count too, as FFmpeg counts them)
    places: dict[int, int]
    #: the places of the chunks that hold a frame (not empty), ascending
    frames: np.ndarray

    def __len__(self) -> int:
        return len(self.places)


def read_chunk_index(path: str | os.PathLike[str], stream: int) -> ChunkIndex | None:
    """The ``idx1`` index of video stream number ``stream`` of the AVI file at ``path``; None for a file that is
    no AVI, has no such index (cut off before it, or never written) or whose index does not point at chunks of
    the stream (a damaged index is no index)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"AVI ":
                return None
            size = os.fstat(f.fileno()).st_size
            movi, entries = _movi_and_idx1(f, size)
            if movi is None or entries is None:
                return None
            ids = entries["id"]
            mine = entries[np.isin(ids, [b"%02d" % stream + kind for kind in _VIDEO_CHUNKS])]
            if not len(mine):
                return None
            base = _offset_base(f, movi, mine[0])
    except OSError:
        return None
    if base is None:
        return None
    data = mine["offset"].astype(np.int64) + base + 8
    places = dict(zip(data.tolist(), range(len(mine)), strict=True))
    return ChunkIndex(places, np.flatnonzero(mine["size"] > 0).astype(np.int64))


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


def _offset_base(f, movi: int, first: np.void) -> int | None:
    """What the index's offsets are counted from: the ``movi`` list's type (the usual) or the file's start (some
    writers); the one at whose sum the file holds the entry's chunk id. None: neither (the index is damaged)."""
    for base in (movi, 0):
        f.seek(int(first["offset"]) + base)
        if f.read(4) == first["id"]:
            return base
    return None
