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
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from affectflow.core import joblog
from affectflow.core.device import DEVICES
from affectflow.core.job import Job
from affectflow.core.options import StageOptions, one_of, runtime, wiring
from affectflow.faces.video import prefetch
from affectflow.io.shards import StageResult
from affectflow.io.store import Provenance, ShardReader, ShardWriter
from affectflow.models.faces import ENGINES, FaceModel, FaceOutputs, check_batch_size, check_precision, load_face_model
from affectflow.models.manifest import PreparedModel
from affectflow.plan.rerun import stage_key

log = logging.getLogger("affectflow.stages.face_features")

#: bump when embeddings or logits change for the same crops, model and options (docs/reruns.md)
STAGE_VERSION = 1
#: the names of a job's two background threads (:func:`_embed_shard`): HDF5 reads, and the model
READER_THREAD, MODEL_THREAD = "face-reader", "face-model"


@dataclass(frozen=True)
class FaceFeatureOptions(StageOptions):
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

# crops read from the faces shard per step (at least; a GPU batch if larger): ~10 MB of 224 px crops.
# With the reader and the model each a chunk ahead, about six chunks are alive at once, whatever the video's length.
CHUNK = 64
#: arrays stored without lzf: a network's float32 embeddings do not compress (lzf left them at 100.3% of their
#: size), and compressing them took host time on the thread that also feeds the GPU
UNCOMPRESSED = ("embeddings",)


def run_face_features(
    faces_shard: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    manifest: str | os.PathLike[str] | PreparedModel,
    cfg: FaceFeatureOptions | Mapping[str, Any] | None = None,
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
    opts = FaceFeatureOptions.coerce(cfg, model=model_name)
    rerun = stage_key("face_features", opts, expected=key)
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
        n_analysed = {v: _n_analysed(faces, v, h) for v, h in has_face.items()}
        total = sum(len(p) for p in present.values())
        # progress in faces, advanced per chunk (a long video is not silent until it ends); tqdm redraws at
        # most every 2 s, so job logs get a line per 2 s, not one per chunk
        with tqdm(total=total, desc=f"{model_name} {Path(faces_shard).name}", unit="face", mininterval=2) as bar:
            for vid in _embed_shard(model, faces, present, n_analysed, writer, bar):
                result.written.append(vid)
        result.skipped = faces.skipped()
        writer.set_skipped(result.skipped)
    log.info("%s: %d faces embedded in %.1f s", out_path, total, time.perf_counter() - t0)
    return result


def _embed_shard(model: FaceModel, faces: ShardReader, present: Mapping[str, np.ndarray],
                 n_analysed: Mapping[str, int], writer: ShardWriter, bar: tqdm) -> Iterator[str]:
    """Embed every video's face crops (``present``: the rows with a face, per video, in the shard's order) into
    ``writer`` a chunk at a time, yielding each video's id once it is written.

    Three threads, each a chunk ahead of the next, over the whole shard: HDF5
    reads the next chunk while the model runs on this one, and this thread
    writes the previous chunk's results meanwhile. Chunks run across videos
    (:func:`_crop_chunks`): with a pipeline per video, each video's first read
    and last write ran alone, and every video ended in a batch of its own size,
    each size one more for cuDNN to plan on a GPU (seconds each).
    """
    step = -(-CHUNK // model.batch_size) * model.batch_size  # whole batches: only the job's last one is short
    chunks = prefetch(_crop_chunks(faces, present, step), depth=1, name=READER_THREAD)
    results = prefetch(_predicted(model, chunks), depth=1, name=MODEL_THREAD)
    try:
        for i, (vid, pieces) in enumerate(groupby(_per_video(model.name, results), key=lambda p: p[0])):
            bar.set_postfix(video=f"{i + 1}/{len(present)}", refresh=False)
            per_person = "person" in faces.array_names(vid)
            rec = faces.read(vid, names=("frame_index", "timestamps", "person") if per_person
                             else ("frame_index", "timestamps"))
            done = 0
            with writer.video(vid, uncompressed=UNCOMPRESSED) as out:
                for _, res in pieces:
                    n = len(res)
                    rows = present[vid][done:done + n]
                    done += n
                    arrays = {
                        "frame_index": rec.arrays["frame_index"][rows],
                        "timestamps": rec.arrays["timestamps"][rows],
                        "embeddings": res.embeddings.astype(np.float32),
                        "logits": res.logits.astype(np.float32),
                    }
                    if "person" in rec.arrays:
                        arrays["person"] = rec.arrays["person"][rows]
                    if res.valence_arousal is not None:
                        arrays["valence_arousal"] = res.valence_arousal.astype(np.float32)
                    out.append(arrays)
                    bar.update(n)
                if done != len(present[vid]):
                    raise RuntimeError(f"{vid}: {done} of {len(present[vid])} face crops embedded")
                out.attrs = {"classes": list(model.classes), "n_frames_analysed": n_analysed[vid]}
            yield vid
    finally:
        results.close()  # stops the model's and the reader's threads at once on an error


def _n_analysed(faces: ShardReader, vid: str, has_face: np.ndarray) -> int:
    """The video's analysed frames: its rows, or with a row per person (``person``) its distinct frames."""
    if "person" not in faces.array_names(vid):
        return len(has_face)
    return int(np.unique(faces.read(vid, names=("frame_index",)).arrays["frame_index"]).size)


#: which videos' crops a chunk holds, in order: (video id, number of rows); a video without faces has 0
Parts = list[tuple[str, int]]


def _crop_chunks(faces: ShardReader, present: Mapping[str, np.ndarray], step: int
                 ) -> Iterator[tuple[Parts, np.ndarray]]:
    """The shard's face crops ``step`` at a time across videos (only the last chunk is shorter), each with the
    videos whose rows it holds. A video without faces is listed with 0 rows, so that it is still written."""
    parts: Parts = []
    blocks: list[np.ndarray] = []
    n = 0
    for vid, rows in present.items():
        if not rows.size:
            parts.append((vid, 0))
            blocks.extend(faces.iter_rows(vid, "crops", rows))  # one block of 0 rows: the crops' dtype and shape
            continue
        while rows.size:  # what fills the chunk, then the next
            head, rows = rows[:step - n], rows[step - n:]
            blocks.extend(faces.iter_rows(vid, "crops", head, batch=step))  # one read of one block
            parts.append((vid, head.size))
            n += head.size
            if n == step:
                yield parts, _joined(blocks)
                parts, blocks, n = [], [], 0
    if parts:
        yield parts, _joined(blocks)


def _joined(blocks: list[np.ndarray]) -> np.ndarray:
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def _predicted(model: FaceModel, chunks: Generator[tuple[Parts, np.ndarray], None, None]
               ) -> Iterator[tuple[Parts, int, FaceOutputs]]:
    """Each chunk's videos, size and the model's results on it; stopping stops the chunks' reader too."""
    try:
        for parts, crops in chunks:
            yield parts, len(crops), model.predict(crops)
    finally:
        chunks.close()


def _per_video(name: str, results: Iterator[tuple[Parts, int, FaceOutputs]]) -> Iterator[tuple[str, FaceOutputs]]:
    """Each chunk's results cut into its videos' shares, in order."""
    for parts, n, res in results:
        if len(res) != n:
            raise RuntimeError(f"{name}: {len(res)} results for {n} crops")
        start = 0
        for vid, k in parts:
            yield vid, res.rows(start, start + k)
            start += k


def run(job: Job) -> None:
    """The rule: ``input.faces`` and ``input.model`` (a manifest) -> ``output[0]``, the features shard."""
    joblog.setup(job.log)
    model = PreparedModel.for_job(job.input.model, job.config["models_dir"])
    run_face_features(job.input.faces, job.output[0], model,
                      FaceFeatureOptions.from_config(job.config, model=model.name), threads=job.threads,
                      key=job.params.key)
