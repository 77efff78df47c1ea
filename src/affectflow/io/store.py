"""The one module that writes and reads affectflow's HDF5 shard files.

Every stage output (media, faces, features, transcripts) is a shard file with
one group per video under ``/videos/<key>``. Writers go to a temporary file in
the same directory and rename it into place only when the context manager
exits cleanly, so a killed job never leaves a file that looks finished (the
next writer of the same shard removes the temporary file it left).
Provenance attributes on the file say who produced it and from what; readers
check them so that a file produced by another stage or model is never read as
if it were the expected one.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, unquote

import h5py
import numpy as np

from affectflow import __version__
from affectflow.core.errors import AffectflowError
from affectflow.core.files import FileStat, atomic_path
from affectflow.core.vocabulary import FORMER_STAGE_NAMES

log = logging.getLogger("affectflow.io.store")

FORMAT_VERSION = 1
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


#: what a user does about a damaged shard: outputs are derived, so the workflow makes it again
REMAKE = ": delete it and rerun, and Snakemake makes it again"


class StoreError(AffectflowError, RuntimeError):
    """A shard file is missing, unfinished or was produced by something else."""


def video_key(video_id: str) -> str:
    """Map any video id to a safe HDF5 group / file-name component.

    Ids come from user file names and label files, so they may contain ``/``,
    ``..``, spaces or shell metacharacters. Percent-encoding everything outside
    ``[A-Za-z0-9_-]`` is reversible and can never form a path separator or a
    relative path component.
    """
    if not video_id:
        raise ValueError("empty video id")
    return _UNSAFE.sub(lambda m: quote(m.group(0), safe=""), video_id).replace(".", "%2E")


def video_id_from_key(key: str) -> str:
    return unquote(key)


@dataclass(frozen=True)
class Provenance:
    """What produced a shard file; written as file attributes.

    ``rerun_key`` is the job's rerun key (:mod:`affectflow.plan.rerun`), the same
    text the workflow compared to decide that the job had to run; ``config``
    holds the key's options plus what the stage resolved while running (the
    engine it picked, the classes of the model, ...).
    """

    stage: str
    model: str = ""
    weights_sha256: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    producer: str = "affectflow"
    version: str = __version__
    stage_version: int = 0
    rerun_key: str = ""

    @classmethod
    def of(cls, key: Any, *, model: str = "", weights_sha256: str = "",
           resolved: Mapping[str, Any] | None = None) -> Provenance:
        """The provenance of an output made under rerun key ``key`` (an :class:`affectflow.plan.rerun.RerunKey`).

        ``resolved`` may add values the stage found at run time, and fill in
        options left at ``None`` ("take it from the model"); it cannot
        contradict an option the key sets.
        """
        config = dict(key.options)
        for name, value in dict(resolved or {}).items():
            if config.get(name) is not None and config[name] != value:
                raise ValueError(f"{key.stage}: resolved {name}={value!r} contradicts the option {config[name]!r}")
            config[name] = value
        return cls(stage=key.stage, model=model, weights_sha256=weights_sha256, config=config,
                   stage_version=key.version, rerun_key=key.text)

    def to_attrs(self) -> dict[str, Any]:
        return {
            "producer": self.producer,
            "producer_version": self.version,
            "format_version": FORMAT_VERSION,
            "stage": self.stage,
            "stage_version": int(self.stage_version),
            "rerun_key": self.rerun_key,
            "model": self.model,
            "weights_sha256": self.weights_sha256,
            "config": json.dumps(dict(self.config), sort_keys=True, default=str),
        }

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Provenance:
        return cls(
            stage=str(attrs["stage"]),
            model=str(attrs.get("model", "")),
            weights_sha256=str(attrs.get("weights_sha256", "")),
            config=json.loads(attrs.get("config", "{}")),
            producer=str(attrs.get("producer", "")),
            version=str(attrs.get("producer_version", "")),
            stage_version=int(attrs.get("stage_version", 0)),
            rerun_key=str(attrs.get("rerun_key", "")),
        )


@dataclass
class VideoRecord:
    """Arrays and scalar attributes of one video inside a shard."""

    video_id: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that killed writers of ``path`` left behind; return them.

    A ``SIGKILL``-ed job cannot clean up, and a shard's temporary file can be as
    large as the shard. HDF5 holds an exclusive ``flock`` on a file it has open
    for writing, so a temporary file that can be locked has no live writer.
    Nothing is removed when HDF5 file locking is switched off
    (``HDF5_USE_FILE_LOCKING=FALSE``) or locks are not supported.
    """
    path = Path(path)
    if os.environ.get("HDF5_USE_FILE_LOCKING", "").strip().upper() in ("FALSE", "0", "NO", "OFF"):
        return []
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        return []
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live writer (or no lock support): leave it
        else:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
        finally:
            os.close(fd)
    if removed:
        log.warning("%s: removed %d temporary file(s) left by a killed writer", path, len(removed))
    return removed


def _write_attrs(grp: h5py.Group, attrs: Mapping[str, Any]) -> None:
    for name, value in attrs.items():
        grp.attrs[name] = json.dumps(value) if isinstance(value, (dict, list)) else value


def _write_array(grp: h5py.Group, name: str, arr: Any, *, compress: bool = True) -> None:
    """One whole array: strings as HDF5 strings, large numeric arrays lzf-compressed unless ``compress`` is off."""
    arr = np.asarray(arr)
    if arr.dtype.kind in "OUS":
        grp.create_dataset(name, data=arr.astype(object), dtype=h5py.string_dtype())
    elif arr.ndim >= 1 and arr.size > 4096 and compress:
        grp.create_dataset(name, data=arr, compression="lzf", chunks=True)
    else:
        grp.create_dataset(name, data=arr)


# rows per HDF5 chunk of an appended array: about 1 MiB (HDF5's default chunk cache), at most 4096 rows
_CHUNK_BYTES = 1 << 20


def row_chunks(rows: np.ndarray) -> tuple[int, ...]:
    """The HDF5 chunks of an appended array whose rows are like ``rows``': whole rows, about 1 MiB a chunk."""
    row_bytes = max(1, int(np.prod(rows.shape[1:], dtype=np.int64)) * rows.dtype.itemsize)
    return (max(1, min(4096, _CHUNK_BYTES // row_bytes)), *rows.shape[1:])


class VideoAppender:
    """One video's numeric arrays, grown a batch of rows at a time (resizable, row-chunked, lzf-compressed).

    The first :meth:`append` fixes each array's dtype and per-row shape; every
    call must give all arrays the same number of rows. An array of another
    length (a video's frame times beside its audio) is written whole with
    :meth:`put`. Set scalar attributes
    in :attr:`attrs`; they are written when the video is finished. Arrays named
    in ``uncompressed`` are stored as they are: lzf stores face crops in about
    three quarters of the space, but writing and reading them back then takes
    longer than a GPU takes to embed them (docs/performance.md).
    """

    def __init__(self, grp: h5py.Group, uncompressed: Collection[str] = ()) -> None:
        self._grp = grp
        self._uncompressed = frozenset(uncompressed)
        # the appended arrays, open for the whole video: opening a dataset per batch costs more than writing a
        # batch of raw crops, and closing it flushes its partial chunk, which the next batch then reads back
        self._datasets: dict[str, h5py.Dataset] = {}
        self._row_shapes: dict[str, tuple[int, ...]] = {}
        self._closed = False
        self.n = 0
        self.attrs: dict[str, Any] = {}

    def append(self, rows: Mapping[str, np.ndarray]) -> None:
        if self._closed:
            raise ValueError(f"{self._grp.name}: rows appended after the video was finished")
        arrays = {k: np.asarray(v) for k, v in rows.items()}
        counts = {len(a) for a in arrays.values()}
        if len(counts) > 1:
            raise ValueError(f"rows of unequal length: { {k: len(a) for k, a in arrays.items()} }")
        n = counts.pop() if counts else 0
        if not self._datasets:
            if set(arrays) & set(self._grp):
                raise ValueError(f"arrays {sorted(set(arrays) & set(self._grp))} were written whole with put()")
            for name, a in arrays.items():
                self._datasets[name] = self._grp.create_dataset(
                    name, shape=(0, *a.shape[1:]), maxshape=(None, *a.shape[1:]), dtype=a.dtype,
                    chunks=row_chunks(a), compression=None if name in self._uncompressed else "lzf")
                self._row_shapes[name] = a.shape[1:]
        elif arrays.keys() != self._datasets.keys():
            raise ValueError(f"arrays {sorted(arrays)} differ from the first batch's {sorted(self._datasets)}")
        for name, a in arrays.items():
            if a.shape[1:] != self._row_shapes[name]:
                raise ValueError(f"{name}: rows of shape {a.shape[1:]}, expected {self._row_shapes[name]}")
        for name, a in arrays.items():
            ds = self._datasets[name]
            ds.resize(self.n + n, axis=0)
            ds[self.n:] = a
        self.n += n

    def appended(self, name: str) -> np.ndarray:
        """All rows appended so far to the array ``name``."""
        return self._datasets[name][()]

    def rewrite(self, name: str, values: np.ndarray) -> None:
        """Replace the appended rows of ``name`` with ``values`` (as many rows: a correction known only once
        the video is decoded to its end, such as its frames' numbers)."""
        ds = self._datasets[name]
        if len(values) != len(ds):
            raise ValueError(f"{self._grp.name}/{name}: {len(values)} rows to rewrite, {len(ds)} written")
        ds[...] = np.asarray(values, dtype=ds.dtype)

    def close(self) -> None:
        """Let go of the appended arrays' handles (the video is finished, or removed); appending ends here."""
        self._datasets.clear()
        self._closed = True

    def put(self, name: str, array: Any) -> None:
        """Write one array whole, beside the appended ones and of its own length (as :meth:`ShardWriter.add`)."""
        if name in self._grp:
            raise ValueError(f"array {name!r} written twice")
        _write_array(self._grp, name, array, compress=name not in self._uncompressed)


class ShardWriter:
    """Write a shard file atomically.

    Use as a context manager; the final path appears only after ``__exit__``
    without an exception. On an exception the temporary file is removed and any
    existing file at the final path is left untouched.
    """

    def __init__(self, path: str | os.PathLike[str], provenance: Provenance) -> None:
        self.path = Path(path)
        self.provenance = provenance
        self._atomic: contextlib.ExitStack | None = None
        self._h5: h5py.File | None = None
        self._ids: list[str] = []

    def __enter__(self) -> ShardWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.path)
        self._atomic = contextlib.ExitStack()  # core.files.atomic_path: the one temporary-file-and-rename
        tmp = self._atomic.enter_context(atomic_path(self.path))
        try:
            self._h5 = h5py.File(tmp, "w")
            self._h5.attrs.update(self.provenance.to_attrs())
            self._h5.attrs["complete"] = False
            self._h5.create_group("videos")
        except BaseException as e:
            self._atomic.__exit__(type(e), e, e.__traceback__)  # removes the temporary file
            raise
        return self

    def add(self, record: VideoRecord, uncompressed: Collection[str] = ()) -> None:
        """Write one whole video; large numeric arrays are lzf-compressed unless named in ``uncompressed``."""
        assert self._h5 is not None, "ShardWriter used outside its context"
        key = video_key(record.video_id)
        if key in self._h5["videos"]:
            raise StoreError(f"{self.path}: video id {record.video_id!r} written twice")
        grp = self._h5["videos"].create_group(key)
        grp.attrs["video_id"] = record.video_id
        _write_attrs(grp, record.attrs)
        for name, arr in record.arrays.items():
            _write_array(grp, name, arr, compress=name not in uncompressed)
        self._ids.append(record.video_id)

    @contextlib.contextmanager
    def video(self, video_id: str, uncompressed: Collection[str] = ()) -> Iterator[VideoAppender]:
        """Write one video's arrays a batch of rows at a time (see :class:`VideoAppender`; arrays named in
        ``uncompressed`` are stored without lzf).

        Long videos never sit in memory whole: a 20-minute video at 30 frames/s
        has 36,000 face crops of 150 KB. If the block raises, the video's group
        is removed (the space it took stays in the temporary file until the
        shard is rewritten) and the error propagates, so a video is either
        complete in the shard or absent.
        """
        assert self._h5 is not None, "ShardWriter used outside its context"
        key = video_key(video_id)
        if key in self._h5["videos"]:
            raise StoreError(f"{self.path}: video id {video_id!r} written twice")
        grp = self._h5["videos"].create_group(key)
        grp.attrs["video_id"] = video_id
        appender = VideoAppender(grp, uncompressed)
        try:
            yield appender
        except BaseException:
            appender.close()
            del self._h5["videos"][key]
            raise
        appender.close()
        _write_attrs(grp, appender.attrs)
        self._ids.append(video_id)

    def set_skipped(self, skipped: list[tuple[str, str]]) -> None:
        """Record videos this stage skipped, with the reason, so later stages and
        the problems report exclude them consistently."""
        assert self._h5 is not None, "ShardWriter used outside its context"
        self._h5.attrs["skipped"] = json.dumps([[vid, reason] for vid, reason in skipped])

    def set_sources(self, sources: Mapping[str, FileStat]) -> None:
        """Record each video's file as the stage read it (video id -> size, time, sha256), so that a file
        replaced since, even by an older one, is found (:mod:`affectflow.plan.replaced`)."""
        assert self._h5 is not None, "ShardWriter used outside its context"
        self._h5.attrs["sources"] = json.dumps({vid: [st.size, st.mtime_ns, st.sha256] for vid, st in sources.items()})

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._h5 is not None and self._atomic is not None
        try:
            if exc_type is None:
                self._h5.attrs["complete"] = True
                self._h5.attrs["n_videos"] = len(self._ids)
            self._h5.close()
        except BaseException as e:
            self._atomic.__exit__(type(e), e, e.__traceback__)  # removes the temporary file
            raise
        # atomic_path: the closed file replaces the shard, or is removed when the block failed
        self._atomic.__exit__(exc_type, exc, tb)


def write_shard(
    path: str | os.PathLike[str], provenance: Provenance, records: Iterator[VideoRecord] | list[VideoRecord]
) -> Path:
    """Write all records into ``path`` atomically and return the path."""
    with ShardWriter(path, provenance) as w:
        for rec in records:
            w.add(rec)
    return Path(path)


def read_spans(rows: np.ndarray) -> list[np.ndarray]:
    """Increasing ``rows`` cut into pieces whose range (first to last row) is at most twice their length: a read
    of each range then holds at most twice the rows wanted, and rows that lie close together share a read."""
    runs = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)  # consecutive rows
    spans: list[list[np.ndarray]] = []
    held = 0  # rows in the last span
    for run in runs:
        if spans and run[-1] - spans[-1][0][0] + 1 <= 2 * (held + len(run)):
            spans[-1].append(run)
            held += len(run)
        else:
            spans.append([run])
            held = len(run)
    return [s[0] if len(s) == 1 else np.concatenate(s) for s in spans]


class ShardReader:
    """Read-only view of a finished shard file, checked against expectations."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        stage: str | None = None,
        model: str | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise StoreError(f"{self.path}: shard file does not exist")
        try:
            self._h5 = h5py.File(self.path, "r")
        except OSError as e:
            raise StoreError(f"{self.path}: not a readable HDF5 file ({e}); it was cut short or damaged{REMAKE}") from e
        attrs = self._h5.attrs
        if attrs.get("producer") != "affectflow" or "stage" not in attrs:
            self._h5.close()
            raise StoreError(f"{self.path}: not an affectflow shard (no provenance attributes)")
        if not bool(attrs.get("complete", False)):
            self._h5.close()
            raise StoreError(f"{self.path}: shard file is incomplete (its writer did not finish){REMAKE}")
        self.provenance = Provenance.from_attrs(attrs)
        if stage is not None and self.provenance.stage not in (stage, *FORMER_STAGE_NAMES.get(stage, ())):
            self._h5.close()
            raise StoreError(f"{self.path}: expected a {stage!r} shard, found {self.provenance.stage!r}")
        if model is not None and self.provenance.model != model:
            self._h5.close()
            raise StoreError(f"{self.path}: expected model {model!r}, found {self.provenance.model!r}")

    def __enter__(self) -> ShardReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._h5.close()

    def skipped(self) -> list[tuple[str, str]]:
        """(video_id, reason) of videos the producing stage skipped."""
        return [(v, r) for v, r in json.loads(self._h5.attrs.get("skipped", "[]"))]

    def sources(self) -> dict[str, FileStat]:
        """Video id -> its file as the stage read it (:meth:`ShardWriter.set_sources`; empty for a shard written
        without them)."""
        return {vid: FileStat(int(size), int(mtime), str(sha256)) for vid, (size, mtime, sha256)
                in json.loads(self._h5.attrs.get("sources", "{}")).items()}

    def video_ids(self) -> list[str]:
        return [str(self._h5["videos"][k].attrs["video_id"]) for k in self._h5["videos"]]

    def __contains__(self, video_id: str) -> bool:
        return video_key(video_id) in self._h5["videos"]

    def _group(self, video_id: str) -> h5py.Group:
        key = video_key(video_id)
        if key not in self._h5["videos"]:
            raise StoreError(f"{self.path}: no video {video_id!r} in this shard")
        return self._h5["videos"][key]

    def array_names(self, video_id: str) -> list[str]:
        """The names of one video's arrays (without reading them)."""
        return list(self._group(video_id).keys())

    def iter_rows(self, video_id: str, name: str, rows: np.ndarray, batch: int = 256) -> Iterator[np.ndarray]:
        """``array[rows]`` of one video in batches of at most ``batch`` rows (``rows``: increasing indices).

        What keeps a consumer of face crops in bounded memory however long the
        video. A batch is read in contiguous ranges (:func:`read_spans`), each at
        most twice as long as the rows it holds, so mostly-selected rows cost one
        read and a few faces scattered over a long video do not read what lies
        between them. Yields one empty batch when ``rows`` is empty, so the
        consumer still sees the array's dtype and row shape.
        """
        ds = self._group(video_id)[name]
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (np.any(np.diff(rows) <= 0) or rows[0] < 0 or rows[-1] >= len(ds)):
            raise ValueError(f"{self.path}: rows of {video_id!r}/{name} must be increasing indices below {len(ds)}")
        if not rows.size:
            yield np.zeros((0, *ds.shape[1:]), ds.dtype)
            return
        for start in range(0, len(rows), batch):
            pieces = []
            for span in read_spans(rows[start:start + batch]):
                block = ds[int(span[0]):int(span[-1]) + 1]
                pieces.append(block if len(block) == len(span) else block[span - span[0]])  # all wanted: no copy
            yield pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def read(self, video_id: str, names: Iterable[str] | None = None) -> VideoRecord:
        """One video's attributes and arrays (only ``names`` when given: large arrays stay on disk)."""
        grp = self._group(video_id)
        wanted = None if names is None else set(names)
        arrays: dict[str, np.ndarray] = {}
        for name, ds in grp.items():
            if wanted is not None and name not in wanted:
                continue
            if h5py.check_string_dtype(ds.dtype) is not None:
                arrays[name] = np.array([s.decode() if isinstance(s, bytes) else s for s in ds[()]], dtype=object)
            else:
                arrays[name] = ds[()]
        if wanted is not None and wanted - set(arrays):
            raise StoreError(f"{self.path}: video {video_id!r} has no array(s) {sorted(wanted - set(arrays))}")
        attrs: dict[str, Any] = {}
        for k, v in grp.attrs.items():
            if isinstance(v, str) and v[:1] in "[{":
                try:
                    v = json.loads(v)
                except json.JSONDecodeError:
                    pass
            attrs[k] = v.item() if isinstance(v, np.generic) else v
        return VideoRecord(video_id=str(grp.attrs["video_id"]), arrays=arrays, attrs=attrs)

    def __iter__(self) -> Iterator[VideoRecord]:
        for vid in self.video_ids():
            yield self.read(vid)
