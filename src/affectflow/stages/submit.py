"""The ``submit`` stage: fused test decisions -> one file per task in the challenge's own format.

One call (:func:`run_submit`) per task, from ``workflow/scripts/submit.py``, with
the writers of :mod:`affectflow.submit.formats` (formats, templates, checks):
EXPR and AH one line per frame (all frames, or exactly the frames of the
organisers' template), EMI one row per video, AH-video one line per video (the
template's videos in its order, when given). Frames without a decision
(stored as -1, or a shorter decision vector whose frames are listed in
``frame_index``) take the decision of the nearest decided frame. A test video
of the units table that has no fused prediction (a stage skipped it) is named
in the log; with a template that lists it, the submission cannot be written
and the error names it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affectflow.core import joblog
from affectflow.core.job import Job
from affectflow.core.options import StageOptions, one_of, wiring
from affectflow.core.vocabulary import TASKS
from affectflow.data.units import UnitsTable
from affectflow.io.shards import ShardSet, StageInputError, media_frames
from affectflow.io.store import ShardReader
from affectflow.plan.rerun import Stage
from affectflow.submit.formats import (
    SubmissionError,
    read_template,
    write_ah_submission,
    write_ah_video_submission,
    write_emi_submission,
    write_expr_submission,
)
from affectflow.submit.rows import complete_decisions, names_in_test_list

log = logging.getLogger("affectflow.submit")

#: bump when submission files change for the same fused predictions (docs/reruns.md)
STAGE_VERSION = 5  # 2: AH in the ABAW-8 single-file format; organisers' templates; 3: AH-video probabilities;
# 4: AH-video lines without a template name the video path as in the test list, not the id; 5: AH frame lines too


@dataclass(frozen=True)
class SubmitOptions(StageOptions):
    """Which task, from which fusion (config ``submit_fusion``); the files follow the challenge's format."""

    SECTION = "submit_fusion"

    task: str = wiring("expr")
    fusion: str = ""
    template: str = ""
    #: AH-video: the organisers' with_probabilities form (``<video>,<p0>,<p1>,<0|1>``); other tasks: unused
    video_probabilities: bool = True

    def check(self) -> None:
        one_of("task", self.task, TASKS)
        if self.template and self.task == "emi":
            raise ValueError("submission_template: EMI has no frame template (one row per video)")

    @classmethod
    def config_key(cls, name: str) -> str:
        return {"template": "submission_template.<task>",
                "video_probabilities": "submission.ah_video_probabilities"}.get(name, "submit_fusion")

    @classmethod
    def from_config(cls, config, **wired):
        templates = config.get("submission_template") or {}
        task = wired.get("task", "expr")
        probabilities = (config.get("submission") or {}).get("ah_video_probabilities", True)
        return cls.from_mapping({"fusion": config.get("submit_fusion") or "",
                                 "template": templates.get(task) or "",
                                 # the other tasks' keys stay the same whatever it says
                                 "video_probabilities": bool(probabilities) if task == "ah_video" else True},
                                **wired)


#: what the plan reads of this stage (affectflow.stages.catalogue)
STAGE = Stage(
    "submit",
    STAGE_VERSION,
    SubmitOptions,
    tuple(f"submit_{t}" for t in TASKS),
)


def run_submit(
    task: str,
    units_tsv: str | os.PathLike[str],
    fused: str | os.PathLike[str],
    media_shards: Sequence[str | os.PathLike[str]],
    out_path: str | os.PathLike[str],
    template: str | os.PathLike[str] | None = None,
    video_probabilities: bool = True,
    videos_folders: Sequence[str] = (),
) -> Path:
    """Write the ``task`` submission of the fused test predictions to ``out_path``, checked (exactly the frames
    of the organisers' ``template`` when given). ``video_probabilities``: AH-video lines carry P(not A/H) and
    P(A/H) (the organisers' with_probabilities form; a template in either form decides)."""
    if task not in TASKS:
        raise SubmissionError(f"unknown task {task!r}; choose one of {TASKS}")
    units = list(UnitsTable.read_tsv(units_tsv))
    expected = sorted(u.video_id for u in units if u.is_test_of(task))
    with ShardReader(fused, stage="fuse") as r:
        got = r.provenance.config.get("task")
        if got not in (None, task):
            raise SubmissionError(f"{fused}: fused predictions are for task {got!r}, not {task!r}")
        records = {rec.video_id: rec for rec in r}
    if not records:
        raise SubmissionError(f"{fused}: no fused test prediction for task {task}; nothing to submit")
    missing = [v for v in expected if v not in records]
    if missing:
        log.warning("submit %s: %d test video(s) without a prediction are NOT in the submission: %s", task,
                    len(missing), ", ".join(missing))

    order = sorted(records)
    if task == "emi":
        preds = {v: np.asarray(records[v].arrays["decisions"], dtype=np.float64).ravel() for v in order}
        path = write_emi_submission(out_path, preds, video_order=order)
    elif task == "ah_video":
        decisions = {v: np.asarray(records[v].arrays["decisions"]).ravel() for v in order}
        from affectflow.fuse.postprocess import positive_probability  # scikit-learn: the job's, not the plan's

        probabilities = {v: float(np.clip(positive_probability(records[v].arrays["posteriors"])[0], 0, 1))
                         for v in order}
        path = write_ah_video_submission(out_path, decisions, video_order=order,
                                         template=read_template(task, template) if template else None,
                                         probabilities=probabilities if video_probabilities else None,
                                         names=names_in_test_list(units, videos_folders))
    else:
        preds = {}
        try:
            with ShardSet(list(media_shards), "media") as media:
                for v in order:
                    if v not in media:
                        raise SubmissionError(f"test video {v!r}: {media.why_missing(v)}; its frame count is unknown")
                    n = len(media_frames(media, v))
                    rec = records[v]
                    try:
                        preds[v] = complete_decisions(rec.arrays["decisions"], n, rec.arrays.get("frame_index"))
                    except (SubmissionError, ValueError) as e:
                        raise SubmissionError(f"test video {v!r}: {e}") from None
        except StageInputError as e:
            raise SubmissionError(str(e)) from None
        tpl = read_template(task, template) if template else None
        if task == "expr":  # Aff-Wild2 names frames by the video's id
            path = write_expr_submission(out_path, preds, video_order=order, template=tpl)
        else:  # BAH by the video's path under its videos folder, extension included, as annotation.yml does
            path = write_ah_submission(out_path, preds, video_order=order, template=tpl,
                                       names=names_in_test_list(units, videos_folders))
    log.info("submit %s: %d video(s) -> %s (checked%s)", task, len(order), path,
             f" against {template}" if template else "")
    return Path(path)


def run(job: Job) -> None:
    """The rules ``submit_<task>``: ``input.fusion`` (its folder), ``input.units``, ``input.media`` and the
    optional ``input.template`` -> ``output[0]``, the submission file."""
    joblog.setup(job.log)
    run_submit(
        job.rule.removeprefix("submit_"),
        job.input.units,
        Path(job.input.fusion) / "test_predictions.h5",
        list(job.input.media),
        job.output[0],
        template=job.input.template or None,
        video_probabilities=SubmitOptions.from_config(job.config, task=job.rule.removeprefix("submit_"))
        .video_probabilities,
        videos_folders=[d["videos"] for d in job.config["datasets"] if d.get("videos")],
    )
