"""Challenge metrics for EXPR, EMI, AH and AH-video, and a JSON-serialisable report.

The definitions follow the ABAW challenges so that validation numbers can be compared with the paper
(HSEmotion ABAW-8, Tables 1-4): EXPR macro F1 over all 8 classes (frames labelled -1 ignored), EMI
Pearson r per emotion averaged over the six, AH macro F1 over both classes per frame, AH-video macro F1
over both classes of one label per video; both AH levels also report the A/H class's F1 and, given
P(A/H), its average precision, as the organisers' bah_metrics.py does. A constant EMI input scores
r = 0 with a warning, so no NaN poisons an average or a sweep.

Output contract: per-task score dicts and a :class:`MetricReport` (task, split, scalar ``metrics`` with
the headline one named by ``main``, ``per_class``, ``n``, ``config``), saved as JSON.

Options and the full behaviour: docs/learning.md, section "Metrics".
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import auc, f1_score

from affectflow.core.files import atomic_write_text
from affectflow.core.vocabulary import AH_CLASSES, EMI_EMOTIONS, EXPR_CLASSES, MAIN_METRIC, TASKS

N_EXPR = len(EXPR_CLASSES)
IGNORE_LABEL = -1

log = logging.getLogger("affectflow.evaluate.metrics")


class ConstantInputWarning(UserWarning):
    """Pearson r was requested for a constant vector; 0 was returned instead of NaN."""


# --------------------------------------------------------------------- helpers


def _labels_1d(y: np.ndarray | Sequence[int], name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim == 2:  # posteriors -> class index
        arr = arr.argmax(axis=1)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D label vector or a 2-D posterior matrix, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer) and not np.issubdtype(arr.dtype, np.bool_):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"{name}: labels must be integers")
    return arr.astype(np.int64)


def _check_same_length(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"y_true has {a.shape[0]} entries but y_pred has {b.shape[0]}")


# ------------------------------------------------------------------------ EXPR


def expr_scores(y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int]) -> dict[str, Any]:
    """Macro F1 over the 8 classes, accuracy and per-class F1, ignoring frames labelled -1.

    ``y_pred`` may be class indices or a (T, 8) posterior matrix (argmax is taken).
    Raises if no valid frame remains, because a score over nothing is not 0, it is undefined.
    """
    yt = _labels_1d(y_true, "y_true")
    yp = _labels_1d(y_pred, "y_pred")
    _check_same_length(yt, yp)
    valid = yt != IGNORE_LABEL
    yt, yp = yt[valid], yp[valid]
    if yt.size == 0:
        raise ValueError("no frame with a valid EXPR label (all are -1)")
    for arr, name in ((yt, "y_true"), (yp, "y_pred")):
        if arr.min() < 0 or arr.max() >= N_EXPR:
            raise ValueError(f"{name}: class indices must be in 0..{N_EXPR - 1} (or -1 in y_true)")
    per_class = f1_score(yt, yp, labels=list(range(N_EXPR)), average=None, zero_division=0)
    return {
        "f1": float(np.mean(per_class)),
        "accuracy": float(np.mean(yt == yp)),
        "per_class_f1": {c: float(v) for c, v in zip(EXPR_CLASSES, per_class, strict=True)},
        "n": int(yt.size),
    }


def expr_macro_f1(y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int]) -> float:
    """Just the challenge metric P_EXPR (macro F1 over 8 classes, -1 ignored)."""
    return expr_scores(y_true, y_pred)["f1"]


# ------------------------------------------------------------------------- EMI


def pearson_r(x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float], name: str = "") -> float:
    """Pearson correlation of two 1-D vectors; 0 (with a warning) when either is constant.

    Computed in float64 directly (same formula as scipy.stats.pearsonr) so that no
    NaN can escape into averages and sweeps.
    """
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    _check_same_length(a, b)
    if a.size < 2:
        raise ValueError(f"Pearson r needs at least 2 samples, got {a.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("Pearson r: inputs contain NaN or inf")
    am, bm = a - a.mean(), b - b.mean()
    na, nb = math.sqrt(float(am @ am)), math.sqrt(float(bm @ bm))
    scale_a = max(float(np.abs(a).max()), 1.0)
    scale_b = max(float(np.abs(b).max()), 1.0)
    if na <= 1e-12 * scale_a * math.sqrt(a.size) or nb <= 1e-12 * scale_b * math.sqrt(b.size):
        what = f" ({name})" if name else ""
        msg = f"Pearson r{what}: constant input, correlation undefined; reporting r = 0"
        warnings.warn(msg, ConstantInputWarning, stacklevel=2)
        log.warning(msg)
        return 0.0
    return float(np.clip((am @ bm) / (na * nb), -1.0, 1.0))


def emi_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Mean Pearson r over the six emotions (one row per video) and r per emotion."""
    yt = np.asarray(y_true, dtype=np.float64)
    yp = np.asarray(y_pred, dtype=np.float64)
    if yt.ndim != 2 or yt.shape != yp.shape:
        raise ValueError(f"expected two (n_videos, n_emotions) arrays of one shape, got {yt.shape} and {yp.shape}")
    names = EMI_EMOTIONS if yt.shape[1] == len(EMI_EMOTIONS) else tuple(f"e{i}" for i in range(yt.shape[1]))
    per = [pearson_r(yt[:, i], yp[:, i], name=names[i]) for i in range(yt.shape[1])]
    return {
        "pearson_r": float(np.mean(per)),
        "per_emotion_r": {n: float(r) for n, r in zip(names, per, strict=True)},
        "n": int(yt.shape[0]),
    }


# -------------------------------------------------------------------------- AH


def _binary(y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int], what: str,
            unit: str) -> tuple[np.ndarray, np.ndarray]:
    """Both label vectors of a 0/1 task, checked: same length, 0 or 1 only, not empty."""
    yt = _labels_1d(y_true, "y_true")
    yp = _labels_1d(y_pred, "y_pred")
    _check_same_length(yt, yp)
    for arr, name in ((yt, "y_true"), (yp, "y_pred")):
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise ValueError(f"{name}: {what} labels must be 0 or 1")
    if yt.size == 0:
        raise ValueError(f"no {unit} to score")
    return yt, yp


def _binary_scores(yt: np.ndarray, yp: np.ndarray, scores: np.ndarray | Sequence[float] | None) -> dict[str, Any]:
    """The scores both AH levels report, from checked 0/1 vectors: macro F1 over the two classes (the
    challenges' headline), per-class F1, the A/H class's F1, accuracy and, with ``scores`` (P(A/H)), the A/H
    class's average precision ``ap_ah`` (left out when one class only is present: it is undefined then)."""
    per = _ah_class_f1(yt, yp)
    out = {
        "f1": float(np.mean(per)),
        "f1_ah": float(per[1]),
        "accuracy": float(np.mean(yt == yp)),
        "per_class_f1": {name: float(v) for name, v in zip(AH_CLASSES, per, strict=True)},
        "n": int(yt.size),
    }
    if scores is not None:
        sc = np.asarray(scores, dtype=np.float64).ravel()
        _check_same_length(yt, sc)
        if 0 < yt.sum() < yt.size:
            out["ap_ah"] = ah_average_precision(yt, sc)
    return out


def ah_average_precision(y_true: np.ndarray, p_ah: np.ndarray) -> float:
    """The A/H class's average precision as the organisers' ``bah_metrics.average_precision`` computes it:
    precision and recall at the thresholds 0, 0.001, ..., 0.999 (precision 0 where nothing is called
    A/H), and the trapezoidal area under that curve (``sklearn.metrics.auc``). It differs from
    scikit-learn's step-wise ``average_precision_score``; this one is the figure the challenge reports."""
    th = np.arange(0, 1, 0.001)
    pos = np.sort(p_ah[y_true == 1])
    neg = np.sort(p_ah[y_true == 0])
    tp = pos.size - np.searchsorted(pos, th, side="left")  # rows with p >= th
    fp = neg.size - np.searchsorted(neg, th, side="left")
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
    return float(auc(tp / pos.size, precision))


def ah_macro_f1(y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int]) -> float:
    """Mean of the two classes' F1 (no A/H, A/H): the AH challenges' metric, frames or videos alike; a class
    absent from both vectors counts as F1 = 0."""
    return float(np.mean(_ah_class_f1(*_binary(y_true, y_pred, "AH", "AH row"))))


def _ah_class_f1(yt: np.ndarray, yp: np.ndarray) -> np.ndarray:
    """F1 of no A/H and of A/H, in that order; a class absent from both vectors scores 0."""
    return f1_score(yt, yp, labels=[0, 1], average=None, zero_division=0)


def video_any(frame_labels: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Video-level AH label: 1 when any frame of the video is 1."""
    return {v: int(np.any(np.asarray(y) == 1)) for v, y in frame_labels.items()}


def ah_video_f1(true_by_video: Mapping[str, np.ndarray], pred_by_video: Mapping[str, np.ndarray]) -> float:
    """Macro F1 of 'the video contains A/H' over videos (frame labels are reduced with ``any``)."""
    if set(true_by_video) != set(pred_by_video):
        raise ValueError("true and predicted videos differ")
    vids = sorted(true_by_video)
    yt = np.array([video_any({v: true_by_video[v]})[v] for v in vids])
    yp = np.array([video_any({v: pred_by_video[v]})[v] for v in vids])
    return ah_macro_f1(yt, yp)


def ah_scores(true_by_video: Mapping[str, np.ndarray], pred_by_video: Mapping[str, np.ndarray],
              scores_by_video: Mapping[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Frame-level scores over all frames of all videos, concatenated (:func:`_binary_scores`; ``ap_ah`` from
    ``scores_by_video``, P(A/H) per frame) and the video-level macro F1; frames labelled -1 (past the end
    of a label file) are left out of all of them."""
    if set(true_by_video) != set(pred_by_video):
        raise ValueError("true and predicted videos differ")
    if scores_by_video is not None and set(scores_by_video) != set(true_by_video):
        raise ValueError("true videos and videos with scores differ")
    vids = sorted(true_by_video)
    for v in vids:
        n_true = len(true_by_video[v])
        for what, other in (("predictions", pred_by_video), ("scores", scores_by_video or {})):
            if v in other and len(other[v]) != n_true:
                raise ValueError(f"video {v!r}: {n_true} labels but {len(other[v])} {what}")
    labelled = {v: np.asarray(true_by_video[v]).ravel() != IGNORE_LABEL for v in vids}

    def kept(by_video: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {v: np.asarray(by_video[v]).ravel()[labelled[v]] for v in vids}

    true_by_video, pred_by_video = kept(true_by_video), kept(pred_by_video)
    yt, yp = _binary(np.concatenate([true_by_video[v] for v in vids]),
                     np.concatenate([pred_by_video[v] for v in vids]), "AH", "AH frame")
    sc = None if scores_by_video is None else np.concatenate(list(kept(scores_by_video).values()))
    return {**_binary_scores(yt, yp, sc), "video_f1": ah_video_f1(true_by_video, pred_by_video),
            "n_videos": len(vids)}


def ah_video_scores(y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int],
                    scores: np.ndarray | Sequence[float] | None = None) -> dict[str, Any]:
    """The video challenge's scores (:func:`_binary_scores`) of one 0/1 label per video; ``scores`` is
    P(A/H) per video."""
    yt, yp = _binary(y_true, y_pred, "video A/H", "video")
    return _binary_scores(yt, yp, scores)


# ---------------------------------------------------------------------- report

@dataclass
class MetricReport:
    """Scores of one prediction set on one split, serialisable to JSON.

    ``metrics`` holds the scalar scores (the task's headline one is named by
    ``main``), ``per_class`` per-class F1 (EXPR) or per-emotion r (EMI), and
    ``config`` whatever produced the predictions (blend weights, k, t ...), so a
    report file alone says what it measures.
    """

    task: str
    split: str
    metrics: dict[str, float]
    per_class: dict[str, float] = field(default_factory=dict)
    n: int = 0
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")

    @property
    def main(self) -> str:
        return MAIN_METRIC[self.task]

    @property
    def score(self) -> float:
        """The challenge's headline metric."""
        return self.metrics[self.main]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["main"] = self.main
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=_json_default)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MetricReport:
        return cls(
            task=d["task"],
            split=d["split"],
            metrics={k: float(v) for k, v in d["metrics"].items()},
            per_class={k: float(v) for k, v in d.get("per_class", {}).items()},
            n=int(d.get("n", 0)),
            config=dict(d.get("config", {})),
        )

    @classmethod
    def from_json(cls, text: str) -> MetricReport:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON atomically (temp file in the same folder + rename)."""
        return atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MetricReport:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def expr_report(y_true, y_pred, split: str, config: Mapping[str, Any] | None = None) -> MetricReport:
    s = expr_scores(y_true, y_pred)
    return MetricReport(
        "expr", split, {"f1": s["f1"], "accuracy": s["accuracy"]}, s["per_class_f1"], s["n"], dict(config or {})
    )


def emi_report(y_true, y_pred, split: str, config: Mapping[str, Any] | None = None) -> MetricReport:
    s = emi_scores(y_true, y_pred)
    return MetricReport("emi", split, {"pearson_r": s["pearson_r"]}, s["per_emotion_r"], s["n"], dict(config or {}))


def _binary_metrics(s: Mapping[str, Any], *extra: str) -> dict[str, float]:
    keys = ("f1", "f1_ah", *extra, "accuracy", "ap_ah")
    return {k: s[k] for k in keys if k in s}


def ah_report(true_by_video, pred_by_video, split: str, config: Mapping[str, Any] | None = None,
              scores_by_video: Mapping[str, np.ndarray] | None = None) -> MetricReport:
    s = ah_scores(true_by_video, pred_by_video, scores_by_video)
    return MetricReport("ah", split, _binary_metrics(s, "video_f1"), s["per_class_f1"], s["n"], dict(config or {}))


def ah_video_report(y_true, y_pred, split: str, config: Mapping[str, Any] | None = None,
                    scores: np.ndarray | Sequence[float] | None = None) -> MetricReport:
    s = ah_video_scores(y_true, y_pred, scores)
    return MetricReport("ah_video", split, _binary_metrics(s), s["per_class_f1"], s["n"], dict(config or {}))


# ------------------------------------------------------------------ utilities


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")

