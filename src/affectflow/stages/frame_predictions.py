"""The ``frame_predictions`` stage: one shard's videos -> their per-frame predictions table (Parquet).

It needs no training: the face models' own classifiers give their columns. When the run trains tasks
(its own ``bundle/``) or the config applies a bundle, the bundle's heads and fusion add the task columns.
The shard files are joined by the ``predictions`` stage; the columns: docs/predictions.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from affectflow.core import joblog
from affectflow.core.files import atomic_write
from affectflow.core.job import Job
from affectflow.core.options import StageOptions, wiring
from affectflow.core.vocabulary import feature_stage
from affectflow.data.units import Unit
from affectflow.io.shards import ShardSet, media_frames
from affectflow.io.store import ShardReader
from affectflow.models.catalogue.manifest import PreparedModel
from affectflow.models.catalogue.registry import get
from affectflow.plan.rerun import VIDEO_FIELDS, Stage, stage_key
from affectflow.plan.scope import PredictionScope
from affectflow.predict.apply import BundleApplier, pretrained_proba
from affectflow.predict.bundle import Bundle
from affectflow.predict.frames import FaceModelColumns, table_columns, video_frame_table

log = logging.getLogger("affectflow.predict")

#: bump when the table changes for the same inputs (docs/reruns.md)
STAGE_VERSION = 1
FACE_ARRAYS = ("frame_index", "timestamps", "has_face")
#: with ``faces.people: all`` the faces shard has a row per frame and person
PERSON_ARRAYS = (*FACE_ARRAYS, "person")


@dataclass(frozen=True)
class FramePredictionsOptions(StageOptions):
    """No config options of its own. Wiring (:class:`~affectflow.plan.scope.PredictionScope`): the face models
    whose classes become columns, the tasks with columns, the modality labels and filter model their heads
    read, and the sha256 of an applied bundle's manifest ("" for the run's own bundle, an input file)."""

    SECTION = ""

    face_models: tuple[str, ...] = wiring(())
    tasks: tuple[str, ...] = wiring(())
    labels: tuple[str, ...] = wiring(())
    pretrained: str = wiring("")
    bundle: str = wiring("")


#: what the plan reads of this stage (affectflow.stages.catalogue)
STAGE = Stage(
    "frame_predictions",
    STAGE_VERSION,
    FramePredictionsOptions,
    ("frame_predictions",),
    downstream="predictions, index_page",
    triggers="a video of the shard added or removed; `features.face`; the trained or applied (`bundle`) tasks",
    unit_fields=VIDEO_FIELDS,
)


def face_model_columns(names: Sequence[str]) -> list[FaceModelColumns]:
    """The face models of ``names`` that have a classifier (registry classes), as table columns."""
    out = []
    for name in names:
        spec = get(name)
        if spec.classes:
            out.append(FaceModelColumns(name, tuple(spec.classes), "valence_arousal" in spec.outputs))
    return out


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


def run_frame_predictions(units: Sequence[Unit], inputs: FrameInputs, out: str | os.PathLike[str],
                          opts: FramePredictionsOptions, bundle: Bundle | str | os.PathLike[str] | None = None,
                          *, key: str | None = None) -> Path:
    """Write the table of every video of ``units`` that the faces stage kept to ``out`` (Parquet).

    ``bundle``: the bundle giving the task columns, loaded (and so verified) or a folder to load.
    """
    stage_key(STAGE, opts, expected=key, units=list(units))
    if bundle is not None and not isinstance(bundle, Bundle):
        bundle = Bundle.load(bundle)
    if bundle is not None:
        for name, path in (inputs.manifests or {}).items():
            if name in bundle.models:
                bundle.check_model(name, PreparedModel.load(path).files)
    models = face_model_columns(opts.face_models)
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
            tables.append(_video_table(u, media, faces, face_sets, sources, pre, applier, models, opts))
        people = faces.provenance.config.get("people") == "all"  # absent: the default, target
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(
        columns=table_columns(models, opts.tasks, people))
    log.info("%d frames of %d videos -> %s", len(table), len(tables), out)
    return atomic_write(out, lambda tmp: table.to_parquet(tmp, index=False), suffix=".parquet")


def _video_table(u: Unit, media: ShardSet, faces: ShardReader, face_sets: Mapping[str, ShardSet],
                 sources: Mapping[str, ShardSet], pre: ShardSet | None, applier: BundleApplier | None,
                 models: Sequence[FaceModelColumns], opts: FramePredictionsOptions) -> pd.DataFrame:
    vid = u.video_id
    times = media_frames(media, vid)
    predictions: dict[str, Any] = {}
    if applier is not None:
        predictions = applier.apply(u, times, sources, pretrained_proba(pre, vid, times.shape[0]))
    feats = {m.name: face_sets[m.name].read(vid) if vid in face_sets[m.name] else None for m in models}
    arrays = PERSON_ARRAYS if "person" in faces.array_names(vid) else FACE_ARRAYS
    return video_frame_table(vid, faces.read(vid, arrays), models, feats, opts.tasks, predictions)


def run(job: Job) -> None:
    """The rule: ``input.media``, ``input.faces``, ``input.face_features`` (one shard per face model of the
    config), ``input.features`` (one per label of the scope), ``input.pretrained``, ``input.manifests`` (an
    applied bundle's models), ``input.bundle`` -> ``output[0]``; the scope comes from the config."""
    joblog.setup(job.log)
    config = job.config
    applied = Bundle.load(config["bundle"]) if config.get("bundle") else None  # verified once, used twice
    scope = PredictionScope.of(config, applied)
    wired = scope.frame_wiring(config)
    inputs = FrameInputs(
        media=job.input.media, faces=job.input.faces,
        face_features=dict(zip(wired["face_models"], job.input.face_features, strict=True)),
        features=dict(zip(scope.labels, job.input.features, strict=True)),
        pretrained=job.input.pretrained[0] if len(job.input.pretrained) else None,
        manifests=dict(zip(scope.models, job.input.manifests, strict=True)),
    )
    opts = FramePredictionsOptions.from_config(config, **wired)
    run_frame_predictions([Unit(**u) for u in job.params.units], inputs, job.output[0], opts,
                          applied if applied is not None else scope.bundle, key=job.params.key)
