"""The ``learn`` stage: feature shards + labels -> a trained head, its val/test posteriors and val metrics.

One call (:func:`run_learn`) per task and feature set, from ``workflow/scripts/learn.py``. A feature
label's prefix (``face/``, ``audio/``, ``text/``) says how its modality is put onto video frames
(:mod:`affectflow.learn.align`); several modalities are early fusion. EXPR and AH learn one row per
frame over all frames of a video, EMI and AH-video one STAT descriptor per video; AH and AH-video also
fit the video classifier behind the fusion's video filter.

Output contract (``out_dir``): ``head.pt`` + ``head.pt.json``, ``predictions.h5`` (store stage
``predictions``: posteriors of every usable val and test video, excluded videos recorded as skipped),
``metrics.json`` (the val split) and, for AH and AH-video, ``video_classifier.json``.

Options and the full behaviour: docs/learning.md, section "learn".
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affectflow.core import joblog
from affectflow.core.errors import AffectflowError
from affectflow.core.job import Job
from affectflow.core.options import OptionsError, StageOptions, one_of, wiring
from affectflow.core.vocabulary import BINARY_TASKS, FEATURE_STAGES, MODALITY_KINDS, TASKS, is_video_task
from affectflow.data.adapters import read_task_labels
from affectflow.data.units import Unit, UnitsTable
from affectflow.evaluate.metrics import (
    IGNORE_LABEL,
    N_EXPR,
    MetricReport,
    ah_frame_f1,
    ah_report,
    ah_video_report,
    ah_video_scores,
    emi_report,
    expr_report,
)
from affectflow.io.shards import ShardSet, StageInputError, media_frames
from affectflow.io.store import Provenance, ShardWriter, StoreError, VideoRecord
from affectflow.learn.align import AlignmentError
from affectflow.learn.heads import (
    TrainConfig,
    TrainedHead,
    save_head,
    train_ah_head,
    train_emi_head,
    train_expr_head,
)
from affectflow.learn.rows import VideoRows, apply_zscore, build_video_rows, predict_video, zscore_stats
from affectflow.learn.stats import STAT_PARTS
from affectflow.learn.video_classifier import VideoAHClassifier, fit_video_ah_classifier
from affectflow.plan.rerun import RerunKey, stage_key

log = logging.getLogger("affectflow.learn")

PREDICTIONS_STAGE = "predictions"
FACE_INPUTS = ("embeddings", "logits", "both")

#: bump when heads, predictions or metrics change for the same features, labels and options (docs/reruns.md)
STAGE_VERSION = 1
MISSING_FACE = ("auto", "drop", "carry_last", "other_modalities")
TEXT_FILL = ("auto", "zeros", "nearest")
EMI_WEIGHTS = ("dominant", "mass", "uniform")


class LearnError(AffectflowError, ValueError):
    """The learn stage cannot run on these inputs; the message says which task, split or file."""


@dataclass(frozen=True)
class LearnOptions(StageOptions):
    """Config ``learn`` (``common`` merged with the task's own section); ``task`` and ``features`` (the
    feature set's modality labels) are wiring. Every option changes the head, so none is a runtime setting
    (``train.device`` included: only CPU training is bit-reproducible)."""

    SECTION = "learn"

    task: str = wiring("expr")
    features: tuple[str, ...] = wiring(())
    missing_face: str = "auto"
    text_fill: str = "auto"
    face_input: str = "embeddings"
    train: Mapping[str, Any] = field(default_factory=dict)
    class_weighted: bool = True
    emi_weights: str | tuple[float, ...] = "dominant"
    ah_video_classifier: bool = True
    ah_video_C: float = 1.0
    standardize: bool = True
    stat_parts: tuple[str, ...] = tuple(STAT_PARTS)
    on_label_mismatch: str = "error"

    def check(self) -> None:
        one_of("task", self.task, TASKS)
        self._set("features", tuple(self.features))
        one_of("missing_face", self.missing_face, MISSING_FACE)
        one_of("text_fill", self.text_fill, TEXT_FILL)
        one_of("face_input", self.face_input, FACE_INPUTS)
        one_of("on_label_mismatch", self.on_label_mismatch, ("error", "skip"))
        try:  # every training field, defaults filled in: `train: {}` and the defaults written out are one key
            self._set("train", dict(vars(TrainConfig.from_dict(dict(self.train or {})))))
        except (TypeError, ValueError) as e:
            raise ValueError(f"learn.train: {e}") from None
        self._set("stat_parts", tuple(self.stat_parts))
        for part in self.stat_parts:
            one_of("stat_parts", part, tuple(STAT_PARTS))
        if isinstance(self.emi_weights, str):
            one_of("emi_weights", self.emi_weights, EMI_WEIGHTS)
        else:
            self._set("emi_weights", tuple(float(x) for x in self.emi_weights))
            if len(self.emi_weights) != 6:
                raise ValueError(f"emi_weights: six numbers, got {len(self.emi_weights)}")

    @classmethod
    def config_key(cls, name: str) -> str:
        return f"learn.*.{name}"  # common or a task

    @classmethod
    def from_config(cls, config, **wired):
        learn = config.get("learn") or {}
        task = wired.get("task", "expr")
        return cls.from_mapping({**(learn.get("common") or {}), **(learn.get(task) or {})}, **wired)


@dataclass
class LearnResult:
    """What :func:`run_learn` wrote and on which videos."""

    task: str
    out_dir: Path
    head: Path
    predictions: Path
    metrics: Path
    report: MetricReport
    video_classifier: Path | None = None
    videos: dict[str, list[str]] = field(default_factory=dict)  # split -> videos used
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (video, reason)


# ------------------------------------------------------------------ config


def learn_config(task: str, cfg: LearnOptions | Mapping[str, Any] | None, kinds: Sequence[str]) -> dict[str, Any]:
    """The options of ``cfg`` as the stage uses them: ``auto`` values resolved for ``task`` and the
    modality ``kinds``, ``train`` as a :class:`~affectflow.learn.heads.TrainConfig`."""
    if task not in TASKS:
        raise LearnError(f"unknown task {task!r}; choose one of {TASKS}")
    try:
        opts = LearnOptions.coerce(cfg, task=task)
    except OptionsError as e:
        raise LearnError(str(e)) from None
    c = {name: getattr(opts, name) for name in LearnOptions.config_fields()}
    if c["missing_face"] == "auto":
        c["missing_face"] = "carry_last" if set(kinds) == {"face"} else "other_modalities"
    if c["text_fill"] == "auto":
        c["text_fill"] = "nearest" if is_video_task(task) else "zeros"
    c["train"] = TrainConfig.from_dict(dict(c["train"]))
    c["stat_parts"] = list(c["stat_parts"])
    if not isinstance(c["emi_weights"], str):
        c["emi_weights"] = list(c["emi_weights"])
    return c


def _cfg_json(c: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(c)
    out["train"] = vars(c["train"]).copy() if isinstance(c["train"], TrainConfig) else c["train"]
    return out


def modality_kind(label: str) -> str:
    """``face/...`` -> ``face``; the prefix of a feature label says how it is aligned."""
    kind = label.split("/", 1)[0]
    if kind not in MODALITY_KINDS or "/" not in label:
        raise LearnError(f"feature label {label!r} must start with one of {[k + '/' for k in MODALITY_KINDS]}")
    return kind


# ------------------------------------------------------------------ shards


# --------------------------------------------------------------- per video




# ------------------------------------------------------------------- stage


def run_learn(
    task: str,
    units_tsv: str | os.PathLike[str],
    media_shards: Sequence[str | os.PathLike[str]],
    features: Mapping[str, Sequence[str | os.PathLike[str]]],
    out_dir: str | os.PathLike[str],
    cfg: LearnOptions | Mapping[str, Any] | None = None,
    *,
    key: str | None = None,
) -> LearnResult:
    """Train the ``task`` head on the train split, select on val, predict val and test (docs/learning.md, "learn").

    ``key``: the rerun key the workflow planned the job with (checked, then
    written into the provenance of ``predictions.h5``).
    """
    if not features:
        raise LearnError(f"{task}: no feature modality given")
    kinds = {label: modality_kind(label) for label in features}
    c = learn_config(task, cfg, list(kinds.values()))
    rerun = _rerun_key(task, cfg, features, key)
    out = Path(out_dir)
    units = UnitsTable.read_tsv(units_tsv)
    log.info("learn %s on %s (missing_face=%s, text_fill=%s, face_input=%s)", task, ", ".join(features),
             c["missing_face"], c["text_fill"], c["face_input"])

    videos, excluded = _read_videos(task, units, media_shards, features, kinds, c)
    _check_splits(task, videos, excluded)
    x_tr, y_tr, x_va, y_va, stats = _training_matrices(task, videos, c)

    head = _train(task, x_tr, y_tr, x_va, y_va, c)
    prior = _prior(task, y_tr)
    _describe_head(head, videos, list(features), stats, c)
    out.mkdir(parents=True, exist_ok=True)
    head_path, _ = save_head(head, out / "head.pt")
    vc, vc_path = _video_classifier(task, videos, kinds, c, out)

    posteriors = _predict_splits(task, head, videos, stats, prior)
    report = _report(task, videos["val"], posteriors, head, c, list(features))
    if vc is not None and "val_f1" in vc.meta:
        report.metrics["video_classifier_f1"] = float(vc.meta["val_f1"])
    metrics_path = report.save(out / "metrics.json")
    pred_path = _write_predictions(out / "predictions.h5", task, videos, posteriors, vc, excluded, c,
                                   list(features), head_path, rerun)
    log.info("learn %s: val %s = %.4f (best epoch %d) -> %s", task, report.main, report.score, head.best_epoch, out)
    return LearnResult(
        task=task, out_dir=out, head=head_path, predictions=pred_path, metrics=metrics_path, report=report,
        video_classifier=vc_path, videos={s: [v.unit.video_id for v in vs] for s, vs in videos.items()},
        excluded=excluded,
    )


def _rerun_key(task: str, cfg: LearnOptions | Mapping[str, Any] | None, features: Mapping[str, Any],
               key: str | None) -> RerunKey:
    """The rerun key of this job's options (the feature labels included), checked against ``key``."""
    try:
        return stage_key(PREDICTIONS_STAGE, LearnOptions.coerce(cfg, task=task, features=tuple(features)),
                         expected=key)
    except OptionsError as e:
        raise LearnError(str(e)) from None


def _read_videos(task: str, units: UnitsTable, media_shards: Sequence[str | os.PathLike[str]],
                 features: Mapping[str, Sequence[str | os.PathLike[str]]], kinds: dict[str, str],
                 c: dict[str, Any]) -> tuple[dict[str, list[VideoRows]], list[tuple[str, str]]]:
    """Open the media and feature shards and :func:`_collect` the task's videos from them."""
    try:
        with contextlib.ExitStack() as stack:
            media = stack.enter_context(ShardSet(media_shards, "media", "media"))
            sources = {label: stack.enter_context(ShardSet(list(paths), FEATURE_STAGES[kinds[label]], label))
                       for label, paths in features.items()}
            return _collect(task, units, media, sources, kinds, c)
    except (StageInputError, StoreError) as e:
        raise LearnError(f"task {task}: {e}") from None


def _check_splits(task: str, videos: dict[str, list[VideoRows]], excluded: list[tuple[str, str]]) -> None:
    """Refuse to train without labelled train and val videos (EMI: at least 2 each); warn when test is empty."""
    for split in ("train", "val"):
        if not videos[split]:
            why = f" ({len(excluded)} videos excluded, see the log)" if excluded else ""
            raise LearnError(f"task {task}: split {split!r} has no labelled video with all features{why}")
    if task == "emi":
        for split in ("train", "val"):
            if len(videos[split]) < 2:
                raise LearnError(f"task emi: split {split!r} has {len(videos[split])} usable video(s); "
                                 "the weighted Pearson loss and Pearson r need at least 2")
    if not videos["test"]:
        log.warning("learn %s: no test video to predict", task)


def _training_matrices(task: str, videos: dict[str, list[VideoRows]], c: dict[str, Any]) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Stacked train and val rows, z-scored with the train split's statistics (returned too, None without).

    The training videos' own rows are released once stacked: the stacked copy is all training needs, and
    for millions of frames two copies would double the stage's memory.
    """
    x_tr, y_tr = _stack(task, videos["train"])
    x_va, y_va = _stack(task, videos["val"])
    for v in videos["train"]:  # stacked now; keep only what the video classifier and metadata need
        v.x, v.aligned = v.x[:0], None
    stats = zscore_stats(x_tr) if c["standardize"] else None
    x_tr, x_va = apply_zscore(x_tr, stats, inplace=True), apply_zscore(x_va, stats, inplace=True)
    log.info("learn %s: %d train rows from %d videos, %d val rows from %d videos, %d columns", task, len(x_tr),
             len(videos["train"]), len(x_va), len(videos["val"]), x_tr.shape[1])
    return x_tr, y_tr, x_va, y_va, stats


def _describe_head(head: TrainedHead, videos: dict[str, list[VideoRows]], features: list[str],
                   stats: tuple[np.ndarray, np.ndarray] | None, c: dict[str, Any]) -> None:
    """Record in the head's sidecar what is needed to use it again: columns, standardisation, options."""
    head.extra.update(
        features=features,
        # a list, not a dict: the sidecar is written with sorted keys and the column order matters
        feature_columns=[[name, a, b] for name, (a, b) in videos["train"][0].columns.items()],
        standardize=None if stats is None else {"mean": stats[0].tolist(), "std": stats[1].tolist()},
        learn_config=_cfg_json(c),
        n_videos={s: len(v) for s, v in videos.items()},
    )


def _video_classifier(task: str, videos: dict[str, list[VideoRows]], kinds: dict[str, str], c: dict[str, Any],
                      out: Path) -> tuple[VideoAHClassifier | None, Path | None]:
    """AH and AH-video: fit, score on val (when fitted) and save the video classifier; (None, None) otherwise."""
    if task not in BINARY_TASKS:
        return None, None
    has_text = any(k == "text" for k in kinds.values())
    vc = _fit_video_classifier(videos["train"], c, has_text)
    if vc.meta.get("fitted"):
        keep_val = {v.unit.video_id: int(k) for v, k in zip(videos["val"], vc.predict(
            np.stack([v.video_vec for v in videos["val"]])), strict=True)}
        truth = np.array([int(np.any(v.y == 1)) for v in videos["val"]])
        pred = np.array([keep_val[v.unit.video_id] for v in videos["val"]])
        vc.meta["val_f1"] = ah_video_scores(truth, pred)["f1"] if task == "ah_video" else ah_frame_f1(truth, pred)
        vc.meta["val_accuracy"] = float(np.mean(truth == pred))
    return vc, vc.save(out / "video_classifier.json")


def _predict_splits(task: str, head: TrainedHead, videos: dict[str, list[VideoRows]],
                    stats: tuple[np.ndarray, np.ndarray] | None,
                    prior: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Video id -> (posteriors, predicted mask) of every val and test video."""
    posteriors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in ("val", "test"):
        for v in videos[split]:
            posteriors[v.unit.video_id] = predict_video(task, head, v, stats, prior)
    return posteriors


def _task_units(task: str, units: UnitsTable) -> dict[str, list[Unit]]:
    by: dict[str, list[Unit]] = {"train": [], "val": [], "test": []}
    for u in units:
        if u.split == "test":
            by["test"].append(u)
        elif u.labels(task):
            by[u.split].append(u)
    return by


def _collect(task: str, units: UnitsTable, media: ShardSet, sources: dict[str, ShardSet],
             kinds: dict[str, str], c: dict[str, Any]) -> tuple[dict[str, list[VideoRows]], list[tuple[str, str]]]:
    """Read, align and label every usable video of the task; the others are excluded with a reason."""
    videos: dict[str, list[VideoRows]] = {"train": [], "val": [], "test": []}
    excluded: list[tuple[str, str]] = []
    for split, us in _task_units(task, units).items():
        for u in us:
            vid = u.video_id
            if vid not in media:
                excluded.append((vid, media.why_missing(vid)))
                continue
            missing = [src.why_missing(vid) for src in sources.values() if vid not in src]
            if missing:
                excluded.append((vid, "; ".join(missing)))
                continue
            times = media_frames(media, vid)
            y = None
            if split != "test":
                try:
                    y = read_task_labels(task, u.labels(task), vid, times.shape[0])
                except ValueError as e:
                    if c["on_label_mismatch"] == "skip":
                        excluded.append((vid, f"labels: {e}"))
                        continue
                    raise LearnError(f"task {task}, video {vid!r}: {e}") from None
            recs = {label: src.read(vid) for label, src in sources.items()}
            try:
                v = build_video_rows(task, u, times, recs, sources, kinds, c)
            except AlignmentError as e:
                raise LearnError(f"task {task}: {e}") from None
            if v is None:
                excluded.append((vid, "no frame with a face (missing_face=drop)"))
                continue
            v.y = y
            videos[split].append(v)
    for vid, reason in excluded:
        log.warning("learn %s: video %r excluded: %s", task, vid, reason)
    if excluded:
        log.warning("learn %s: %d video(s) excluded: %s", task, len(excluded), ", ".join(v for v, _ in excluded))
    return videos, excluded


def _stack(task: str, vs: list[VideoRows]) -> tuple[np.ndarray, np.ndarray]:
    if task == "emi":
        return np.concatenate([v.x for v in vs]), np.stack([v.y for v in vs])  # type: ignore[misc]
    if task == "ah_video":
        return np.concatenate([v.x for v in vs]), np.concatenate([v.y for v in vs])  # type: ignore[misc]
    x = np.concatenate([v.x for v in vs])
    y = np.concatenate([v.aligned.select(v.y) for v in vs])  # type: ignore[union-attr, arg-type]
    return x, y


def _train(task: str, x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray,
           c: dict[str, Any]) -> TrainedHead:
    tc: TrainConfig = c["train"]
    if task == "expr" and not np.any(y_tr != IGNORE_LABEL):
        raise LearnError("task expr: split 'train' has no frame with a valid label (all -1)")
    if len(x_tr) == 0:
        raise LearnError(f"task {task}: split 'train' has no frame to train on (missing_face={c['missing_face']})")
    try:
        if task == "expr":
            return train_expr_head(x_tr, y_tr, x_va, y_va, tc, class_weighted=bool(c["class_weighted"]))
        if task in BINARY_TASKS:
            return train_ah_head(x_tr, y_tr, x_va, y_va, tc, pos_weighted=bool(c["class_weighted"]), task=task)
        return train_emi_head(x_tr, y_tr, x_va, y_va, tc, emotion_weights=c["emi_weights"])
    except ValueError as e:
        raise LearnError(f"task {task}: training failed: {e}") from None


def _prior(task: str, y_tr: np.ndarray) -> np.ndarray:
    """Posterior for a frame nothing can be said about: training class frequencies / positive rate."""
    if task == "expr":
        yy = y_tr[y_tr != IGNORE_LABEL]
        counts = np.bincount(yy, minlength=N_EXPR).astype(np.float64)
        return (counts / max(counts.sum(), 1.0)).astype(np.float32)
    if task in BINARY_TASKS:
        return np.asarray(float(np.mean(y_tr)) if y_tr.size else 0.0, dtype=np.float32)
    return np.asarray(y_tr.mean(axis=0), dtype=np.float32)


def _report(task: str, vs: list[VideoRows], post: dict[str, tuple[np.ndarray, np.ndarray]], head: TrainedHead,
            c: dict[str, Any], features: list[str]) -> MetricReport:
    conf = {"features": features, "best_epoch": head.best_epoch, "missing_face": c["missing_face"],
            "face_input": c["face_input"], "n_videos": len(vs)}
    try:
        if task == "expr":
            yt = np.concatenate([v.y for v in vs])  # type: ignore[misc]
            yp = np.concatenate([post[v.unit.video_id][0] for v in vs])
            return expr_report(yt, yp, "val", conf)
        thr = float(head.extra.get("threshold", 0.5))
        if task == "ah_video":
            return ah_video_report(np.concatenate([v.y for v in vs]),  # type: ignore[misc]
                                   np.array([int(post[v.unit.video_id][0][0] >= thr) for v in vs]), "val", conf)
        if task == "ah":
            return ah_report({v.unit.video_id: v.y for v in vs},
                             {v.unit.video_id: (post[v.unit.video_id][0] >= thr).astype(np.int64) for v in vs},
                             "val", conf)
        return emi_report(np.stack([v.y for v in vs]), np.stack([post[v.unit.video_id][0] for v in vs]), "val", conf)
    except ValueError as e:
        raise LearnError(f"task {task}: cannot score split 'val': {e}") from None


def _fit_video_classifier(train: list[VideoRows], c: dict[str, Any], has_text: bool) -> VideoAHClassifier:
    """Logistic regression on per-video mean text features (standardisation folded into coef/intercept)."""
    x = np.stack([v.video_vec for v in train])  # type: ignore[misc]
    y = np.array([int(np.any(v.y == 1)) for v in train])
    source = "text" if has_text else "features"
    if not has_text:
        log.warning("AH video classifier: no text modality in this feature set; using mean frame features")
    if not c["ah_video_classifier"]:
        return VideoAHClassifier(np.zeros(x.shape[1]), 0.0, 0.5,
                                 {"fitted": False, "reason": "disabled in config", "source": source})
    if np.unique(y).size < 2:
        reason = f"all {len(y)} training videos have has_ah={int(y[0])}; every video is kept"
        log.warning("AH video classifier not fitted: %s", reason)
        return VideoAHClassifier(np.zeros(x.shape[1]), 0.0, 0.5, {"fitted": False, "reason": reason, "source": source})
    mu, sd = zscore_stats(x)
    raw = fit_video_ah_classifier((x - mu) / sd, y, C=float(c["ah_video_C"]))
    coef = raw.coef / sd
    intercept = float(raw.intercept - np.sum(raw.coef * mu / sd))
    return VideoAHClassifier(coef, intercept, raw.threshold, {**raw.meta, "fitted": True, "source": source})


def _write_predictions(path: Path, task: str, videos: dict[str, list[VideoRows]],
                       post: dict[str, tuple[np.ndarray, np.ndarray]], vc: VideoAHClassifier | None,
                       excluded: list[tuple[str, str]], c: dict[str, Any], features: list[str],
                       head_path: Path, rerun: RerunKey) -> Path:
    digest = hashlib.sha256(head_path.read_bytes()).hexdigest()  # the digest the head's sidecar records
    prov = Provenance.of(rerun, model="+".join(features), weights_sha256=digest, resolved={"learn": _cfg_json(c)})
    try:
        with ShardWriter(path, prov) as w:
            for split in ("val", "test"):
                vs = videos[split]
                proba = keep = None
                if vc is not None and vs:
                    proba = vc.predict_proba(np.stack([v.video_vec for v in vs]))  # type: ignore[misc]
                    keep = (proba >= vc.threshold).astype(np.int64)
                for i, v in enumerate(vs):
                    p, predicted = post[v.unit.video_id]
                    arrays = {"posteriors": p, "timestamps": v.frame_times}
                    if not is_video_task(task):
                        arrays.update(predicted=predicted, face_present=v.face_present)
                    attrs: dict[str, Any] = {"split": split, "n_frames": v.n_frames, "task": task}
                    if proba is not None and keep is not None:
                        attrs.update(video_proba=float(proba[i]), video_keep=int(keep[i]))
                    w.add(VideoRecord(v.unit.video_id, arrays, attrs))
            w.set_skipped(excluded)
    except StoreError as e:
        raise LearnError(str(e)) from None
    return path


def run(job: Job) -> None:
    """The rule: ``input.f0, f1, ...`` (each modality's shards, in the feature set's order), ``input.units``,
    ``input.media`` -> ``output.metrics`` and the other files of its folder."""
    joblog.setup(job.log)
    task = job.wildcards.task
    labels = job.config["feature_sets"][job.wildcards.feature_set]
    run_learn(
        task,
        job.input.units,
        list(job.input.media),
        {label: list(job.input[f"f{i}"]) for i, label in enumerate(labels)},
        Path(job.output.metrics).parent,
        LearnOptions.from_config(job.config, task=task, features=tuple(labels)),
        key=job.params.key,
    )
