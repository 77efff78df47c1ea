"""The ``bundle`` stage: what a run learned, as a folder another run can apply to new videos.

Per trained task it takes the fusion named by ``submit_fusion`` (its chosen w, t, k and filters) and the
heads of that fusion's feature sets; it records the weight hashes of every model those heads read (and
of the face detector, whose boxes shape every face crop) and the output-affecting feature settings, so
that applying it reproduces the features (affectflow.predict).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from affectflow.core import joblog
from affectflow.core.job import Job
from affectflow.core.options import StageOptions, wiring
from affectflow.models.catalogue.manifest import PreparedModel
from affectflow.plan.rerun import PREDICTED, Stage, stage_key
from affectflow.plan.scope import PredictionScope
from affectflow.predict.bundle import FEATURE_SETTINGS, SETTINGS_SECTIONS, TaskSource, write_bundle
from affectflow.stages.audio_features import AudioFeaturesOptions
from affectflow.stages.faces import FacesOptions
from affectflow.stages.media import MediaOptions
from affectflow.stages.text_features import TextFeaturesOptions
from affectflow.stages.transcripts import TranscriptsOptions

#: bump when the bundle's files change for the same heads and fusions (docs/reruns.md)
STAGE_VERSION = 2  # 2: the face detector's weights recorded with the models (when the workflow fetches them)

#: the stages whose options classes say which keys of their config sections (``SECTION``) change features
_FEATURE_OPTIONS: tuple[type[StageOptions], ...] = (MediaOptions, FacesOptions, AudioFeaturesOptions,
                                                    TranscriptsOptions, TextFeaturesOptions)


@dataclass(frozen=True)
class BundleOptions(StageOptions):
    """Wiring: the trained tasks, the fusion they are taken from and the EXPR filter's face model."""

    SECTION = ""

    tasks: tuple[str, ...] = wiring(())
    fusion: str = wiring("")
    pretrained: str = wiring("")


#: what the plan reads of this stage (affectflow.stages.catalogue)
STAGE = Stage(
    "bundle",
    STAGE_VERSION,
    BundleOptions,
    ("bundle",),
    downstream=PREDICTED,
    triggers="the heads and fusion choices of `submit_fusion`; the models they read",
)


def feature_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The output-affecting keys of the sections that shape features (those a bundle carries)."""
    assert [cls.SECTION for cls in _FEATURE_OPTIONS] == list(SETTINGS_SECTIONS)
    out: dict[str, Any] = {}
    for cls in _FEATURE_OPTIONS:
        section = cls.SECTION
        given, defaults = dict(config.get(section) or {}), cls.defaults()
        keep = [k for k in cls.config_fields() if k in cls.output_fields() and k not in cls.TOP_LEVEL
                and (k in given or k in defaults)]
        values = {k: given.get(k, defaults.get(k)) for k in keep}
        out[section] = {k: v for k, v in values.items() if cls.keyed(k, v)}  # an added option at its default: as before
    feats = config.get("features") or {}
    out["features"] = {k: feats[k] for k in FEATURE_SETTINGS if k in feats}
    return out


def run_bundle(out_dir: str | os.PathLike[str], results: str | os.PathLike[str],
                     manifests: Sequence[str | os.PathLike[str]], opts: BundleOptions,
                     config: Mapping[str, Any], *, key: str | None = None) -> Path:
    """Bundle the run in ``results`` (its ``fusion/`` and ``models/`` folders) into ``out_dir``."""
    stage_key(STAGE, opts, expected=key)
    res = Path(results)
    sets = config["fusions"][opts.fusion]["feature_sets"]
    sources = [TaskSource(t, opts.fusion, res / "fusion" / t / opts.fusion,
                          {fs: res / "models" / t / fs for fs in sets}, opts.pretrained or None)
               for t in opts.tasks]
    models = {}
    for path in manifests:
        m = PreparedModel.load(path)
        models[m.name] = {"files": dict(m.files), "standin": bool(m.standin)}
    return write_bundle(out_dir, sources, models, feature_settings(config), str(config.get("run_name", "")))


def run(job: Job) -> None:
    """The rule: the fusions of ``submit_fusion``, their heads and ``input.manifests`` -> ``output[0]``."""
    joblog.setup(job.log)
    opts = BundleOptions.from_config(job.config, **PredictionScope.own_bundle(job.config).bundle_wiring())
    out = Path(job.output[0])
    run_bundle(out, out.parent, list(job.input.manifests), opts, job.config, key=job.params.key)
