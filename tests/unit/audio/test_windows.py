"""Sliding-window pooling of frame vectors (pure numpy)."""

from __future__ import annotations

import numpy as np

from affectflow.audio.windows import pool_windows


def test_pool_windows_edges() -> None:
    times = 0.0125 + 0.02 * np.arange(100)  # 2 s of frames
    feats = np.arange(200, dtype=np.float32).reshape(100, 2)
    c, p = pool_windows(times, feats, duration=2.0, window_s=0.5, hop_s=0.25)
    assert np.allclose(c, 0.25 + 0.25 * np.arange(7)) and np.all(np.diff(c) > 0)
    assert np.allclose(p[0], feats[:25].mean(axis=0))
    # a window longer than the recording covers all of it once
    c, p = pool_windows(times, feats, duration=2.0, window_s=5.0, hop_s=1.0)
    assert np.allclose(c, [1.0]) and np.allclose(p[0], feats.mean(axis=0))
    c, p = pool_windows(times[:0], feats[:0], duration=0.0, window_s=1.0, hop_s=0.5)
    assert c.shape == (0,) and p.shape == (0, 2)
