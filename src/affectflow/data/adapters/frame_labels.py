"""The frame-label challenge layout shared by Aff-Wild2 EXPR and BAH AH: ``labels/{Train,Validation}_Set/<id>.txt``,
a header line then one integer per frame.

``frame_label_units`` only checks each file's header (cheap, and it catches a
labels folder given to the wrong adapter); ``read_frame_labels`` parses a file
fully and is called by the jobs that know the decoded frame count.

The organisers' label files often have a row more or fewer than the video
decodes to (the HSEmotion notebooks add a frame "for consistency with the
organisers"). :func:`fit_to_frames` makes them agree the one safe way: rows
past the video's last frame are dropped and frames past the last row are
``-1`` (no label: never trained on, never scored). Nothing is silent:
:func:`frame_count_note` says it per video, the jobs log it and
``problems.tsv`` lists it (stage ``labels``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from affectflow.data.adapters.entry import DatasetEntry
from affectflow.data.adapters.errors import LabelError
from affectflow.data.adapters.files import labels_dir, read_lines
from affectflow.data.adapters.testlist import test_list_units
from affectflow.data.adapters.videos import Locate, VideoFolder
from affectflow.data.units import Unit, shard_of

#: the label of a frame the label file does not cover (and Aff-Wild2's "invalid frame")
NO_LABEL = -1

# Folder name -> split for the frame-label challenges (Aff-Wild2, BAH).
FRAME_LABEL_SPLITS = (("Train_Set", "train"), ("Validation_Set", "val"))
# Only ASCII digits: int() would also accept "1_0" or non-ASCII digits.
_INT = re.compile(r"-?[0-9]+")


def frame_label_units(
    entry: DatasetEntry, n_shards: int, base: Path, task: str, header: tuple[str, ...], locate: Locate
) -> list[Unit]:
    """Units of ``labels/{Train,Validation}_Set/<id>.txt`` (their path in the unit's ``<task>_labels``) plus the
    test list's; ``locate`` finds each id's video (Aff-Wild2 has a rule of its own for two-person videos), in
    the videos folder or one folder down (Aff-Wild2's ``batch1/``, ``batch2/``, ``new_vids/``)."""
    videos = VideoFolder(entry.videos, base, subfolders=True)
    labels_given = entry.labels
    folder_of_labels = labels_dir(labels_given, base)

    found: dict[str, tuple[str, str]] = {}  # id -> (split, label path as given)
    n_split_dirs = 0
    for sub, split in FRAME_LABEL_SPLITS:
        folder = folder_of_labels / sub
        if not folder.is_dir():
            continue
        n_split_dirs += 1
        for name in sorted(os.listdir(folder)):
            if name.startswith(".") or not name.endswith(".txt"):
                continue
            video_id = name[: -len(".txt")]
            shown = os.path.join(labels_given, sub, name)
            if video_id in found:
                raise LabelError(f"{shown}: video {video_id!r} also has labels in {found[video_id][1]}")
            check_header(read_lines(folder / name, shown), header, shown)
            found[video_id] = (split, shown)
    if not n_split_dirs:
        names = " or ".join(s for s, _ in FRAME_LABEL_SPLITS)
        raise LabelError(f"{labels_given}: no {names} folder in the labels folder")

    units = []
    for video_id, (split, shown) in found.items():
        video = locate(videos, video_id)
        if video is None:
            raise LabelError(f"{shown}: no video for id {video_id!r} in {videos.given}{videos.missing(video_id)}")
        units.append(Unit(video_id, video.path, split, shard_of(video_id, n_shards), **{f"{task}_labels": shown},
                          side=video.side))
    units += test_list_units(entry, base, videos, locate, found, n_shards, task)
    return units


def read_frame_labels(
    path: str | os.PathLike[str], header: tuple[str, ...], allowed: range, n_frames: int | None
) -> np.ndarray:
    """Parse a header line then one integer per frame; every problem names file and line. With ``n_frames``
    the rows are fitted to the video (:func:`fit_to_frames`)."""
    shown = os.fspath(path)
    lines = read_lines(Path(path), shown)
    check_header(lines, header, shown)
    end = len(lines)
    while end > 1 and not lines[end - 1].strip():  # trailing newlines are harmless
        end -= 1
    values = np.empty(end - 1, dtype=np.int8)
    for i in range(1, end):
        text = lines[i].strip()
        if not _INT.fullmatch(text):
            problem = f"{text!r} is not an integer" if text else "empty line"
            raise LabelError(f"{shown}, line {i + 1}: {problem}")
        value = int(text)
        if value not in allowed:
            raise LabelError(f"{shown}, line {i + 1}: value {value} out of range {allowed.start}..{allowed.stop - 1}")
        values[i - 1] = value
    if not values.size:
        raise LabelError(f"{shown}: header only, no frame labels")
    return values if n_frames is None else fit_to_frames(values, n_frames)


def fit_to_frames(values: np.ndarray, n_frames: int) -> np.ndarray:
    """One label per decoded frame: rows past the last frame dropped, frames past the last row ``NO_LABEL``.

    Frame k is row k in both releases (Aff-Wild2 rows and BAH ``frame-<k>``
    are numbered from the first decoded frame), so the rows that exist keep
    their frames whichever side is longer.
    """
    if values.size == n_frames:
        return values
    out = np.full(n_frames, NO_LABEL, dtype=values.dtype)
    n = min(n_frames, values.size)
    out[:n] = values[:n]
    return out


def frame_count_note(n_labels: int, n_frames: int) -> str:
    """What :func:`fit_to_frames` did to a video's labels, for logs and ``problems.tsv`` (``""``: nothing)."""
    if n_labels == n_frames:
        return ""
    if n_labels > n_frames:
        return (f"{n_labels} label rows for {n_frames} decoded frames: the last {n_labels - n_frames} rows "
                f"are past the video's end and are not used")
    return (f"{n_labels} label rows for {n_frames} decoded frames: the last {n_frames - n_labels} frames have "
            f"no label ({NO_LABEL}, not trained on or scored)")


def check_header(lines: list[str], header: tuple[str, ...], shown: str) -> None:
    """The first line must be ``header`` (comma-separated); a file that starts with a label lacks it."""
    if not any(line.strip() for line in lines):
        raise LabelError(f"{shown}: empty label file")
    got = tuple(c.strip() for c in lines[0].split(","))
    if got != header:
        expected = ",".join(header)
        if _INT.fullmatch(lines[0].strip()):
            raise LabelError(f"{shown}, line 1: missing header line {expected!r} (found {lines[0].strip()!r})")
        raise LabelError(f"{shown}, line 1: header {lines[0].strip()!r} is not {expected!r}")
