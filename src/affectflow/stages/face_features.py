"""Face features stage: per-frame embeddings and logits of one face model over a faces shard.

The model is loaded once per shard and fed the stored crops in batches, so a
GPU job processes a whole shard without reloading weights or re-decoding video.
A faces shard made with ``faces.people: all`` has a row per frame and person:
every face row is embedded, and its ``person`` is stored beside its
``frame_index``, so a reader pairs rows by (frame, person).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from affectflow.core import joblog
from affectflow.core.device import DEVICES
from affectflow.core.job import Job
from affectflow.core.options import StageOptions, one_of, runtime, wiring
from affectflow.core.progress import progress_bar
from affectflow.faces.embedding import analysed_frames, embed_shard
from affectflow.io.shards import StageResult
from affectflow.io.store import Provenance, ShardReader, ShardWriter
from affectflow.models.catalogue.manifest import PreparedModel
from affectflow.models.faces import DDAMFN_MODELS, ENGINES, check_batch_size, check_precision, load_face_model
from affectflow.plan.rerun import AFTER_LEARN, PREDICTED, Stage, stage_key

log = logging.getLogger("affectflow.stages.face_features")

#: bump when embeddings or logits change for the same crops, model and options (docs/reruns.md)
STAGE_VERSION = 1


@dataclass(frozen=True)
class FaceFeaturesOptions(StageOptions):
    """The face-model keys of config ``features``: ``face_engine`` and ``precision`` change the numbers
    (another runtime or file, float16 rounding; the engine ``auto`` picks per machine, and the
    provenance records the engine that ran); ``batch_size`` and ``device`` only change the speed."""

    SECTION = "features"

    model: str = wiring("")
    face_engine: str = "auto"
    precision: str = "fp32"
    batch_size: int | str = runtime("auto")
    device: str = runtime("auto")

    def check(self) -> None:
        one_of("face_engine", self.face_engine, ENGINES)
        check_precision(self.precision)
        self._set("batch_size", check_batch_size(self.batch_size))
        one_of("device", self.device, DEVICES)

    @classmethod
    def from_config(cls, config, **wired):
        f = config.get("features") or {}
        return cls.from_mapping({k: f[k] for k in cls.config_fields() if k in f}, **wired)

    def unused_fields(self) -> frozenset[str]:
        """fer_minixception runs in float32 on the CPU whatever they say; DDAMFN in plain torch, whatever the
        engine (:func:`affectflow.models.faces.load_face_model`)."""
        from affectflow.models.catalogue.registry import find

        spec = find(self.model)
        if spec is None:
            return frozenset()
        name = spec.name  # an alias (fer) is its model
        if name == "fer_minixception":
            return frozenset({"face_engine", "precision"})
        return frozenset({"face_engine"}) if name in DDAMFN_MODELS else frozenset()


#: what the plan reads of this stage (affectflow.stages.catalogue)
STAGE = Stage(
    "face_features",
    STAGE_VERSION,
    FaceFeaturesOptions,
    ("face_features",),
    downstream=f"learn, {AFTER_LEARN} of sets with a face model; {PREDICTED}",
)

def run_face_features(
    faces_shard: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    manifest: str | os.PathLike[str] | PreparedModel,
    cfg: FaceFeaturesOptions | Mapping[str, Any] | None = None,
    *,
    threads: int | None = None,
    key: str | None = None,
) -> StageResult:
    """Embed every detected face of a faces shard with the model of ``manifest``.

    ``manifest``: the fetch_model job's manifest (a path, or the loaded manifest
    with the models directory the job should use). ``key``: the rerun key the
    workflow planned the job with (checked, then written into the provenance).
    """
    prepared = manifest if isinstance(manifest, PreparedModel) else PreparedModel.load(manifest)
    model_name = prepared.name
    opts = FaceFeaturesOptions.coerce(cfg, model=model_name)
    rerun = stage_key(STAGE, opts, expected=key)
    model = load_face_model(
        model_name,
        prepared.root,
        engine=opts.face_engine,
        device=opts.device,
        batch_size=opts.batch_size,
        pins=prepared.pins,
        threads=threads,
        precision=opts.precision,
        standin=prepared.standin,
    )
    if prepared.standin:
        log.warning("%s: random-weight stand-in, not the real model: its features carry no emotion", model_name)
    prov = Provenance.of(rerun, model=model_name, weights_sha256=model.weights_sha256,
                         resolved={"engine": model.engine, "standin": prepared.standin})
    log.info("%s: engine %s on %s, %d crop(s) per forward pass", model_name, model.engine, model.device,
             model.batch_size)
    result = StageResult()
    t0 = time.perf_counter()
    with ShardReader(faces_shard, stage="faces") as faces, ShardWriter(out_path, prov) as writer:
        ids = faces.video_ids()
        # read once: the bar's total, then each video's rows (one byte per analysed frame)
        has_face = {v: faces.read(v, names=("has_face",)).arrays["has_face"] for v in ids}
        present = {v: np.flatnonzero(h) for v, h in has_face.items()}
        n_analysed = {v: analysed_frames(faces, v, h) for v, h in has_face.items()}
        total = sum(len(p) for p in present.values())
        # progress in faces, advanced per chunk (a long video is not silent until it ends): a bar redrawn at
        # most every 2 s on a terminal, a line a minute in a batch job's log
        with progress_bar(total=total, desc=f"{model_name} {Path(faces_shard).name}", unit="face", log=log,
                          mininterval=2) as bar:
            for vid in embed_shard(model, faces, present, n_analysed, writer, bar):
                result.written.append(vid)
        result.skipped = faces.skipped()
        writer.set_skipped(result.skipped)
    log.info("%s: %d faces embedded in %.1f s", out_path, total, time.perf_counter() - t0)
    return result


def run(job: Job) -> None:
    """The rule: ``input.faces`` and ``input.model`` (a manifest) -> ``output[0]``, the features shard."""
    joblog.setup(job.log)
    model = PreparedModel.for_job(job.input.model, job.config["models_dir"])
    with model.explained():
        run_face_features(job.input.faces, job.output[0], model,
                          FaceFeaturesOptions.from_config(job.config, model=model.name), threads=job.threads,
                          key=job.params.key)
