"""The per-frame predictions table: one row per analysed frame, one column per class of each model and task.

Column names are the contract users script against (docs/predictions.md): ``video_id, frame, timestamp,
face``, then ``<model>:<class>`` softmax probabilities (and ``<model>:valence``/``arousal`` for multi-task
models) of each face model with a classifier, then the task columns. Model columns are empty where the
detector kept no face; task columns where no input reached the frame. With ``faces.people: all`` a
``person`` column follows ``face`` and there is one row per analysed frame and person (the track id; empty
on a frame with nobody), each model column paired with the face features of that frame and person.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from affectflow.core.vocabulary import EMI_EMOTIONS, EXPR_CLASSES, TASKS
from affectflow.fuse.postprocess import softmax
from affectflow.io.store import VideoRecord
from affectflow.predict.apply import TaskPrediction

BASE_COLUMNS = ("video_id", "frame", "timestamp", "face")
#: the column after :data:`BASE_COLUMNS` with ``faces.people: all``
PERSON_COLUMN = "person"


@dataclass(frozen=True)
class FaceModelColumns:
    """What one face model contributes: its class names, and whether it has valence/arousal outputs."""

    name: str
    classes: tuple[str, ...]
    valence_arousal: bool

    def columns(self) -> list[str]:
        va = ["valence", "arousal"] if self.valence_arousal else []
        return [f"{self.name}:{c}" for c in (*self.classes, *va)]


def task_columns(task: str) -> list[str]:
    """The columns one task adds."""
    if task == "expr":
        return [f"expr:{c}" for c in EXPR_CLASSES] + ["expr:label"]
    if task == "emi":
        return [f"emi:{e}" for e in EMI_EMOTIONS]
    return [f"{task}:probability", f"{task}:label"]


def table_columns(models: Sequence[FaceModelColumns], tasks: Sequence[str], people: bool = False) -> list[str]:
    """Every column of the table, in order (tasks in vocabulary order; ``people``: with the person column)."""
    cols = [*BASE_COLUMNS, *([PERSON_COLUMN] if people else [])]
    for m in models:
        cols += m.columns()
    for t in TASKS:
        if t in tasks:
            cols += task_columns(t)
    return cols


def video_frame_table(video_id: str, faces: VideoRecord, models: Sequence[FaceModelColumns],
                      features: Mapping[str, VideoRecord | None], tasks: Sequence[str],
                      predictions: Mapping[str, TaskPrediction]) -> pd.DataFrame:
    """One video's rows: ``faces`` (the faces shard's frame_index, timestamps, has_face, and person with
    ``faces.people: all``), each face model's features record (None when the model has none for this video),
    and the task predictions over all decoded frames (a task in ``tasks`` but not in ``predictions`` gets
    empty columns)."""
    idx = np.asarray(faces.arrays["frame_index"], dtype=np.int64).ravel()
    has_face = np.asarray(faces.arrays["has_face"], dtype=bool).ravel()
    people = PERSON_COLUMN in faces.arrays
    data: dict[str, Any] = {
        "video_id": np.full(idx.shape[0], video_id, dtype=object),
        "frame": idx,
        "timestamp": np.asarray(faces.arrays["timestamps"], dtype=np.float64).ravel(),
        "face": has_face.astype(np.int8),
    }
    rows = idx
    if people:
        person = np.asarray(faces.arrays[PERSON_COLUMN], dtype=np.int64).ravel()
        data[PERSON_COLUMN] = pd.arrays.IntegerArray(np.maximum(person, 0), person < 0)  # empty: nobody
        rows = _row_keys(idx, person)
    for m in models:
        data.update(_model_columns(m, features.get(m.name), rows))
    for t in TASKS:
        if t in tasks:
            data.update(_task_columns(t, predictions.get(t), idx))
    return pd.DataFrame(data, columns=table_columns(models, tasks, people))


def empty_frame_table(models: Sequence[FaceModelColumns], tasks: Sequence[str], people: bool = False) -> pd.DataFrame:
    """A table of no rows whose columns have the types a video's rows give them (``video_id`` text, not the
    untyped column of a bare ``DataFrame(columns=...)``): the Parquet file of a shard whose videos were all
    skipped must read like any other, and a reader's filter on ``video_id`` must find nothing, not fail."""
    arrays = {"frame_index": np.zeros(0, np.int64), "timestamps": np.zeros(0), "has_face": np.zeros(0, bool)}
    if people:
        arrays[PERSON_COLUMN] = np.zeros(0, np.int64)
    table = video_frame_table("", VideoRecord("", arrays), models, {}, tasks, {})
    return table.astype({"video_id": pd.StringDtype()})


def _row_keys(frame: np.ndarray, person: np.ndarray) -> np.ndarray:
    """One sortable int64 per (frame, person) row: rows sorted by frame, then person, keep their order."""
    return frame * (1 << 24) + (person + 1)


def _feature_keys(rec: VideoRecord) -> np.ndarray:
    """The keys of a face features record's rows: frame indices, or (frame, person) keys where it has persons."""
    fidx = np.asarray(rec.arrays["frame_index"], dtype=np.int64).ravel()
    if PERSON_COLUMN not in rec.arrays:
        return fidx
    return _row_keys(fidx, np.asarray(rec.arrays[PERSON_COLUMN], dtype=np.int64).ravel())


def _model_columns(m: FaceModelColumns, rec: VideoRecord | None, idx: np.ndarray) -> dict[str, np.ndarray]:
    """Softmax probabilities (and valence/arousal) on the analysed frames (``idx``: the rows' frame indices, or
    their (frame, person) keys), NaN where the model saw no face."""
    names = m.columns()
    out = np.full((idx.shape[0], len(names)), np.nan, dtype=np.float32)
    # a video where no face was found has no feature rows: its columns stay empty
    if rec is not None and "frame_index" in rec.arrays and len(rec.arrays["frame_index"]):
        fidx = _feature_keys(rec)
        pos = np.searchsorted(idx, fidx)
        ok = (pos < idx.shape[0]) & (idx[np.minimum(pos, idx.shape[0] - 1)] == fidx) if idx.size else fidx < 0
        logits = np.asarray(rec.arrays["logits"], dtype=np.float32).reshape(fidx.shape[0], -1)
        vals = softmax(logits[:, :len(m.classes)])
        if m.valence_arousal and "valence_arousal" in rec.arrays:
            vals = np.concatenate([vals, np.asarray(rec.arrays["valence_arousal"], np.float32)], axis=1)
        out[pos[ok], :vals.shape[1]] = vals[ok]
    return {name: out[:, i] for i, name in enumerate(names)}


def _task_columns(task: str, pred: TaskPrediction | None, idx: np.ndarray) -> dict[str, np.ndarray]:
    n = idx.shape[0]
    names = task_columns(task)
    if pred is None:
        return {c: np.full(n, None if c.endswith(":label") else np.nan, dtype=object if c.endswith(":label")
                           else np.float32) for c in names}
    if task == "emi":
        return {c: np.full(n, float(pred.posteriors[i]), dtype=np.float32) for i, c in enumerate(names)}
    if task == "ah_video":
        p = float(np.ravel(pred.posteriors)[-1])
        return {names[0]: np.full(n, p, dtype=np.float32),
                names[1]: np.full(n, int(np.ravel(pred.decisions)[0]), dtype=object)}
    ok = pred.predicted[idx]
    post = pred.posteriors[idx]
    dec = np.asarray(pred.decisions)[idx]
    if task == "expr":
        out = {c: post[:, i].astype(np.float32) for i, c in enumerate(names[:-1])}
        out[names[-1]] = np.where(ok, np.asarray(EXPR_CLASSES, dtype=object)[dec], None)
        return out
    return {names[0]: post.astype(np.float32), names[1]: np.where(ok, dec.astype(object), None)}
