"""The ``learn`` stage: feature shards + labels -> a trained head, its val/test posteriors and val metrics.

One call (:func:`run_learn`) per task and feature set, from ``workflow/scripts/learn.py``. The training
itself is :mod:`affectflow.learn.pipeline` (its module docstring has the output contract); this module
checks the options, keys the job and hands typed settings over.

Options and the full behaviour: docs/learning.md, section "learn".
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from affectflow.core import joblog
from affectflow.core.job import Job
from affectflow.core.options import OptionsError, StageOptions, added, one_of, wiring
from affectflow.core.vocabulary import BINARY_TASKS, TASKS, is_video_task
from affectflow.io.store import Provenance
from affectflow.learn.errors import LearnError
from affectflow.learn.settings import LearnSettings, TrainConfig
from affectflow.learn.stats import AUDIO_STATS, STAT_PARTS
from affectflow.plan.rerun import PREDICTED, Stage, stage_key

if TYPE_CHECKING:  # torch: loaded when a job runs, not at every workflow parse (the catalogue)
    from affectflow.learn.pipeline import LearnResult

FACE_INPUTS = ("embeddings", "logits", "both")

#: bump when heads, predictions or metrics change for the same features, labels and options (docs/reruns.md)
STAGE_VERSION = 2  # 2: AH heads selected on, and scored with, macro F1 over both classes (was the A/H class's F1)
MISSING_FACE = ("auto", "drop", "carry_last", "other_modalities")
TEXT_FILL = ("auto", "zeros", "nearest")
EMI_WEIGHTS = ("dominant", "mass", "uniform")


def _override(common: Mapping[str, Any], task: Mapping[str, Any]) -> dict[str, Any]:
    """A task's section over ``common`` key by key, nested mappings (``train``) too: ``expr: {train: {lr: ..}}``
    changes the learning rate and keeps common's epochs and patience, as the schema says."""
    merged = dict(common)
    for key, value in task.items():
        base = merged.get(key)
        merged[key] = _override(base, value) if isinstance(base, Mapping) and isinstance(value, Mapping) else value
    return merged


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
    on_label_mismatch: str = "fit"
    audio_stat: str = added("frames")

    def check(self) -> None:
        one_of("task", self.task, TASKS)
        self._set("features", tuple(self.features))
        one_of("missing_face", self.missing_face, MISSING_FACE)
        one_of("text_fill", self.text_fill, TEXT_FILL)
        one_of("face_input", self.face_input, FACE_INPUTS)
        one_of("on_label_mismatch", self.on_label_mismatch, ("fit", "error", "skip"))
        one_of("audio_stat", self.audio_stat, AUDIO_STATS)
        try:  # every training field, defaults filled in: `train: {}` and the defaults written out are one key
            self._set("train", dict(vars(TrainConfig.from_dict(dict(self.train or {})))))
        except (TypeError, ValueError) as e:
            raise ValueError(f"train: {e}") from None
        self._set("stat_parts", tuple(self.stat_parts))
        for part in self.stat_parts:
            one_of("stat_parts", part, tuple(STAT_PARTS))
        if isinstance(self.emi_weights, str):
            one_of("emi_weights", self.emi_weights, EMI_WEIGHTS)
        else:
            self._set("emi_weights", tuple(float(x) for x in self.emi_weights))
            if len(self.emi_weights) != 6 or min(self.emi_weights) < 0 or not sum(self.emi_weights) > 0:
                raise ValueError(f"emi_weights: six non-negative numbers, not all zero, got {list(self.emi_weights)}")

    @classmethod
    def config_key(cls, name: str) -> str:
        return f"learn.*.{name}"  # common or a task

    def unused_fields(self) -> frozenset[str]:
        """The options of other tasks (``learn.common`` gives every task all of them) and of modalities this
        feature set does not have."""
        kinds = {label.split("/", 1)[0] for label in self.features}
        unused = set()
        if self.task != "emi":
            unused.add("emi_weights")
        else:
            unused.add("class_weighted")  # EMI's loss weights are emi_weights
        if not is_video_task(self.task):
            unused |= {"stat_parts", "audio_stat"}
        if self.task not in BINARY_TASKS:
            unused |= {"ah_video_classifier", "ah_video_C"}
        if "face" not in kinds:
            unused |= {"missing_face", "face_input"}
        if "text" not in kinds:
            unused.add("text_fill")
        if "audio" not in kinds:
            unused.add("audio_stat")
        return frozenset(unused)

    @classmethod
    def from_config(cls, config, **wired):
        """``learn.common``, then the task's section, then the feature set's (``learn.sets.<feature_set>``, with
        ``feature_set=`` given: a set's own STAT parts or face input, as the paper's rows differ by set)."""
        learn = config.get("learn") or {}
        task = wired.get("task", "expr")
        feature_set = wired.pop("feature_set", None)
        sections = {"common": learn.get("common") or {}, task: learn.get(task) or {},
                    f"sets.{feature_set}": (learn.get("sets") or {}).get(feature_set) or {}}
        merged: dict[str, Any] = {}
        for values in sections.values():
            merged = _override(merged, values)
        try:
            return cls.from_mapping(merged, **wired)
        except OptionsError as e:  # name the section the bad value came from: learn.<section>.x, the last one
            head, sep, rest = str(e).partition(": ")
            name = rest.split(" ", 1)[0].rstrip(":")
            where = next((s for s, values in reversed(sections.items()) if name in values), None)
            if head != cls.SECTION or not sep or where is None:
                raise
            raise OptionsError(f"learn.{where}.{rest}") from None

    def settings(self) -> LearnSettings:
        """The options as training reads them (``auto`` still unresolved: that needs the modalities; another
        task's or modality's at their defaults: :meth:`effective`)."""
        o = self.effective()
        return LearnSettings(
            missing_face=o.missing_face, text_fill=o.text_fill, face_input=o.face_input,
            train=TrainConfig.from_dict(dict(o.train)), class_weighted=o.class_weighted,
            emi_weights=o.emi_weights, ah_video_classifier=o.ah_video_classifier,
            ah_video_C=o.ah_video_C, standardize=o.standardize, stat_parts=o.stat_parts,
            on_label_mismatch=o.on_label_mismatch, audio_stat=o.audio_stat,
        )


#: what the plan reads of this stage (affectflow.stages.catalogue)
STAGE = Stage(
    "learn",
    STAGE_VERSION,
    LearnOptions,
    ("learn",),
    downstream=f"fuse of that set, submit_<task>, report_tables, bundle; {PREDICTED}",
)


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
    if task not in TASKS:
        raise LearnError(f"unknown task {task!r}; choose one of {TASKS}")
    try:
        opts = LearnOptions.coerce(cfg, task=task, features=tuple(features))
        rerun = stage_key(STAGE, opts, expected=key)
    except OptionsError as e:
        raise LearnError(str(e)) from None
    from affectflow.learn.pipeline import learn_task

    return learn_task(task, units_tsv, media_shards, features, out_dir, opts.settings(), Provenance.of(rerun))


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
        LearnOptions.from_config(job.config, task=task, features=tuple(labels), feature_set=job.wildcards.feature_set),
        key=job.params.key,
    )
