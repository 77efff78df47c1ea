"""Contact sheets: a small PNG grid of a video's face crops, to see what the detector kept."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from affectflow.core import joblog
from affectflow.core.files import atomic_write, bounded_name
from affectflow.core.job import Job
from affectflow.core.options import StageOptions
from affectflow.faces.sheets import contact_sheet
from affectflow.io.store import ShardReader, video_key
from affectflow.plan.rerun import Stage

#: bump when the sheets look different for the same faces shard (docs/reruns.md)
STAGE_VERSION = 1


@dataclass(frozen=True)
class ContactSheetsOptions(StageOptions):
    """Contact sheets have no options (``faces.contact_sheets`` only says whether they are made)."""

    SECTION = ""


#: what the plan reads of this stage (affectflow.stages.catalogue)
STAGE = Stage("contact_sheets", STAGE_VERSION, ContactSheetsOptions, ("contact_sheets",))


def _write_png(img: np.ndarray, png_path: Path) -> Path:
    def write(tmp: Path) -> None:
        if not cv2.imwrite(str(tmp), img):
            raise OSError(f"{png_path}: cannot write PNG")
    return atomic_write(png_path, write, suffix=".png")


def write_contact_sheet(faces_shard_path: str | os.PathLike[str], video_id: str,
                        png_path: str | os.PathLike[str], n: int = 16) -> Path:
    """Write the contact sheet of one video of a faces shard to ``png_path``."""
    with ShardReader(faces_shard_path, stage="faces") as r:
        return _write_png(contact_sheet(r, video_id, n), Path(png_path))


def run_contact_sheets(faces_shard_path: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                         n: int = 16) -> list[Path]:
    """One ``<video key>.png`` per video of the shard in ``out_dir`` (created even when the shard is empty); a
    key too long for a file name is cut and tagged with its hash (:func:`~affectflow.core.files.bounded_name`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    with ShardReader(faces_shard_path, stage="faces") as r:
        for vid in r.video_ids():
            paths.append(_write_png(contact_sheet(r, vid, n), out / bounded_name(video_key(vid), ".png")))
    return paths


def run(job: Job) -> None:
    """The rule: ``input[0]`` (a faces shard) -> ``output[0]``, its folder of contact sheets."""
    joblog.setup(job.log)
    run_contact_sheets(job.input[0], job.output[0])
