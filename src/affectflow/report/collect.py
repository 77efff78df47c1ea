"""Gather what the run page shows from a run's finished files, before any HTML is written.

Reading is kept apart from rendering so that the page's content can be checked
as data, and so that one place decides what a video section holds: its rows of
the predictions table (read for the shown videos only, so a run of 15,000
videos stays cheap), its labels, transcript words and contact sheet. A video
whose labels or shards cannot be read gets a note on the page, not a failed job.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import astuple, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from affectflow.core.errors import AffectflowError
from affectflow.core.vocabulary import TASKS, VIDEO_TASKS
from affectflow.data.adapters import read_task_labels
from affectflow.data.units import Unit, UnitsTable
from affectflow.faces.sheets import contact_sheet, person_thumbnails
from affectflow.io.shards import ShardSet, media_frames
from affectflow.report.columns import PredictionColumns, parse_columns
from affectflow.report.fonts import fonts_for
from affectflow.report.problems import COLUMNS as PROBLEM_COLUMNS
from affectflow.report.problems import read_problems_tsv
from affectflow.report.tables import RankedTable, ranked_tables, read_metrics
from affectflow.report.timeline import TimelineInputs, drawn_texts, people, render_timeline

Paths = Sequence[str | os.PathLike[str]]
#: JPEG quality of the contact sheets on the page
SHEET_QUALITY = 80


@dataclass(frozen=True)
class PageInputs:
    """The run's files the page is made of (``metrics`` None and no fusion dirs: the run trained no task)."""

    run_name: str
    units: str | os.PathLike[str]
    problems: str | os.PathLike[str]
    predictions: str | os.PathLike[str]
    metrics: str | os.PathLike[str] | None = None
    fusion_dirs: Paths = ()
    faces: Paths = ()  # the faces shards: contact sheets are drawn from their crops
    transcripts: Paths = ()
    media: Paths = ()
    max_videos: int = 50
    #: the folder relative label paths of the units table are read from (the workflow's directory)
    base_dir: str | os.PathLike[str] = "."
    #: the applied bundle the task columns come from, described (config ``bundle``; '' for none)
    bundle: str = ""


@dataclass(frozen=True)
class SweepPlot:
    task: str
    fusion: str
    name: str
    png: bytes


@dataclass(frozen=True)
class VideoSection:
    unit: Unit
    n_rows: int
    timeline: bytes | None
    sheet: bytes | None  # JPEG
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunPage:
    """Everything on the page, as data."""

    run_name: str
    tables: list[RankedTable]
    sweeps: list[SweepPlot]
    problems: pd.DataFrame
    columns: PredictionColumns
    n_rows: int
    n_videos: int
    videos: list[VideoSection] = field(default_factory=list)
    left_out: int = 0
    max_videos: int = 50
    bundle: str = ""  # the applied bundle the task columns come from ('' for none)


def sweep_plots(fusion_dirs: Paths) -> list[SweepPlot]:
    """Every ``sweep_*.png`` of the fusion folders (``.../fusion/<task>/<fusion>``), in task order."""
    plots = []
    for d in fusion_dirs:
        d = Path(d)
        for png in sorted(d.glob("sweep_*.png")):
            plots.append(SweepPlot(d.parent.name, d.name, png.stem.removeprefix("sweep_"), png.read_bytes()))
    order = {t: i for i, t in enumerate(TASKS)}
    return sorted(plots, key=lambda p: (order.get(p.task, len(order)), p.fusion, p.name))


def problems_frame(path: str | os.PathLike[str]) -> pd.DataFrame:
    """problems.tsv as a table of strings (with its columns when it has no rows)."""
    return pd.DataFrame([astuple(r) for r in read_problems_tsv(path)], columns=list(PROBLEM_COLUMNS), dtype=str)


def _open(paths: Paths, stage: str) -> ShardSet | None:
    return ShardSet(list(paths), stage=stage) if paths else None


def _resolve(path: str, base: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else base / p


def _labels(u: Unit, rows: pd.DataFrame, cols: PredictionColumns, media: ShardSet | None,
            base: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """The video's labels per task (frame tasks: aligned to its rows, NaN where none) and notes on failures."""
    labels: dict[str, np.ndarray] = {}
    notes: list[str] = []
    for task in TASKS:
        path = u.labels(task)
        if not path or (task in VIDEO_TASKS and task not in cols.tasks):
            continue
        try:
            if task in VIDEO_TASKS:
                labels[task] = read_task_labels(task, _resolve(path, base), u.video_id, 0)
                continue
            if media is None or u.video_id not in media:
                raise ValueError("no media shard for the video (its frame count is unknown)")
            lab = read_task_labels(task, _resolve(path, base), u.video_id, len(media_frames(media, u.video_id)))
        except (AffectflowError, OSError, ValueError, KeyError) as e:
            notes.append(f"{task} labels not shown: {e}")
            continue
        frames = rows["frame"].to_numpy(np.int64)
        inside = (frames >= 0) & (frames < len(lab))
        aligned = np.full(len(frames), np.nan)
        aligned[inside] = lab[frames[inside]]
        if task == "ah":  # -1: past the end of a short label file, no label (EXPR keeps its own -1 class)
            aligned[aligned < 0] = np.nan
        labels[task] = aligned
    return labels, notes


def _words(transcripts: ShardSet | None, vid: str) -> tuple[np.ndarray, list[str]] | None:
    """Word start times and texts (segments where the ASR gave no word times); None without a transcript."""
    if transcripts is None or vid not in transcripts:
        return None
    arrays = transcripts.read(vid).arrays
    start, text = ("word_start", "word_text") if "word_start" in arrays else ("seg_start", "seg_text")
    if start not in arrays:
        return None
    return np.asarray(arrays[start], float).ravel(), [str(w) for w in np.ravel(arrays[text])]


def _sheet(faces: ShardSet | None, u: Unit) -> bytes | None:
    """The video's contact sheet as JPEG (a PNG of photos is ~10x larger: the page must stay small)."""
    if faces is None or u.video_id not in faces:
        return None
    img = contact_sheet(faces.where[u.video_id], u.video_id)
    ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, SHEET_QUALITY])
    return bytes(jpeg) if ok else None


def _video_section(u: Unit, rows: pd.DataFrame, cols: PredictionColumns, media: ShardSet | None,
                   transcripts: ShardSet | None, faces: ShardSet | None, base: Path) -> VideoSection:
    sheet = _sheet(faces, u)
    notes = [] if sheet is not None or faces is None else ["no contact sheet"]
    if rows.empty:
        return VideoSection(u, 0, None, sheet, ("no rows in the predictions table (see the problems table)",
                                                *notes))
    labels, label_notes = _labels(u, rows, cols, media, base)
    words = _words(transcripts, u.video_id)
    if transcripts is not None and words is None:
        notes.append("no transcript")
    thumbs = person_thumbnails(faces.where[u.video_id], u.video_id) \
        if faces is not None and u.video_id in faces and people(rows) else {}
    x = TimelineInputs(u.video_id, rows.reset_index(drop=True), cols, labels, words, thumbs)
    fonts = fonts_for(drawn_texts(x))
    png = render_timeline(x, fonts=fonts)
    return VideoSection(u, len(rows), png, sheet, tuple(label_notes + notes + ([fonts.note()] if fonts.missing
                                                                                else [])))


def _video_ids(predictions: str | os.PathLike[str]) -> set[str]:
    return {str(v) for v in pq.read_table(predictions, columns=["video_id"]).column(0).unique().to_pylist()}


def collect_page(inputs: PageInputs) -> RunPage:
    """Read everything the page shows (timelines for the first ``max_videos`` videos by id)."""
    if inputs.max_videos < 0:
        raise ValueError(f"report.max_videos must be >= 0, not {inputs.max_videos}")
    units = sorted(UnitsTable.read_tsv(inputs.units), key=lambda u: u.video_id)
    meta = pq.ParquetFile(inputs.predictions)
    cols = parse_columns(meta.schema_arrow.names)
    shown = units[: inputs.max_videos]
    ids = [u.video_id for u in shown]
    rows = pd.read_parquet(inputs.predictions, filters=[("video_id", "in", ids)]) if ids else None
    groups = {} if rows is None else {str(k): g for k, g in rows.groupby("video_id", sort=False)}
    media, transcripts = _open(inputs.media, "media"), _open(inputs.transcripts, "transcripts")
    faces = _open(inputs.faces, "faces")
    try:
        empty = pd.DataFrame(columns=meta.schema_arrow.names)
        videos = [_video_section(u, groups.get(u.video_id, empty), cols, media, transcripts, faces,
                                 Path(inputs.base_dir)) for u in shown]
    finally:
        for s in (media, transcripts, faces):
            if s is not None:
                s.close()
    tables = ranked_tables(read_metrics(inputs.metrics)) if inputs.metrics is not None else []
    return RunPage(inputs.run_name, tables, sweep_plots(inputs.fusion_dirs), problems_frame(inputs.problems), cols,
                   meta.metadata.num_rows, len(_video_ids(inputs.predictions)), videos, len(units) - len(shown),
                   inputs.max_videos, inputs.bundle)
