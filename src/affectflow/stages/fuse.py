"""The ``fuse`` stage: learned posteriors of several feature sets -> one chosen post-processing, swept on val.

One call (:func:`run_fuse`) per task and fusion, from ``workflow/scripts/fuse.py``. The fusion itself is
:mod:`affectflow.fuse.pipeline` (its module docstring has the output contract); this module checks the
options, keys the job and hands typed settings over.

Options and the full behaviour: docs/learning.md, section "fuse".
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from affectflow.core import joblog
from affectflow.core.job import Job
from affectflow.core.options import OptionsError, StageOptions, added, one_of, wiring
from affectflow.core.vocabulary import BINARY_TASKS, TASKS, is_video_task
from affectflow.fuse.errors import FuseError
from affectflow.fuse.settings import SMOOTHINGS, FuseSettings
from affectflow.io.store import Provenance
from affectflow.plan.rerun import PREDICTED, Stage, stage_key

if TYPE_CHECKING:  # scikit-learn: loaded when a job runs, not at every workflow parse (the catalogue)
    from affectflow.fuse.pipeline import FuseResult

#: bump when fused predictions, sweeps or metrics change for the same inputs and options (docs/reruns.md)
STAGE_VERSION = 3  # 2: AH sweeps select on macro F1 over both classes (was the A/H class's F1)
# 3: a filtering line's "smoothing" row at the kernel chosen without filtering (sweep_k_without_filtering)
FILTER_MODES = ("onehot", "mapped")


@dataclass(frozen=True)
class FuseOptions(StageOptions):
    """One fusion of config ``fusions`` (its ``feature_sets`` and sweep grids); ``task`` is wiring.

    Grids are sets: ``k: [5, 1, 3]`` and ``k: [1, 3, 5]`` are one key.
    """

    SECTION = "fusions"
    #: the face model whose softmax filters EXPR frames (an input path only, so no key saw it before)
    TOP_LEVEL = ("pretrained",)

    task: str = wiring("expr")
    feature_sets: tuple[str, ...] = ()
    k: tuple[int, ...] = (1, 3, 5, 9, 15, 25, 35, 51)
    smoothing: str = "box"
    sigma: float | None = None
    t: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
    w: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    weights: tuple[float, ...] | None = None
    weights_on_val: bool = added(False)
    ah_video_filter: str | bool = "auto"
    ah_video_source: str | None = None
    ah_threshold: float = 0.5
    filter_mode: str = "onehot"
    pretrained: str | None = added(None)

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
            if min(self.weights) < 0 or not sum(self.weights) > 0:
                raise ValueError(f"weights: non-negative, not all zero, got {list(self.weights)}")
            if self.weights_on_val:
                raise ValueError("weights_on_val: the weights are given (weights); set one or the other")
        if self.weights_on_val and len(self.feature_sets) > 2:
            from affectflow.fuse.selection import MOST_WEIGHT_VECTORS, simplex

            found = len(simplex(len(self.feature_sets), self.w))
            if not found or found > MOST_WEIGHT_VECTORS:
                raise ValueError(f"weights_on_val: the w grid {list(self.w)} gives {found} weight vectors of "
                                 f"{len(self.feature_sets)} sets that sum to 1 (1 to {MOST_WEIGHT_VECTORS} are "
                                 "evaluated): choose w's values so that some sum to 1, fewer for many sets")
        if self.ah_video_source is not None and self.feature_sets and self.ah_video_source not in self.feature_sets:
            raise ValueError(f"ah_video_source: {self.ah_video_source!r} is not one of its feature_sets "
                             f"{list(self.feature_sets)}")
        one_of("ah_video_filter", self.ah_video_filter, ("auto", True, False))
        one_of("filter_mode", self.filter_mode, FILTER_MODES)

    @classmethod
    def config_key(cls, name: str) -> str:
        return name if name in cls.TOP_LEVEL else f"fusions.*.{name}"

    def unused_fields(self) -> frozenset[str]:
        """A fusion's options of other tasks (one ``fusions`` entry serves every task): the confidence filter is
        EXPR's, the threshold and video filter AH's and AH-video's, and smoothing is per frame."""
        unused = set()
        if self.task != "expr":
            unused |= {"t", "filter_mode", "pretrained"}
        if self.task not in BINARY_TASKS:
            unused |= {"ah_threshold", "ah_video_filter", "ah_video_source"}
        if is_video_task(self.task):
            unused |= {"k", "smoothing", "sigma"}
        if 0 < len(self.feature_sets) <= 2:
            unused.add("weights_on_val")  # two sets sweep w
        return frozenset(unused)

    @classmethod
    def from_config(cls, config, **wired):
        fusion = wired.pop("fusion")
        fusions = config.get("fusions") or {}
        if fusion not in fusions:
            raise OptionsError(f"fusions: no fusion named {fusion!r}")
        try:
            given = fusions[fusion] or {}
            if any(k in given for k in cls.TOP_LEVEL):
                raise OptionsError(f"fusions.{fusion}: {[k for k in cls.TOP_LEVEL if k in given]} is set at the "
                                   "config's top level, for every fusion")
            return cls.from_mapping({**given, **cls.top_level(config)}, **wired)
        except OptionsError as e:  # name the fusion: fusions.<name>.weights, not fusions: weights
            head, sep, rest = str(e).partition(": ")
            field = rest.split(":", 1)[0]
            named = f"fusions.{fusion}.{rest}" if field in cls.config_fields() else f"fusions.{fusion}: {rest}"
            raise OptionsError(named if head == cls.SECTION and sep else str(e)) from None

    def settings(self) -> FuseSettings:
        """The options as the fusion reads them (another task's at their defaults: :meth:`effective`)."""
        o = self.effective()
        return FuseSettings(k=o.k, smoothing=o.smoothing, sigma=o.sigma, t=o.t, w=o.w, weights=o.weights,
                            ah_video_filter=o.ah_video_filter, ah_video_source=o.ah_video_source,
                            ah_threshold=o.ah_threshold, filter_mode=o.filter_mode,
                            weights_on_val=bool(o.weights_on_val))


#: what the plan reads of this stage (affectflow.stages.catalogue)
STAGE = Stage(
    "fuse",
    STAGE_VERSION,
    FuseOptions,
    ("fuse",),
    downstream=f"submit_<task> (of submit_fusion), report_tables, bundle; {PREDICTED}",
)


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
    opts = fuse_options(task, cfg, list(predictions))
    rerun = stage_key(STAGE, opts, expected=key)
    from affectflow.fuse.pipeline import fuse_task

    return fuse_task(task, units_tsv, media_shards, predictions, pretrained, out_dir, opts.settings(),
                     Provenance.of(rerun))


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
