"""A learn run's AH video classifier: fitted on its train videos, scored on val, saved beside the head.

AH and AH-video fit it (paper section 3.3, Table 3); the fusion's video filter reads its decisions from the
predictions. It is fitted on standardised inputs (lbfgs converges better) and saved with the
standardisation folded into its coefficients, so it applies to raw per-video vectors.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from affectflow.core.vocabulary import BINARY_TASKS
from affectflow.evaluate.metrics import ah_macro_f1
from affectflow.learn.rows import VideoRows, zscore_stats
from affectflow.learn.settings import LearnSettings
from affectflow.learn.video_classifier import VideoAHClassifier, fit_video_ah_classifier
from affectflow.learn.videos import LearnVideos

log = logging.getLogger("affectflow.learn")


def video_classifier_for(task: str, videos: LearnVideos, has_text: bool, settings: LearnSettings,
                         out: Path) -> tuple[VideoAHClassifier | None, Path | None]:
    """AH and AH-video: fit, score on val (when fitted) and save ``video_classifier.json``; (None, None) otherwise."""
    if task not in BINARY_TASKS:
        return None, None
    vc = fit_on_videos(videos.train, settings, has_text)
    if vc.meta.get("fitted"):
        keep_val = {v.unit.video_id: int(k) for v, k in zip(videos.val, vc.predict(
            np.stack([v.video_vec for v in videos.val])), strict=True)}
        truth = np.array([int(np.any(v.y == 1)) for v in videos.val])
        pred = np.array([keep_val[v.unit.video_id] for v in videos.val])
        vc.meta["val_f1"] = ah_macro_f1(truth, pred)
        vc.meta["val_accuracy"] = float(np.mean(truth == pred))
    return vc, vc.save(out / "video_classifier.json")


def fit_on_videos(train: list[VideoRows], settings: LearnSettings, has_text: bool) -> VideoAHClassifier:
    """Logistic regression on per-video mean text features (standardisation folded into coef/intercept).

    Without a text modality it uses the mean frame features; disabled, or with one class only among the
    training videos, it is an unfitted classifier that keeps every video (``meta.fitted`` false, with why).
    """
    x = np.stack([v.video_vec for v in train])  # type: ignore[misc]
    y = np.array([int(np.any(v.y == 1)) for v in train])
    source = "text" if has_text else "features"
    if not has_text:
        log.warning("AH video classifier: no text modality in this feature set; using mean frame features")
    if not settings.ah_video_classifier:
        return VideoAHClassifier(np.zeros(x.shape[1]), 0.0, 0.5,
                                 {"fitted": False, "reason": "disabled in config", "source": source})
    if np.unique(y).size < 2:
        reason = f"all {len(y)} training videos have has_ah={int(y[0])}; every video is kept"
        log.warning("AH video classifier not fitted: %s", reason)
        return VideoAHClassifier(np.zeros(x.shape[1]), 0.0, 0.5, {"fitted": False, "reason": reason, "source": source})
    mu, sd = zscore_stats(x)
    raw = fit_video_ah_classifier((x - mu) / sd, y, C=float(settings.ah_video_C))
    coef = raw.coef / sd
    intercept = float(raw.intercept - np.sum(raw.coef * mu / sd))
    return VideoAHClassifier(coef, intercept, raw.threshold, {**raw.meta, "fitted": True, "source": source})
