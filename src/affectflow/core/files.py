"""Files that are either complete or absent: the one atomic write, and file hashing.

A writer puts its bytes into a temporary file in the target's own folder (so
the rename never crosses file systems), flushes them to disk, then renames it
over the target. A job killed at any point leaves the old file or none, never
a half-written one under the final name; the temporary file is removed when
the writer fails. Every writer of the package goes through these helpers:
:func:`atomic_path` / :func:`atomic_write` for one file, :func:`atomic_folder`
for a whole folder swapped in, :func:`atomic_files_in` for files swapped into a
folder that stays.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("affectflow.files")

_CHUNK = 1 << 20
_UMASK = os.umask(0o022)
os.umask(_UMASK)


#: the longest file name of the usual file systems (ext4, XFS, Btrfs, ZFS: 255 bytes)
NAME_MAX = 255
#: how much of a target's name a temporary file beside it repeats (room left for mkstemp's part and a suffix)
_TMP_PREFIX_BYTES = 100


def _cut(text: str, n_bytes: int) -> str:
    """The longest start of ``text`` that is at most ``n_bytes`` in UTF-8, cut between characters."""
    return text.encode("utf-8", "surrogateescape")[:n_bytes].decode("utf-8", "ignore")


def bounded_name(stem: str, ext: str) -> str:
    """``stem + ext`` as a file name the file system takes: as it is up to :data:`NAME_MAX` bytes, else the stem
    cut to fit plus ``~`` and 12 hex digits of its blake2b. Video ids come from file names, and one made of
    non-ASCII characters triples in a percent-encoded key; a long one still gets its own file, and two that
    share their first 230 bytes stay apart."""
    name = stem + ext
    if len(name.encode("utf-8", "surrogateescape")) <= NAME_MAX:
        return name
    tag = "~" + hashlib.blake2b(stem.encode("utf-8", "surrogateescape"), digest_size=6).hexdigest()
    return _cut(stem, NAME_MAX - len((tag + ext).encode("utf-8", "surrogateescape"))) + tag + ext


def _as_created(path: str, mode: int) -> None:
    """Give a temporary file or folder the permissions a plain ``open``/``mkdir`` would (mkstemp makes
    them private), so results stay readable by the group that shares a cluster project."""
    os.chmod(path, mode & ~_UMASK)


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
    fd, name = tempfile.mkstemp(prefix=f".{_cut(target.name, _TMP_PREFIX_BYTES)}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    _as_created(name, 0o666)
    tmp = Path(name)
    try:
        yield tmp
        replace_durably(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary folder beside ``target`` to fill; on success it takes the place of ``target``, on failure it
    is removed: a reader never sees a half-written folder under the final name.

    The swap renames the old ``target`` (a folder, file or link) aside, renames the new folder in, and only
    then deletes the old one: ``target`` is the old complete folder or the new one, except for the instant
    between the two renames, and never half-deleted. The temporary names carry the writer's process id and
    host (``.<name>.building-<pid>@<host>-*``, ``.<name>.old-<pid>@<host>-*``): what a killed writer on this
    host left is removed by the next one, first (:func:`remove_stale_folders`; a folder of 20,000 CSVs is not
    left for good).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for p in remove_stale_folders(target):
        log.info("removed %s, left by a killed writer of %s", p, target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-{_writer()}-", dir=target.parent))
    _as_created(str(tmp), 0o777)
    try:
        yield tmp
        old = None
        if target.exists() or target.is_symlink():
            old = target.parent / f".{target.name}.old-{_writer()}-{tmp.name.rsplit('-', 1)[-1]}"
            os.replace(target, old)
        try:
            os.replace(tmp, target)
        except BaseException:
            if old is not None:
                os.replace(old, target)
            raise
        if old is not None:
            _remove(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"


def _writer() -> str:
    """``<pid>@<host>``: a process id says whether its writer lives only on the host it was taken on."""
    return f"{os.getpid()}@{_host()}"


def remove_stale_folders(target: str | os.PathLike[str]) -> list[Path]:
    """Remove what killed :func:`atomic_folder` writers of ``target`` on this host left beside it (the temporary
    folder and a renamed-aside old one) when their process is gone; return what was removed. A folder of
    another host's writer is left: its process cannot be asked from here (one without a host, of an older
    version, is taken for this host's)."""
    target = Path(target)
    stale = re.compile(rf"\.{re.escape(target.name)}\.(?:building|old)-(\d+)(?:@(.+?))?(?:-[A-Za-z0-9_]+)?")
    removed = []
    for p in sorted(target.parent.glob(f".{glob.escape(target.name)}.*")) if target.parent.is_dir() else []:
        m = stale.fullmatch(p.name)
        if m and m.group(2) in (None, _host()) and not _pid_alive(int(m.group(1))):
            _remove(p)
            removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_files_in(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary folder beside ``folder`` to fill with files; on success each of them replaces the file of
    the same name in ``folder`` with one rename (:func:`replace_durably`; files of ``folder`` not written are
    kept), on failure it is removed.

    Unlike :func:`atomic_folder` the folder stays in place and only its files are swapped, each complete or
    absent: a job that has a file of an earlier build open (or memory-mapped) keeps reading intact bytes.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}.") as tmp:
        yield Path(tmp)
        for f in sorted(Path(tmp).iterdir()):
            replace_durably(f, folder / f.name)


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


@dataclass(frozen=True)
class FileStat:
    """A file as a stage read it: size, modification time (ns) and, where asked for, the sha256 of its bytes.

    Snakemake sees an input changed only when it is newer than the output, so a file replaced by an older one
    (``cp -p``, ``rsync -a``, ``tar x`` of a re-released dataset) passes unseen by it; a record kept beside the
    output does not (:mod:`affectflow.plan.replaced`).
    """

    size: int
    mtime_ns: int
    sha256: str = ""

    @classmethod
    def of(cls, path: str | os.PathLike[str], *, content: bool = False) -> FileStat | None:
        """``path`` now (with ``content``, its sha256 too: a second per GB); None when it cannot be read (the
        stage reading it says why)."""
        try:
            st = os.stat(path)
            return cls(int(st.st_size), int(st.st_mtime_ns), sha256_file(path) if content else "")
        except OSError:
            return None

    def changed(self, now: FileStat) -> bool:
        """Whether ``now`` may be another file: another size or modification time, to the second (``tar`` and
        some copies keep whole seconds only, and a file restored so is the same file)."""
        return now.size != self.size or now.mtime_ns // 10**9 != self.mtime_ns // 10**9
