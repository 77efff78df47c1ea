"""The ``affwild2`` adapter: Aff-Wild2 EXPR, one label file per video, one expression class (or -1) per frame.

Its own rule: Aff-Wild2 labels the two people of one video as
``<stem>_left`` / ``<stem>_right``, both units pointing at ``<stem>``'s file
with a ``side`` that tells the face stage which person each one is.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from affectflow.core.vocabulary import EXPR_CLASSES
from affectflow.data.adapters.entry import DatasetEntry, check_labelled_entry
from affectflow.data.adapters.frame_labels import frame_label_units, read_frame_labels
from affectflow.data.adapters.registry import FoundUnits, register_adapter
from affectflow.data.adapters.videos import Located, VideoFolder


@register_adapter("affwild2", check=check_labelled_entry)
def affwild2_units(entry: DatasetEntry, n_shards: int, base: Path) -> FoundUnits:
    """``labels/{Train,Validation}_Set/<id>.txt`` with the EXPR classes as header, plus the test list."""
    return FoundUnits(frame_label_units(entry, n_shards, base, "expr", EXPR_CLASSES, locate_affwild2_video))


def read_expr_labels(path: str | os.PathLike[str], n_frames: int | None = None) -> np.ndarray:
    """Per-frame Aff-Wild2 expression classes (int8, index into EXPR_CLASSES; -1 = invalid)."""
    return read_frame_labels(path, EXPR_CLASSES, range(-1, len(EXPR_CLASSES)), n_frames)


def affwild2_side(video_id: str) -> str:
    """``left`` / ``right`` for an Aff-Wild2 id of one person of a two-person video, else ``""``."""
    for side in ("left", "right"):
        if video_id.endswith(f"_{side}") and len(video_id) > len(side) + 1:
            return side
    return ""


def locate_affwild2_video(videos: VideoFolder, video_id: str) -> Located | None:
    """The video of its own when there is one, else, for ``<stem>_left``/``_right``, the shared ``<stem>``
    file with that side."""
    path = videos.find(video_id)
    if path is not None:
        return Located(path)
    side = affwild2_side(video_id)
    if side:
        shared = videos.find(video_id[: -len(side) - 1])
        if shared is not None:
            return Located(shared, side)
    return None
