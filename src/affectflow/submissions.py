"""Writers (and readers, for checking) of challenge submission files.

Formats, as we read the ABAW-6/8 challenge instructions and the authors' own
submission code (EmotiEffLib ``ABAW6/abaw6_affwild2.ipynb`` and ``eri.ipynb``):

* **EXPR** (Aff-Wild2), default ``layout="single"``: one text file whose first
  line is ``image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other``
  followed by one line per frame ``<video>/<frame>.jpg,<class index 0-7>``.
  Frame names default to the organisers' cropped-face naming, 1-based and
  zero-padded to five digits (``00001.jpg`` is the first frame); pass
  ``frame_names`` when the test list says otherwise. ``layout="per_video"``
  writes the older (ABAW-3..5) format instead: a folder with ``<video>.txt``
  per video, first line ``Neutral,Anger,...,Other``, then one class index per
  frame line.
* **EMI** (Hume-Vidmimic2): one CSV, header
  ``Filename,Admiration,Amusement,Determination,Empathic Pain,Excitement,Joy``,
  one row per video with the video id as given in the test split file.
* **AH** (BAH): the challenge did not fix a format we could verify, so by
  default (``layout="per_video"``) we mirror the BAH annotation files: a
  folder with ``<video>.txt`` per video, first line ``AH``, then one 0/1 per
  frame line; the files parse with ``affectflow.datasets.read_ah_labels``.
  ``layout="single"`` gives ``image_location,AH`` + ``<video>/<frame>.jpg,<0|1>``
  lines like EXPR.

Every file is written to a temporary name and renamed into place; a folder
layout is built in a temporary sibling folder and swapped in whole, so a
killed job never leaves a partial submission that looks complete. Floats are
written with ``repr`` so they read back bit-identically.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from affectflow.metrics import EMI_EMOTIONS, EXPR_CLASSES, atomic_write_text

Layout = Literal["single", "per_video"]
EXPR_HEADER = ",".join(EXPR_CLASSES)
EXPR_SINGLE_HEADER = "image_location," + EXPR_HEADER
EMI_HEADER = ("Filename", *EMI_EMOTIONS)
AH_HEADER = "AH"
AH_SINGLE_HEADER = "image_location,AH"


class SubmissionError(ValueError):
    """Predictions that cannot form a valid submission (or a file that does not parse back)."""


def default_frame_name(index: int) -> str:
    """0-based frame index -> the organisers' 1-based cropped-frame name (``00001.jpg``)."""
    return f"{index + 1:05d}.jpg"


def _check_video_id(v: str, for_file_name: bool, allow_comma: bool = False) -> None:
    if not v or v != v.strip() or "\n" in v or "\r" in v or ("," in v and not allow_comma):
        raise SubmissionError(f"video id {v!r} cannot appear in a submission line")
    if for_file_name and ("/" in v or "\\" in v or v.startswith(".")):
        raise SubmissionError(f"video id {v!r} cannot be used as a file name")


def _labels(v: str, arr: Sequence[int] | np.ndarray, n_classes: int, what: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim != 1 or a.size == 0:
        raise SubmissionError(f"video {v!r}: expected a non-empty 1-D {what} vector, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.bool_)):
        if not np.all(np.mod(a, 1) == 0):
            raise SubmissionError(f"video {v!r}: {what} predictions must be integers")
    a = a.astype(np.int64)
    if a.min() < 0 or a.max() >= n_classes:
        raise SubmissionError(f"video {v!r}: {what} predictions must be in 0..{n_classes - 1} for every frame")
    return a


def _order(predictions: Mapping[str, object], video_order: Sequence[str] | None) -> list[str]:
    if video_order is None:
        return sorted(predictions)
    order = list(video_order)
    if sorted(order) != sorted(predictions) or len(set(order)) != len(order):
        raise SubmissionError("video_order must list every predicted video exactly once")
    return order


def _names(v: str, n: int, frame_names: Mapping[str, Sequence[str]] | None) -> list[str]:
    if frame_names is None:
        return [default_frame_name(i) for i in range(n)]
    names = list(frame_names[v])
    if len(names) != n:
        raise SubmissionError(f"video {v!r}: {n} predictions but {len(names)} frame names")
    return names


def _atomic_dir(target: Path, fill: Callable[[Path], None]) -> Path:
    """Build a folder in a temporary sibling and swap it into ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    old = None
    try:
        fill(tmp)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not target.exists():
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def _frame_file_submission(
    path: str | os.PathLike[str],
    predictions: Mapping[str, Sequence[int] | np.ndarray],
    n_classes: int,
    what: str,
    single_header: str,
    per_video_header: str,
    layout: Layout,
    frame_names: Mapping[str, Sequence[str]] | None,
    video_order: Sequence[str] | None,
) -> Path:
    if not predictions:
        raise SubmissionError("no predictions to write")
    if layout not in ("single", "per_video"):
        raise SubmissionError(f"layout must be 'single' or 'per_video', got {layout!r}")
    order = _order(predictions, video_order)
    labels = {}
    for v in order:
        _check_video_id(v, for_file_name=layout == "per_video")
        labels[v] = _labels(v, predictions[v], n_classes, what)
    if layout == "single":
        buf = io.StringIO()
        buf.write(single_header + "\n")
        for v in order:
            for name, c in zip(_names(v, len(labels[v]), frame_names), labels[v], strict=True):
                buf.write(f"{v}/{name},{int(c)}\n")
        return atomic_write_text(path, buf.getvalue())

    def fill(folder: Path) -> None:
        for v in order:
            text = per_video_header + "\n" + "".join(f"{int(c)}\n" for c in labels[v])
            (folder / f"{v}.txt").write_text(text, encoding="utf-8")

    return _atomic_dir(Path(path), fill)


def _read_frame_submission(
    path: str | os.PathLike[str], single_header: str, per_video_header: str, n_classes: int
) -> dict[str, np.ndarray]:
    p = Path(path)
    out: dict[str, list[int]] = {}
    if p.is_dir():
        for f in sorted(p.glob("*.txt")):
            lines = f.read_text(encoding="utf-8").splitlines()
            if not lines or lines[0].strip() != per_video_header:
                raise SubmissionError(f"{f}: first line must be {per_video_header!r}")
            out[f.stem] = [int(x) for x in lines[1:] if x.strip()]
    else:
        lines = p.read_text(encoding="utf-8").splitlines()
        if not lines or lines[0].strip() != single_header:
            raise SubmissionError(f"{p}: first line must be {single_header!r}")
        for i, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            loc, _, val = line.rpartition(",")
            video, sep, _frame = loc.rpartition("/")
            if not sep or not video:
                raise SubmissionError(f"{p}:{i}: expected '<video>/<frame>,<label>', got {line!r}")
            out.setdefault(video, []).append(int(val))
    result = {v: np.asarray(x, dtype=np.int64) for v, x in out.items()}
    for v, a in result.items():
        if a.size and (a.min() < 0 or a.max() >= n_classes):
            raise SubmissionError(f"{p}: video {v!r} has labels outside 0..{n_classes - 1}")
    return result


# ---------------------------------------------------------------------- EXPR


def write_expr_submission(
    path: str | os.PathLike[str],
    predictions: Mapping[str, Sequence[int] | np.ndarray],
    *,
    layout: Layout = "single",
    frame_names: Mapping[str, Sequence[str]] | None = None,
    video_order: Sequence[str] | None = None,
) -> Path:
    """Write EXPR class indices (0..7, Aff-Wild2 order) for every frame of every test video.

    ``path`` is the file (single layout) or folder (per-video layout). Videos
    are written in ``video_order`` (default: sorted ids). Every frame needs a
    prediction: fill frames without a face before calling (e.g. with the
    ``carry_last`` policy), since -1 is not a valid submission value.
    """
    return _frame_file_submission(
        path, predictions, len(EXPR_CLASSES), "EXPR", EXPR_SINGLE_HEADER, EXPR_HEADER, layout, frame_names, video_order
    )


def read_expr_submission(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Parse an EXPR submission (file or folder) back into ``{video: class indices}``."""
    return _read_frame_submission(path, EXPR_SINGLE_HEADER, EXPR_HEADER, len(EXPR_CLASSES))


# ------------------------------------------------------------------------ AH


def write_ah_submission(
    path: str | os.PathLike[str],
    predictions: Mapping[str, Sequence[int] | np.ndarray],
    *,
    layout: Layout = "per_video",
    frame_names: Mapping[str, Sequence[str]] | None = None,
    video_order: Sequence[str] | None = None,
) -> Path:
    """Write AH frame predictions (0/1); default one ``<video>.txt`` per video like the BAH labels."""
    return _frame_file_submission(
        path, predictions, 2, "AH", AH_SINGLE_HEADER, AH_HEADER, layout, frame_names, video_order
    )


def read_ah_submission(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Parse an AH submission (file or folder) back into ``{video: 0/1 labels}``."""
    return _read_frame_submission(path, AH_SINGLE_HEADER, AH_HEADER, 2)


# ----------------------------------------------------------------------- EMI


def write_emi_submission(
    path: str | os.PathLike[str],
    predictions: Mapping[str, Sequence[float] | np.ndarray],
    *,
    video_order: Sequence[str] | None = None,
) -> Path:
    """Write the EMI CSV: ``Filename`` + the six intensities per video."""
    if not predictions:
        raise SubmissionError("no predictions to write")
    order = _order(predictions, video_order)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(EMI_HEADER)
    for v in order:
        _check_video_id(v, for_file_name=False, allow_comma=True)
        a = np.asarray(predictions[v], dtype=np.float64).ravel()
        if a.shape[0] != len(EMI_EMOTIONS) or not np.all(np.isfinite(a)):
            raise SubmissionError(f"video {v!r}: need {len(EMI_EMOTIONS)} finite intensities, got {a}")
        w.writerow([v, *(repr(float(x)) for x in a)])
    return atomic_write_text(path, buf.getvalue())


def read_emi_submission(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Parse an EMI CSV back into ``{video: (6,) intensities}``."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(rows[0]) != EMI_HEADER:
        raise SubmissionError(f"{path}: header must be {','.join(EMI_HEADER)}")
    out = {}
    for i, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(EMI_HEADER):
            raise SubmissionError(f"{path}:{i}: expected {len(EMI_HEADER)} columns, got {len(row)}")
        if row[0] in out:
            raise SubmissionError(f"{path}:{i}: duplicate video {row[0]!r}")
        out[row[0]] = np.asarray([float(x) for x in row[1:]], dtype=np.float64)
    return out
