"""A learn run's ``metrics.json``: the head's posteriors on the val split scored with the task's metrics.

The val split is the one the head was selected on, so this is the figure the fusion starts from and the
table rows compare (docs/learning.md, "Metrics").
"""

from __future__ import annotations

import numpy as np

from affectflow.evaluate.metrics import MetricReport, ah_report, ah_video_report, emi_report, expr_report
from affectflow.learn.errors import LearnError
from affectflow.learn.heads import TrainedHead
from affectflow.learn.rows import VideoRows
from affectflow.learn.settings import LearnSettings


def val_report(task: str, vs: list[VideoRows], post: dict[str, tuple[np.ndarray, np.ndarray]], head: TrainedHead,
               settings: LearnSettings, features: list[str]) -> MetricReport:
    """The metrics of ``post`` (video -> (posteriors, predicted mask)) on the val videos ``vs``; AH and AH-video
    decide at the head's own threshold."""
    conf = {"features": features, "best_epoch": head.best_epoch, "missing_face": settings.missing_face,
            "face_input": settings.face_input, "n_videos": len(vs)}
    try:
        if task == "expr":
            yt = np.concatenate([v.y for v in vs])  # type: ignore[misc]
            yp = np.concatenate([post[v.unit.video_id][0] for v in vs])
            return expr_report(yt, yp, "val", conf)
        thr = float(head.extra.get("threshold", 0.5))
        if task == "ah_video":
            p_ah = np.array([float(post[v.unit.video_id][0][0]) for v in vs])
            return ah_video_report(np.concatenate([v.y for v in vs]),  # type: ignore[misc]
                                   (p_ah >= thr).astype(np.int64), "val", conf, scores=p_ah)
        if task == "ah":
            p_ah = {v.unit.video_id: np.asarray(post[v.unit.video_id][0]).ravel() for v in vs}
            return ah_report({v.unit.video_id: v.y for v in vs},
                             {v: (p >= thr).astype(np.int64) for v, p in p_ah.items()}, "val", conf, p_ah)
        return emi_report(np.stack([v.y for v in vs]), np.stack([post[v.unit.video_id][0] for v in vs]), "val", conf)
    except ValueError as e:
        raise LearnError(f"task {task}: cannot score split 'val': {e}") from None
