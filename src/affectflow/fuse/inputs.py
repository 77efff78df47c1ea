"""What a fusion reads: each feature set's learn predictions, the videos they share, frame times and val labels.

Only the videos every feature set predicted can be blended, so the others are left out (and logged) rather
than fused from fewer sets; the first set's records say which split a video is in.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from affectflow.core.vocabulary import is_video_task
from affectflow.data.adapters import read_task_labels
from affectflow.data.units import UnitsTable
from affectflow.fuse.errors import FuseError
from affectflow.io.shards import ShardSet, StageInputError, media_frames
from affectflow.io.store import ShardReader, VideoRecord

log = logging.getLogger("affectflow.fuse")


@dataclass
class LearnedPredictions:
    """Each feature set's ``predictions.h5`` (in the fusion's order): its path, its records by video and the
    config of its provenance."""

    paths: dict[str, str]
    records: dict[str, dict[str, VideoRecord]]
    configs: dict[str, dict[str, Any]]

    @property
    def names(self) -> list[str]:
        return list(self.records)


@dataclass
class FusionVideos:
    """The videos every feature set predicted (``common``), its val and test ones (sorted), and the others
    with the sets that lack them."""

    common: set[str]
    val: list[str]
    test: list[str]
    excluded: list[tuple[str, str]]


def read_predictions(task: str, predictions: Mapping[str, str | os.PathLike[str]]) -> LearnedPredictions:
    """Every feature set's learn predictions (video id -> record) and provenance config, checked for ``task``."""
    sets: dict[str, dict[str, VideoRecord]] = {}
    meta: dict[str, dict[str, Any]] = {}
    for name, path in predictions.items():
        with ShardReader(path, stage="learn") as r:
            conf = dict(r.provenance.config)
            if conf.get("task") not in (None, task):
                raise FuseError(f"{path}: predictions for task {conf.get('task')!r}, not {task!r}")
            meta[name] = conf
            sets[name] = {rec.video_id: rec for rec in r}
    return LearnedPredictions({n: str(p) for n, p in predictions.items()}, sets, meta)


def fusion_videos(task: str, preds: LearnedPredictions) -> FusionVideos:
    """The videos every feature set predicted, by split; the others logged with the sets that lack them."""
    names, sets = preds.names, preds.records
    common = set.intersection(*(set(s) for s in sets.values()))
    excluded = sorted({(v, f"not predicted by {', '.join(n for n in names if v not in sets[n])}")
                       for s in sets.values() for v in s if v not in common})
    for vid, why in excluded:
        log.warning("fuse %s: video %r excluded: %s", task, vid, why)
    split_of: dict[str, list[str]] = {"val": [], "test": []}
    for vid in sorted(common):
        split = str(sets[names[0]][vid].attrs.get("split", ""))
        if split in split_of:  # other splits are dropped
            split_of[split].append(vid)
    return FusionVideos(common, split_of["val"], split_of["test"], excluded)


def read_frames(task: str, media_shards: Sequence[str | os.PathLike[str]], vids: list[str]) -> dict[str, np.ndarray]:
    """Frame times of ``vids`` from the media shards; a video without them is an error."""
    frames: dict[str, np.ndarray] = {}
    try:
        with ShardSet(list(media_shards), "media") as media:
            for vid in vids:
                if vid not in media:
                    raise FuseError(f"video {vid!r} has predictions but {media.why_missing(vid)}")
                frames[vid] = media_frames(media, vid)
    except StageInputError as e:
        raise FuseError(f"task {task}: {e}") from None
    return frames


def val_labels(task: str, units: UnitsTable, units_tsv: str | os.PathLike[str], vids: list[str],
               frames: Mapping[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    """Labels of the labelled val videos (EMI as float64); selection needs at least one."""
    labels: dict[str, np.ndarray] = {}
    for vid in vids:
        try:
            u = units.get(vid)
        except KeyError:
            raise FuseError(f"val video {vid!r} is not in {units_tsv}") from None
        if u.labels(task):
            y = read_task_labels(task, u.labels(task), vid, len(frames[vid]))
            labels[vid] = y.astype(np.float64) if task == "emi" else y
    if not labels:
        raise FuseError(f"task {task}: split 'val' has no labelled video predicted by all of {names}")
    return labels


def posterior(task: str, rec: VideoRecord, n_frames: int, where: str) -> np.ndarray:
    """A learned record's posteriors as the fusion blends them: AH's (n, 1) as (n,), a video task's flat."""
    p = np.asarray(rec.arrays["posteriors"], dtype=np.float32)
    if task == "ah" and p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if is_video_task(task):
        return p.ravel()
    if p.shape[0] != n_frames:
        raise FuseError(f"{where}: video {rec.video_id!r} has {p.shape[0]} posteriors for {n_frames} frames")
    return p


def set_posteriors(task: str, preds: LearnedPredictions, frames: Mapping[str, np.ndarray],
                   vids: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """Feature set -> video -> its learned posteriors, for ``vids``."""
    return {n: {v: posterior(task, preds.records[n][v], len(frames[v]), preds.paths[n]) for v in vids}
            for n in preds.names}
