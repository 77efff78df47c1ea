"""The ``bah_video`` adapter: BAH video level, ``labels/split/{train,val,test}.txt``, one
``<video path>,<0|1>,<transcript>`` line per video.

Each line names its video by path under the ``videos`` folder (participant
subfolders are kept as written); the id is the file stem and the split file
is the label path. ``video_annotation_transcript.yaml`` next to ``split``,
where present, must agree with the split files: two sources that disagree are
an error naming both, never a silent choice.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from affectflow.data.adapters.entry import DatasetEntry, check_labels_given, check_videos_entry
from affectflow.data.adapters.errors import LabelError
from affectflow.data.adapters.files import cached, labels_dir, read_lines, resolve
from affectflow.data.adapters.registry import FoundUnits, register_adapter
from affectflow.data.adapters.videos import is_video_name
from affectflow.data.units import Unit, shard_of

# labels/split/<split>.txt, one `<video path>,<0|1>,<transcript>` line per video.
BAH_SPLIT_FILES = (("train.txt", "train"), ("val.txt", "val"), ("test.txt", "test"))
BAH_ANNOTATIONS = "video_annotation_transcript.yaml"


def check_bah_video_entry(entry: DatasetEntry) -> None:
    """Videos and labels folders; no ``test_list``: the test videos are those of ``split/test.txt``."""
    check_videos_entry(entry)
    if entry.test_list:
        raise LabelError(f"{entry.where}: the bah_video adapter reads its test videos from split/test.txt, "
                         "remove test_list")
    check_labels_given(entry)


@register_adapter("bah_video", check=check_bah_video_entry)
def bah_video_units(entry: DatasetEntry, n_shards: int, base: Path) -> FoundUnits:
    """BAH video level: ``labels/split/{train,val,test}.txt`` name each video by its path under ``videos``.

    The id is the file stem; the split file is the label path (test lines carry
    no label that is used). Paths with subfolders (``Videos/<participant>/...``)
    are kept as written under the ``videos`` folder.
    """
    labels_given = entry.labels
    split_dir = labels_dir(labels_given, base) / "split"
    videos_given = entry.videos
    videos_dir = resolve(videos_given, base)
    if not videos_dir.is_dir():
        raise LabelError(f"{videos_given}: videos folder not found ({videos_dir})")
    found: dict[str, tuple[str, str]] = {}  # id -> (where, video path as given in the split file)
    units = []
    for name, split in BAH_SPLIT_FILES:
        if not (split_dir / name).is_file():
            continue
        shown = os.path.join(labels_given, "split", name)
        for video_id, (line, given, _) in _bah_split_rows(split_dir / name, shown, split != "test").items():
            where = f"{shown}, line {line}"
            if video_id in found:
                raise LabelError(f"{where}: video {video_id!r} ({given}) is also on {found[video_id][0]} "
                                 f"({found[video_id][1]})")
            found[video_id] = (where, given)
            if not (videos_dir / given).is_file():
                raise LabelError(f"{where}: no video {given!r} in {videos_given}")
            units.append(Unit(video_id, os.path.join(videos_given, given), split, shard_of(video_id, n_shards),
                              ah_video_labels=shown if split != "test" else ""))
    if not found:
        names = ", ".join(n for n, _ in BAH_SPLIT_FILES)
        raise LabelError(f"{labels_given}: none of split/{{{names}}} in the labels folder")
    return FoundUnits(units)


def read_ah_video_label(path: str | os.PathLike[str], video_id: str) -> int:
    """The 0/1 video label of ``video_id`` from a BAH split file, checked against the annotations file.

    When ``video_annotation_transcript.yaml`` sits next to the ``split`` folder,
    its ``global_ah`` for the video must agree with the split file: two sources
    that disagree are an error naming both, never a silent choice.
    """
    shown = os.fspath(path)
    rows = _bah_split_rows(Path(path), shown, labelled=True)
    if video_id not in rows:
        raise LabelError(f"{shown}: no line for video {video_id!r}")
    line, given, label = rows[video_id]
    assert label is not None
    annotations = Path(path).parent.parent / BAH_ANNOTATIONS
    if annotations.is_file():
        known = _bah_annotations(annotations)
        global_ah = known.get(given, known.get(video_id))
        if global_ah is not None and global_ah != label:
            raise LabelError(f"{shown}, line {line}: label {label} for {given!r}, but {annotations} says "
                             f"global_ah: {global_ah}")
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


class _AnnotationLoader(yaml.SafeLoader):
    """Safe YAML plus the ``!!python/tuple`` tag the BAH annotations use (read as a list); any other
    Python tag stays an error, so the file can never construct objects."""


_AnnotationLoader.add_constructor("tag:yaml.org,2002:python/tuple",
                                  lambda loader, node: loader.construct_sequence(node))


def _bah_annotations(path: Path) -> dict[str, int]:
    st = path.stat()
    return _parse_bah_annotations(str(path.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=2)
def _parse_bah_annotations(path: str, _mtime_ns: int, _size: int) -> dict[str, int]:
    """``global_ah`` per video of ``video_annotation_transcript.yaml``, keyed by the path it is listed under
    and by the file stem."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_AnnotationLoader)  # noqa: S506 - a SafeLoader subclass
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise LabelError(f"{path}: unreadable annotations ({str(e).splitlines()[0]})") from None
    if not isinstance(data, Mapping):
        raise LabelError(f"{path}: expected a mapping of video -> annotations, got {type(data).__name__}")
    out: dict[str, int] = {}
    for key, rec in data.items():
        value = rec.get("global_ah") if isinstance(rec, Mapping) else None
        if value is None:
            continue
        if value not in (0, 1):
            raise LabelError(f"{path}: video {key!r}: global_ah {value!r} is not 0 or 1")
        out[str(key)] = int(value)
        out.setdefault(os.path.splitext(os.path.basename(str(key)))[0], int(value))
    return out
