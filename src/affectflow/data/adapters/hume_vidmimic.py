"""The ``hume_vidmimic2`` adapter: Hume-Vidmimic2 EMI, one csv per split, one row of six intensities per video.

The split csv is the unit's label path; test rows carry no labels. A csv is
validated whole (and its parse cached while the file is unchanged), so a bad
row anywhere is reported even when asking for another video.
"""

from __future__ import annotations

import csv
import functools
import os
from pathlib import Path

import numpy as np

from affectflow.core.vocabulary import EMI_EMOTIONS
from affectflow.data.adapters.entry import DatasetEntry, check_labelled_entry
from affectflow.data.adapters.errors import LabelError
from affectflow.data.adapters.files import cached, labels_dir
from affectflow.data.adapters.registry import FoundUnits, register_adapter
from affectflow.data.adapters.testlist import test_list_units
from affectflow.data.adapters.videos import VideoFolder, locate_by_stem, strip_video_ext
from affectflow.data.units import Unit, shard_of

# File name -> split for Hume-Vidmimic2; test rows carry no labels.
EMI_CSVS = (("train_split.csv", "train"), ("valid_split.csv", "val"), ("test_split.csv", "test"))
#: the release's videos are raw/<NNNNN>.mp4, five digits
EMI_ID_DIGITS = 5


def emi_id(name: str) -> str:
    """The video id of a csv's Filename: a number written without its leading zeros (``0``, as a spreadsheet or
    pandas writes the release's ``00000`` back) is the zero-padded file name it stands for."""
    return name.zfill(EMI_ID_DIGITS) if name.isdigit() and len(name) < EMI_ID_DIGITS else name


@register_adapter("hume_vidmimic2", check=check_labelled_entry)
def hume_units(entry: DatasetEntry, n_shards: int, base: Path) -> FoundUnits:
    """Hume-Vidmimic2: one csv per split, one row per video; the csv is the label path."""
    videos = VideoFolder(entry.videos, base)
    labels_given = entry.labels
    folder = labels_dir(labels_given, base)

    found: dict[str, tuple[str, str]] = {}  # id -> (split, csv path as given)
    units = []
    for name, split in EMI_CSVS:
        if not (folder / name).is_file():
            continue
        shown = os.path.join(labels_given, name)
        for video_id, (line, _) in _emi_rows(folder / name, shown, with_values=split != "test").items():
            if video_id in found:
                raise LabelError(f"{shown}, line {line}: video {video_id!r} is also in {found[video_id][1]}")
            found[video_id] = (split, shown)
            path = videos.find(video_id)
            if path is None:
                raise LabelError(f"{shown}, line {line}: no video for Filename {video_id!r} in {videos.given}"
                                 f"{videos.missing(video_id)}")
            labels = shown if split != "test" else ""
            units.append(Unit(video_id, path, split, shard_of(video_id, n_shards), emi_labels=labels,
                              test_of="emi" if split == "test" else ""))
    if not found:
        names = ", ".join(n for n, _ in EMI_CSVS)
        raise LabelError(f"{labels_given}: none of {names} in the labels folder")
    units += test_list_units(entry, base, videos, locate_by_stem, found, n_shards, "emi")
    return FoundUnits(units)


def read_emi_labels(path: str | os.PathLike[str], video_id: str) -> np.ndarray:
    """The six EMI intensities (float32, EMI_EMOTIONS order) of one video from a split csv.

    The whole csv is validated (and cached while the file is unchanged), so a
    bad row anywhere is reported even when asking for another video.
    """
    shown = os.fspath(path)
    rows = _emi_rows(Path(path), shown, with_values=True)
    video_id = emi_id(video_id)
    if video_id not in rows:
        raise LabelError(f"{shown}: no row for video {video_id!r}")
    values = rows[video_id][1]
    assert values is not None
    return values.copy()


def _emi_rows(path: Path, shown: str, with_values: bool) -> dict[str, tuple[int, np.ndarray | None]]:
    """Rows of an EMI csv: id -> (line, intensities or None)."""
    return cached(_parse_emi_csv, path, shown, "label file", with_values)


@functools.lru_cache(maxsize=32)
def _parse_emi_csv(
    path: str, shown: str, with_values: bool, _mtime_ns: int, _size: int
) -> dict[str, tuple[int, np.ndarray | None]]:
    need = EMI_EMOTIONS if with_values else ()
    rows: dict[str, tuple[int, np.ndarray | None]] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            if not any(header):
                raise LabelError(f"{shown}: empty label file")
            missing = [c for c in ("Filename", *need) if c not in header]
            if missing:
                raise LabelError(f"{shown}, line 1: header lacks columns {missing}")
            if len(set(header)) != len(header):
                raise LabelError(f"{shown}, line 1: repeated column names in header")
            name_col = header.index("Filename")
            for row in reader:
                line = reader.line_num
                if not any(c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise LabelError(f"{shown}, line {line}: {len(row)} fields but the header has {len(header)}")
                filename = row[name_col].strip()
                video_id = emi_id(strip_video_ext(filename))
                if not video_id:
                    raise LabelError(f"{shown}, line {line}: empty Filename")
                if video_id in rows:
                    raise LabelError(
                        f"{shown}, line {line}: duplicate Filename {filename!r} (first on line {rows[video_id][0]})"
                    )
                rows[video_id] = (line, _emi_values(row, header, shown, line) if need else None)
    except (UnicodeDecodeError, csv.Error) as e:
        raise LabelError(f"{shown}: unreadable csv ({e})") from None
    if not rows:
        raise LabelError(f"{shown}: no rows after the header")
    return rows


def _emi_values(row: list[str], header: list[str], shown: str, line: int) -> np.ndarray:
    values = np.empty(len(EMI_EMOTIONS), dtype=np.float32)
    for k, emotion in enumerate(EMI_EMOTIONS):
        col = header.index(emotion)
        cell = row[col].strip()
        where = f"{shown}, line {line}, column {col + 1} ({emotion})"
        if not cell:
            raise LabelError(f"{where}: missing value")
        try:
            value = float(cell)
        except ValueError:
            raise LabelError(f"{where}: {cell!r} is not a number") from None
        if not 0.0 <= value <= 1.0:  # also rejects nan
            raise LabelError(f"{where}: value {cell} out of range [0, 1]")
        values[k] = value
    return values
