"""The pre-trained face model's own softmax on every frame: the input of EXPR's confidence filter.

Frames without a face get a uniform distribution, which no threshold ``t >= 1/C`` replaces, so a smaller
``t`` is refused (it would replace every face frame whatever the model says). A video without pre-trained
features is not filtered at all, with a warning, rather than failing the fusion.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from affectflow.fuse.class_names import affwild2_mapping
from affectflow.fuse.errors import FuseError
from affectflow.fuse.postprocess import frame_softmax
from affectflow.io.shards import ShardSet

log = logging.getLogger("affectflow.fuse")



@dataclass
class PretrainedProba:
    """The pre-trained face model's softmax per frame (uniform where no face), its classes and their mapping."""

    proba: dict[str, np.ndarray]
    classes: list[str]
    mapping: tuple[int, ...]


def pretrained_for_filter(task: str, pretrained: Sequence[str | os.PathLike[str]] | None, t_grid: Sequence[float],
                          frames: Mapping[str, np.ndarray], vids: list[str]) -> PretrainedProba | None:
    """EXPR with a ``t`` grid and pre-trained face features: the model's softmax on ``vids``; else None."""
    if task == "expr" and pretrained and t_grid:
        pre = read_pretrained([str(p) for p in pretrained], {v: len(frames[v]) for v in vids})
        low = [t for t in t_grid if t < 1.0 / len(pre.classes)]
        if low:
            raise FuseError(f"t values {low} are below 1/{len(pre.classes)}: every face frame would be replaced")
        return pre
    if task == "expr" and t_grid and not pretrained:
        log.info("fuse expr: no pre-trained face features given, no confidence filtering")
    return None


def read_pretrained(paths: Sequence[str], vids_frames: Mapping[str, int]) -> PretrainedProba:
    """The softmax of the videos ``vids_frames`` (video -> frame count) from the pre-trained face features."""
    with ShardSet(list(paths), "face_features", "pre-trained face features") as src:
        classes: list[str] | None = None
        proba: dict[str, np.ndarray] = {}
        missing = []
        for vid, n in vids_frames.items():
            if vid not in src:
                missing.append(vid)
                continue
            rec = src.read(vid)
            cls = rec.attrs.get("classes") or src.where[vid].provenance.config.get("classes")
            if not cls:
                raise FuseError(f"{src.where[vid].path}: video {vid!r} has no 'classes' attribute; cannot map the "
                                "pre-trained model's classes to Aff-Wild2")
            cls = [str(x) for x in cls]
            if classes is None:
                classes = cls
            elif cls != classes:
                raise FuseError(f"pre-trained face features disagree on the classes: {classes} vs {cls}")
            logits = src.matrix(rec, "logits")
            if logits.shape[1] != len(cls):
                raise FuseError(f"video {vid!r}: {logits.shape[1]} pre-trained logits for {len(cls)} classes")
            idx = np.asarray(rec.arrays.get("frame_index", np.zeros(0)), dtype=np.int64).ravel()
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise FuseError(f"video {vid!r}: pre-trained face frame index outside 0..{n - 1}")
            proba[vid] = frame_softmax(logits, idx, n)
        if classes is None:
            raise FuseError("no video of the fusion has pre-trained face features")
        if missing:
            log.warning("pre-trained face features missing for %d video(s) (no frame of them is filtered): %s",
                        len(missing), ", ".join(missing))
            for vid in missing:
                proba[vid] = np.full((vids_frames[vid], len(classes)), 1.0 / len(classes), dtype=np.float32)
    return PretrainedProba(proba, classes, affwild2_mapping(classes))
