"""The ``fuse`` stage: learned posteriors of several feature sets -> one chosen post-processing, swept on val.

One call (:func:`run_fuse`) per task and fusion, from ``workflow/scripts/fuse.py``. The post-processing
(:mod:`affectflow.fuse.postprocess`: blend weight ``w``, EXPR confidence threshold ``t`` with the pre-trained face
model, smoothing kernel ``k``, AH video filter) is chosen on the val split only, one parameter at a time
in the order it applies them (paper sections 3.1, 4.1; Figures 2-5), then applied to every test video.

Output contract (``out_dir``): ``sweep_<w|t|k>.csv`` and ``.png`` for the sweeps that apply,
``chosen.json``, ``metrics.json`` (rows like the paper's Tables 1-4, val split) and ``test_predictions.h5``
(store stage ``fused``: per test video ``decisions``, post-processed ``posteriors`` and ``timestamps``).

Options and the full behaviour: docs/learning.md, section "fuse".
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from affectflow.core import joblog
from affectflow.core.errors import AffectflowError
from affectflow.core.files import atomic_write_text
from affectflow.core.job import Job
from affectflow.core.options import OptionsError, StageOptions, one_of, wiring
from affectflow.core.vocabulary import BINARY_TASKS, TASKS, is_video_task
from affectflow.data.adapters import read_task_labels
from affectflow.data.units import UnitsTable
from affectflow.evaluate.metrics import MetricReport
from affectflow.fuse.postprocess import SMOOTHINGS, PostConfig, decide, frame_softmax, postprocess_video
from affectflow.fuse.sweeps import SplitDataset, SweepResult, evaluate, plot_sweep, sweep_many
from affectflow.io.shards import ShardSet, StageInputError, media_frames
from affectflow.io.store import Provenance, ShardReader, ShardWriter, VideoRecord
from affectflow.plan.rerun import RerunKey, stage_key

log = logging.getLogger("affectflow.fuse")

FUSED_STAGE = "fused"
PRETRAINED = "pretrained"

#: class name (lower case) -> Aff-Wild2 index (Neutral, Anger, Disgust, Fear, Happiness, Sadness, Surprise, Other)
AFFWILD2_BY_NAME: dict[str, int] = {
    "neutral": 0, "anger": 1, "angry": 1, "disgust": 2, "disgusted": 2, "fear": 3, "fearful": 3, "afraid": 3,
    "happiness": 4, "happy": 4, "sadness": 5, "sad": 5, "surprise": 6, "surprised": 6, "contempt": 7, "other": 7,
}

#: bump when fused predictions, sweeps or metrics change for the same inputs and options (docs/reruns.md)
STAGE_VERSION = 1
FILTER_MODES = ("onehot", "mapped")


class FuseError(AffectflowError, ValueError):
    """The fuse stage cannot run on these inputs; the message says which task, split or file."""


@dataclass(frozen=True)
class FuseOptions(StageOptions):
    """One fusion of config ``fusions`` (its ``feature_sets`` and sweep grids); ``task`` is wiring.

    Grids are sets: ``k: [5, 1, 3]`` and ``k: [1, 3, 5]`` are one key.
    """

    SECTION = "fusions"

    task: str = wiring("expr")
    feature_sets: tuple[str, ...] = ()
    k: tuple[int, ...] = (1, 3, 5, 9, 15, 25, 35, 51)
    smoothing: str = "box"
    sigma: float | None = None
    t: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
    w: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    weights: tuple[float, ...] | None = None
    ah_video_filter: str | bool = "auto"
    ah_video_source: str | None = None
    ah_threshold: float = 0.5
    filter_mode: str = "onehot"

    def check(self) -> None:
        one_of("task", self.task, TASKS)
        self._set("feature_sets", tuple(self.feature_sets))
        self._set("k", tuple(sorted({int(k) for k in (self.k or [])})))
        if any(k < 1 for k in self.k):
            raise ValueError(f"smoothing kernels k must be >= 1, got {list(self.k)}")
        one_of("smoothing", self.smoothing, SMOOTHINGS)
        self._set("t", tuple(sorted({float(t) for t in (self.t or []) if t is not None})))
        if any(not 0.0 < t <= 1.0 for t in self.t):
            raise ValueError(f"confidence thresholds t must be in (0, 1], got {list(self.t)}")
        self._set("w", tuple(sorted({float(w) for w in (self.w or [])})))
        if any(not 0.0 <= w <= 1.0 for w in self.w):
            raise ValueError(f"blend weights w must be in [0, 1], got {list(self.w)}")
        if self.weights is not None:
            self._set("weights", tuple(float(x) for x in self.weights))
            if self.feature_sets and len(self.weights) != len(self.feature_sets):
                raise ValueError(f"weights: {len(self.weights)} values for {len(self.feature_sets)} feature sets")
        one_of("ah_video_filter", self.ah_video_filter, ("auto", True, False))
        one_of("filter_mode", self.filter_mode, FILTER_MODES)

    @classmethod
    def config_key(cls, name: str) -> str:
        return f"fusions.*.{name}"

    @classmethod
    def from_config(cls, config, **wired):
        fusion = wired.pop("fusion")
        fusions = config.get("fusions") or {}
        if fusion not in fusions:
            raise OptionsError(f"fusions: no fusion named {fusion!r}")
        return cls.from_mapping(fusions[fusion], **wired)


@dataclass
class FuseResult:
    """What :func:`run_fuse` chose and wrote."""

    task: str
    out_dir: Path
    chosen: PostConfig
    report: MetricReport  # the chosen config on val
    files: list[Path] = field(default_factory=list)
    excluded: list[tuple[str, str]] = field(default_factory=list)


# ------------------------------------------------------------------ helpers


def affwild2_mapping(classes: Sequence[str]) -> tuple[int, ...]:
    """Index mapping from a model's class names (any order) to the 8 Aff-Wild2 classes."""
    out = []
    for name in classes:
        key = str(name).strip().lower()
        if key not in AFFWILD2_BY_NAME:
            raise FuseError(f"pre-trained class {name!r} has no Aff-Wild2 counterpart (classes: {list(classes)})")
        out.append(AFFWILD2_BY_NAME[key])
    if len(set(out)) != len(out):
        raise FuseError(f"pre-trained classes {list(classes)} map two classes to one Aff-Wild2 class")
    return tuple(out)


def fuse_options(task: str, cfg: FuseOptions | Mapping[str, Any] | None, names: Sequence[str]) -> FuseOptions:
    """``cfg`` checked for ``task`` and the fused feature sets ``names`` (in their order)."""
    if task not in TASKS:
        raise FuseError(f"unknown task {task!r}; choose one of {TASKS}")
    try:
        opts = FuseOptions.coerce(cfg, task=task)
        if opts.feature_sets and list(opts.feature_sets) != list(names):
            raise FuseError(f"fusion of {list(opts.feature_sets)} given predictions of {list(names)}")
        return opts.replace(feature_sets=tuple(names))
    except OptionsError as e:
        raise FuseError(str(e)) from None


def _posterior(task: str, rec: VideoRecord, n_frames: int, where: str) -> np.ndarray:
    p = np.asarray(rec.arrays["posteriors"], dtype=np.float32)
    if task == "ah" and p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if is_video_task(task):
        return p.ravel()
    if p.shape[0] != n_frames:
        raise FuseError(f"{where}: video {rec.video_id!r} has {p.shape[0]} posteriors for {n_frames} frames")
    return p


@dataclass
class _Pretrained:
    """The pre-trained face model's softmax per frame (uniform where no face) and its class mapping."""

    proba: dict[str, np.ndarray]
    classes: list[str]
    mapping: tuple[int, ...]


def _read_pretrained(paths: Sequence[str], vids_frames: Mapping[str, int]) -> _Pretrained:
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
    return _Pretrained(proba, classes, affwild2_mapping(classes))


def _video_source(task_sets: Mapping[str, Mapping[str, Any]], given: str | None) -> str | None:
    """The feature set whose AH video classifier decides the video filter."""
    if given is not None:
        if given not in task_sets:
            raise FuseError(f"ah_video_source {given!r} is not one of the feature sets {list(task_sets)}")
        return given
    for name, meta in task_sets.items():
        if any(str(f).startswith("text/") for f in meta.get("features", [])):
            return name
    return next(iter(task_sets), None)


# -------------------------------------------------------------------- stage


def run_fuse(
    task: str,
    units_tsv: str | os.PathLike[str],
    media_shards: Sequence[str | os.PathLike[str]],
    predictions: Mapping[str, str | os.PathLike[str]],
    pretrained: Sequence[str | os.PathLike[str]] | None,
    out_dir: str | os.PathLike[str],
    cfg: FuseOptions | Mapping[str, Any] | None = None,
    *,
    key: str | None = None,
) -> FuseResult:
    """Sweep and choose the post-processing on val, apply it to test (docs/learning.md, "fuse").

    ``key``: the rerun key the workflow planned the job with (checked, then
    written into the provenance of ``test_predictions.h5``).
    """
    if not predictions:
        raise FuseError(f"task {task}: no predictions to fuse")
    names = list(predictions)
    opts = fuse_options(task, cfg, names)
    rerun = stage_key(FUSED_STAGE, opts, expected=key)
    c = _fuse_config(opts)
    if PRETRAINED in names:
        raise FuseError(f"a feature set may not be called {PRETRAINED!r} (reserved for the pre-trained model)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    units = UnitsTable.read_tsv(units_tsv)

    sets, meta = _read_predictions(task, predictions)
    common, excluded = _common_videos(task, names, sets)
    split_of = _splits(names, sets, common)
    frames = _read_frames(task, media_shards, split_of["val"] + split_of["test"])
    labels = _val_labels(task, units, units_tsv, split_of["val"], frames, names)
    if not split_of["test"]:
        log.warning("fuse %s: no test video predicted by all feature sets", task)

    val_vids = sorted(labels)
    sources = _set_posteriors(task, names, sets, frames, predictions, val_vids)
    pre = _pretrained_for_filter(task, pretrained, c, frames, val_vids + split_of["test"])
    if pre is not None:
        sources[PRETRAINED] = {v: pre.proba[v] for v in val_vids}
    vsource, keep = _video_keep(task, c, meta, sets, common)
    val = SplitDataset("val", task, labels, sources, None if keep is None else {v: keep[v] for v in val_vids})

    chosen, singles, sweeps, files = _select(task, names, c, val, pre, keep is not None, out)
    report, written = _write_val_results(out, task, names, predictions, chosen, singles, sweeps, val, pre,
                                         vsource, excluded)
    files.extend(written)

    test_sources = _set_posteriors(task, names, sets, frames, predictions, split_of["test"])
    if pre is not None:
        test_sources[PRETRAINED] = {v: pre.proba[v] for v in split_of["test"]}
    files.append(_write_test(out / "test_predictions.h5", rerun, task, names, chosen, split_of["test"], test_sources,
                             frames, keep, excluded))
    log.info("fuse %s: chosen %s -> val %s = %.4f", task, _describe(chosen), report.main, report.score)
    return FuseResult(task, out, chosen, report, files, excluded)


def _fuse_config(opts: FuseOptions) -> dict[str, Any]:
    """The options as a plain dict, grids and weights as lists (as written into the provenance)."""
    c = {name: getattr(opts, name) for name in FuseOptions.config_fields()}
    c.update(k=list(opts.k), t=list(opts.t), w=list(opts.w),
             weights=None if opts.weights is None else list(opts.weights))
    return c


def _read_predictions(task: str, predictions: Mapping[str, str | os.PathLike[str]]) -> tuple[
        dict[str, dict[str, VideoRecord]], dict[str, dict[str, Any]]]:
    """Every feature set's learn predictions (video id -> record) and provenance config, checked for ``task``."""
    sets: dict[str, dict[str, VideoRecord]] = {}
    meta: dict[str, dict[str, Any]] = {}
    for name, path in predictions.items():
        with ShardReader(path, stage="predictions") as r:
            conf = dict(r.provenance.config)
            if conf.get("task") not in (None, task):
                raise FuseError(f"{path}: predictions for task {conf.get('task')!r}, not {task!r}")
            meta[name] = conf
            sets[name] = {rec.video_id: rec for rec in r}
    return sets, meta


def _common_videos(task: str, names: list[str], sets: Mapping[str, Mapping[str, VideoRecord]]) -> tuple[
        set[str], list[tuple[str, str]]]:
    """The videos every feature set predicted, and the others with the sets that lack them (logged)."""
    common = set.intersection(*(set(s) for s in sets.values()))
    excluded = sorted({(v, f"not predicted by {', '.join(n for n in names if v not in sets[n])}")
                       for s in sets.values() for v in s if v not in common})
    for vid, why in excluded:
        log.warning("fuse %s: video %r excluded: %s", task, vid, why)
    return common, excluded


def _splits(names: list[str], sets: Mapping[str, Mapping[str, VideoRecord]], common: set[str]) -> dict[
        str, list[str]]:
    """The common videos by their split (the first set's record says which), sorted; other splits are dropped."""
    split_of: dict[str, list[str]] = {"val": [], "test": []}
    for vid in sorted(common):
        split = str(sets[names[0]][vid].attrs.get("split", ""))
        if split in split_of:
            split_of[split].append(vid)
    return split_of


def _read_frames(task: str, media_shards: Sequence[str | os.PathLike[str]], vids: list[str]) -> dict[str, np.ndarray]:
    """Frame times of ``vids`` from the media shards; a video without them is an error."""
    frames: dict[str, np.ndarray] = {}
    try:
        with ShardSet(list(media_shards), "media") as media:
            for vid in vids:
                if vid not in media:
                    raise FuseError(f"video {vid!r} has predictions but {media.why_missing(vid)}")
                frames[vid] = media_frames(media, vid)
    except StageInputError as e:
        raise FuseError(f"task {task}: {e}") from None
    return frames


def _val_labels(task: str, units: UnitsTable, units_tsv: str | os.PathLike[str], vids: list[str],
                frames: Mapping[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    """Labels of the labelled val videos (EMI as float64); selection needs at least one."""
    labels: dict[str, np.ndarray] = {}
    for vid in vids:
        try:
            u = units.get(vid)
        except KeyError:
            raise FuseError(f"val video {vid!r} is not in {units_tsv}") from None
        if u.labels(task):
            y = read_task_labels(task, u.labels(task), vid, len(frames[vid]))
            labels[vid] = y.astype(np.float64) if task == "emi" else y
    if not labels:
        raise FuseError(f"task {task}: split 'val' has no labelled video predicted by all of {names}")
    return labels


def _set_posteriors(task: str, names: list[str], sets: Mapping[str, Mapping[str, VideoRecord]],
                frames: Mapping[str, np.ndarray], predictions: Mapping[str, str | os.PathLike[str]],
                vids: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """Feature set -> video -> its learned posteriors, for ``vids``."""
    return {n: {v: _posterior(task, sets[n][v], len(frames[v]), str(predictions[n])) for v in vids}
            for n in names}


def _pretrained_for_filter(task: str, pretrained: Sequence[str | os.PathLike[str]] | None, c: dict[str, Any],
                frames: Mapping[str, np.ndarray], vids: list[str]) -> _Pretrained | None:
    """EXPR with a ``t`` grid and pre-trained face features: the model's softmax on ``vids``; else None."""
    if task == "expr" and pretrained and c["t"]:
        pre = _read_pretrained([str(p) for p in pretrained], {v: len(frames[v]) for v in vids})
        low = [t for t in c["t"] if t < 1.0 / len(pre.classes)]
        if low:
            raise FuseError(f"t values {low} are below 1/{len(pre.classes)}: every face frame would be replaced")
        return pre
    if task == "expr" and c["t"] and not pretrained:
        log.info("fuse expr: no pre-trained face features given, no confidence filtering")
    return None


def _video_keep(task: str, c: dict[str, Any], meta: Mapping[str, Mapping[str, Any]],
                sets: Mapping[str, Mapping[str, VideoRecord]], common: set[str]) -> tuple[
        str | None, dict[str, int] | None]:
    """AH and AH-video: the feature set whose video classifier decides the video filter, and its per-video
    decisions (None when its predictions carry none)."""
    vsource = _video_source(meta, c["ah_video_source"]) if task in BINARY_TASKS else None
    keep: dict[str, int] | None = None
    if vsource is not None:
        recs = sets[vsource]
        if all("video_keep" in recs[v].attrs for v in common):
            keep = {v: int(recs[v].attrs["video_keep"]) for v in common}
        else:
            log.warning("fuse ah: %s has no video classifier decisions; no video filter", vsource)
    return vsource, keep


def _write_val_results(out: Path, task: str, names: list[str], predictions: Mapping[str, str | os.PathLike[str]],
                       chosen: PostConfig, singles: Mapping[str, PostConfig], sweeps: dict[str, Any],
                       val: SplitDataset, pre: _Pretrained | None, vsource: str | None,
                       excluded: list[tuple[str, str]]) -> tuple[MetricReport, list[Path]]:
    """``metrics.json`` (the table rows) and ``chosen.json``; returns the chosen config's val report too."""
    rows = _table_rows(task, names, chosen, singles, val)
    report = evaluate(val, chosen)
    files = [atomic_write_text(out / "metrics.json", json.dumps(
        {"task": task, "split": "val", "main": report.main, "feature_sets": names, "rows": rows},
        indent=2, default=_json_default) + "\n")]
    files.append(atomic_write_text(out / "chosen.json", json.dumps({
        "task": task,
        "feature_sets": names,
        "predictions": {n: str(p) for n, p in predictions.items()},
        "config": chosen.to_dict(),
        "val": report.metrics,
        "sweeps": sweeps,
        "pretrained_classes": None if pre is None else pre.classes,
        "video_filter_source": vsource,
        "excluded": excluded,
    }, indent=2, default=_json_default) + "\n"))
    return report, files


# --------------------------------------------------------------- selection


def _select(task: str, names: list[str], c: dict[str, Any], val: SplitDataset, pre: _Pretrained | None,
            can_filter_videos: bool, out: Path) -> tuple[PostConfig, dict[str, PostConfig], dict[str, Any], list[Path]]:
    """Coordinate-wise sweeps w -> t -> k -> video filter; returns (chosen, per-set configs, summary, files)."""
    sel = _Selection.start(task, names, c, val, pre, out)
    sel.sweep_w()
    if task == "expr" and pre is not None:
        sel.sweep_t()
    sel.sweep_k()
    sel.choose_video_filter(can_filter_videos)
    return sel.chosen(), sel.singles, sel.summary, sel.files


@dataclass
class _Selection:
    """The configs chosen so far -- the blend's (``fused``) and each single feature set's -- and what the sweeps
    recorded (``summary``) and wrote (``files``). Each step fixes one parameter on val, in post-processing order."""

    task: str
    names: list[str]
    c: dict[str, Any]
    val: SplitDataset
    out: Path
    fused: PostConfig
    singles: dict[str, PostConfig]
    summary: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    @classmethod
    def start(cls, task: str, names: list[str], c: dict[str, Any], val: SplitDataset, pre: _Pretrained | None,
              out: Path) -> _Selection:
        """Unprocessed configs: the blend (``weights`` as given, with more than one set) and each set alone."""
        common = dict(smoothing=c["smoothing"], sigma=c["sigma"], pretrained=PRETRAINED, filter_mode=c["filter_mode"],
                      ah_threshold=float(c["ah_threshold"]))
        if pre is not None:
            common["mapping"] = pre.mapping
        fused = PostConfig(task, tuple(names), weights=cls._weights(c) if len(names) > 1 else None, **common)
        singles = {n: PostConfig(task, (n,), **common) for n in names}
        return cls(task, names, c, val, out, fused, singles)

    @staticmethod
    def _weights(c: dict[str, Any]) -> tuple[float, ...] | None:
        return tuple(c["weights"]) if c["weights"] is not None else None

    @property
    def main(self) -> str:
        """The line whose sweep decides the chosen config: the blend, or the only set."""
        return "fused" if len(self.names) > 1 else self.names[0]

    def lines(self) -> dict[str, PostConfig]:
        """One curve per single set, plus the blend with several sets."""
        return {**self.singles, **({"fused": self.fused} if len(self.names) > 1 else {})}

    def record(self, param: str, results: dict[str, SweepResult], title: str) -> None:
        """Write ``sweep_<param>.csv`` and ``.png`` and note each line's winner in the summary."""
        for r in results.values():
            r.table = r.table.sort_values(param, kind="stable").reset_index(drop=True)
        table = pd.concat([r.table.assign(config=label)[["config", *r.table.columns]]
                           for label, r in results.items()], ignore_index=True)
        self.files.append(atomic_write_text(self.out / f"sweep_{param}.csv", table.to_csv(index=False)))
        self.files.append(plot_sweep(results if len(results) > 1 else next(iter(results.values())),
                                     self.out / f"sweep_{param}.png", title=title))
        self.summary[param] = {label: {"best": r.best_value, "score": r.best_score, "metric": r.metric}
                               for label, r in results.items()}

    def sweep_w(self) -> None:
        """The blend weight of the first set, with exactly two sets; more sets keep ``weights`` (or equal)."""
        names, c = self.names, self.c
        if len(names) == 2 and c["w"]:
            res = sweep_many(self.val, {"fused": self.fused}, "w", c["w"])
            self.record("w", res, f"{self.task.upper()}: blend weight of {names[0]} (val)")
            self.fused = res["fused"].best_config(self.fused)
        elif len(names) > 2:
            log.info("fuse %s: %d feature sets, blend weights %s (w is swept for two sets only)", self.task,
                     len(names), self._weights(c) or "equal")

    def sweep_t(self) -> None:
        """EXPR's confidence threshold per line; ``t = 1`` (no filtering) is always in the grid and wins ties."""
        grid = sorted(set(self.c["t"]) | {1.0}, reverse=True)  # ties -> larger t (less filtering)
        res = sweep_many(self.val, self.lines(), "t", grid)
        self.record("t", res, "EXPR: confidence threshold t (t = 1: no filtering; val)")

        def best_t(r: SweepResult) -> float | None:
            return None if float(r.best_value) >= 1.0 else float(r.best_value)

        self.singles = {n: replace(cfg, t=best_t(res[n])) for n, cfg in self.singles.items()}
        self.fused = replace(self.fused, t=best_t(res[self.main]))

    def sweep_k(self) -> None:
        """The smoothing kernel per line (frame tasks only: a video task has one prediction per video)."""
        task, c = self.task, self.c
        if not is_video_task(task) and c["k"]:
            res = sweep_many(self.val, self.lines(), "k", c["k"])
            self.record("k", res, f"{task.upper()}: smoothing kernel k ({c['smoothing']}; val)")
            self.singles = {n: replace(cfg, k=int(res[n].best_value)) for n, cfg in self.singles.items()}
            self.fused = replace(self.fused, k=int(res[self.main].best_value))
        elif is_video_task(task) and c["k"] and c["k"] != [1]:
            log.info("fuse %s: one prediction per video, no smoothing sweep", task)

    def choose_video_filter(self, can_filter_videos: bool) -> None:
        """AH and AH-video: the video filter per line, forced by ``ah_video_filter: true`` or kept where it
        raises val F1 (``auto``)."""
        mode = self.c["ah_video_filter"]
        if self.task in BINARY_TASKS and can_filter_videos and mode is not False:
            def with_filter(cfg: PostConfig) -> PostConfig:
                if mode is True:
                    return replace(cfg, video_filter=True)
                on = replace(cfg, video_filter=True)
                return on if evaluate(self.val, on).score > evaluate(self.val, cfg).score else cfg

            self.singles = {n: with_filter(cfg) for n, cfg in self.singles.items()}
            self.fused = with_filter(self.fused)
            self.summary["video_filter"] = {label: cfg.video_filter for label, cfg in self.lines().items()}
        elif self.task in BINARY_TASKS and mode is True:
            raise FuseError("ah_video_filter is true but the predictions carry no video classifier decisions")

    def chosen(self) -> PostConfig:
        """The blend with several sets, else the only set's config."""
        return self.fused if len(self.names) > 1 else self.singles[self.names[0]]


def _describe(cfg: PostConfig) -> str:
    parts = []
    if cfg.weights is not None and len(cfg.sources) > 1:
        parts.append("w=" + "/".join(f"{w:.2f}" for w in cfg.weights))
    if cfg.t is not None:
        parts.append(f"t={cfg.t:g}")
    if cfg.k > 1:
        parts.append(f"k={cfg.k} {cfg.smoothing}")
    if cfg.video_filter:
        parts.append("video filter")
    return "+".join(cfg.sources) + (" (" + ", ".join(parts) + ")" if parts else "")


def _steps(task: str, cfg: PostConfig) -> list[tuple[str, PostConfig]]:
    """The paper's table rows for one line: raw, smoothing, filtering + smoothing, + video filter."""
    raw = replace(cfg, k=1, t=None, video_filter=False)
    out = [("", raw)]
    if cfg.k > 1:
        out.append(("smoothing", replace(raw, k=cfg.k)))
    if cfg.t is not None:
        out.append(("filtering + smoothing" if cfg.k > 1 else "filtering", replace(raw, k=cfg.k, t=cfg.t)))
    if cfg.video_filter:
        label = ", ".join(x for x in ("smoothing" if cfg.k > 1 else "", "video filter") if x)
        out.append((label, cfg))
    return out


def _table_rows(task: str, names: list[str], chosen: PostConfig, singles: Mapping[str, PostConfig],
                val: SplitDataset) -> list[dict[str, Any]]:
    lines = [(n, [n], singles[n]) for n in names]
    if len(names) > 1:
        lines.append(("+".join(names), names, chosen))
    rows = []
    for title, sets, cfg in lines:
        for suffix, step in _steps(task, cfg):
            rep = evaluate(val, step)
            rows.append({
                "name": f"{title}, {suffix}" if suffix else title,
                "feature_sets": sets,
                "ensemble": len(sets) > 1,
                "post": {"weights": step.weights, "k": step.k, "smoothing": step.smoothing, "t": step.t,
                         "video_filter": step.video_filter},
                "chosen": step == chosen,
                "metrics": rep.metrics,
                "per_class": rep.per_class,
                "n": rep.n,
            })
    return rows


def _write_test(path: Path, rerun: RerunKey, task: str, names: list[str], cfg: PostConfig, vids: list[str],
                sources: Mapping[str, Mapping[str, np.ndarray]], frames: Mapping[str, np.ndarray],
                keep: Mapping[str, int] | None, excluded: list[tuple[str, str]]) -> Path:
    prov = Provenance.of(rerun, model="+".join(names), resolved={"chosen": cfg.to_dict()})
    with ShardWriter(path, prov) as w:
        for vid in vids:
            per = {n: sources[n][vid] for n in cfg.needed_sources}
            k = True if keep is None else bool(keep.get(vid, 1))
            post = postprocess_video(per, cfg, k)
            dec = decide(post, cfg)
            attrs: dict[str, Any] = {"split": "test", "n_frames": int(len(frames[vid])), "task": task}
            if task in BINARY_TASKS and keep is not None:
                attrs["video_keep"] = int(k)
            w.add(VideoRecord(vid, {"decisions": dec, "posteriors": post, "timestamps": frames[vid]}, attrs))
        w.set_skipped(list(excluded))
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (Path, os.PathLike)):
        return os.fspath(o)
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def run(job: Job) -> None:
    """The rule: ``input.predictions`` (in the fusion's order), ``input.pretrained``, ``input.units``,
    ``input.media`` -> ``output[0]``, the fusion's folder."""
    joblog.setup(job.log)
    task, fusion = job.wildcards.task, job.wildcards.fusion
    options = FuseOptions.from_config(job.config, task=task, fusion=fusion)
    run_fuse(
        task,
        job.input.units,
        list(job.input.media),
        dict(zip(options.feature_sets, job.input.predictions, strict=True)),
        list(job.input.pretrained) or None,
        job.output[0],
        options,
        key=job.params.key,
    )
