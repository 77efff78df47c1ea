"""Submission files in the organisers' own formats: writers, readers, templates and a checker.

One file per task, exactly as the organisers publish them: EXPR and AH one line per frame, EMI one CSV
row per video, AH-video one line per video. With the organisers' example file for the test set (a
*template*, config ``submission_template``) a submission has exactly the template's lines in its order.
:func:`check_submission` says what is wrong with any file; the writers run the same check on what they
write before it replaces anything.

Output contract: the files of the format table in docs/learning.md, written atomically; the readers
return ``{video: decisions}`` (EMI: the six intensities, AH-video: one 0/1).

Options and the full behaviour: docs/learning.md, section "submit".
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affectflow.core.errors import AffectflowError
from affectflow.core.files import atomic_write_text
from affectflow.core.vocabulary import EMI_EMOTIONS, EXPR_CLASSES, TASKS

log = logging.getLogger("affectflow.submit.formats")

EXPR_HEADER = "image_location," + ",".join(EXPR_CLASSES)
EMI_HEADER = ("Filename", *EMI_EMOTIONS)
FRAME_TASKS = ("expr", "ah")
TEMPLATE_TASKS = ("expr", "ah", "ah_video")
#: the file each task's submission is written to, in ``submissions/<task>/``
SUBMISSION_FILES = {"expr": "expr_predictions.txt", "emi": "emi_predictions.csv", "ah": "ah_predictions.txt",
                    "ah_video": "ah_video_predictions.txt"}
_LINE = {
    "expr": re.compile(r"^(?P<video>.+)/(?P<frame>\d{5})\.jpg,(?P<value>-?\d+)$"),
    "ah": re.compile(r"^(?P<video>.+)/frame-(?P<frame>\d+)\.jpg,(?P<value>-?\d+)$"),
}
#: the two AH-video forms of the organisers (sbelharbi/ah3rd-challenge-abaw11, predictions-submissions/):
#: ``<video>,<0|1>`` (no_probabilities) and ``<video>,<p0>,<p1>,<0|1>`` (with_probabilities, 4 decimals)
_VIDEO_LINE = re.compile(r"^(?P<video>[^,]+)(?:,(?P<p0>[^,]*),(?P<p1>[^,]*))?,(?P<value>-?\d+)$")
#: what p0 + p1 may miss 1 by (the organisers' validator asks for exactly 1.0: four-decimal complements are)
_PROBABILITY_SUM_TOLERANCE = 5e-5
# first fields of a header line in a video list (the split files have none; hand-made lists may)
_VIDEO_LIST_HEADERS = ("video_path", "path", "video", "filename")
_LOCATION = {
    "expr": re.compile(r"^(?P<video>.+)/(?P<frame>\d{5})\.jpg$"),
    "ah": re.compile(r"^(?P<video>.+)/frame-(?P<frame>\d+)\.jpg$"),
}
N_CLASSES = {"expr": len(EXPR_CLASSES), "ah": 2}
FIRST_FRAME = {"expr": 1, "ah": 0}  # the number of a video's first frame in the organisers' names


class SubmissionError(AffectflowError, ValueError):
    """Predictions that cannot form a valid submission (or a file that does not parse back)."""


def frame_location(task: str, video: str, index: int) -> str:
    """The organisers' name of 0-based frame ``index`` of ``video``."""
    return f"{video}/{index + 1:05d}.jpg" if task == "expr" else f"{video}/frame-{index}.jpg"


def _check_video_id(v: str) -> None:
    if not v or v != v.strip() or "\n" in v or "\r" in v or "," in v:
        raise SubmissionError(f"video id {v!r} cannot appear in a submission line")


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


# ---------------------------------------------------------------------- templates


@dataclass(frozen=True)
class Template:
    """The organisers' example file: every line's video (as they name it) and frame (0 for AH-video)."""

    task: str
    path: str
    rows: tuple[tuple[str, int], ...]  # (video as written, 0-based frame index)
    #: AH-video: the organisers' submission form of its lines (2 or 4 columns), 0 for a video list
    columns: int = 0

    def videos(self) -> list[str]:
        return list(dict.fromkeys(v for v, _ in self.rows))


def read_template(task: str, path: str | os.PathLike[str]) -> Template:
    """Parse the organisers' example submission (its image locations, or for AH-video the video paths that
    start its lines; any values after them are ignored)."""
    if task not in TEMPLATE_TASKS:
        raise SubmissionError(f"templates are for tasks {TEMPLATE_TASKS}, not {task!r}")
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise SubmissionError(f"{p}: cannot read the submission template ({e})") from None
    if task == "ah_video":
        return _video_template(p, lines)
    start = 0
    if task == "expr":
        if not lines or not lines[0].startswith("image_location"):
            raise SubmissionError(f"{p}: an EXPR template starts with the header {EXPR_HEADER!r}")
        start = 1
    rows = []
    for i, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        loc = line.strip().split(",", 1)[0]
        m = _LOCATION[task].match(loc)
        if not m:
            want = "<video>/<00001>.jpg" if task == "expr" else "<video>/frame-<i>.jpg"
            raise SubmissionError(f"{p}:{i}: expected {want}, got {loc!r}")
        rows.append((m["video"], int(m["frame"]) - FIRST_FRAME[task]))
    if not rows:
        raise SubmissionError(f"{p}: the template lists no frame")
    return Template(task, str(p), tuple(rows))


def _video_template(p: Path, lines: list[str]) -> Template:
    """A video list (the split's test.txt) or one of the organisers' two submission forms: the videos, and the
    form when every line has it."""
    rows: list[tuple[str, int]] = []
    seen: dict[str, int] = {}
    parsed = [_VIDEO_LINE.match(line.strip()) for line in lines if line.strip()]
    forms = {2 if m["p0"] is None else 4 for m in parsed if m is not None}
    submission_form = bool(parsed) and all(
        m is not None and (m["p0"] is None or None not in (_probability(m["p0"]), _probability(m["p1"])))
        for m in parsed) and len(forms) == 1
    for i, line in enumerate(lines, start=1):
        video = line.split(",", 1)[0].strip()
        if not video or (not rows and video.lower() in _VIDEO_LIST_HEADERS):
            continue
        if video in seen:
            raise SubmissionError(f"{p}:{i}: video {video!r} again (first on line {seen[video]})")
        seen[video] = i
        rows.append((video, 0))
    if not rows:
        raise SubmissionError(f"{p}: the template lists no video")
    return Template("ah_video", str(p), tuple(rows), columns=forms.pop() if submission_form else 0)


def _probability(text: str) -> float | None:
    """A probability cell's value; None when it is no number in [0, 1]."""
    try:
        v = float(text)
    except ValueError:
        return None
    return v if 0.0 <= v <= 1.0 else None


def match_template_videos(template: Template, video_ids: Sequence[str]) -> dict[str, str]:
    """Template video name -> our video id: the same string, or the same file stem (a path in the test list)."""
    ours = set(video_ids)
    by_stem: dict[str, str] = {}
    for v in video_ids:
        by_stem.setdefault(Path(v).stem, v)
    out, missing = {}, []
    for name in template.videos():
        vid = name if name in ours else by_stem.get(Path(name).stem)
        if vid is None:
            missing.append(name)
        else:
            out[name] = vid
    if missing:
        raise SubmissionError(f"{template.path}: {len(missing)} template video(s) have no prediction: "
                              f"{', '.join(missing[:10])}")
    return out


# ---------------------------------------------------------------------- frame tasks


def format_frame_submission(
    task: str,
    predictions: Mapping[str, Sequence[int] | np.ndarray],
    template: Template | None = None,
    video_order: Sequence[str] | None = None,
    names: Mapping[str, str] | None = None,
) -> str:
    """The text of an EXPR or AH submission (format and template rules: docs/learning.md, "submit").
    ``names``: without a template, each video id's name in the frame locations (for AH, the video path as the
    test list gives it, the organisers' ``<path>/frame-<i>.jpg``); an id without one is its own name."""
    if task not in FRAME_TASKS:
        raise SubmissionError(f"unknown frame task {task!r}")
    if not predictions:
        raise SubmissionError("no predictions to write")
    labels = {v: _labels(v, a, N_CLASSES[task], task.upper()) for v, a in predictions.items()}
    buf = io.StringIO()
    if task == "expr":
        buf.write(EXPR_HEADER + "\n")
    if template is None:
        for v in _order(predictions, video_order):
            name = (names or {}).get(v, v)
            _check_video_id(name)
            for i, c in enumerate(labels[v]):
                buf.write(f"{frame_location(task, name, i)},{int(c)}\n")
        return buf.getvalue()
    ids = match_template_videos(template, list(predictions))
    beyond = 0
    for name, index in template.rows:
        y = labels[ids[name]]
        beyond += index >= len(y)
        buf.write(f"{frame_location(task, name, index)},{int(y[min(max(index, 0), len(y) - 1)])}\n")
    if beyond:
        log.warning("%s submission: %d template frame(s) are past their video's last frame and take its "
                    "prediction", task, beyond)
    return buf.getvalue()


def _write_checked(task: str, path: str | os.PathLike[str], text: str, template: Template | None) -> Path:
    problems = check_submission_text(task, text, template)
    if problems:
        raise SubmissionError(f"{path}: the {task} submission would not be valid: " + "; ".join(problems[:5]))
    return atomic_write_text(path, text)


def write_expr_submission(
    path: str | os.PathLike[str],
    predictions: Mapping[str, Sequence[int] | np.ndarray],
    *,
    template: Template | None = None,
    video_order: Sequence[str] | None = None,
) -> Path:
    """Write EXPR class indices (0..7, Aff-Wild2 order) per frame, checked, atomically.

    Every frame needs a prediction: fill frames without a face before calling,
    since -1 is not a valid submission value.
    """
    return _write_checked("expr", path, format_frame_submission("expr", predictions, template, video_order), template)


def write_ah_submission(
    path: str | os.PathLike[str],
    predictions: Mapping[str, Sequence[int] | np.ndarray],
    *,
    template: Template | None = None,
    video_order: Sequence[str] | None = None,
    names: Mapping[str, str] | None = None,
) -> Path:
    """Write AH frame predictions (0/1) in the ABAW-8 format, checked, atomically (``names``: as
    :func:`format_frame_submission`'s)."""
    return _write_checked("ah", path, format_frame_submission("ah", predictions, template, video_order, names),
                          template)


def format_video_submission(
    predictions: Mapping[str, int | Sequence[int] | np.ndarray],
    template: Template | None = None,
    video_order: Sequence[str] | None = None,
    probabilities: Mapping[str, float] | None = None,
    names: Mapping[str, str] | None = None,
) -> str:
    """The text of an AH-video submission, one line per video (the template's names and order; without a
    template, ``names`` gives each video id's name in the file, the video path as in the test list): with
    ``probabilities`` (P(A/H) per video) the organisers' ``with_probabilities`` form ``<video>,<p0>,<p1>,<0|1>``
    (p0 = 1 - p1, four decimals, summing to exactly 1), else ``<video>,<0|1>``. A template in one of the
    two forms decides the form."""
    if not predictions:
        raise SubmissionError("no predictions to write")
    labels = {v: int(_labels(v, np.atleast_1d(np.asarray(a)).ravel()[:1], 2, "AH-video")[0])
              for v, a in predictions.items()}
    if template is not None and template.columns == 2:
        probabilities = None
    elif template is not None and template.columns == 4 and probabilities is None:
        raise SubmissionError(f"{template.path}: the template has probabilities, the predictions none")
    if template is None:
        lines = {(names or {}).get(v, v): v for v in _order(predictions, video_order)}
    else:
        lines = match_template_videos(template, list(predictions))
    buf = io.StringIO()
    for name, vid in lines.items():
        _check_video_id(name)
        if probabilities is None:
            buf.write(f"{name},{labels[vid]}\n")
            continue
        p1 = float(probabilities[vid])
        if not 0.0 <= p1 <= 1.0:
            raise SubmissionError(f"video {vid!r}: probability {p1} is not in [0, 1]")
        p1k = int(round(p1 * 10_000))  # in ten-thousandths, so that the two columns sum to exactly 1
        buf.write(f"{name},{(10_000 - p1k) / 10_000:.4f},{p1k / 10_000:.4f},{labels[vid]}\n")
    return buf.getvalue()


def write_ah_video_submission(
    path: str | os.PathLike[str],
    predictions: Mapping[str, int | Sequence[int] | np.ndarray],
    *,
    template: Template | None = None,
    video_order: Sequence[str] | None = None,
    probabilities: Mapping[str, float] | None = None,
    names: Mapping[str, str] | None = None,
) -> Path:
    """Write one 0/1 A/H decision per video (BAH video-level challenge format; with ``probabilities`` their
    columns too, :func:`format_video_submission`), checked, atomically."""
    text = format_video_submission(predictions, template, video_order, probabilities, names)
    return _write_checked("ah_video", path, text, template)


def read_ah_video_submission(path: str | os.PathLike[str]) -> dict[str, int]:
    """Parse a (valid) AH-video submission back into ``{video: 0/1}`` (file order)."""
    problems = check_submission("ah_video", path)
    if problems:
        raise SubmissionError(f"{path}: " + "; ".join(problems[:5]))
    out = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        m = _VIDEO_LINE.match(line)
        if m:
            out[m["video"]] = int(m["value"])
    return out


def _read_frames(task: str, path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    problems = check_submission(task, path)
    if problems:
        raise SubmissionError(f"{path}: " + "; ".join(problems[:5]))
    lines = Path(path).read_text(encoding="utf-8").splitlines()[1 if task == "expr" else 0:]
    out: dict[str, list[int]] = {}
    for line in lines:
        if line.strip():
            m = _LINE[task].match(line)
            assert m is not None  # checked above
            out.setdefault(m["video"], []).append(int(m["value"]))
    return {v: np.asarray(x, dtype=np.int64) for v, x in out.items()}


def read_expr_submission(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Parse a (valid) EXPR submission back into ``{video: class indices}``."""
    return _read_frames("expr", path)


def read_ah_submission(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Parse a (valid) AH submission back into ``{video: 0/1 labels}``."""
    return _read_frames("ah", path)


# ---------------------------------------------------------------------- checker


def check_submission_text(task: str, text: str, template: Template | None = None) -> list[str]:
    """What is wrong with submission ``text`` for ``task`` (an empty list when nothing is)."""
    if task == "emi":
        return _check_emi(text)
    if task == "ah_video":
        return _check_videos(text, template)
    if task not in FRAME_TASKS:
        return [f"unknown task {task!r}; one of {TASKS}"]
    lines = text.splitlines()
    problems: list[str] = []
    if task == "expr":
        if not lines or lines[0] != EXPR_HEADER:
            return [f"line 1 must be {EXPR_HEADER!r}, got {lines[0] if lines else ''!r}"]
        body = list(enumerate(lines[1:], start=2))
    else:
        body = list(enumerate(lines, start=1))
    rows: list[tuple[str, int]] = []
    for i, line in body:
        m = _LINE[task].match(line)
        if not m:
            want = "<video>/<00001>.jpg,<0-7>" if task == "expr" else "<video>/frame-<i>.jpg,<0|1>"
            problems.append(f"line {i}: expected {want}, got {line!r}")
            continue
        if not 0 <= int(m["value"]) < N_CLASSES[task]:
            problems.append(f"line {i}: value {m['value']} is not in 0..{N_CLASSES[task] - 1}")
        rows.append((m["video"], int(m["frame"]) - FIRST_FRAME[task]))
    if not rows and not problems:
        problems.append("no prediction line")
    if template is not None:
        want = list(template.rows)
        if len(rows) != len(want):
            problems.append(f"{len(rows)} lines for the template's {len(want)}")
        bad = next((k for k, (a, b) in enumerate(zip(rows, want, strict=False)) if a != b), None)
        if bad is not None:
            problems.append(f"line {body[bad][0]} is {frame_location(task, *rows[bad])}, the template has "
                            f"{frame_location(task, *want[bad])} there")
        return problems
    frames: dict[str, list[int]] = {}
    for v, f in rows:
        frames.setdefault(v, []).append(f)
    for v, fs in frames.items():
        if fs != list(range(len(fs))):
            problems.append(f"video {v!r}: frames must run {frame_location(task, v, 0)} onwards without gaps, "
                            "repeats or reordering")
    return problems


def check_submission(task: str, path: str | os.PathLike[str], template: str | os.PathLike[str] | Template | None
                     = None) -> list[str]:
    """What is wrong with the submission file ``path`` (an empty list when nothing is)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return [f"cannot read {path}: {e}"]
    if template is not None and not isinstance(template, Template):
        template = read_template(task, template)
    return check_submission_text(task, text, template)


def _check_videos(text: str, template: Template | None) -> list[str]:
    """The organisers' validator's checks (validate_submission.py: the template's videos in its order, the
    same columns, probabilities in [0, 1] summing to 1, a 0/1 decision), on whole video names (theirs
    compares the first character only) and with the sum to four decimals (theirs asks for float equality)."""
    problems: list[str] = []
    rows: list[str] = []
    seen: dict[str, int] = {}
    form: tuple[int, int] | None = None  # (columns, line) of the first line
    for i, line in enumerate(text.splitlines(), start=1):
        m = _VIDEO_LINE.match(line)
        if not m:
            problems.append(f"line {i}: expected <video>,<0|1> or <video>,<p0>,<p1>,<0|1> (no header), "
                            f"got {line!r}")
            continue
        columns = 2 if m["p0"] is None else 4
        form = form or (columns, i)
        if columns != form[0]:
            problems.append(f"line {i}: {columns} columns, line {form[1]} has {form[0]}")
        if columns == 4:
            p0, p1 = _probability(m["p0"]), _probability(m["p1"])
            if p0 is None or p1 is None:
                problems.append(f"line {i}: probabilities {m['p0']!r}, {m['p1']!r} are not numbers in [0, 1]")
            elif abs(p0 + p1 - 1.0) > _PROBABILITY_SUM_TOLERANCE:
                problems.append(f"line {i}: p0 + p1 = {p0 + p1:.6g}, not 1")
        if m["value"] not in ("0", "1"):
            problems.append(f"line {i}: value {m['value']} is not 0 or 1")
        if m["video"] in seen:
            problems.append(f"line {i}: video {m['video']!r} again (first on line {seen[m['video']]})")
        seen.setdefault(m["video"], i)
        rows.append(m["video"])
    if not rows and not problems:
        problems.append("no prediction line")
    if template is not None:
        want = template.videos()
        if template.columns and form is not None and form[0] != template.columns:
            problems.append(f"{form[0]} columns, the template ({template.path}) has {template.columns}")
        if len(rows) != len(want):
            problems.append(f"{len(rows)} videos for the template's {len(want)}")
        bad = next((k for k, (a, b) in enumerate(zip(rows, want, strict=False)) if a != b), None)
        if bad is not None:
            problems.append(f"video {bad + 1} is {rows[bad]!r}, the template has {want[bad]!r} there")
    return problems


def _check_emi(text: str) -> list[str]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != EMI_HEADER:
        return [f"line 1 must be {','.join(EMI_HEADER)!r}"]
    problems, seen = [], set()
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(EMI_HEADER):
            problems.append(f"line {i}: {len(row)} columns, expected {len(EMI_HEADER)}")
            continue
        if row[0] in seen:
            problems.append(f"line {i}: video {row[0]!r} again")
        seen.add(row[0])
        try:
            values = np.asarray([float(x) for x in row[1:]])
        except ValueError:
            problems.append(f"line {i}: intensities must be numbers, got {row[1:]}")
            continue
        if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
            problems.append(f"line {i}: intensities must be finite and in [0, 1], got {row[1:]}")
    if len(rows) < 2:
        problems.append("no video row")
    return problems


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
        if not v or v != v.strip() or "\n" in v or "\r" in v:
            raise SubmissionError(f"video id {v!r} cannot appear in a submission line")
        a = np.asarray(predictions[v], dtype=np.float64).ravel()
        if a.shape[0] != len(EMI_EMOTIONS) or not np.all(np.isfinite(a)):
            raise SubmissionError(f"video {v!r}: need {len(EMI_EMOTIONS)} finite intensities, got {a}")
        w.writerow([v, *(repr(float(x)) for x in a)])
    return _write_checked("emi", path, buf.getvalue(), None)


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
