"""Video-level AH filter (paper section 3.3, Table 3): does this video contain any AH frame?

A logistic regression on the component-wise mean of the video's text
embeddings predicts whether at least one frame is labelled AH = 1. Videos it
rejects get their frame-level AH predictions zeroed (:func:`apply_video_filter`),
which removes false positives in videos where nobody hesitates. The filter is
switchable so the sweeps can compare with and without it.

Persistence is a JSON file of ``coef_``, ``intercept_`` and ``classes_`` (never
pickle): predictions after loading are computed from those numbers with the
same formula sklearn uses, so a loaded classifier gives identical outputs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from affectflow.core.files import atomic_write_text

FORMAT_VERSION = 1


def video_has_ah(frame_labels: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Training target: 1 when any frame of the video is labelled 1."""
    return {v: int(np.any(np.asarray(y) == 1)) for v, y in frame_labels.items()}


@dataclass
class VideoAHClassifier:
    """Logistic regression parameters: P(has AH) = sigmoid(x . coef + intercept)."""

    coef: np.ndarray  # (D,)
    intercept: float
    threshold: float = 0.5
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.coef.shape[0])

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(video contains AH) for a (V, D) matrix of per-video mean text features."""
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.shape[1] != self.dim:
            raise ValueError(f"feature dim {arr.shape[1]} != classifier dim {self.dim}")
        return expit(arr @ self.coef + self.intercept)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """1 = keep the video's frame predictions, 0 = reject (no AH expected)."""
        return (self.predict_proba(x) >= self.threshold).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "model": "sklearn.linear_model.LogisticRegression",
            "coef": [float(c) for c in self.coef],
            "intercept": float(self.intercept),
            "threshold": float(self.threshold),
            "meta": self.meta,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """JSON of the parameters, written atomically; floats round-trip exactly via repr."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> VideoAHClassifier:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        if d.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported format {d.get('format_version')!r}")
        return cls(np.asarray(d["coef"], dtype=np.float64), float(d["intercept"]), float(d["threshold"]), d["meta"])


def mean_features(per_video: Mapping[str, np.ndarray], videos: Sequence[str]) -> np.ndarray:
    """(V, D) matrix of component-wise means of each video's (frames or segments, D) features (NaN rows ignored)."""
    rows = []
    for v in videos:
        arr = np.asarray(per_video[v], dtype=np.float64)
        arr = arr[~np.isnan(arr).any(axis=1)] if arr.ndim == 2 else arr[None, :]
        if arr.shape[0] == 0:
            raise ValueError(f"video {v!r}: no feature vector to average")
        rows.append(arr.mean(axis=0))
    return np.stack(rows)


def fit_video_ah_classifier(
    x: np.ndarray,
    has_ah: np.ndarray | Sequence[int],
    *,
    C: float = 1.0,
    class_weight: str | None = None,
    threshold: float = 0.5,
    max_iter: int = 1000,
) -> VideoAHClassifier:
    """Fit the video-level logistic regression on (V, D) mean text features.

    lbfgs is deterministic, so no seed is needed. If the training videos are
    all of one class there is nothing to learn: we refuse instead of returning
    a constant classifier that would silently zero (or keep) every video.
    """
    xx = np.asarray(x, dtype=np.float64)
    yy = np.asarray(has_ah, dtype=np.int64).ravel()
    if xx.ndim != 2 or xx.shape[0] != yy.shape[0]:
        raise ValueError(f"x {xx.shape} and has_ah {yy.shape} do not match")
    if np.unique(yy).size < 2:
        raise ValueError("all training videos have the same AH label; the video classifier cannot be fitted")
    lr = LogisticRegression(C=C, class_weight=class_weight, max_iter=max_iter)
    lr.fit(xx, yy)
    if list(lr.classes_) != [0, 1]:
        raise ValueError(f"unexpected classes {lr.classes_}")
    meta = {"C": C, "class_weight": class_weight, "n_videos": int(yy.size), "n_positive": int(yy.sum())}
    return VideoAHClassifier(lr.coef_[0].astype(np.float64), float(lr.intercept_[0]), threshold, meta)


def apply_video_filter(
    frame_predictions: Mapping[str, np.ndarray],
    keep: Mapping[str, int | bool],
    *,
    enabled: bool = True,
) -> dict[str, np.ndarray]:
    """Zero the AH frame predictions (posteriors or labels) of videos with ``keep[v]`` false.

    With ``enabled=False`` the predictions are returned unchanged (copies), so
    callers can switch the filter from config without branching.
    """
    out: dict[str, np.ndarray] = {}
    for v, p in frame_predictions.items():
        arr = np.array(p, copy=True)
        if enabled:
            if v not in keep:
                raise KeyError(f"no video-level decision for video {v!r}")
            if not keep[v]:
                arr[...] = 0
        out[v] = arr
    return out
