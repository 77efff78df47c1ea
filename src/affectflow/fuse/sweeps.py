"""Hyperparameter sweeps of k (smoothing), t (confidence threshold) and w (blend weight), on val only.

The paper picks k, t and w on the validation split (Figures 2-5, Table 1). Choosing them on test would
leak test labels into the submission, so the API makes that impossible by construction: predictions and
labels travel in a :class:`SplitDataset` labelled with its split, :func:`sweep` and :func:`sweep_many`
(the only functions that *select* a value) raise :class:`SelectionOnTestError` for any split but
``"val"``, and :func:`evaluate` scores a fixed config on any split without choosing.

Output contract: a :class:`SweepResult` per configuration (the metric per grid value, the best value and
score; ties go to the first in grid order), its CSV table, and PNG plots (:func:`plot_sweep`).

Options and the full behaviour: docs/learning.md, section "Sweeps".
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from affectflow.core.errors import AffectflowError
from affectflow.core.files import atomic_write, atomic_write_text
from affectflow.core.vocabulary import SPLITS, TASKS, is_video_task
from affectflow.evaluate.metrics import MetricReport, ah_report, ah_video_report, emi_report, expr_report
from affectflow.fuse.postprocess import PostConfig, decide, fused_posteriors, positive_probability

SELECTION_SPLIT = "val"


class SelectionOnTestError(AffectflowError, ValueError):
    """A hyperparameter selection was attempted on a split other than validation."""


@dataclass(frozen=True)
class SplitDataset:
    """Per-video labels and posteriors of one split and one task.

    ``labels[video]``: frame labels (EXPR: class or -1, AH: 0/1) or the EMI
    intensity vector. ``sources[name][video]``: posteriors of one head (or the
    pre-trained model's probabilities) with one row per labelled frame (EXPR/AH)
    or one vector per video (EMI). ``video_keep``: the AH video classifier's
    decisions, needed when a config enables the video filter.
    """

    split: str
    task: str
    labels: Mapping[str, np.ndarray]
    sources: Mapping[str, Mapping[str, np.ndarray]]
    video_keep: Mapping[str, int | bool] | None = None

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if not self.labels:
            raise ValueError("no labelled video in the dataset")
        vids = set(self.labels)
        for name, per_video in self.sources.items():
            if set(per_video) != vids:
                extra, missing = sorted(set(per_video) - vids)[:3], sorted(vids - set(per_video))[:3]
                raise ValueError(f"source {name!r}: videos differ from the labels (extra {extra}, missing {missing})")
            if not is_video_task(self.task):
                for v in vids:
                    if len(per_video[v]) != len(self.labels[v]):
                        raise ValueError(
                            f"source {name!r}, video {v!r}: {len(per_video[v])} posteriors for "
                            f"{len(self.labels[v])} labels"
                        )
        if self.video_keep is not None and not vids <= set(self.video_keep):
            raise ValueError("video_keep lacks decisions for some videos")

    @property
    def videos(self) -> list[str]:
        return sorted(self.labels)


def evaluate(dataset: SplitDataset, cfg: PostConfig) -> MetricReport:
    """Score one fixed post-processing config on any split (reporting, not selection)."""
    if cfg.task != dataset.task:
        raise ValueError(f"config is for {cfg.task}, dataset for {dataset.task}")
    posteriors = fused_posteriors(dataset.sources, cfg, dataset.video_keep)
    preds = {v: decide(p, cfg) for v, p in posteriors.items()}
    vids = dataset.videos
    conf = cfg.to_dict()
    if dataset.task == "expr":
        yt = np.concatenate([np.asarray(dataset.labels[v]).ravel() for v in vids])
        yp = np.concatenate([preds[v] for v in vids])
        return expr_report(yt, yp, dataset.split, conf)
    if dataset.task == "ah":
        return ah_report({v: dataset.labels[v] for v in vids}, preds, dataset.split, conf,
                         {v: positive_probability(posteriors[v]) for v in vids})
    if dataset.task == "ah_video":
        yt = np.concatenate([np.asarray(dataset.labels[v]).ravel() for v in vids])
        scores = np.array([positive_probability(posteriors[v])[0] for v in vids])
        return ah_video_report(yt, np.concatenate([np.ravel(preds[v]) for v in vids]), dataset.split, conf,
                               scores=scores)
    yt = np.stack([np.asarray(dataset.labels[v], dtype=np.float64) for v in vids])
    yp = np.stack([preds[v] for v in vids])
    return emi_report(yt, yp, dataset.split, conf)


@dataclass
class SweepResult:
    """One swept parameter: the table of metric values and the selected value."""

    param: str
    metric: str
    table: pd.DataFrame
    best_value: Any
    best_score: float
    split: str = SELECTION_SPLIT
    base_config: dict[str, Any] = field(default_factory=dict)

    def best_config(self, base: PostConfig) -> PostConfig:
        return base.with_param(self.param, self.best_value)

    def save_table(self, path: str | os.PathLike[str]) -> Path:
        """CSV of the table, written atomically."""
        return atomic_write_text(path, self.table.to_csv(index=False))


def _require_val(dataset: SplitDataset) -> None:
    if dataset.split != SELECTION_SPLIT:
        raise SelectionOnTestError(
            f"hyperparameters are selected on the {SELECTION_SPLIT!r} split only; got a {dataset.split!r} dataset "
            "(use evaluate() to report a fixed config on it)"
        )


def sweep(
    dataset: SplitDataset,
    base: PostConfig,
    param: str,
    values: Sequence[Any],
    metric: str | None = None,
) -> SweepResult:
    """Evaluate ``base.with_param(param, v)`` for every v on the validation split and pick the best.

    ``metric`` defaults to the task's headline metric (EXPR and AH macro F1,
    EMI mean Pearson r); every metric of the report is kept in the table.
    """
    _require_val(dataset)
    if len(values) == 0:
        raise ValueError("empty grid")
    rows = []
    for v in values:
        report = evaluate(dataset, base.with_param(param, v))
        rows.append({param: v, **report.metrics})
    table = pd.DataFrame(rows)
    name = metric or report.main
    if name not in table.columns:
        raise ValueError(f"metric {name!r} not among {list(report.metrics)}")
    scores = table[name].to_numpy(dtype=np.float64)
    if not np.isfinite(scores).any():
        raise ValueError(f"metric {name!r} is not finite for any grid value")
    best = int(np.nanargmax(scores))  # first maximum in grid order
    return SweepResult(param, name, table, values[best], float(scores[best]), dataset.split, base.to_dict())


def sweep_many(
    dataset: SplitDataset,
    configs: Mapping[str, PostConfig],
    param: str,
    values: Sequence[Any],
    metric: str | None = None,
) -> dict[str, SweepResult]:
    """:func:`sweep` for several labelled configurations (one curve each in a figure)."""
    _require_val(dataset)
    return {label: sweep(dataset, cfg, param, values, metric) for label, cfg in configs.items()}


_AXIS_LABELS = {
    "k": "smoothing kernel size k",
    "t": "filtering threshold t",
    "w": "blending weight w",
    "f1": "macro F1-score",  # EXPR over 8 classes, AH over both
    "accuracy": "accuracy",
    "pearson_r": "mean Pearson r",
    "video_f1": "video-level macro F1-score",
    "f1_ah": "F1-score of the A/H class",
    "ap_ah": "average precision of the A/H class",
}


def plot_sweep(
    results: SweepResult | Mapping[str, SweepResult],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    percent: bool = True,
    mark_best: bool = True,
) -> Path:
    """Write a PNG of metric vs swept parameter, one line per configuration (paper Figs. 2-5).

    Scores are shown in percent by default, like the paper's figures. The
    file is written to a temp name and renamed into place.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    series = {"": results} if isinstance(results, SweepResult) else dict(results)
    if not series:
        raise ValueError("nothing to plot")
    params = {r.param for r in series.values()}
    metrics = {r.metric for r in series.values()}
    if len(params) != 1 or len(metrics) != 1:
        raise ValueError(f"results sweep different parameters/metrics: {params}, {metrics}")
    param, metric = params.pop(), metrics.pop()
    scale = 100.0 if percent else 1.0

    fig = Figure(figsize=(6.0, 4.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, r in series.items():
        x = [np.nan if v is None else float(v) for v in r.table[param]]
        y = r.table[metric].to_numpy(dtype=np.float64) * scale
        (line,) = ax.plot(x, y, marker="o", markersize=3, label=label or None)
        if mark_best and r.best_value is not None and not math.isnan(r.best_score):
            ax.plot(
                [float(r.best_value)],
                [r.best_score * scale],
                marker="*",
                markersize=12,
                color=line.get_color(),
                markeredgecolor="k",
            )
    ax.set_xlabel(xlabel or _AXIS_LABELS.get(param, param))
    ax.set_ylabel((ylabel or _AXIS_LABELS.get(metric, metric)) + (", %" if percent else ""))
    if title:
        ax.set_title(title)
    if any(series):
        ax.legend(loc="best", fontsize="small")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()

    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"), suffix=".png")
