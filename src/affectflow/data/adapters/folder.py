"""The ``folder`` adapter: any folder of videos, for inference: every video a test unit without labels.

Every other entry of the folder is listed with the reason it is left out (the
table's ``skipped``, then ``problems.tsv``), so a video left out is never left
out silently.
"""

from __future__ import annotations

from pathlib import Path

from affectflow.data.adapters.entry import DatasetEntry, check_videos_entry
from affectflow.data.adapters.errors import LabelError
from affectflow.data.adapters.registry import FoundUnits, register_adapter
from affectflow.data.adapters.videos import VideoFolder
from affectflow.data.units import NO_TEST_LIST, Unit, shard_of


def check_folder_entry(entry: DatasetEntry) -> None:
    """A videos folder and nothing else: there are no labels to read."""
    check_videos_entry(entry)
    extra = sorted(k for k in ("labels", "test_list") if getattr(entry, k))
    if extra:
        raise LabelError(f"{entry.where}: the folder adapter takes no labels, remove {extra}")


@register_adapter("folder", check=check_folder_entry)
def folder_units(entry: DatasetEntry, n_shards: int, base: Path) -> FoundUnits:
    """Every video of the folder as a ``test`` unit of no task's test list (never in a submission); the other
    entries as skipped files."""
    videos = VideoFolder(entry.videos, base)
    units = []
    for video_id in videos.by_stem:
        path = videos.find(video_id)
        assert path is not None
        units.append(Unit(video_id, path, "test", shard_of(video_id, n_shards), test_of=NO_TEST_LIST))
    return FoundUnits(units, videos.skipped)
