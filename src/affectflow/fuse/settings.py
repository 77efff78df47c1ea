"""A fusion's sweep grids and post-processing choices, as the selection reads them.

The stage's options class checks and normalises what a user wrote (grids sorted and deduplicated, so
they are sets); this is the typed form the fusion code takes (docs/learning.md, "fuse").
"""

from __future__ import annotations

from dataclasses import dataclass

#: the temporal smoothing kernels (:func:`affectflow.fuse.postprocess.smooth`)
SMOOTHINGS: tuple[str, ...] = ("box", "gaussian", "median")


@dataclass(frozen=True)
class FuseSettings:
    """One fusion's options: the grids ``k``, ``t``, ``w`` (sorted), fixed ``weights`` for more than two sets,
    the smoothing, the confidence filter's mode and the AH video filter and threshold."""

    k: tuple[int, ...]
    smoothing: str
    sigma: float | None
    t: tuple[float, ...]
    w: tuple[float, ...]
    weights: tuple[float, ...] | None
    ah_video_filter: str | bool  # auto, True or False
    ah_video_source: str | None
    ah_threshold: float
    filter_mode: str
    weights_on_val: bool = False  # more than two sets: blend weights chosen on val from the simplex of w's values
