"""The units table: one row per video, and the stable sharding that groups them.

Shards keep the DAG small (a few hundred jobs per stage for 15,000 videos) and
make additions local: a video's shard depends only on its id, so adding a
video changes only the shard it hashes into.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from affectflow.core.errors import AffectflowError
from affectflow.core.files import atomic_write
from affectflow.core.vocabulary import SPLITS, TASKS

COLUMNS = ("video_id", "path", "split", "shard", *(f"{t}_labels" for t in TASKS), "side", "test_of")
#: columns a units table may lack (tables written before they existed, hand-made tables)
OPTIONAL_COLUMNS = ("ah_video_labels", "side", "test_of")


class UnitsError(AffectflowError, ValueError):
    """The dataset cannot be turned into a consistent units table."""


def shard_of(video_id: str, n_shards: int) -> str:
    """Stable shard name for a video id (independent of Python's hash seed)."""
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    digest = hashlib.blake2b(video_id.encode("utf-8"), digest_size=8).digest()
    return f"s{int.from_bytes(digest, 'big') % n_shards:04d}"


#: ``Unit.test_of`` of a video no task's test list names (a ``folder`` dataset's): predicted by an applied bundle
#: or the run's heads (frame_predictions), never part of a submission
NO_TEST_LIST = "none"

#: what decoding and face detection read of a unit: a new label file or split never reruns them
VIDEO_FIELDS = ("video_id", "path", "side")


@dataclass(frozen=True)
class Unit:
    """One video and where its labels are, per task ('' = no labels)."""

    video_id: str
    path: str
    split: str
    shard: str
    expr_labels: str = ""
    emi_labels: str = ""
    ah_labels: str = ""
    ah_video_labels: str = ""  # the BAH split file that holds the video's 0/1 label
    side: str = ""  # "left" / "right": the person of a two-person video this unit is (Aff-Wild2 _left/_right)
    #: a test video's tasks, comma-separated in vocabulary order: the tasks whose test list names it ('' = every
    #: task's, as in a table written without the column; :data:`NO_TEST_LIST`: none, a folder's video)
    test_of: str = ""

    def labels(self, task: str) -> str:
        return getattr(self, f"{task}_labels")

    def is_test_of(self, task: str) -> bool:
        """Whether ``task``'s predictions and submission are for this video: a test video that task's test list
        names. Releases share no test lists: an Aff-Wild2 test video has no place in the EMI submission."""
        return self.split == "test" and (not self.test_of or task in self.test_of.split(","))

    def video(self) -> dict[str, str]:
        """The unit as a per-video job's work item: only :data:`VIDEO_FIELDS`. Snakemake reruns a job whose
        params change, so a work list that held labels or the split would rerun decoding and face detection
        for a new label file."""
        return {f: getattr(self, f) for f in VIDEO_FIELDS}

    @classmethod
    def from_video(cls, item: Mapping[str, str]) -> Unit:
        """A work item (:meth:`video`) back as a unit, without split, shard or labels (its job reads none)."""
        return cls(split="", shard="", **{f: item[f] for f in VIDEO_FIELDS})


@dataclass(frozen=True)
class SkippedFile:
    """A file of a ``folder`` dataset's videos folder that is no unit, and why: listed in ``problems.tsv``, so
    that a video left out is never left out silently."""

    path: str  # as configured: the videos folder as given, then the file's name
    reason: str  # "hidden file", "an image (.jpg), not a video", "not a video: no video stream", ...

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


@dataclass
class UnitsTable:
    """All units of a run, with lookups the workflow needs at parse time, and the files of folder datasets that
    are not units (``skipped``; not part of ``units.tsv``)."""

    units: list[Unit] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)

    def __post_init__(self) -> None:
        seen: dict[str, Unit] = {}
        for u in self.units:
            if u.video_id in seen:
                raise UnitsError(
                    f"duplicate video id {u.video_id!r}: {seen[u.video_id].path} and {u.path}"
                )
            if u.split not in SPLITS:
                raise UnitsError(f"video {u.video_id!r}: split {u.split!r} is not one of {SPLITS}")
            seen[u.video_id] = u
        self._by_id = seen

    def __len__(self) -> int:
        return len(self.units)

    def __iter__(self):
        return iter(self.units)

    def get(self, video_id: str) -> Unit:
        return self._by_id[video_id]

    def shards(self) -> list[str]:
        """Non-empty shards only, sorted."""
        return sorted({u.shard for u in self.units})

    def in_shard(self, shard: str) -> list[Unit]:
        return [u for u in self.units if u.shard == shard]

    def by_shard(self) -> dict[str, list[Unit]]:
        out: dict[str, list[Unit]] = {}
        for u in self.units:
            out.setdefault(u.shard, []).append(u)
        return dict(sorted(out.items()))

    def write_tsv(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (:func:`affectflow.core.files.atomic_write`)."""
        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f, delimiter="\t", lineterminator="\n")
                w.writerow(COLUMNS)
                for u in sorted(self.units, key=lambda u: (u.shard, u.video_id)):
                    w.writerow([getattr(u, c) for c in COLUMNS])
        atomic_write(path, write)

    @classmethod
    def read_tsv(cls, path: str | os.PathLike[str]) -> UnitsTable:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        required = set(COLUMNS) - set(OPTIONAL_COLUMNS)
        if rows and required - set(rows[0]):
            raise UnitsError(f"{path}: missing columns {sorted(required - set(rows[0]))}")
        names = {f.name for f in fields(Unit)}
        optional = dict.fromkeys(OPTIONAL_COLUMNS, "")
        return cls([Unit(**{k: (optional[k] if v is None and k in optional else v) for k, v in r.items()
                            if k in names}) for r in rows])


def _named_by(u: Unit) -> str:
    """The files that put a unit in its split, for an error about it."""
    files = [u.labels(t) for t in TASKS if u.labels(t)]
    if files:
        return "labels " + ", ".join(dict.fromkeys(files))
    return f"the test list of {u.test_of}" if u.test_of and u.test_of != NO_TEST_LIST else "no labels"


def _test_tasks(a: str, b: str) -> str:
    """The test lists of two entries naming one video, joined (vocabulary order); '' (every task's) if either is."""
    if not a or not b:
        return ""
    given = set(a.split(",")) | set(b.split(","))
    return ",".join(t for t in TASKS if t in given) or NO_TEST_LIST


def merge_units(groups: Iterable[list[Unit]], skipped: Iterable[SkippedFile] = ()) -> UnitsTable:
    """Merge units from several dataset entries that may share videos; ``skipped``: the files they left out
    (one entry per path).

    The same video may carry labels for several tasks (the demo does). Rows
    with the same id are merged when they agree on path and split; otherwise
    it is a duplicate id and an error. The table is in id order.
    """
    merged: dict[str, Unit] = {}
    for group in groups:
        for u in group:
            prev = merged.get(u.video_id)
            if prev is None:
                merged[u.video_id] = u
                continue
            if Path(prev.path).resolve() != Path(u.path).resolve():
                raise UnitsError(f"duplicate video id {u.video_id!r}: {prev.path} and {u.path}")
            if prev.split != u.split:
                raise UnitsError(f"video {u.video_id!r} is in two splits, {prev.split!r} ({_named_by(prev)}) and "
                                 f"{u.split!r} ({_named_by(u)}); a video is in one split for every task")
            labels = {
                f"{t}_labels": prev.labels(t) or u.labels(t) for t in TASKS
            }
            merged[u.video_id] = Unit(u.video_id, prev.path, prev.split, prev.shard, **labels,
                                      side=prev.side or u.side, test_of=_test_tasks(prev.test_of, u.test_of))
    # by id, not by the entry that named a video first: a label file removed from one entry must not reorder a
    # shard's work list (its jobs would rerun, their params changed)
    return UnitsTable(sorted(merged.values(), key=lambda u: u.video_id), list({s.path: s for s in skipped}.values()))
