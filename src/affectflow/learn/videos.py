"""A learn run's videos: each split's usable videos as head rows with their labels, the others with a reason.

A video missing from the media or from any modality's shards is left out of training and prediction rather
than guessed (docs/learning.md, "learn"); the reason is the producing stage's, so the log says where to look.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from affectflow.core.vocabulary import FEATURE_STAGES, MODALITY_KINDS, SPLITS
from affectflow.data.adapters import LabelError, frame_label_rows, read_task_labels
from affectflow.data.units import Unit, UnitsTable
from affectflow.io.shards import ShardSet, StageInputError, media_frames
from affectflow.io.store import StoreError
from affectflow.learn.align import AlignmentError
from affectflow.learn.errors import LearnError
from affectflow.learn.rows import VideoRows, build_video_rows
from affectflow.learn.settings import LearnSettings

log = logging.getLogger("affectflow.learn")


@dataclass
class LearnVideos:
    """Every usable video of the task by split (units-table order) and the excluded ones as (video, reason)."""

    train: list[VideoRows] = field(default_factory=list)
    val: list[VideoRows] = field(default_factory=list)
    test: list[VideoRows] = field(default_factory=list)
    excluded: list[tuple[str, str]] = field(default_factory=list)

    def split(self, name: str) -> list[VideoRows]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def by_split(self) -> Iterator[tuple[str, list[VideoRows]]]:
        """(split, videos) for train, val and test."""
        return ((s, self.split(s)) for s in SPLITS)

    def ids(self) -> dict[str, list[str]]:
        """Split -> the ids of its videos."""
        return {s: [v.unit.video_id for v in vs] for s, vs in self.by_split()}


def modality_kind(label: str) -> str:
    """``face/...`` -> ``face``; the prefix of a feature label says how it is aligned."""
    kind = label.split("/", 1)[0]
    if kind not in MODALITY_KINDS or "/" not in label:
        raise LearnError(f"feature label {label!r} must start with one of {[k + '/' for k in MODALITY_KINDS]}")
    return kind


def read_videos(task: str, units: UnitsTable, media_shards: Sequence[str | os.PathLike[str]],
                features: Mapping[str, Sequence[str | os.PathLike[str]]], kinds: Mapping[str, str],
                settings: LearnSettings) -> LearnVideos:
    """Open the media and feature shards and read, align and label the task's videos from them."""
    try:
        with contextlib.ExitStack() as stack:
            media = stack.enter_context(ShardSet(media_shards, "media", "media"))
            sources = {label: stack.enter_context(ShardSet(list(paths), FEATURE_STAGES[kinds[label]], label))
                       for label, paths in features.items()}
            return _collect(task, units, media, sources, dict(kinds), settings)
    except (StageInputError, StoreError) as e:
        raise LearnError(f"task {task}: {e}") from None


def check_splits(task: str, videos: LearnVideos) -> None:
    """Refuse to train without labelled train and val videos (EMI: at least 2 each); warn when test is empty."""
    for split in ("train", "val"):
        if not videos.split(split):
            why = f" ({len(videos.excluded)} videos excluded, see the log)" if videos.excluded else ""
            raise LearnError(f"task {task}: split {split!r} has no labelled video with all features{why}")
    if task == "emi":
        for split in ("train", "val"):
            if len(videos.split(split)) < 2:
                raise LearnError(f"task emi: split {split!r} has {len(videos.split(split))} usable video(s); "
                                 "the weighted Pearson loss and Pearson r need at least 2")
    if not videos.test:
        log.warning("learn %s: no test video to predict", task)


def _task_units(task: str, units: UnitsTable) -> dict[str, list[Unit]]:
    """Split -> its units: the test units of ``task``'s test lists (they have no labels), and the train and val
    units labelled for ``task``."""
    by: dict[str, list[Unit]] = {s: [] for s in SPLITS}
    for u in units:
        if u.split == "test":
            if u.is_test_of(task):
                by["test"].append(u)
        elif u.labels(task):
            by[u.split].append(u)
    return by


def _collect(task: str, units: UnitsTable, media: ShardSet, sources: dict[str, ShardSet],
             kinds: dict[str, str], settings: LearnSettings) -> LearnVideos:
    """Read, align and label every usable video of the task; the others are excluded with a reason."""
    videos = LearnVideos()
    excluded, rows = videos.excluded, settings.rows
    for split, us in _task_units(task, units).items():
        for u in us:
            vid = u.video_id
            if vid not in media:
                excluded.append((vid, media.why_missing(vid)))
                continue
            missing = [src.why_missing(vid) for src in sources.values() if vid not in src]
            if missing:
                excluded.append((vid, "; ".join(missing)))
                continue
            times = media_frames(media, vid)
            y = None
            if split != "test":
                try:
                    y = read_task_labels(task, u.labels(task), vid, times.shape[0])
                    if settings.on_label_mismatch != "fit":  # fitted unless asked not to (problems.tsv says so)
                        n = frame_label_rows(task, u.labels(task), vid)
                        if n is not None and n != times.shape[0]:
                            raise LabelError(f"{u.labels(task)}: {n} frame labels but the video has "
                                             f"{times.shape[0]} frames")
                except ValueError as e:
                    if settings.on_label_mismatch == "skip":
                        excluded.append((vid, f"labels: {e}"))
                        continue
                    raise LearnError(f"task {task}, video {vid!r}: {e}") from None
            recs = {label: src.read(vid) for label, src in sources.items()}
            try:
                v = build_video_rows(task, u, times, recs, sources, kinds, rows)
            except AlignmentError as e:
                raise LearnError(f"task {task}: {e}") from None
            if v is None:
                excluded.append((vid, "no frame with a face (missing_face=drop)"))
                continue
            v.y = y
            videos.split(split).append(v)
    for vid, reason in excluded:
        log.warning("learn %s: video %r excluded: %s", task, vid, reason)
    if excluded:
        log.warning("learn %s: %d video(s) excluded: %s", task, len(excluded), ", ".join(v for v, _ in excluded))
    return videos
