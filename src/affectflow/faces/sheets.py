"""A contact sheet: a grid of a video's face crops, to see at a glance what the detector kept.

The ``contact_sheets`` rule writes them as PNG files and the run page draws them from the faces shard
itself, so the page does not depend on whether the PNG files are made (``faces.contact_sheets`` stays a
setting that changes no result). Only the crops shown are read: a long video's crops stay on disk.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from affectflow.io.store import ShardReader

TILE = 112
SHEET_ARRAYS = ("frame_index", "score", "has_face")


def sheet_rows(has_face: np.ndarray, n: int = 16) -> np.ndarray:
    """Up to ``n`` rows spread evenly over the frames with a face (over all frames when none has one)."""
    has = np.flatnonzero(has_face)
    pool = has if len(has) else np.arange(len(has_face))
    if len(pool) <= n:
        return pool
    return pool[np.linspace(0, len(pool) - 1, n).round().astype(int)]


def render_sheet(crops: np.ndarray, frame_index: np.ndarray, score: np.ndarray, has_face: np.ndarray,
                 tile: int = TILE) -> np.ndarray:
    """BGR image: the given (already chosen) RGB crops in a grid, each labelled with its frame and score."""
    cols = max(1, math.ceil(math.sqrt(max(1, len(crops)))))
    nrows = max(1, math.ceil(len(crops) / cols))
    label_h = 16
    sheet = np.full((nrows * (tile + label_h), cols * tile, 3), 255, np.uint8)
    for k in range(len(crops)):
        y, x = (k // cols) * (tile + label_h), (k % cols) * tile
        img = cv2.resize(crops[k][:, :, ::-1], (tile, tile), interpolation=cv2.INTER_AREA)
        sheet[y + label_h:y + label_h + tile, x:x + tile] = img
        text = f"{int(frame_index[k])} {float(score[k]):.2f}" if has_face[k] else f"{int(frame_index[k])} none"
        cv2.putText(sheet, text, (x + 2, y + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return sheet


def contact_sheet(reader: ShardReader, video_id: str, n: int = 16) -> np.ndarray:
    """One video's contact sheet (BGR), reading only the ``n`` crops it shows."""
    rec = reader.read(video_id, SHEET_ARRAYS)
    has = np.asarray(rec.arrays["has_face"], dtype=bool)
    rows = sheet_rows(has, n)
    crops = np.concatenate(list(reader.iter_rows(video_id, "crops", rows)))
    return render_sheet(crops, np.asarray(rec.arrays["frame_index"])[rows], np.asarray(rec.arrays["score"])[rows],
                        has[rows])


def person_thumbnails(reader: ShardReader, video_id: str) -> dict[int, np.ndarray]:
    """Each person's RGB crop with the detector's highest score (a record of ``faces.people: all``, whose rows
    have a ``person``); ``{}`` for a record of one face per frame. One crop read per person."""
    if "person" not in reader.array_names(video_id):
        return {}
    rec = reader.read(video_id, ("person", "score", "has_face"))
    person = np.asarray(rec.arrays["person"], np.int64)
    score = np.where(np.asarray(rec.arrays["has_face"], bool), np.asarray(rec.arrays["score"], np.float64), -np.inf)
    best = {int(p): int(np.flatnonzero(person == p)[np.argmax(score[person == p])])
            for p in np.unique(person[person >= 0])}
    return {p: next(reader.iter_rows(video_id, "crops", np.array([row]), batch=1))[0] for p, row in best.items()}
