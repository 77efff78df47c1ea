"""``problems.tsv``: every video a run skipped or warned about, and why, in one table.

Shard stages record the videos they skipped, with the reason, in each shard's ``skipped``
attribute, and survivable oddities in per-video ``warnings``; this module reads them back from
finished shards into rows with the columns ``stage``, ``shard``, ``video_id``, ``severity``
(``skip`` or ``warning``) and ``message``, so that a user sees in one place why a video is missing
or suspect, and so that the run page shows the same rows the file holds. The ``problems`` rule
(:mod:`affectflow.stages.problems`) is the wiring.

Details (column contents, row order, atomic writing): docs/bad_inputs.md, section "The problems rule".
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from affectflow.core.files import atomic_write
from affectflow.data.adapters import frame_count_notes
from affectflow.data.units import SkippedFile, Unit
from affectflow.io.store import ShardReader

COLUMNS = ("stage", "shard", "video_id", "severity", "message")
#: the ``stage`` of the rows for files of a folder dataset that are not videos
UNITS_STAGE = "units"
#: the ``stage`` of the rows for label files that do not fit their video's frames
LABELS_STAGE = "labels"
SEVERITIES = ("skip", "warning")


@dataclass(frozen=True)
class Problem:
    """One row of ``problems.tsv``."""

    stage: str
    shard: str
    video_id: str
    severity: str
    message: str


def _warnings(value: object) -> list[str]:
    """A record's ``warnings`` attribute as a list of strings (stored as a JSON list, or one string)."""
    if value is None:
        return []
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:
            value = json.loads(value) if value[:1] == "[" else [value]
        except json.JSONDecodeError:
            value = [value]
    if isinstance(value, (list, tuple)):
        return [str(w) for w in value if str(w)]
    return [str(value)]


def _one_line(text: str) -> str:
    """Messages are single TSV cells: no tabs or newlines (ffmpeg's can have both)."""
    return " ".join(str(text).split())


def _frames_with_face(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Per analysed frame, whether it has a face: the rows' ``has_face``, or with a row per frame and person
    (``faces.people: all``) whether any of the frame's rows has one."""
    has_face = np.asarray(arrays["has_face"], bool)
    if "person" not in arrays:
        return has_face
    frames = np.asarray(arrays["frame_index"])
    return np.isin(np.unique(frames), frames[has_face])


def _face_missing(has_face: np.ndarray, share: float, whose: str = "target ") -> str:
    """The warning for a faces record whose (target) face is missing in more than ``share`` of its frames."""
    n = int(has_face.size)
    missing = 1.0 - float(np.count_nonzero(has_face)) / n if n else 0.0
    if n == 0 or missing <= share or missing == 1.0:  # no face at all: the faces stage says so itself
        return ""
    return (f"{whose}face missing in {missing:.0%} of {n} analysed frames "
            f"(more than problems.face_missing_share {share:g})")


def _short_decode(n_decoded: Any, n_frames: int | None) -> str:
    """The warning for a faces record that decoded fewer frames than the media stage found packets: the
    decoder passed over damaged data, and the frames lost there have no rows (the others keep their numbers,
    the media stage's)."""
    n = -1 if n_frames is None or n_decoded is None else int(n_decoded)
    if n < 0 or n >= n_frames:
        return ""
    return (f"{n} of the video's {n_frames} frames decoded: the decoder passed over damaged data, and the "
            f"{n_frames - n} frame(s) lost there have no face rows")


def media_frame_counts(shard_paths: Sequence[str | os.PathLike[str]]) -> dict[str, tuple[int, str]]:
    """Video id -> (frames the media stage found, its media shard's name), from the media shards among
    ``shard_paths``."""
    found = {}
    for path in shard_paths:
        with ShardReader(path) as reader:
            for vid in reader.video_ids() if reader.provenance.stage == "media" else ():
                found[vid] = (int(reader.read(vid, names=()).attrs.get("n_frames", -1)), Path(path).stem)
    return found


def shard_rows(shard_paths: Sequence[str | os.PathLike[str]], face_missing_share: float,
               paths: Mapping[str, str] | None = None, listed: Mapping[str, int] | None = None) -> list[Problem]:
    """Skipped videos and per-video warnings of every shard in ``shard_paths``; for faces shards also the
    videos whose target face is missing in more than ``face_missing_share`` of the frames, and those that
    decoded fewer frames than ``listed`` says the media stage found (video id -> frames).
    ``paths`` (video id -> file, the units table's): a warning starts with the file, as a skip's reason does."""
    paths, listed = paths or {}, listed or {}
    share = float(face_missing_share)
    rows: list[Problem] = []
    stage_order: dict[str, int] = {}
    for path in shard_paths:
        name = Path(path).stem
        with ShardReader(path) as reader:
            prov = reader.provenance
            stage = f"{prov.stage}/{prov.model}" if prov.model else prov.stage
            stage_order.setdefault(stage, len(stage_order))
            for vid, reason in reader.skipped():
                rows.append(Problem(stage, name, str(vid), "skip", _one_line(reason)))
            faces = prov.stage == "faces"
            for vid in reader.video_ids():
                names = reader.array_names(vid) if faces else []
                face_rows = "has_face" in names
                per_person = ("frame_index", "person") if "person" in names else ()  # faces.people: all
                rec = reader.read(vid, names=("has_face", *per_person) if face_rows else ())  # not crops or audio
                warnings = _warnings(rec.attrs.get("warnings"))
                if face_rows:
                    warnings.append(_face_missing(_frames_with_face(rec.arrays), share, "" if per_person else
                                                  "target "))
                if faces:
                    warnings.append(_short_decode(rec.attrs.get("n_frames_decoded"), listed.get(rec.video_id)))
                where = f"{paths[rec.video_id]}: " if rec.video_id in paths else ""
                for w in filter(None, warnings):
                    rows.append(Problem(stage, name, rec.video_id, "warning", _one_line(where + w)))
    severity = {s: i for i, s in enumerate(SEVERITIES)}
    rows.sort(key=lambda r: (stage_order[r.stage], r.shard, r.video_id, severity[r.severity]))
    return rows


def write_problems(rows: Iterable[Problem], out_tsv: str | os.PathLike[str]) -> Path:
    """Write ``rows`` as ``out_tsv`` atomically (a temporary file in the same folder, then a rename)."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
            w.writerow(COLUMNS)
            for row in rows:
                w.writerow(astuple(row))
    return atomic_write(out_tsv, write)


def skipped_file_rows(skipped: Iterable[SkippedFile]) -> list[Problem]:
    """Rows for the files of ``folder`` datasets that are not units (stage ``units``, no shard): such a file
    has no video id, so the row names the file (``video_id`` is its name, the message starts with its path)."""
    return [Problem(UNITS_STAGE, "", s.name, "skip", _one_line(f"{s.path}: {s.reason}"))
            for s in sorted(skipped, key=lambda s: s.path)]


def label_rows(units: Iterable[Unit], found: Mapping[str, tuple[int, str]]) -> list[Problem]:
    """Rows (stage ``labels``) for the videos whose frame labels and decoded frames disagree in count (``found``:
    :func:`media_frame_counts`): the labels are fitted (affectflow.data.adapters.frame_labels), and this is
    where a user sees it."""
    return [Problem(LABELS_STAGE, found[u.video_id][1], u.video_id, "warning", _one_line(f"{task}: {note}"))
            for u, task, note in frame_count_notes(units, {v: n for v, (n, _) in found.items() if n >= 0})]


def read_problems_tsv(path: str | os.PathLike[str]) -> list[Problem]:
    """Read back a ``problems.tsv`` (the run page shows its rows); a file this module did not write, or one
    edited by hand into another shape, raises ``ValueError`` naming the file and the line."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if tuple(header or ()) != COLUMNS:
            raise ValueError(f"{path}: header {header!r} is not {list(COLUMNS)}")
        rows = []
        for row in reader:
            if len(row) != len(COLUMNS):
                raise ValueError(f"{path}, line {reader.line_num}: {len(row)} cells, not {len(COLUMNS)}")
            rows.append(Problem(*row))
        return rows


def summary(rows: Sequence[Problem]) -> str:
    """One line for the job log: how many videos each stage skipped or warned about."""
    def videos(stage: str, severity: str) -> int:
        return len({r.video_id for r in rows if r.stage == stage and r.severity == severity})

    stages = dict.fromkeys(r.stage for r in rows)
    return "; ".join(f"{s}: {videos(s, 'skip')} skipped, {videos(s, 'warning')} with warnings" for s in stages) \
        or "no video was skipped and no warning was recorded"


def collect_problems(shard_paths: Sequence[str | os.PathLike[str]], face_missing_share: float,
                     skipped: Iterable[SkippedFile] = (), units: Iterable[Unit] = ()) -> list[Problem]:
    """Every row of a run's table, in its order: the files of folder datasets that are no videos
    (``skipped``: the units table's), then each shard's skipped videos and warnings, then the label files
    of ``units`` that do not fit their video's frames.

    A shard that is missing, unfinished or not an affectflow shard raises
    :class:`affectflow.io.store.StoreError`.
    """
    units = list(units)
    paths = {u.video_id: u.path for u in units}
    found = media_frame_counts(shard_paths)
    listed = {v: n for v, (n, _) in found.items() if n >= 0}
    return [*skipped_file_rows(skipped), *shard_rows(shard_paths, face_missing_share, paths, listed),
            *label_rows(units, found)]
