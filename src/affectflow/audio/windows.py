"""Sliding-window pooling of frame vectors: fewer, steadier vectors on the video's clock.

Frame vectors come every 20 ms; the learn stage aligns each modality to the
video's frames, and a mean over a second of speech carries the affect better
than one frame does. The paper does not say how it pools audio in time; its
configs here use frame or utterance pooling.
"""

from __future__ import annotations

import math

import numpy as np


def pool_windows(
    times: np.ndarray, feats: np.ndarray, duration: float, window_s: float, hop_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the frame vectors whose centre lies in each window ``[k hop, k hop + window)``.

    Windows start every ``hop_s`` seconds until one reaches the end of the
    recording; each window's timestamp is the centre of its span clipped to the
    recording. Windows without any frame are left out.
    """
    d = feats.shape[1] if feats.ndim == 2 else 0
    if len(times) == 0 or duration <= 0:
        return np.zeros(0, dtype=np.float64), np.zeros((0, d), dtype=np.float32)
    n_win = max(1, int(math.ceil(max(duration - window_s, 0.0) / hop_s - 1e-9)) + 1)
    starts = np.arange(n_win, dtype=np.float64) * hop_s
    ends = np.minimum(starts + window_s, duration)
    lo = np.searchsorted(times, starts, side="left")
    hi = np.searchsorted(times, ends, side="left")
    keep = hi > lo
    csum = np.concatenate([np.zeros((1, d)), np.cumsum(feats.astype(np.float64), axis=0)])
    pooled = (csum[hi] - csum[lo]) / np.maximum(hi - lo, 1)[:, None]
    centers = (starts + ends) / 2.0
    return centers[keep], pooled[keep].astype(np.float32)
