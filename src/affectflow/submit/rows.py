"""What a submission's lines hold where the run's outputs do not say it directly.

A fused prediction may leave frames undecided (no face, a frame the detector
skipped) while the challenge wants a line per frame; an AH-video submission
written without the organisers' template must name each video as the test list
does, by its path under the dataset's ``videos`` folder, not by the run's id.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from affectflow.data.adapters.files import canonical
from affectflow.data.units import Unit
from affectflow.io.shards import fill_nearest
from affectflow.submit.formats import SubmissionError


def complete_decisions(decisions: np.ndarray, n_frames: int, frame_index: np.ndarray | None = None) -> np.ndarray:
    """A decision for each of ``n_frames`` frames: undecided frames (-1 or absent) copy the nearest decided one."""
    d = np.asarray(decisions).ravel().astype(np.int64)
    if frame_index is None:
        if d.shape[0] != n_frames:
            raise SubmissionError(f"{d.shape[0]} decisions for a video of {n_frames} frames")
        idx = np.arange(n_frames)
    else:
        idx = np.asarray(frame_index, dtype=np.int64).ravel()
    ok = d >= 0
    if not ok.any():
        raise SubmissionError("no frame of the video has a decision")
    if ok.all() and idx.shape[0] == n_frames:
        return d
    return fill_nearest(d[ok], idx[ok], n_frames)


def names_in_test_list(units: Sequence[Unit], videos_folders: Sequence[str]) -> dict[str, str]:
    """Video id -> the video's path as the test list writes it: relative to the ``videos`` folder of its
    dataset (``Videos/82964/Visite_1/82964_Question_1_..._Video.mp4`` for BAH), the name an AH-video submission
    without the organisers' template gives each line. The deepest folder holding the file wins; a video under
    none keeps its id. Folders are spelt as the units table spells paths (relative to the workflow
    directory when under it), however the config writes them."""
    folders = sorted({canonical(f, Path(".")) for f in videos_folders}, key=len, reverse=True)
    names = {}
    for u in units:
        path = os.path.normpath(u.path)
        for folder in folders:
            if path.startswith(folder + os.sep):
                names[u.video_id] = Path(os.path.relpath(path, folder)).as_posix()
                break
    return names
