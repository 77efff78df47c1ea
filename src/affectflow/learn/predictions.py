"""A learn run's ``predictions.h5``: the head's posteriors on every val and test video (store stage ``learn``).

The fusion chooses its post-processing on the val records and applies it to the test records, so both are
written over all frames of the video, with the AH video classifier's decision where there is one.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from affectflow.core.vocabulary import is_video_task
from affectflow.io.store import Provenance, ShardWriter, StoreError, VideoRecord
from affectflow.learn.errors import LearnError
from affectflow.learn.heads import TrainedHead
from affectflow.learn.rows import predict_video
from affectflow.learn.settings import LearnSettings
from affectflow.learn.video_classifier import VideoAHClassifier
from affectflow.learn.videos import LearnVideos

#: video id -> (posteriors, predicted mask), what :func:`affectflow.learn.rows.predict_video` gives
Posteriors = dict[str, tuple[np.ndarray, np.ndarray]]


def predict_splits(task: str, head: TrainedHead, videos: LearnVideos, stats: tuple[np.ndarray, np.ndarray] | None,
                   prior: np.ndarray) -> Posteriors:
    """Video id -> (posteriors, predicted mask) of every val and test video."""
    posteriors: Posteriors = {}
    for split in ("val", "test"):
        for v in videos.split(split):
            posteriors[v.unit.video_id] = predict_video(task, head, v, stats, prior)
    return posteriors


def write_predictions(path: Path, task: str, videos: LearnVideos, post: Posteriors, vc: VideoAHClassifier | None,
                      settings: LearnSettings, features: list[str], head_path: Path, provenance: Provenance) -> Path:
    """Write ``predictions.h5``; ``provenance`` (the job's rerun key) gains the head's digest and the settings."""
    digest = hashlib.sha256(head_path.read_bytes()).hexdigest()  # the digest the head's sidecar records
    prov = replace(provenance, model="+".join(features), weights_sha256=digest,
                   config={**provenance.config, "learn": settings.to_json()})
    try:
        with ShardWriter(path, prov) as w:
            for split in ("val", "test"):
                vs = videos.split(split)
                proba = keep = None
                if vc is not None and vs:
                    proba = vc.predict_proba(np.stack([v.video_vec for v in vs]))  # type: ignore[misc]
                    keep = (proba >= vc.threshold).astype(np.int64)
                for i, v in enumerate(vs):
                    p, predicted = post[v.unit.video_id]
                    arrays = {"posteriors": p, "timestamps": v.frame_times}
                    if not is_video_task(task):
                        arrays.update(predicted=predicted, face_present=v.face_present)
                    attrs: dict[str, Any] = {"split": split, "n_frames": v.n_frames, "task": task}
                    if proba is not None and keep is not None:
                        attrs.update(video_proba=float(proba[i]), video_keep=int(keep[i]))
                    w.add(VideoRecord(v.unit.video_id, arrays, attrs))
            w.set_skipped(videos.excluded)
    except StoreError as e:
        raise LearnError(str(e)) from None
    return path
