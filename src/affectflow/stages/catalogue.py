"""Every stage's declaration (each module's ``STAGE``), by name, in workflow order.

The plan reads stages only from here, handed to it by the workflow
(:class:`~affectflow.plan.rerun.WorkflowKeys`, :func:`~affectflow.plan.rerun.rerun_table`,
:func:`~affectflow.plan.checks.check_config`), so the import contract sees every
dependency and no module is found by a string.
"""

from __future__ import annotations

from types import ModuleType

from affectflow.plan.rerun import Stage
from affectflow.stages import (
    audio_features,
    bundle,
    contact_sheets,
    face_features,
    faces,
    fetch_model,
    frame_predictions,
    fuse,
    index_page,
    learn,
    media,
    predictions,
    problems,
    report_tables,
    submit,
    text_features,
    transcripts,
    units,
)

#: the stage modules in workflow order (the order of `affectflow reruns`)
MODULES: tuple[ModuleType, ...] = (
    units, media, faces, contact_sheets, fetch_model, face_features, audio_features, transcripts, text_features,
    problems, learn, fuse, submit, report_tables, index_page, bundle, frame_predictions, predictions,
)
STAGES: dict[str, Stage] = {m.STAGE.name: m.STAGE for m in MODULES}
