"""Rerun keys: the one value that decides whether a job reruns and says what produced its output.

A rule's rerun-triggering parameter is its key (media, faces and frame_predictions also pass their work list
as ``units``, and problems the files left out as ``skipped``; the key's digest covers both, so a new parameter
must be covered by it too): the stage's name and code
version (``STAGE_VERSION`` of the stage's module), its output-affecting
options in canonical form (:meth:`affectflow.core.options.StageOptions.output_options`),
the fingerprint of every model it uses, and for the stages that read videos a
digest of the shard's units. Snakemake compares parameters as they are, so a
key built from canonical JSON makes key order, formatting and settings that do
not change outputs invisible, while a changed option, model, video list or
code version reruns exactly the stage and what depends on it.

The workflow builds every key at parse time (:class:`WorkflowKeys`) and hands
it to the job; the stage checks that the key describes what it is about to do
(:func:`stage_key`) and writes the same text into its output's provenance.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from affectflow.core.errors import AffectflowError
from affectflow.core.options import StageOptions, canonical, canonical_json


class RerunKeyError(AffectflowError, ValueError):
    """A job was handed a rerun key for other options, another stage or another code version."""


@dataclass(frozen=True)
class RerunKey:
    """What determines a stage's output (see the module docstring)."""

    stage: str
    version: int
    options: Mapping[str, Any] = field(default_factory=dict)
    models: Mapping[str, Any] = field(default_factory=dict)
    units: str = ""

    @property
    def text(self) -> str:
        """The canonical JSON text: the rule parameter and the ``rerun_key`` provenance attribute."""
        return canonical_json({"stage": self.stage, "version": self.version, "options": self.options,
                               "models": self.models, "units": self.units})

    @classmethod
    def parse(cls, text: str) -> RerunKey:
        try:
            d = json.loads(text)
            return cls(stage=d["stage"], version=int(d["version"]), options=d["options"], models=d["models"],
                       units=d["units"])
        except (ValueError, KeyError, TypeError) as e:
            raise RerunKeyError(f"not a rerun key: {text[:200]!r} ({e})") from None


# ---------------------------------------------------------------- the stages


@dataclass(frozen=True)
class Stage:
    """One stage as its own module declares it (``STAGE``): its name (its rule's; ``submit`` for the
    ``submit_<task>`` rules), code version, options class and rules, and, for people, what reruns after it
    (Snakemake reruns every job downstream of a rerun job).

    The plan never imports stage modules: :mod:`affectflow.stages.catalogue` collects the declarations and
    the workflow hands them to :class:`WorkflowKeys`, :func:`rerun_table` and the config checks.
    """

    name: str
    version: int
    options: type[StageOptions]
    rules: tuple[str, ...]
    downstream: str = ""
    triggers: str = ""  # what else is in the key, for the docs
    #: the unit fields the stage reads (its key's units digest covers only these; None = all)
    unit_fields: tuple[str, ...] | None = None


#: what learn's outputs feed (rule names)
AFTER_LEARN = "fuse, submit_<task>, report_tables, bundle"
#: what the run's bundle and every per-frame input feed (rule names): the predictions and the run page
PREDICTED = "frame_predictions, predictions, index_page"

#: settings of the workflow itself that change no output (they never rerun anything)
WORKFLOW_RUNTIME = ("models_dir", "features.gpu")


def rerun_table(stages: Mapping[str, Stage]) -> str:
    """The README's "What reruns when" rows for every setting, made from the stages' declarations."""
    rows = []
    runtime_keys: list[str] = [f"`{k}`" for k in WORKFLOW_RUNTIME]
    for stage in stages.values():
        cls = stage.options
        keys = [f"`{cls.config_key(f)}`" for f in cls.output_fields() if f in cls.config_fields()]
        keys += [stage.triggers] if stage.triggers else []
        runtime_keys += [f"`{cls.config_key(f)}`" for f in cls.runtime_fields() if f in cls.config_fields()]
        rules = ", ".join(stage.rules)
        after = f"; then {stage.downstream}" if stage.downstream else ""
        rows.append(f"| {', '.join(keys) or '(no options)'} | `{stage.name}` version {stage.version} | "
                    f"{rules}{after} |")
    lines = ["| setting (output-affecting) | stage and code version | reruns |", "|---|---|---|", *rows]
    lines += ["", "| setting (runtime only) | reruns |", "|---|---|",
              f"| {', '.join(dict.fromkeys(runtime_keys))} | nothing |"]
    return "\n".join(lines) + "\n"


def units_digest(units: Iterable[Any], fields: Sequence[str] | None = None) -> str:
    """sha256 of the units (their ``fields``, default all, in their order): a video added, removed or moved
    changes it."""
    rows = [vars(u) if not isinstance(u, Mapping) else dict(u) for u in units]
    if fields is not None:
        rows = [{f: r.get(f, "") for f in fields} for r in rows]
    return hashlib.sha256(canonical_json(rows).encode()).hexdigest()


def stage_key(spec: Stage, options: StageOptions, *, expected: str | None = None,
              models: Mapping[str, Any] | None = None, units: Sequence[Any] | None = None) -> RerunKey:
    """The rerun key of one job of the stage ``spec`` (a stage module's ``STAGE``) with ``options``.

    With ``expected`` (the key the workflow planned the job with) the planned
    key is returned after checking that it names this stage, this code version
    and these options (and these units, when given): a job can never write a
    provenance that disagrees with what it computed. Without it (library use)
    the key is built here, from the same parts the workflow uses.
    """
    stage, version = spec.name, spec.version
    opts = options.output_options()
    digest = units_digest(units, spec.unit_fields) if units is not None else ""
    if expected is None:
        return RerunKey(stage, version, opts, canonical(dict(models or {})), digest)
    key = RerunKey.parse(expected)
    problems = []
    if key.stage != stage:
        problems.append(f"stage {key.stage!r}, not {stage!r}")
    if key.version != version:
        problems.append(f"{stage} code version {key.version}, but this affectflow has {version} "
                        "(affectflow was upgraded while the workflow ran: start it again)")
    if canonical(key.options) != opts:
        problems.append(f"options {canonical_json(key.options)}, but the job runs with {canonical_json(opts)}")
    if units is not None and key.units != digest:
        problems.append("another list of videos than the job was given")
    if models is not None and canonical(key.models) != canonical(dict(models)):
        problems.append(f"models {canonical_json(key.models)}, but the job uses {canonical_json(dict(models))}")
    if problems:
        raise RerunKeyError(f"the rerun key planned for this {stage} job says " + "; ".join(problems))
    return key


# ---------------------------------------------------------------- models


def model_fingerprint(name: str, model_pins: Mapping[str, str] | None = None, standin: bool = False) -> dict:
    """What identifies a model's weights without reading them: its registry files with the hash on
    record (the user's pin where there is one), and whether it is a random-weight stand-in.

    A stand-in's bytes come from its builder, not the registry: a face stand-in's fingerprint also names
    the builder's version (``standins_face.BUILD_VERSION``, from 2 on), so a new builder reruns what its
    stand-ins fed, and the stand-ins of builders never changed keep their keys."""
    from affectflow.models.catalogue.registry import get
    from affectflow.models.standins.face import BUILD_VERSION, FACE_STANDINS

    spec = get(name)
    pins = dict(model_pins or {})
    files = [[wf.name, pins.get(wf.name, wf.sha256 or getattr(wf, "git_sha1", ""))] for wf in spec.files]
    out: dict[str, Any] = {"files": files, "standin": bool(standin)}
    if standin and spec.name in FACE_STANDINS and BUILD_VERSION > 1:
        out["standin_build"] = BUILD_VERSION
    return out


def model_pins_for(name: str, model_pins: Mapping[str, str] | None) -> dict[str, str]:
    """The user's pins of this model's files only (other models' pins do not concern it)."""
    from affectflow.models.catalogue.registry import get

    names = {wf.name for wf in get(name).files}
    return {k: v for k, v in dict(model_pins or {}).items() if k in names}


# ---------------------------------------------------------------- the workflow's keys


class WorkflowKeys:
    """Every rule's rerun key for one workflow config and units table (built at parse time).

    Each method returns the key text of one job; options objects and model
    fingerprints are built once, so planning 15,000 videos stays fast.
    """

    def __init__(self, config: Mapping[str, Any], units: Any, stages: Mapping[str, Stage]) -> None:
        """``stages``: every stage's declaration by name (:data:`affectflow.stages.catalogue.STAGES`)."""
        self.config = config
        self.stages = stages
        self.units = units
        self._by_shard = units.by_shard()
        self._cache: dict[tuple, str] = {}

    def _memo(self, key: tuple, build: Any) -> str:
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def options(self, stage: str, **wired: Any) -> StageOptions:
        return self.stages[stage].options.from_config(self.config, **wired)

    def fingerprint(self, model: str) -> dict:
        return model_fingerprint(model, self.config.get("model_pins"), model in self.standins)

    @cached_property
    def standins(self) -> set[str]:
        return set((self.config.get("features") or {}).get("standins") or [])

    def _key(self, stage: str, options: StageOptions, models: Mapping[str, Any] | None = None,
             units: Sequence[Any] | None = None) -> str:
        return stage_key(self.stages[stage], options, models=models, units=units).text

    # one method per stage, named like the stage's rule
    def units_table(self) -> str:
        return self._memo(("units",), lambda: self._key("units", self.options("units"),
                                                         units=list(self.units)))

    def media(self, shard: str) -> str:
        return self._memo(("media", shard), lambda: self._key("media", self.options("media"),
                                                               units=self._by_shard[shard]))

    def faces(self, shard: str) -> str:
        def build() -> str:
            opts = self.options("faces")
            detector = opts.detector_model()
            models = {detector: self.fingerprint(detector)} if detector else {}
            return self._key("faces", opts, models=models, units=self._by_shard[shard])
        return self._memo(("faces", shard), build)

    def contact_sheets(self) -> str:
        return self._memo(("contact_sheets",), lambda: self._key("contact_sheets", self.options("contact_sheets")))

    def fetch_model(self, model: str) -> str:
        return self._memo(("fetch_model", model), lambda: self._key(
            "fetch_model", self.options("fetch_model", name=model, standin=model in self.standins),
            models={model: self.fingerprint(model)}))

    def model_stage(self, stage: str, model: str, **wired: Any) -> str:
        """Keys of the stages that run one model over a shard (face/audio/text features, transcripts)."""
        return self._memo((stage, model, tuple(sorted(wired.items()))), lambda: self._key(
            stage, self.options(stage, model=model, **wired), models={model: self.fingerprint(model)}))

    def problems(self) -> str:
        """The files that folder datasets leave out are rows of the table: their list is in the key (as the
        units of a shard stage are; none, none in the key)."""
        skipped = getattr(self.units, "skipped", None) or None
        return self._memo(("problems",), lambda: self._key("problems", self.options("problems"), units=skipped))

    def learn(self, task: str, feature_set: str) -> str:
        labels = tuple(self.config["feature_sets"][feature_set])
        return self._memo(("learn", task, feature_set), lambda: self._key(
            "learn", self.options("learn", task=task, features=labels, feature_set=feature_set)))

    def fuse(self, task: str, fusion: str) -> str:
        return self._memo(("fuse", task, fusion), lambda: self._key(
            "fuse", self.options("fuse", task=task, fusion=fusion)))

    def submit(self, task: str) -> str:
        return self._memo(("submit", task), lambda: self._key(
            "submit", self.options("submit", task=task)))

    def bundle(self, scope: Any) -> str:
        """``scope``: the :class:`~affectflow.plan.scope.PredictionScope` of the run."""
        return self._memo(("bundle",), lambda: self._key("bundle", self.options("bundle", **scope.bundle_wiring())))

    def frame_predictions(self, shard: str, scope: Any) -> str:
        return self._memo(("frame_predictions", shard), lambda: self._key(
            "frame_predictions", self.options("frame_predictions", **scope.frame_wiring(self.config)),
            units=self._by_shard[shard]))

    def predictions(self) -> str:
        return self._memo(("predictions",), lambda: self._key("predictions", self.options("predictions")))

    def index_page(self) -> str:
        return self._memo(("index_page",), lambda: self._key("index_page", self.options("index_page")))

    def report_tables(self, metrics: Mapping[str, str]) -> str:
        return self._memo(("report_tables",), lambda: self._key(
            "report_tables", self.options("report_tables", rows=tuple(metrics))))
