"""Contact sheets: a small PNG grid of a video's face crops, to see what the detector kept."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from affectflow.core import joblog
from affectflow.core.files import atomic_write
from affectflow.core.job import Job
from affectflow.core.options import StageOptions
from affectflow.io.store import ShardReader, VideoRecord, video_key

#: bump when the sheets look different for the same faces shard (docs/reruns.md)
STAGE_VERSION = 1
TILE = 112


@dataclass(frozen=True)
class ContactSheetOptions(StageOptions):
    """Contact sheets have no options (``faces.contact_sheets`` only says whether they are made)."""

    SECTION = ""


def _frame_rows(rec: VideoRecord, n: int) -> np.ndarray:
    """Up to ``n`` rows spread evenly over the frames with a face (over all frames when none has one)."""
    has = np.flatnonzero(rec.arrays["has_face"])
    pool = has if len(has) else np.arange(len(rec.arrays["has_face"]))
    if len(pool) <= n:
        return pool
    return pool[np.linspace(0, len(pool) - 1, n).round().astype(int)]


def render_contact_sheet(rec: VideoRecord, n: int = 16, tile: int = TILE) -> np.ndarray:
    """BGR image: a grid of ``n`` crops, each labelled with its frame index and score."""
    rows = _frame_rows(rec, n)
    cols = max(1, math.ceil(math.sqrt(max(1, len(rows)))))
    nrows = max(1, math.ceil(len(rows) / cols))
    label_h = 16
    sheet = np.full((nrows * (tile + label_h), cols * tile, 3), 255, np.uint8)
    crops, idx, score = rec.arrays["crops"], rec.arrays["frame_index"], rec.arrays["score"]
    for k, r in enumerate(rows):
        y, x = (k // cols) * (tile + label_h), (k % cols) * tile
        img = cv2.resize(crops[r][:, :, ::-1], (tile, tile), interpolation=cv2.INTER_AREA)
        sheet[y + label_h:y + label_h + tile, x:x + tile] = img
        text = f"{int(idx[r])} {float(score[r]):.2f}" if rec.arrays["has_face"][r] else f"{int(idx[r])} none"
        cv2.putText(sheet, text, (x + 2, y + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return sheet


def _write_png(img: np.ndarray, png_path: Path) -> Path:
    def write(tmp: Path) -> None:
        if not cv2.imwrite(str(tmp), img):
            raise OSError(f"{png_path}: cannot write PNG")
    return atomic_write(png_path, write, suffix=".png")


def write_contact_sheet(faces_shard_path: str | os.PathLike[str], video_id: str,
                        png_path: str | os.PathLike[str], n: int = 16) -> Path:
    """Write the contact sheet of one video of a faces shard to ``png_path``."""
    with ShardReader(faces_shard_path, stage="faces") as r:
        rec = r.read(video_id)
    return _write_png(render_contact_sheet(rec, n), Path(png_path))


def write_contact_sheets(faces_shard_path: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                         n: int = 16) -> list[Path]:
    """One ``<video key>.png`` per video of the shard in ``out_dir`` (created even when the shard is empty)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    with ShardReader(faces_shard_path, stage="faces") as r:
        for rec in r:
            paths.append(_write_png(render_contact_sheet(rec, n), out / f"{video_key(rec.video_id)}.png"))
    return paths


def run(job: Job) -> None:
    """The rule: ``input[0]`` (a faces shard) -> ``output[0]``, its folder of contact sheets."""
    joblog.setup(job.log)
    write_contact_sheets(job.input[0], job.output[0])
