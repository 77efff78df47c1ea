"""Reading one video's labels for a task, whichever adapter's layout its label path is in.

The units table stores a label path per task; the jobs that train and score
(learn, fuse, report) know the task and the decoded frame count, and call
``read_task_labels`` so that a frame count that disagrees is caught there.
"""

from __future__ import annotations

import os

import numpy as np

from affectflow.data.adapters.affwild2_expr import read_expr_labels
from affectflow.data.adapters.bah_frames import read_ah_labels
from affectflow.data.adapters.bah_video import read_ah_video_label
from affectflow.data.adapters.errors import LabelError
from affectflow.data.adapters.hume_vidmimic import read_emi_labels


def read_task_labels(task: str, path: str | os.PathLike[str], video_id: str, n_frames: int) -> np.ndarray:
    """One video's labels for ``task``: per frame (EXPR class or -1, AH 0/1; int64, ``n_frames`` checked) or
    per video (EMI's six float32 intensities, AH-video's ``[0|1]``)."""
    if task == "expr":
        return read_expr_labels(path, n_frames).astype(np.int64)
    if task == "ah":
        return read_ah_labels(path, n_frames).astype(np.int64)
    if task == "ah_video":
        return np.array([read_ah_video_label(path, video_id)], dtype=np.int64)
    if task == "emi":
        return read_emi_labels(path, video_id)
    raise LabelError(f"unknown task {task!r}")
