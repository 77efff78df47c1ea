"""Reading one video's labels for a task, whichever adapter's layout its label path is in.

The units table stores a label path per task; the jobs that train and score
(learn, fuse, report) know the task and the decoded frame count, and call
``read_task_labels`` so that a frame count that disagrees is caught there.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from affectflow.core.vocabulary import TASKS
from affectflow.data.adapters.affwild2_expr import read_expr_labels
from affectflow.data.adapters.bah_frames import read_ah_labels
from affectflow.data.adapters.bah_video import read_ah_video_label
from affectflow.data.adapters.errors import LabelError
from affectflow.data.adapters.files import resolve
from affectflow.data.adapters.frame_labels import frame_count_note
from affectflow.data.adapters.hume_vidmimic import read_emi_labels
from affectflow.data.units import Unit


def read_task_labels(task: str, path: str | os.PathLike[str], video_id: str, n_frames: int | None) -> np.ndarray:
    """One video's labels for ``task``: per frame (EXPR class, AH 0/1; int64, fitted to ``n_frames`` with -1
    for frames the file does not cover: :func:`frame_labels.fit_to_frames`; ``None``: the file's rows as they
    are) or per video (EMI's six float32 intensities, AH-video's ``[0|1]``)."""
    if task == "expr":
        return read_expr_labels(path, n_frames).astype(np.int64)
    if task == "ah":
        return read_ah_labels(path, n_frames, video_id).astype(np.int64)
    if task == "ah_video":
        return np.array([read_ah_video_label(path, video_id)], dtype=np.int64)
    if task == "emi":
        return read_emi_labels(path, video_id)
    raise LabelError(f"unknown task {task!r}")


def check_label_files(units: Iterable[Unit], base: Path = Path("."), tasks: Iterable[str] = TASKS) -> int:
    """Read every label file of ``tasks`` the units name (relative paths under ``base``, the workflow
    directory), as the jobs that train will, and return how many videos' labels were read; the first bad
    value is a :class:`LabelError` naming the file and line. Labels of tasks the run does not train (a
    bundle applied with ``tasks: []``) are not read: no job uses them.

    The adapters only list files and check headers (the units table is also built each time the workflow
    is parsed, on every cluster job), so a value out of range (an EXPR ``9``) would otherwise first be
    met by the learn job, after hours of extraction. The ``units`` rule calls this: it is among the first
    jobs of a run, and learn waits for it. Frame counts are not known here; the readers fit labels to
    the decoded frames later.
    """
    seen = 0
    tasks = [t for t in TASKS if t in set(tasks)]
    for u in units:
        for task in tasks:
            given = u.labels(task)
            if not given:
                continue
            read_task_labels(task, resolve(given, base), u.video_id, None)
            seen += 1
    return seen


def frame_label_rows(task: str, path: str | os.PathLike[str], video_id: str) -> int | None:
    """How many frames a video's label file labels (None for the video-level tasks), before any fitting: what
    ``problems.tsv`` compares with the decoded frames."""
    if task == "expr":
        return int(read_expr_labels(path).size)
    if task == "ah":
        return int(read_ah_labels(path, None, video_id).size)
    return None


def frame_count_notes(units: Iterable[Unit], n_frames: Mapping[str, int]) -> Iterator[tuple[Unit, str, str]]:
    """``(unit, task, note)`` for every frame-labelled unit whose label rows and decoded frames (``n_frames`` by
    video id; units not in it are passed over) disagree, or whose label file cannot be read: what
    ``problems.tsv`` lists under stage ``labels``."""
    for u in units:
        if u.video_id not in n_frames:
            continue
        for task in ("expr", "ah"):
            path = u.labels(task)
            if not path:
                continue
            try:
                rows = frame_label_rows(task, path, u.video_id)
            except LabelError as e:
                yield u, task, str(e)
                continue
            note = frame_count_note(rows or 0, n_frames[u.video_id])
            if note:
                yield u, task, f"{path}: {note}"
