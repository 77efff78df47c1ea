"""Dataset adapters: turn datasets on disk into the units table, and read labels.

Each adapter knows one layout and is one module that registers itself under
the config's ``adapter`` name (:mod:`.registry`): ``affwild2``
(:mod:`.affwild2_expr`), ``hume_vidmimic2`` (:mod:`.hume_vidmimic`), ``bah``
(:mod:`.bah_frames`), ``bah_video`` (:mod:`.bah_video`), ``folder``
(:mod:`.folder`), ``table`` (:mod:`.table`). ``build_units`` (:mod:`.build`)
only lists files and checks cheap things, so it stays fast enough to run when
the workflow is parsed. The ``read_*_labels`` functions parse one label file
fully and are called by the jobs that know the decoded frame count: a label
file that disagrees with its video is an error naming both counts, never
silently truncated or padded.

Units keep the configured paths in one spelling (``files.canonical``:
normalised, and relative to the workflow directory where they lie under it, so
a units table stays valid when the project folder moves) and video ids exactly
as the file stems are; the adapters never sanitise them.

Which files of a videos folder are videos: :mod:`.videos`. The ``folder``
adapter lists the files it leaves out, with the reason, in the table's
``skipped`` (then ``problems.tsv``).

Details (each adapter's layout, what is checked when): docs/features.md,
section "Datasets".
"""

from __future__ import annotations

# The adapter modules register themselves on import, in this order: the order of the config schema's enum, which
# ADAPTERS and the unknown-adapter error list too. Keep this import first, and unsorted.
# isort: off
from affectflow.data.adapters import affwild2_expr, hume_vidmimic, bah_frames, bah_video, folder, table  # noqa: F401
# isort: on

from affectflow.core.vocabulary import EMI_EMOTIONS, EXPR_CLASSES
from affectflow.data.adapters.affwild2_expr import affwild2_side, read_expr_labels
from affectflow.data.adapters.bah_frames import AH_HEADER, read_ah_labels
from affectflow.data.adapters.bah_video import BAH_ANNOTATIONS, read_ah_video_label
from affectflow.data.adapters.build import build_units
from affectflow.data.adapters.entry import DatasetEntry
from affectflow.data.adapters.errors import LabelError
from affectflow.data.adapters.hume_vidmimic import read_emi_labels
from affectflow.data.adapters.labels import frame_count_notes, frame_label_rows, read_task_labels
from affectflow.data.adapters.registry import Adapter, FoundUnits, adapter_names, get_adapter, register_adapter
from affectflow.data.adapters.videos import NOT_VIDEO_EXTENSIONS, VIDEO_EXTENSIONS, is_video_name, not_a_video

#: the config's ``adapter`` names (workflow/schemas/config.schema.yaml lists the same, in the same order)
ADAPTERS = adapter_names()

__all__ = [
    "ADAPTERS",
    "AH_HEADER",
    "BAH_ANNOTATIONS",
    "EMI_EMOTIONS",
    "EXPR_CLASSES",
    "NOT_VIDEO_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "Adapter",
    "DatasetEntry",
    "FoundUnits",
    "LabelError",
    "adapter_names",
    "affwild2_side",
    "frame_count_notes",
    "frame_label_rows",
    "build_units",
    "get_adapter",
    "is_video_name",
    "not_a_video",
    "read_ah_labels",
    "read_ah_video_label",
    "read_emi_labels",
    "read_expr_labels",
    "read_task_labels",
    "register_adapter",
]
