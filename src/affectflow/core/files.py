"""Files that are either complete or absent: the one atomic write, and file hashing.

A writer puts its bytes into a temporary file in the target's own folder (so
the rename never crosses file systems), flushes them to disk, then renames it
over the target. A job killed at any point leaves the old file or none, never
a half-written one under the final name; the temporary file is removed when
the writer fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

_CHUNK = 1 << 20


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a closed file's bytes to disk (before it is renamed into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(tmp: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Flush ``tmp`` and rename it over ``target`` (both in one folder)."""
    fsync_path(tmp)
    os.replace(tmp, target)
    return Path(target)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``target`` to write to; on success it replaces ``target``, on failure it is
    removed. ``suffix`` keeps the extension for writers that infer the format from it (``.png``)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        replace_durably(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write(target: str | os.PathLike[str], write: Callable[[Path], object], suffix: str = ".tmp") -> Path:
    """Call ``write(tmp)`` and put ``tmp`` in place of ``target`` atomically (see the module docstring)."""
    with atomic_path(target, suffix) as tmp:
        write(tmp)
    return Path(target)


def atomic_write_text(target: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 text (newlines as given) atomically."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    return atomic_write(target, write)


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    """Write bytes atomically."""
    return atomic_write(target, lambda tmp: tmp.write_bytes(data))


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()
