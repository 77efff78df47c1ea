"""Videos replaced by older files since their media shard was made, made visible to Snakemake.

Snakemake reruns a job when an input is newer than its output (and, with input
checksums kept, only when the newer input's content differs). A video replaced
by a file with an *older* modification time, as ``cp -p``, ``rsync -a`` and
``tar x`` of a re-released dataset leave it, is never looked at: its shards
would keep the old video's results. The media stage records each video's size,
modification time and sha256 as it read it
(:meth:`~affectflow.io.store.ShardWriter.set_sources`). At the start of a run,
a video that no longer matches its record (size, or time to the second), is not
newer than its media shard and whose bytes differ from those read, puts the
shard's modification time just before its own: Snakemake then sees an updated
input, and the media stage and all after it rerun for that shard. Only the
shard's timestamp is touched, never a result's content. The cost: a stat per
video and an open per media shard at each start, and a sha256 of each file whose
size or time differs from its record but is not newer than its shard. A file so
found to hold the recorded bytes (``touch -d``, or a copy that kept another
time) is written down with its size and time to the nanosecond in a small JSON
file (``seen``), and is not hashed again while these stay as they are, the
trust Snakemake itself puts in a file's time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from affectflow.core.files import FileStat, atomic_write_text
from affectflow.data.units import Unit
from affectflow.io.store import ShardReader, StoreError

#: how far before the earliest replaced video the shard's modification time is put (ns)
BEFORE_NS = 1_000_000_000


@dataclass(frozen=True)
class Replaced:
    """A media shard some of whose videos were replaced by files not newer than it."""

    shard: Path
    video_ids: tuple[str, ...]
    error: str = ""  # why its modification time could not be moved ('': it was)

    def message(self) -> str:
        more = len(self.video_ids) - 5
        ids = ", ".join(self.video_ids[:5]) + (f" and {more} more" if more > 0 else "")
        found = (f"{self.shard}: {len(self.video_ids)} video(s) changed since it was made, by a file not newer "
                 f"than it ({ids})")
        if self.error:
            return (f"{found}, but its modification time cannot be moved ({self.error}): Snakemake will not rerun "
                    f"it; add --forcerun {self.shard}")
        return f"{found}: its modification time is put before theirs, so that Snakemake reruns it"


def backdate_replaced(shards: Mapping[str, Sequence[Unit]], media_shard: Callable[[str], str | os.PathLike[str]],
                      seen: str | os.PathLike[str] | None = None) -> list[Replaced]:
    """Put each media shard (``media_shard(shard)``) whose videos (``shards[shard]``) include one replaced by
    other bytes in a file not newer than the shard just before that file in time; the shards so changed. A
    shard not yet made, not finished or without records is left alone: Snakemake makes it. ``seen``: the
    JSON file of videos already hashed and found unchanged (:class:`SameBytes`); None hashes them each time."""
    same = SameBytes.load(seen)
    found: list[Replaced] = []
    for shard, units in shards.items():
        path = Path(media_shard(shard))
        try:
            made = path.stat()
            with ShardReader(path, stage="media") as reader:
                recorded = reader.sources()
        except (OSError, StoreError):
            continue
        replaced: dict[str, int] = {}
        for unit in units:
            was, now = recorded.get(unit.video_id), FileStat.of(unit.path)
            # a newer file is Snakemake's to see; the same bytes with another time are the same video
            if (was is not None and now is not None and was.changed(now) and now.mtime_ns <= made.st_mtime_ns
                    and not same.holds(unit.path, was, now)):
                replaced[unit.video_id] = now.mtime_ns
        if replaced:
            try:
                os.utime(path, ns=(made.st_atime_ns, min(replaced.values()) - BEFORE_NS))
            except OSError as e:  # results read-only to this user: say so, plan on
                found.append(Replaced(path, tuple(replaced), e.strerror or str(e)))
                continue
            found.append(Replaced(path, tuple(replaced)))
    same.save()
    return found


class SameBytes:
    """Files hashed at an earlier start and found to hold their recorded bytes, by path: ``[size, mtime_ns,
    sha256]``. An entry counts only while the file's size and time to the nanosecond, and the sha256 its media
    shard records, are still the ones written down; what is not looked at in a start is dropped (its shard
    reran, or the file left the run). The file is a convenience: unreadable or malformed, it is read as empty,
    and where it cannot be written the files are hashed again next time."""

    def __init__(self, path: str | os.PathLike[str] | None, entries: dict[str, list] | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._old = entries or {}
        self._now: dict[str, list] = {}

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None) -> SameBytes:
        try:
            entries = json.loads(Path(path).read_text()) if path is not None else {}
        except (OSError, ValueError):
            entries = {}
        return cls(path, entries if isinstance(entries, dict) else {})

    def holds(self, path: str, was: FileStat, now: FileStat) -> bool:
        """Whether the file at ``path`` (``now``: its size and time) holds the bytes recorded in ``was`` (a record
        without a sha256: unknown, so not the same); hashed unless written down at an earlier start."""
        if not was.sha256:
            return False
        entry = [now.size, now.mtime_ns, was.sha256]
        if self._old.get(path) != entry:
            hashed = FileStat.of(path, content=True)
            if hashed is None or hashed.sha256 != was.sha256 or (hashed.size, hashed.mtime_ns) != (now.size,
                                                                                                   now.mtime_ns):
                return False
        self._now[path] = entry
        return True

    def save(self) -> None:
        """Write the entries of this start where they differ from the file's (atomically; errors ignored)."""
        if self.path is None or self._now == self._old:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps(self._now, sort_keys=True, indent=0) + "\n")
        except OSError:
            pass
