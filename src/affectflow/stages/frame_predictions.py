"""The ``frame_predictions`` stage: one shard's videos -> their per-frame predictions table (Parquet).

It needs no training: the face models' own classifiers give their columns. When the run trains tasks
(its own ``bundle/``) or the config applies a bundle, the bundle's heads and fusion add the task columns.
The shard files are joined by the ``predictions`` stage; the columns: docs/predictions.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from affectflow.core import joblog
from affectflow.core.files import atomic_write
from affectflow.core.job import Job
from affectflow.core.options import StageOptions, wiring
from affectflow.data.units import VIDEO_FIELDS, Unit
from affectflow.models.catalogue.manifest import PreparedModel
from affectflow.plan.rerun import Stage, stage_key
from affectflow.plan.scope import PredictionScope
from affectflow.predict.bundle import Bundle

if TYPE_CHECKING:  # torch and pandas: loaded when a job runs, not at every workflow parse (the catalogue)
    from affectflow.predict.table import FrameInputs

log = logging.getLogger("affectflow.predict")

#: bump when the table changes for the same inputs (docs/reruns.md); 2: a shard whose videos were all skipped
#: writes its columns typed (``video_id`` text), not untyped
STAGE_VERSION = 2


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
    from affectflow.predict.table import shard_frame_table

    table = shard_frame_table(units, inputs, opts.face_models, opts.tasks, bundle)
    log.info("%d frames of %d videos -> %s", len(table), table["video_id"].nunique(), out)
    return atomic_write(out, lambda tmp: table.to_parquet(tmp, index=False), suffix=".parquet")


def run(job: Job) -> None:
    """The rule: ``input.media``, ``input.faces``, ``input.face_features`` (one shard per face model of the
    config), ``input.features`` (one per label of the scope), ``input.pretrained``, ``input.manifests`` (an
    applied bundle's models), ``input.bundle`` -> ``output[0]``; the scope comes from the config."""
    joblog.setup(job.log)
    config = job.config
    applied = Bundle.load(config["bundle"]) if config.get("bundle") else None  # verified once, used twice
    scope = PredictionScope.of(config, applied)
    wired = scope.frame_wiring(config)
    from affectflow.predict.table import FrameInputs

    inputs = FrameInputs(
        media=job.input.media, faces=job.input.faces,
        face_features=dict(zip(wired["face_models"], job.input.face_features, strict=True)),
        features=dict(zip(scope.labels, job.input.features, strict=True)),
        pretrained=job.input.pretrained[0] if len(job.input.pretrained) else None,
        manifests=dict(zip(scope.models, job.input.manifests, strict=True)),
    )
    opts = FramePredictionsOptions.from_config(config, **wired)
    run_frame_predictions([Unit.from_video(u) for u in job.params.units], inputs, job.output[0], opts,
                          applied if applied is not None else scope.bundle, key=job.params.key)
