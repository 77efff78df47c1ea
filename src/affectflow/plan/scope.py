"""What a run does beyond extraction: which tasks it can train, and which bundle gives its task columns.

A config that only names a folder of videos inherits the demo's tasks; training them would fail in
every learn job. Deciding at parse time, with one line per skipped task, turns that into a run that
extracts and predicts per frame. A bundle (config ``bundle:``) brings its own models and feature
settings, which are merged into the config here so that extraction matches what its heads learned on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from affectflow.core.vocabulary import TASKS
from affectflow.plan.checks import ConfigError, check_people, check_templates
from affectflow.predict.bundle import FEATURE_SETTINGS, RETIRED_SETTINGS, SETTINGS_SECTIONS, Bundle

log = logging.getLogger("affectflow.plan")


def trainable_tasks(tasks: Iterable[str], units: Iterable[Any],
                    bundle: Bundle | None = None) -> tuple[list[str], dict[str, str]]:
    """The tasks with labelled train and val videos, and a message for each task without any labels (a folder
    of videos inherits the default tasks). Labels for one of the two splits only are a :class:`ConfigError`:
    the user configured that task's dataset, and a run that quietly trains nothing for it is a wasted run.
    A task the datasets label for training that ``tasks`` leaves out gets a line too, for the same reason.

    With an applied ``bundle`` the run trains nothing: the bundle's feature settings replace the config's,
    so training would redo the run's extraction under another run's settings, and its predictions table
    would show the bundle's task columns beside submissions from its own heads. A task this run could
    train is then a :class:`ConfigError` that says the two ways out.
    """
    tasks, units = list(tasks), list(units)
    splits = {task: {u.split for u in units if u.labels(task)} & {"train", "val"} for task in tasks}
    labelled = [task for task in tasks if splits[task]]
    if bundle is not None and labelled:  # before the half-labelled case: its advice is for training
        raise ConfigError(
            f"bundle: {bundle.root}: a run applies a bundle or trains, not both, and this run's datasets label "
            f"{', '.join(labelled)} for training. Remove `bundle:` to train on them, or set `tasks: []` to apply "
            "the bundle to these videos without training (their labels are then not used)")
    keep: list[str] = []
    skipped: dict[str, str] = {}
    for task in tasks:
        missing = [s for s in ("train", "val") if s not in splits[task]]
        if len(missing) == 2:
            predicted = "; the bundle predicts it" if bundle is not None and task in bundle.tasks else ""
            skipped[task] = f"task {task} skipped: no dataset of this run has {task} labels{predicted}"
        elif missing:
            has = sorted(splits[task])
            raise ConfigError(f"task {task}: the datasets give {task} labels for split {has[0]!r} but none for "
                              f"{missing[0]!r}; training needs both (add the {missing[0]} labels, or leave {task} "
                              "out of `tasks`)")
        else:
            keep.append(task)
    if bundle is None:  # with a bundle, `tasks: []` leaving labelled tasks out is the way to apply it
        for task in (t for t in TASKS if t not in splits):
            if {u.split for u in units if u.labels(task)} & {"train", "val"}:
                skipped[task] = (f"task {task} not trained: this run's datasets label it, and the config's "
                                 f"`tasks` ({', '.join(tasks) or 'none'}) leaves it out; add it there to train it")
    return keep, skipped


def run_notes(config: Mapping[str, Any], active: Iterable[str], submitting: Iterable[str]) -> list[str]:
    """Lines for what a run will quietly not do, or do with weights that carry no emotion, said at its start:
    a stand-in a merged config.yaml brought in goes unnoticed until the run page, and a trained task without
    a feature set or a submission without ``submit_fusion`` plans no job and says nothing."""
    feats = config.get("features") or {}
    used = [m for kind in ("face", "audio") for m in feats.get(kind) or []]
    lines = [f"features.standins: {name} runs on random-weight stand-in weights: its features, and the heads and "
             "predictions that use them, carry no emotion (`features: {standins: []}` in your file uses the real "
             "weights)" for name in dict.fromkeys(used) if name in set(feats.get("standins") or ())]
    active = list(active)
    if active and not config.get("feature_sets"):
        lines.append(f"tasks {', '.join(active)}: no feature_sets to train on, so no learn, fuse or submission job")
    elif list(submitting) and not config.get("submit_fusion"):
        lines.append("submit_fusion is not set: no submission files and no bundle (set it to one of fusions)")
    return lines


def submitted_tasks(tasks: Iterable[str], units: Iterable[Any]) -> tuple[list[str], dict[str, str]]:
    """The tasks with test videos of their own (``Unit.is_test_of``), and a line for each trained task without:
    a release given without its test list (BAH frame level, or Hume-Vidmimic2 without ``test_split.csv``) is
    trained, fused and reported, and has nothing to submit."""
    units = list(units)
    keep: list[str] = []
    without: dict[str, str] = {}
    for task in tasks:
        if any(u.is_test_of(task) for u in units):
            keep.append(task)
        else:
            without[task] = (f"task {task}: no test video in this run's test lists, so no submission (trained, "
                             "fused and reported as usual)")
    return keep, without


@dataclass(frozen=True)
class RunTasks:
    """The tasks a run trains and submits, and the lines that say what it leaves out."""

    active: list[str]
    submitting: list[str]
    skipped: dict[str, str]  # tasks not trained, and why (a warning at the run's start)
    no_tests: dict[str, str]  # trained tasks without a submission, and why


def run_tasks(config: Mapping[str, Any], units: Iterable[Any], bundle: Bundle | None = None,
              workflow_dir: str | os.PathLike[str] = ".",
              before_checks: Callable[[RunTasks], None] | None = None) -> RunTasks:
    """What the workflow decides at its start and ``affectflow plan`` must decide the same way: the trainable
    and submitted tasks (:func:`trainable_tasks`, :func:`submitted_tasks`), then the checks that need them
    (``faces.people``, the submitting tasks' templates). One function, so the two entry points cannot drift
    (they did: the plan once lacked the people check). :class:`ConfigError` for a config the run would refuse.

    ``before_checks``: called with the tasks before the checks run, so that the lines saying which tasks are
    left out come before a check's error (the workflow logs them there)."""
    units = list(units)
    active, skipped = trainable_tasks(config["tasks"], units, bundle)
    submitting, no_tests = submitted_tasks(active, units)
    tasks = RunTasks(active, submitting, skipped, no_tests)
    if before_checks is not None:
        before_checks(tasks)
    check_people({**config, "tasks": active})
    check_templates(config, submitting if config["submit_fusion"] else [], workflow_dir)
    return tasks


@dataclass
class BundleMerge:
    """What :func:`merge_bundle` changed in the config, for the log."""

    added_models: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def lines(self, bundle: Bundle) -> list[str]:
        out = [f"applying bundle {bundle.root} (tasks {', '.join(bundle.tasks)}; from run {bundle.run_name!r})"]
        if self.added_models:
            out.append(f"bundle: models added to features: {', '.join(self.added_models)}")
        out += [f"bundle: {c}" for c in self.changed]
        return out


#: added options a bundle's run need not share: where crops are cut (within a grey level; the applying machine's
#: choice, a GPU node's ``detector``), and ``people`` (``all`` with a bundle is refused, by check_people)
NOT_FROM_BUNDLE = {"faces": ("crop_on", "people")}


def merge_bundle(config: MutableMapping[str, Any], bundle: Bundle,
                 added: Mapping[str, Mapping[str, Any]] | None = None) -> BundleMerge:
    """Put the bundle's models and feature settings into ``config`` (the bundle wins where they differ).

    ``added``: per config section, the options added after bundles existed, at their defaults
    (``StageOptions.added_defaults``). A bundle leaves such an option out when its run had it at the default
    (or did not have it yet), so the default is what its heads saw: it is put into the config too, or a run
    that applies the bundle with ``faces.crop_shape: box`` would feed its heads crops they never saw.
    """
    merge = BundleMerge()
    feats = config.setdefault("features", {})
    for key in ("face", "audio", "asr", "text", "standins"):
        feats[key] = list(feats.get(key) or [])

    def add(kind: str, name: str) -> None:
        if name not in feats[kind]:
            feats[kind].append(name)
            merge.added_models.append(f"{kind}/{name}")

    for label in bundle.labels():
        kind, _, rest = label.partition("/")
        if kind == "text":
            asr, _, model = rest.partition("/")
            add("asr", asr)
            add("text", model)
        else:
            add(kind, rest)
    for t in bundle.tasks.values():
        if t.pretrained:
            add("face", t.pretrained)
    for name, m in bundle.models.items():
        if m.get("standin") and name not in feats["standins"]:
            feats["standins"].append(name)
    settings = bundle.settings
    for section in SETTINGS_SECTIONS:
        defaults = {k: v for k, v in ((added or {}).get(section) or {}).items()
                    if k not in NOT_FROM_BUNDLE.get(section, ())}
        _merge_section(config.setdefault(section, {}), {**defaults, **(settings.get(section) or {})}, section, merge)
    _merge_section(feats, {k: v for k, v in (settings.get("features") or {}).items() if k in FEATURE_SETTINGS},
                   "features", merge)
    return merge


def check_bundle_weights(config: Mapping[str, Any], bundle: Bundle) -> None:
    """Refuse, at the start, weights that differ from those the bundle's heads were trained on, where the
    config already says which weights the run will use (the registry's hash, or the user's pin).

    The ``frame_predictions`` jobs compare the weight files the run verified with the bundle's hashes
    too, but only after every extraction job has run: on a dataset, hours later. A stand-in is built
    here, so its bytes are only known then; a model the bundle used as a stand-in is made one in the
    run by :func:`merge_bundle`, and the reverse (the run standing in for weights the bundle had) is
    refused here.
    """
    from affectflow.models.catalogue.registry import find

    pins = dict(config.get("model_pins") or {})
    standins = set((config.get("features") or {}).get("standins") or ())
    for name, m in bundle.models.items():
        if m.get("standin"):
            continue
        if name in standins:
            raise ConfigError(f"bundle: {bundle.root}: its heads were trained on the real weights of {name!r}; "
                              f"remove {name} from features.standins (config.yaml lists stand-ins: "
                              "`features: {standins: []}` in your file replaces that list)")
        spec = find(name)
        if spec is None:
            raise ConfigError(f"bundle: {bundle.root}: model {name!r} is not in this affectflow's registry "
                              f"(the bundle was made by affectflow {bundle.version or 'unknown'})")
        for wf in spec.files:
            want = (m.get("files") or {}).get(wf.name)
            have = pins.get(wf.name) or wf.sha256
            if want and have and want != have:
                source = "model_pins" if wf.name in pins else "the registry"
                raise ConfigError(
                    f"bundle: {bundle.root}: model {name!r} file {wf.name!r}: the bundle's heads were trained on "
                    f"weights with sha256 {want}, but this run would use {have} ({source}); use the bundle's "
                    f"weights (model_pins: {{{wf.name}: {want}}}, the file in models_dir)")


def _merge_section(target: MutableMapping[str, Any], given: Mapping[str, Any], section: str,
                   merge: BundleMerge) -> None:
    retired = RETIRED_SETTINGS.get(section, {})
    for k, v in given.items():
        if k in retired and v == retired[k]:
            continue
        if k in target and target[k] != v:
            merge.changed.append(f"{section}.{k} = {v!r} (the bundle's setting; the config had {target[k]!r})")
        target[k] = v


@dataclass(frozen=True)
class PredictionScope:
    """Which bundle gives the predictions table its task columns, and what it reads: the applied one
    (config ``bundle``), else the run's own when it trains a task and names a ``submit_fusion``, else none.
    The workflow plans with it and each job rebuilds it from the same config, so both agree."""

    bundle: str | None = None
    own: bool = False
    tasks: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    pretrained: str | None = None
    digest: str = ""  # an applied bundle's manifest sha256 ("" for the run's own: it is an input file)
    models: tuple[str, ...] = ()  # an applied bundle's models (their weights are checked against it)
    fusion: str = ""  # the run's own bundle: the fusion it is taken from

    @classmethod
    def of(cls, config: Mapping[str, Any], applied: Bundle | None) -> PredictionScope:
        """``config`` as the workflow left it: ``tasks`` holds only the tasks this run trains."""
        if applied is None:
            return cls.own_bundle(config)
        pre = next((t.pretrained for t in applied.tasks.values() if t.pretrained), None)
        return cls(str(config["bundle"]), False, tuple(applied.tasks), tuple(applied.labels()), pre,
                   applied.digest, tuple(applied.model_names()))

    @classmethod
    def own_bundle(cls, config: Mapping[str, Any]) -> PredictionScope:
        """The run's own bundle (``own`` is False when the run trains no task, as in a run that applies one,
        or names no ``submit_fusion``)."""
        fusion = config.get("submit_fusion")
        if not (config.get("tasks") and fusion):
            return cls()
        sets = config["fusions"][fusion]["feature_sets"]
        labels = tuple(dict.fromkeys(lb for fs in sets for lb in config["feature_sets"][fs]))
        pre = config.get("pretrained") if "expr" in config["tasks"] else None
        out = f"{config['results_dir']}/{config['run_name']}/bundle"
        return cls(out, True, tuple(config["tasks"]), labels, pre or None, fusion=fusion)

    def own_models(self) -> list[str]:
        """The models the run's own bundle records: those its heads read (text: the ASR and the
        encoder) and the EXPR filter's face model."""
        names = [m for lb in self.labels for m in lb.split("/")[1:]]
        return list(dict.fromkeys(names + ([self.pretrained] if self.pretrained else [])))

    def bundle_wiring(self) -> dict[str, Any]:
        """The run's own bundle job: what it bundles (nothing when the run trains no task)."""
        return {"tasks": self.tasks if self.own else (), "fusion": self.fusion, "pretrained": self.pretrained or ""}

    def frame_wiring(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """A frame_predictions job: the face models with columns, the tasks with columns and what they read."""
        return {"face_models": tuple((config.get("features") or {}).get("face") or []), "tasks": self.tasks,
                "labels": self.labels, "pretrained": self.pretrained or "", "bundle": self.digest}
