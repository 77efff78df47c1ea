"""A learn run's training and validation matrices: its videos' rows stacked and z-scored with train statistics.

Frame tasks (EXPR, AH) learn one row per aligned frame, the video tasks (EMI, AH-video) one STAT descriptor
per video; the validation rows pick the head's best epoch, so they are standardised with the same (train)
statistics, which are kept to standardise every later input the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from affectflow.core.vocabulary import BINARY_TASKS
from affectflow.evaluate.metrics import IGNORE_LABEL, N_EXPR
from affectflow.learn.rows import VideoRows, apply_zscore, zscore_stats
from affectflow.learn.videos import LearnVideos

log = logging.getLogger("affectflow.learn")


@dataclass
class TrainingMatrices:
    """Train and val rows with their targets; ``stats``: the train split's column (mean, std), None unstandardised."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    stats: tuple[np.ndarray, np.ndarray] | None


def training_matrices(task: str, videos: LearnVideos, standardize: bool) -> TrainingMatrices:
    """Stacked train and val rows, z-scored with the train split's statistics when ``standardize``.

    The training videos' own rows are released once stacked: the stacked copy is all training needs, and
    for millions of frames two copies would double the stage's memory.
    """
    x_tr, y_tr = stack_rows(task, videos.train)
    x_va, y_va = stack_rows(task, videos.val)
    for v in videos.train:  # stacked now; keep only what the video classifier and metadata need
        v.x, v.aligned = v.x[:0], None
    stats = zscore_stats(x_tr) if standardize else None
    x_tr, x_va = apply_zscore(x_tr, stats, inplace=True), apply_zscore(x_va, stats, inplace=True)
    log.info("learn %s: %d train rows from %d videos, %d val rows from %d videos, %d columns", task, len(x_tr),
             len(videos.train), len(x_va), len(videos.val), x_tr.shape[1])
    return TrainingMatrices(x_tr, y_tr, x_va, y_va, stats)


def stack_rows(task: str, vs: list[VideoRows]) -> tuple[np.ndarray, np.ndarray]:
    """The videos' rows one under the other, with the targets of those rows (a frame task's labels of the
    frames its rows stand for, a video task's one target per video)."""
    if task == "emi":
        return np.concatenate([v.x for v in vs]), np.stack([v.y for v in vs])  # type: ignore[misc]
    if task == "ah_video":
        return np.concatenate([v.x for v in vs]), np.concatenate([v.y for v in vs])  # type: ignore[misc]
    x = np.concatenate([v.x for v in vs])
    y = np.concatenate([v.aligned.select(v.y) for v in vs])  # type: ignore[union-attr, arg-type]
    return x, y


def label_prior(task: str, y_train: np.ndarray) -> np.ndarray:
    """Posterior for a frame nothing can be said about: training class frequencies / positive rate."""
    if task == "expr":
        yy = y_train[y_train != IGNORE_LABEL]
        counts = np.bincount(yy, minlength=N_EXPR).astype(np.float64)
        return (counts / max(counts.sum(), 1.0)).astype(np.float32)
    if task in BINARY_TASKS:
        return np.asarray(float(np.mean(y_train)) if y_train.size else 0.0, dtype=np.float32)
    return np.asarray(y_train.mean(axis=0), dtype=np.float32)
