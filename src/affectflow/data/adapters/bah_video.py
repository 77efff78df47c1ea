"""The ``bah_video`` adapter: BAH video level, as the dataset authors publish it.

The labels folder is the release's split folder
(``dataset-splits/video-level/BAH_DB/split-0`` of LIVIAETS/bah-dataset):
``{train,val,test}.txt`` with one ``<video path>,<0|1>,<transcript>`` line per
video, no header, the transcript everything after the second comma (it has
commas of its own and is never quoted), paths with spaces
(``Videos/82579/Visite_1/82579_Question_1_2024-10-02 16-03-28_Video.mp4``);
and ``class_id.yaml`` (``With A-H: 1`` / ``No A-H: 0``). The files may also sit
in a ``split`` subfolder. Each path is kept as written under the ``videos``
folder; the id is the file stem and the split file is the label path.
``video_annotation_transcript.yaml`` next to the split files or one folder up,
where present, must agree with them: two sources that disagree are an error
naming both, never a silent choice.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from pathlib import Path

from affectflow.data.adapters.bah_annotation import load_yaml, read_annotations
from affectflow.data.adapters.entry import DatasetEntry, check_labels_given, check_videos_entry
from affectflow.data.adapters.errors import LabelError
from affectflow.data.adapters.files import cached, existing_folder, labels_dir, read_lines
from affectflow.data.adapters.registry import FoundUnits, register_adapter
from affectflow.data.adapters.videos import is_video_name
from affectflow.data.units import Unit, shard_of

# <split>.txt, one `<video path>,<0|1>,<transcript>` line per video.
BAH_SPLIT_FILES = (("train.txt", "train"), ("val.txt", "val"), ("test.txt", "test"))
BAH_ANNOTATIONS = "video_annotation_transcript.yaml"
#: the class names of the release's class_id.yaml, by label
BAH_CLASS_IDS = "class_id.yaml"


def split_folder(labels: Path) -> Path:
    """Where the split files are: the labels folder itself (the published ``split-0`` folder) or its
    ``split`` subfolder."""
    if any((labels / name).is_file() for name, _ in BAH_SPLIT_FILES):
        return labels
    return labels / "split"


def check_class_ids(folder: Path, shown: str) -> None:
    """``class_id.yaml``, where the release has one, must give the labels 0 and 1 a name each: a file that
    maps them otherwise would turn every label around."""
    path = folder / BAH_CLASS_IDS
    if not path.is_file():
        return
    where = os.path.join(shown, BAH_CLASS_IDS)
    data = load_yaml(path, where)
    if not isinstance(data, Mapping) or sorted(data.values(), key=str) != [0, 1]:
        raise LabelError(f"{where}: expected two class names mapped to 1 and 0 (`With A-H: 1`, `No A-H: 0`), "
                         f"got {data!r}")
    for name, value in data.items():
        negative = _names_absence(str(name))
        if negative is not None and value != (0 if negative else 1):
            raise LabelError(f"{where}: {name!r} is mapped to {value}, but the labels read 1 as A/H present "
                             f"(`With A-H: 1`, `No A-H: 0`): the classes are swapped, got {dict(data)!r}")


def _names_absence(name: str) -> bool | None:
    """Whether a class name says "no A/H" (``No A-H``), "A/H" (``With A-H``), or neither in words we know."""
    words = re.findall(r"[a-z]+", name.lower())
    if not words:
        return None
    if words[0] in ("no", "not", "non", "without"):
        return True
    return False if words[0] in ("with", "has", "yes") else None


def check_bah_video_entry(entry: DatasetEntry) -> None:
    """Videos and labels folders; no ``test_list``: the test videos are those of ``test.txt``."""
    check_videos_entry(entry)
    if entry.test_list:
        raise LabelError(f"{entry.where}: the bah_video adapter reads its test videos from test.txt, "
                         "remove test_list")
    check_labels_given(entry)


@register_adapter("bah_video", check=check_bah_video_entry)
def bah_video_units(entry: DatasetEntry, n_shards: int, base: Path) -> FoundUnits:
    """BAH video level: ``{train,val,test}.txt`` name each video by its path under ``videos``.

    The id is the file stem; the split file is the label path (test lines carry
    no label that is used). Paths with subfolders (``Videos/<participant>/...``)
    are kept as written under the ``videos`` folder.
    """
    labels_given = entry.labels
    labels = labels_dir(labels_given, base)
    split_dir = split_folder(labels)
    split_shown = labels_given if split_dir == labels else os.path.join(labels_given, "split")
    check_class_ids(split_dir, split_shown)
    videos_given = entry.videos
    videos_dir = existing_folder(videos_given, base, "videos")
    found: dict[str, tuple[str, str]] = {}  # id -> (where, video path as given in the split file)
    units = []
    for name, split in BAH_SPLIT_FILES:
        if not (split_dir / name).is_file():
            continue
        shown = os.path.join(split_shown, name)
        for video_id, (line, given, _) in _bah_split_rows(split_dir / name, shown, split != "test").items():
            where = f"{shown}, line {line}"
            if video_id in found:
                raise LabelError(f"{where}: video {video_id!r} ({given}) is also on {found[video_id][0]} "
                                 f"({found[video_id][1]})")
            found[video_id] = (where, given)
            if not (videos_dir / given).is_file():
                raise LabelError(f"{where}: no video {given!r} in {videos_given}")
            units.append(Unit(video_id, os.path.join(videos_given, given), split, shard_of(video_id, n_shards),
                              ah_video_labels=shown if split != "test" else "",
                              test_of="ah_video" if split == "test" else ""))
    if not found:
        names = ", ".join(n for n, _ in BAH_SPLIT_FILES)
        raise LabelError(f"{labels_given}: none of {names} in the labels folder or its split subfolder")
    return FoundUnits(units)


def read_ah_video_label(path: str | os.PathLike[str], video_id: str) -> int:
    """The 0/1 video label of ``video_id`` from a BAH split file, checked against the annotations file.

    When ``video_annotation_transcript.yaml`` sits next to the split files or
    one folder up, its ``global_ah`` for the video must agree with the split
    file: two sources that disagree are an error naming both, never a silent
    choice.
    """
    shown = os.fspath(path)
    rows = _bah_split_rows(Path(path), shown, labelled=True)
    if video_id not in rows:
        raise LabelError(f"{shown}: no line for video {video_id!r}")
    line, given, label = rows[video_id]
    assert label is not None
    here = Path(path).parent
    for yaml_file in (here / BAH_ANNOTATIONS, here.parent / BAH_ANNOTATIONS):
        if yaml_file.is_file():
            known = read_annotations(yaml_file).get(video_id)
            if known is not None and known.global_ah is not None and known.global_ah != label:
                raise LabelError(f"{shown}, line {line}: label {label} for {given!r}, but {yaml_file} says "
                                 f"global_ah: {known.global_ah}")
            break
    return label


def _bah_split_rows(path: Path, shown: str, labelled: bool) -> dict[str, tuple[int, str, int | None]]:
    """Lines of a BAH split file: id -> (line, video path as written, 0/1 or None)."""
    return cached(_parse_bah_split, path, shown, "split file", labelled)


@functools.lru_cache(maxsize=8)
def _parse_bah_split(path: str, shown: str, labelled: bool, _mtime_ns: int,
                     _size: int) -> dict[str, tuple[int, str, int | None]]:
    rows: dict[str, tuple[int, str, int | None]] = {}
    for i, raw in enumerate(read_lines(Path(path), shown, "split file"), start=1):
        if not raw.strip():
            continue
        # the transcript (third field) may hold commas of its own
        fields = [f.strip() for f in raw.split(",", 2)]
        given = fields[0]
        if i == 1 and given.lower() in ("video_path", "path", "video", "filename"):
            continue  # a header line
        video_id = os.path.splitext(os.path.basename(given))[0]
        if not video_id or not is_video_name(os.path.basename(given)):
            raise LabelError(f"{shown}, line {i}: {given!r} is not a video path (expected <path>.mp4,<0|1>,<text>)")
        if video_id in rows:
            raise LabelError(f"{shown}, line {i}: video {video_id!r} again (first on line {rows[video_id][0]}: "
                             f"{rows[video_id][1]})")
        label = None
        if labelled:
            value = fields[1] if len(fields) > 1 else ""
            if value not in ("0", "1"):
                got = f"{value!r}" if value else "no label"
                raise LabelError(f"{shown}, line {i}: {got} for {given!r}, expected 0 or 1")
            label = int(value)
        rows[video_id] = (i, given, label)
    if not rows:
        raise LabelError(f"{shown}: no video line")
    return rows
