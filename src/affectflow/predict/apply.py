"""A bundle's tasks on one video: the heads, then the fusion's blend, filter, smoothing and video filter.

Rows are built by :mod:`affectflow.learn.rows` and post-processed by :mod:`affectflow.fuse.postprocess`,
the code the training run used, so the run's own bundle applied to its test videos gives its fused test
predictions (tested). Frames that no feature set of a task had an input for stay NaN: never a guess.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from affectflow.core.vocabulary import BINARY_TASKS, is_video_task
from affectflow.data.units import Unit
from affectflow.fuse.postprocess import PostConfig, decide, frame_softmax, postprocess_video
from affectflow.io.shards import ShardSet
from affectflow.io.store import VideoRecord
from affectflow.learn.align import AlignmentError
from affectflow.learn.heads import TrainedHead, load_head
from affectflow.learn.rows import RowOptions, VideoRows, build_video_rows, predict_video
from affectflow.learn.video_classifier import VideoAHClassifier
from affectflow.predict.bundle import Bundle, BundleError, BundleTask

log = logging.getLogger("affectflow.predict")

PRETRAINED = "pretrained"  # the source name PostConfig gives the confidence filter's input


@dataclass
class TaskPrediction:
    """One task on one video: fused posteriors over all frames ((n, 8) EXPR, (n,) AH) or the video's
    ((6,) EMI, (1,) AH-video), the decisions, and which frames had an input (all for video tasks)."""

    task: str
    posteriors: np.ndarray
    decisions: np.ndarray
    predicted: np.ndarray


class _Head:
    """A loaded head with what applying it needs: its row options and standardisation."""

    def __init__(self, path: Path) -> None:
        try:
            self.head: TrainedHead = load_head(path)
        except (OSError, ValueError) as e:
            raise BundleError(f"{path}: cannot load the head: {e}") from None
        extra = self.head.extra
        self.labels: list[str] = list(extra["features"])
        self.options = RowOptions.from_sidecar(extra["learn_config"])
        std = extra.get("standardize")
        self.stats = None if std is None else (np.asarray(std["mean"]), np.asarray(std["std"]))


class BundleApplier:
    """Applies every task of ``bundle`` to videos, reading features from ``sources`` (label -> shards)."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self._heads: dict[tuple[str, str], _Head] = {}

    @cached_property
    def _video_classifiers(self) -> dict[str, VideoAHClassifier]:
        out = {}
        for t in self.bundle.tasks.values():
            path = t.video_classifier(self.bundle.root)
            if path is not None:
                out[t.task] = VideoAHClassifier.load(path)
        return out

    def head(self, task: BundleTask, feature_set: str) -> _Head:
        key = (task.task, feature_set)
        if key not in self._heads:
            self._heads[key] = _Head(task.head(self.bundle.root, feature_set))
        return self._heads[key]

    def apply(self, unit: Unit, frame_times: np.ndarray, sources: Mapping[str, ShardSet],
              pretrained: np.ndarray | None) -> dict[str, TaskPrediction]:
        """Every task of the bundle on one video (``pretrained``: the filter model's per-frame softmax)."""
        out = {}
        records: dict[str, VideoRecord] = {}  # each feature record of the video read once, for every task
        for t in self.bundle.tasks.values():
            pred = self._task(t, unit, frame_times, sources, pretrained, records)
            if pred is not None:
                out[t.task] = pred
        return out

    def _task(self, t: BundleTask, unit: Unit, times: np.ndarray, sources: Mapping[str, ShardSet],
              pretrained: np.ndarray | None, records: dict[str, VideoRecord]) -> TaskPrediction | None:
        vid = unit.video_id
        posteriors: dict[str, np.ndarray] = {}
        rows: dict[str, VideoRows] = {}
        n = times.shape[0]
        predicted = np.zeros(n, dtype=bool)
        for fs in t.feature_sets:
            h = self.head(t, fs)
            missing = [lb for lb in h.labels if vid not in sources[lb]]
            if missing:
                log.warning("%s: video %r has no %s features; no %s prediction", t.task, vid, ", ".join(missing),
                            t.task)
                return None
            v = _rows(t.task, unit, times, {lb: sources[lb] for lb in h.labels}, h.options, records)
            if v is None:  # the head was trained without such videos (learn missing_face: drop)
                log.warning("%s: video %r has no frame with a face, and the bundle's %s head on %s leaves such "
                            "videos out (missing_face: drop); no %s prediction", t.task, vid, t.task, fs, t.task)
                return None
            p, pred = predict_video(t.task, h.head, v, h.stats, np.asarray(np.nan, dtype=np.float32))
            posteriors[fs], rows[fs] = _squeeze(t.task, p), v
            predicted |= pred
        cfg = PostConfig(**{**t.postprocess, "sources": tuple(t.postprocess["sources"]),
                            "mapping": tuple(t.postprocess["mapping"])})
        if cfg.t is not None and pretrained is None:  # as in fusion: such a video is not filtered
            log.warning("expr: no %s face features for video %r; its frames are not filtered", t.pretrained, vid)
            cfg = replace(cfg, t=None)
        elif cfg.t is not None:
            posteriors[PRETRAINED] = pretrained
        keep = True
        if cfg.video_filter and t.task in self._video_classifiers:
            vec = rows[t.video_source].video_vec  # type: ignore[index]
            keep = bool(self._video_classifiers[t.task].predict(np.asarray(vec)[None, :])[0])
        post = postprocess_video(posteriors, cfg, keep)
        dec = decide(post, cfg)
        if is_video_task(t.task):
            return TaskPrediction(t.task, post, dec, np.ones(n, dtype=bool))
        post = post.astype(np.float32)
        post[~predicted] = np.nan
        return TaskPrediction(t.task, post, dec, predicted)


def pretrained_proba(pre: ShardSet | None, vid: str, n_frames: int) -> np.ndarray | None:
    """The EXPR filter model's softmax on every frame (as the fuse stage reads it); None without it."""
    if pre is None or vid not in pre:
        return None
    rec = pre.read(vid)
    idx = np.asarray(rec.arrays.get("frame_index", np.zeros(0)), dtype=np.int64).ravel()
    return frame_softmax(pre.matrix(rec, "logits"), idx, n_frames)


def _rows(task: str, unit: Unit, times: np.ndarray, sources: Mapping[str, ShardSet],
          options: RowOptions, records: dict[str, VideoRecord]) -> VideoRows | None:
    """The video's head rows from its feature records (read into ``records`` on first use)."""
    kinds = {lb: lb.split("/", 1)[0] for lb in sources}
    for lb, src in sources.items():
        if lb not in records:
            records[lb] = src.read(unit.video_id)
    recs = {lb: records[lb] for lb in sources}
    try:
        return build_video_rows(task, unit, times, recs, dict(sources), kinds, options)
    except AlignmentError as e:
        raise BundleError(f"task {task}: {e}") from None


def _squeeze(task: str, p: np.ndarray) -> np.ndarray:
    """AH heads may give (n, 1): the fusion blends (n,) (as ``affectflow.fuse.inputs`` reads them)."""
    if task in BINARY_TASKS and p.ndim == 2 and p.shape[1] == 1:
        return p[:, 0]
    return p
