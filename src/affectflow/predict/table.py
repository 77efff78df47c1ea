"""One shard's per-frame predictions table, read from its shard files.

The stage (:mod:`affectflow.stages.frame_predictions`) wires files to this; the table's columns are
:mod:`affectflow.predict.frames`' (docs/predictions.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from affectflow.core.vocabulary import feature_stage
from affectflow.data.units import Unit
from affectflow.io.shards import ShardSet, media_frames
from affectflow.io.store import ShardReader
from affectflow.models.catalogue.registry import get
from affectflow.predict.apply import BundleApplier, pretrained_proba
from affectflow.predict.bundle import Bundle
from affectflow.predict.frames import FaceModelColumns, empty_frame_table, video_frame_table

log = logging.getLogger("affectflow.predict")

FACE_ARRAYS = ("frame_index", "timestamps", "has_face")
#: with ``faces.people: all`` the faces shard has a row per frame and person
PERSON_ARRAYS = (*FACE_ARRAYS, "person")


@dataclass
class FrameInputs:
    """One shard's files: ``face_features`` by model, ``features`` by modality label (what the bundle's
    heads read), ``pretrained`` (the EXPR filter model's face features) and the model ``manifests`` of
    this run by name (checked against the bundle's hashes)."""

    media: str | os.PathLike[str]
    faces: str | os.PathLike[str]
    face_features: Mapping[str, str | os.PathLike[str]]
    features: Mapping[str, str | os.PathLike[str]]
    pretrained: str | os.PathLike[str] | None = None
    manifests: Mapping[str, str | os.PathLike[str]] | None = None


def face_model_columns(names: Sequence[str]) -> list[FaceModelColumns]:
    """The face models of ``names`` that have a classifier (registry classes), as table columns."""
    out = []
    for name in names:
        spec = get(name)
        if spec.classes:
            out.append(FaceModelColumns(name, tuple(spec.classes), "valence_arousal" in spec.outputs))
    return out


def shard_frame_table(units: Sequence[Unit], inputs: FrameInputs, face_models: Sequence[str],
                      tasks: Sequence[str], bundle: Bundle | None) -> pd.DataFrame:
    """The table of every video of ``units`` that the faces stage kept (an empty table with the columns
    when it kept none); ``bundle`` (verified) gives the task columns."""
    models = face_model_columns(face_models)
    tables = []
    with contextlib.ExitStack() as stack:
        media = stack.enter_context(ShardSet([inputs.media], "media", "media"))
        faces = stack.enter_context(ShardReader(inputs.faces, stage="faces"))
        face_sets = {m: stack.enter_context(ShardSet([p], "face_features", m))
                     for m, p in inputs.face_features.items()}
        sources = {lb: stack.enter_context(ShardSet([p], feature_stage(lb), lb)) for lb, p in inputs.features.items()}
        pre = stack.enter_context(ShardSet([inputs.pretrained], "face_features", "pretrained")) \
            if inputs.pretrained else None
        applier = BundleApplier(bundle) if bundle is not None else None
        for u in units:
            if u.video_id not in faces or u.video_id not in media:
                log.info("video %r: no faces record (skipped by an earlier stage, see problems.tsv)", u.video_id)
                continue
            tables.append(_video_table(u, media, faces, face_sets, sources, pre, applier, models, tasks))
        people = faces.provenance.config.get("people") == "all"  # absent: the default, target
    if not tables:
        return empty_frame_table(models, tasks, people)
    return pd.concat(tables, ignore_index=True)


def _video_table(u: Unit, media: ShardSet, faces: ShardReader, face_sets: Mapping[str, ShardSet],
                 sources: Mapping[str, ShardSet], pre: ShardSet | None, applier: BundleApplier | None,
                 models: Sequence[FaceModelColumns], tasks: Sequence[str]) -> pd.DataFrame:
    vid = u.video_id
    times = media_frames(media, vid)
    predictions: dict[str, Any] = {}
    if applier is not None:
        predictions = applier.apply(u, times, sources, pretrained_proba(pre, vid, times.shape[0]))
    feats = {m.name: face_sets[m.name].read(vid) if vid in face_sets[m.name] else None for m in models}
    arrays = PERSON_ARRAYS if "person" in faces.array_names(vid) else FACE_ARRAYS
    return video_frame_table(vid, faces.read(vid, arrays), models, feats, tasks, predictions)
