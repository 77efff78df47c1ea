"""The optional ``test_list`` of the challenge layouts: ids of unlabelled test videos, one per line.

Shared by the ``affwild2``, ``hume_vidmimic2`` and ``bah`` adapters, whose
label folders only cover train and validation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from affectflow.data.adapters.entry import DatasetEntry
from affectflow.data.adapters.errors import LabelError
from affectflow.data.adapters.files import read_lines, resolve
from affectflow.data.adapters.videos import Locate, Located, VideoFolder, strip_video_ext
from affectflow.data.units import Unit, shard_of


def test_list_units(
    entry: DatasetEntry,
    base: Path,
    videos: VideoFolder,
    locate: Locate,
    labelled: Mapping[str, tuple[str, str]],
    n_shards: int,
    task: str,
) -> list[Unit]:
    """Units for the ids of the optional ``test_list`` of ``task`` (split test, no labels, test of that task);
    ``labelled``: id -> (split, label file as given) of the ids with labels, none of which may be a test id too."""
    given = entry.test_list
    if not given:
        return []
    seen: dict[str, int] = {}
    units = []
    for i, raw in enumerate(read_lines(resolve(given, base), given, "test list"), start=1):
        # Whole-line strip: trailing blanks from hand-edited lists are far more
        # common than ids that start or end with a space.
        line = raw.strip()
        # a path under the videos folder (BAH lists `82557/Visite 1/<name>.mp4`), or an id
        video_id = strip_video_ext(os.path.basename(line))
        if not video_id:
            continue
        where = f"{given}, line {i}"
        if video_id in seen:
            raise LabelError(f"{where}: duplicate id {video_id!r} (first on line {seen[video_id]})")
        seen[video_id] = i
        if video_id in labelled:
            raise LabelError(f"{where}: test id {video_id!r} also has labels in {labelled[video_id][1]}")
        found = Located(os.path.join(videos.given, line)) if "/" in line and (
            resolve(videos.given, base) / line).is_file() else locate(videos, video_id)
        if found is None:
            raise LabelError(f"{where}: no video for test id {video_id!r} in {videos.given}{videos.missing(video_id)}")
        units.append(Unit(video_id, found.path, "test", shard_of(video_id, n_shards), side=found.side, test_of=task))
    return units
