"""The ``bah`` adapter: BAH frame level, one label file per video, ambivalence/hesitancy 0/1 per frame.

The same layout as Aff-Wild2's (:mod:`affectflow.data.adapters.frame_labels`)
with an ``AH`` header, but no left/right rule: BAH videos show one person.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from affectflow.data.adapters.entry import DatasetEntry, check_labelled_entry
from affectflow.data.adapters.frame_labels import frame_label_units, read_frame_labels
from affectflow.data.adapters.registry import FoundUnits, register_adapter
from affectflow.data.adapters.videos import locate_by_stem

AH_HEADER = ("AH",)


@register_adapter("bah", check=check_labelled_entry)
def bah_units(entry: DatasetEntry, n_shards: int, base: Path) -> FoundUnits:
    """``labels/{Train,Validation}_Set/<id>.txt`` with the ``AH`` header, plus the test list."""
    return FoundUnits(frame_label_units(entry, n_shards, base, "ah", AH_HEADER, locate_by_stem))


def read_ah_labels(path: str | os.PathLike[str], n_frames: int | None = None) -> np.ndarray:
    """Per-frame BAH ambivalence/hesitancy labels (int8, 0 or 1)."""
    return read_frame_labels(path, AH_HEADER, range(0, 2), n_frames)
