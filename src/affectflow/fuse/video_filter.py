"""Which feature set's AH video classifier decides a fusion's video filter, and its decision per video.

The learn stage stores each video's decision (``video_keep``) with its predictions; a text modality's
classifier is preferred by default because the paper's filter reads what is said (section 3.3).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from affectflow.core.vocabulary import BINARY_TASKS
from affectflow.fuse.errors import FuseError
from affectflow.fuse.inputs import LearnedPredictions

log = logging.getLogger("affectflow.fuse")


def video_source(configs: Mapping[str, Mapping[str, Any]], given: str | None) -> str | None:
    """The feature set whose AH video classifier decides the video filter: ``given``, else the first with a
    text modality, else the first (``configs``: each set's predictions provenance config)."""
    if given is not None:
        if given not in configs:
            raise FuseError(f"ah_video_source {given!r} is not one of the feature sets {list(configs)}")
        return given
    for name, meta in configs.items():
        if any(str(f).startswith("text/") for f in meta.get("features", [])):
            return name
    return next(iter(configs), None)


def video_keep(task: str, given: str | None, preds: LearnedPredictions, common: set[str]) -> tuple[
        str | None, dict[str, int] | None]:
    """AH and AH-video: the feature set whose video classifier decides the video filter, and its per-video
    decisions (None when its predictions carry none)."""
    vsource = video_source(preds.configs, given) if task in BINARY_TASKS else None
    keep: dict[str, int] | None = None
    if vsource is not None:
        recs = preds.records[vsource]
        if all("video_keep" in recs[v].attrs for v in common):
            keep = {v: int(recs[v].attrs["video_keep"]) for v in common}
        else:
            log.warning("fuse ah: %s has no video classifier decisions; no video filter", vsource)
    return vsource, keep
