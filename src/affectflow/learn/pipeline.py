"""One learn run: feature shards + labels -> a trained head, its val/test posteriors and val metrics.

Train on the train split, select the epoch on val, predict val and test (docs/learning.md, "learn"). A
feature label's prefix (``face/``, ``audio/``, ``text/``) says how its modality is put onto video frames
(:mod:`affectflow.learn.align`); several modalities are early fusion. EXPR and AH learn one row per frame,
EMI and AH-video one STAT descriptor per video; AH and AH-video also fit the video classifier behind the
fusion's video filter.

Output contract (``out_dir``): ``head.pt`` + ``head.pt.json``, ``predictions.h5`` (store stage
``predictions``: posteriors of every usable val and test video, excluded videos recorded as skipped),
``metrics.json`` (the val split) and, for AH and AH-video, ``video_classifier.json``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from affectflow.data.units import UnitsTable
from affectflow.evaluate.metrics import MetricReport
from affectflow.io.store import Provenance
from affectflow.learn.errors import LearnError
from affectflow.learn.heads import save_head
from affectflow.learn.matrices import label_prior, training_matrices
from affectflow.learn.predictions import predict_splits, write_predictions
from affectflow.learn.scoring import val_report
from affectflow.learn.settings import LearnSettings
from affectflow.learn.training import describe_head, train_task_head
from affectflow.learn.video_classifier_fit import video_classifier_for
from affectflow.learn.videos import check_splits, modality_kind, read_videos

log = logging.getLogger("affectflow.learn")


@dataclass
class LearnResult:
    """What a learn run wrote and on which videos."""

    task: str
    out_dir: Path
    head: Path
    predictions: Path
    metrics: Path
    report: MetricReport
    video_classifier: Path | None = None
    videos: dict[str, list[str]] = field(default_factory=dict)  # split -> videos used
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (video, reason)


#: files a learn job writes beside the rule's outputs (Snakemake removes only the declared ones before a rerun)
EXTRA_FILES = ("head.pt.json", "video_classifier.json")


def clear_earlier_run(out: Path) -> None:
    """Remove what an earlier run of the job left beside its declared outputs: a job that then fails must not
    leave the last run's sidecar beside no head, nor an AH video classifier beside a head trained without one."""
    for name in EXTRA_FILES:
        (out / name).unlink(missing_ok=True)


def learn_task(task: str, units_tsv: str | os.PathLike[str], media_shards: Sequence[str | os.PathLike[str]],
               features: Mapping[str, Sequence[str | os.PathLike[str]]], out_dir: str | os.PathLike[str],
               settings: LearnSettings, provenance: Provenance) -> LearnResult:
    """Train ``task``'s head on ``features`` (label -> shards) and write the run's files into ``out_dir``.

    ``settings`` may hold ``auto`` values (resolved here, for these modalities); ``provenance`` is the job's
    (its rerun key), completed with the head's digest and the settings in ``predictions.h5``.
    """
    if not features:
        raise LearnError(f"{task}: no feature modality given")
    kinds = {label: modality_kind(label) for label in features}
    settings = settings.resolved(task, list(kinds.values()))
    out = Path(out_dir)
    clear_earlier_run(out)
    units = UnitsTable.read_tsv(units_tsv)
    log.info("learn %s on %s (missing_face=%s, text_fill=%s, face_input=%s)", task, ", ".join(features),
             settings.missing_face, settings.text_fill, settings.face_input)

    videos = read_videos(task, units, media_shards, features, kinds, settings)
    check_splits(task, videos)
    m = training_matrices(task, videos, settings.standardize)

    head = train_task_head(task, m, settings)
    prior = label_prior(task, m.y_train)
    describe_head(head, videos, list(features), m.stats, settings)
    out.mkdir(parents=True, exist_ok=True)
    head_path, _ = save_head(head, out / "head.pt")
    has_text = any(k == "text" for k in kinds.values())
    vc, vc_path = video_classifier_for(task, videos, has_text, settings, out)

    posteriors = predict_splits(task, head, videos, m.stats, prior)
    report = val_report(task, videos.val, posteriors, head, settings, list(features))
    if vc is not None and "val_f1" in vc.meta:
        report.metrics["video_classifier_f1"] = float(vc.meta["val_f1"])
    metrics_path = report.save(out / "metrics.json")
    pred_path = write_predictions(out / "predictions.h5", task, videos, posteriors, vc, settings, list(features),
                                  head_path, provenance)
    log.info("learn %s: val %s = %.4f (best epoch %d) -> %s", task, report.main, report.score, head.best_epoch, out)
    return LearnResult(
        task=task, out_dir=out, head=head_path, predictions=pred_path, metrics=metrics_path, report=report,
        video_classifier=vc_path, videos=videos.ids(), excluded=videos.excluded,
    )
