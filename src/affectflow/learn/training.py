"""The task's head trained on a learn run's matrices, and what its sidecar must record to be used again.

EXPR trains a softmax head (inverse-frequency class weights), AH and AH-video a sigmoid head (positive
weight), EMI six sigmoid outputs under the weighted Pearson loss (paper section 3; docs/learning.md,
"Heads and training").
"""

from __future__ import annotations

import numpy as np

from affectflow.core.vocabulary import BINARY_TASKS
from affectflow.evaluate.metrics import IGNORE_LABEL
from affectflow.learn.errors import LearnError
from affectflow.learn.heads import TrainedHead, train_ah_head, train_emi_head, train_expr_head
from affectflow.learn.matrices import TrainingMatrices
from affectflow.learn.settings import LearnSettings
from affectflow.learn.videos import LearnVideos


def train_task_head(task: str, m: TrainingMatrices, settings: LearnSettings) -> TrainedHead:
    """Train ``task``'s head on ``m`` (its best epoch chosen on the val rows); a :class:`LearnError` says why not."""
    tc = settings.train
    if task == "expr" and not np.any(m.y_train != IGNORE_LABEL):
        raise LearnError("task expr: split 'train' has no frame with a valid label (all -1)")
    if len(m.x_train) == 0:
        raise LearnError(f"task {task}: split 'train' has no frame to train on (missing_face={settings.missing_face})")
    try:
        if task == "expr":
            return train_expr_head(m.x_train, m.y_train, m.x_val, m.y_val, tc,
                                   class_weighted=bool(settings.class_weighted))
        if task in BINARY_TASKS:
            return train_ah_head(m.x_train, m.y_train, m.x_val, m.y_val, tc,
                                 pos_weighted=bool(settings.class_weighted), task=task)
        return train_emi_head(m.x_train, m.y_train, m.x_val, m.y_val, tc, emotion_weights=settings.emi_weights)
    except ValueError as e:
        raise LearnError(f"task {task}: training failed: {e}") from None


def describe_head(head: TrainedHead, videos: LearnVideos, features: list[str],
                  stats: tuple[np.ndarray, np.ndarray] | None, settings: LearnSettings) -> None:
    """Record in the head's sidecar what is needed to use it again: columns, standardisation, options."""
    head.extra.update(
        features=features,
        # a list, not a dict: the sidecar is written with sorted keys and the column order matters
        feature_columns=[[name, a, b] for name, (a, b) in videos.train[0].columns.items()],
        standardize=None if stats is None else {"mean": stats[0].tolist(), "std": stats[1].tolist()},
        learn_config=settings.to_json(),
        n_videos={s: len(v) for s, v in videos.by_split()},
    )
