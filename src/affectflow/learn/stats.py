"""Video-level STAT descriptors (paper section 3.2).

The EMI heads see one vector per video: the component-wise mean, standard
deviation, minimum and maximum of the frame-level features (or logits),
concatenated into 4*D values (the paper's 28-dim descriptor is of 7 logits; the
registered EMI face models give 8, so 32 values here).

Rows with a NaN anywhere are dropped first: a frame whose face or feature
could not be computed is stored as NaN upstream, and one such row must not
turn the whole descriptor into NaN. A single valid row gives std = 0 (the
population std, ``ddof=0``) rather than NaN. No valid row at all is an error,
because a descriptor of nothing cannot be told apart from a real video; the
caller decides whether to skip the video or impute it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from affectflow.core.errors import AffectflowError

STAT_PARTS = ("mean", "std", "min", "max")
#: ``learn.*.audio_stat``: a video task's audio STAT over the vectors at the video's frames, or over the
#: encoder's own vectors (50 a second for wav2vec 2.0 / HuBERT), as the paper's EMI code took it
AUDIO_STATS = ("frames", "native")


class EmptyVideoError(AffectflowError, ValueError):
    """A video has no (valid) frame vector to describe."""


def valid_rows(x: np.ndarray) -> np.ndarray:
    """The rows of a (N, D) matrix that contain no NaN."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"expected a (N, D) matrix, got shape {arr.shape}")
    return arr[~np.isnan(arr).any(axis=1)] if arr.size else arr


def stat_descriptor(x: np.ndarray, parts: Sequence[str] = STAT_PARTS) -> np.ndarray:
    """Concatenate per-component statistics of a (N, D) matrix into one (len(parts)*D,) vector.

    ``parts`` defaults to (mean, std, min, max), the paper's STAT; ``("mean",)``
    gives the plain mean descriptor used for text/audio embeddings.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"expected a (N, D) matrix, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise EmptyVideoError("cannot compute a video descriptor from 0 frames")
    rows = valid_rows(arr)
    if rows.shape[0] == 0:
        raise EmptyVideoError(f"all {arr.shape[0]} frame vectors contain NaN")
    funcs = {"mean": np.mean, "std": np.std, "min": np.min, "max": np.max}
    unknown = [p for p in parts if p not in funcs]
    if unknown or not parts:
        raise ValueError(f"unknown STAT parts {unknown}; choose from {STAT_PARTS}")
    return np.concatenate([funcs[p](rows, axis=0) for p in parts]).astype(np.float32)


def stat_descriptors(videos: Sequence[np.ndarray], parts: Sequence[str] = STAT_PARTS) -> np.ndarray:
    """Stack :func:`stat_descriptor` over videos into a (V, len(parts)*D) matrix."""
    if len(videos) == 0:
        raise ValueError("no videos given")
    return np.stack([stat_descriptor(v, parts) for v in videos])


def stat_names(feature_names: Sequence[str], parts: Sequence[str] = STAT_PARTS) -> list[str]:
    """Column names of the descriptor, e.g. ``mean:Anger`` ... ``max:Surprise``."""
    return [f"{p}:{n}" for p in parts for n in feature_names]
