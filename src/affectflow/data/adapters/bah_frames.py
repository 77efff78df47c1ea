"""The ``bah`` adapter: BAH frame level, ambivalence/hesitancy 0/1 per frame, in one of two layouts.

- ABAW-8's release, as published: the labels folder holds ``annotation.yml``
  (:mod:`.bah_annotation`), one per split folder, so the entry names its
  ``split``; each key is the video's path under ``videos``
  (``82557/Visite 1/<name>.mp4``), its ``frame_annotation`` the label of each
  decoded frame (``frame-<k>.jpg``, the organisers' crop of frame ``k``).
- Labels of your own, one file per video: the same layout as Aff-Wild2's
  (:mod:`.frame_labels`) with an ``AH`` header, but no left/right rule: BAH
  videos show one person.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from affectflow.core.vocabulary import SPLITS
from affectflow.data.adapters.bah_annotation import annotation_keys, read_annotations
from affectflow.data.adapters.entry import DatasetEntry, check_labels_given, check_videos_entry
from affectflow.data.adapters.errors import LabelError
from affectflow.data.adapters.files import existing_folder, labels_dir, resolve
from affectflow.data.adapters.frame_labels import fit_to_frames, frame_label_units, read_frame_labels
from affectflow.data.adapters.registry import FoundUnits, register_adapter
from affectflow.data.adapters.testlist import test_list_units
from affectflow.data.adapters.videos import VideoFolder, locate_by_stem
from affectflow.data.units import Unit, shard_of

AH_HEADER = ("AH",)
#: ABAW-8's frame-level annotations, one per split folder
BAH_FRAME_ANNOTATIONS = "annotation.yml"
_LABELLED_SPLITS = tuple(s for s in SPLITS if s != "test")


def check_bah_entry(entry: DatasetEntry) -> None:
    """Videos and labels folders; ``split`` (train or val) is the split of an ABAW-8 ``annotation.yml``."""
    check_videos_entry(entry, split=True)
    check_labels_given(entry)
    if entry.split and entry.split not in _LABELLED_SPLITS:
        raise LabelError(f"{entry.where}: split {entry.split!r} is not one of {_LABELLED_SPLITS} (test videos "
                         "come from test_list)")


@register_adapter("bah", check=check_bah_entry)
def bah_units(entry: DatasetEntry, n_shards: int, base: Path) -> FoundUnits:
    """ABAW-8's ``annotation.yml`` when the labels folder holds one, else ``labels/{Train,Validation}_Set/<id>.txt``
    with the ``AH`` header; plus the test list."""
    annotations = labels_dir(entry.labels, base) / BAH_FRAME_ANNOTATIONS
    if not annotations.is_file():
        if entry.split:
            raise LabelError(f"{entry.where}: 'split' is for a labels folder with {BAH_FRAME_ANNOTATIONS} "
                             f"(ABAW-8), and {entry.labels} has none")
        return FoundUnits(frame_label_units(entry, n_shards, base, "ah", AH_HEADER, locate_by_stem))
    shown = os.path.join(entry.labels, BAH_FRAME_ANNOTATIONS)
    if not entry.split:
        raise LabelError(f"{entry.where}: {shown} is one split of ABAW-8's release: say which with "
                         f"split: train or split: val")
    videos_dir = existing_folder(entry.videos, base, "videos")
    units, found = [], {}
    # keys only: the records (tens of MB) are read and checked by the jobs that read the labels
    for video_id, key in annotation_keys(resolve(shown, base), shown).items():
        if not (videos_dir / key).is_file():
            raise LabelError(f"{shown}: no video {key!r} in {entry.videos}")
        found[video_id] = (entry.split, shown)
        units.append(Unit(video_id, os.path.join(entry.videos, key), entry.split,
                          shard_of(video_id, n_shards), ah_labels=shown))
    if entry.test_list:
        units += test_list_units(entry, base, VideoFolder(entry.videos, base, subfolders=True), locate_by_stem,
                                 found, n_shards, "ah")
    return FoundUnits(units)


def read_ah_labels(path: str | os.PathLike[str], n_frames: int | None = None, video_id: str = "") -> np.ndarray:
    """Per-frame BAH ambivalence/hesitancy labels (int8, 0 or 1; -1 past the end of the labels when
    ``n_frames`` is longer): ``video_id``'s ``frame_annotation`` of an ABAW-8 ``annotation.yml``, or a
    per-video file."""
    if os.path.basename(os.fspath(path)) != BAH_FRAME_ANNOTATIONS:
        return read_frame_labels(path, AH_HEADER, range(0, 2), n_frames)
    rec = read_annotations(path).get(video_id)
    if rec is None or rec.frames is None:
        raise LabelError(f"{os.fspath(path)}: no frame_annotation for video {video_id!r}")
    return rec.frames.copy() if n_frames is None else fit_to_frames(rec.frames.copy(), n_frames)
