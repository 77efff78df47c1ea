"""How long a dataset will take: per stage, the jobs, the work and the hours per node kind, and a shard count.

Why: a user with thousands of videos has to choose ``n_shards`` and a node
kind before the first job runs, and a wrong guess costs a day (one shard a
node for a week) or the scheduler's patience (100,000 tiny jobs). The counts
come from probing the videos (container and packet timestamps, no decoding);
the rates are the ones the benchmarks recorded (``benchmarks/results/``, named
in each :class:`NodeRates`), so a figure here is only as good as that
measurement, and a stage the benchmarks never timed on a node kind says so
instead of guessing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from affectflow.data.adapters.files import resolve
from affectflow.data.units import Unit, shard_of
from affectflow.media.decode import MediaError, probe


@dataclass(frozen=True)
class NodeRates:
    """One node kind's recorded rates, per job of the stage (what one Snakemake job reaches on such a node)."""

    name: str
    description: str
    source: str
    faces_fps: float  # faces stage: decode + detect (RetinaFace mnet0.25) + track + crop, frames/s
    face_model_cps: float  # face_features stage, one face model (EmotiEffNet-B0), face crops/s
    audio_rtf: float | None = None  # audio_features stage (wav2vec 2.0 base), audio seconds per second
    asr_rtf: float | None = None  # transcripts stage (faster-whisper tiny.en), audio seconds per second


#: the node kinds the benchmarks measured (a test keeps these equal to the recorded files)
NODE_KINDS: dict[str, NodeRates] = {r.name: r for r in (
    NodeRates("cpu2", "2 CPU cores (the CI machine's kind; onnxruntime engines)",
              "benchmarks/results/latest.json: faces_stage_by_detector, face_features_threads, audio_embedding, "
              "asr_faster_vs_openai_whisper",
              faces_fps=70.25, face_model_cps=79.13, audio_rtf=8.667, asr_rtf=40.46),
    NodeRates("h100", "1 NVIDIA H100 80GB and 16 CPU cores (torch engines, fp16)",
              "benchmarks/results/gpu-nvidia-h100-80gb-hbm3.json: gpu_face_path (its faces stage), "
              "gpu_face_features_stage",
              faces_fps=799.0, face_model_cps=10070.0),
)}


@dataclass(frozen=True)
class VideoCount:
    """What probing one video found: its analysed frames and its audio seconds (0 without an audio stream)."""

    video_id: str
    frames: int
    audio_s: float
    problem: str = ""  # why it could not be probed (the media stage will skip it)


@dataclass(frozen=True)
class Corpus:
    """The counts a plan is made from."""

    videos: tuple[VideoCount, ...]

    @property
    def frames(self) -> int:
        return sum(v.frames for v in self.videos)

    @property
    def audio_s(self) -> float:
        return sum(v.audio_s for v in self.videos)

    def shard_frames(self, n_shards: int) -> dict[str, int]:
        """Frames per shard under the workflow's own video-to-shard assignment (:func:`shard_of`)."""
        out: dict[str, int] = {}
        for v in self.videos:
            s = shard_of(v.video_id, n_shards)
            out[s] = out.get(s, 0) + v.frames
        return out


def count_units(units: Iterable[Unit], threads: int = 8, base_dir: str | os.PathLike[str] = ".") -> Corpus:
    """Probe every unit's video (no decoding), in ``threads`` threads; a video that cannot be probed counts
    0 frames and carries its reason. ``base_dir``: the workflow's directory, which relative paths are under."""
    def one(u: Unit) -> VideoCount:
        try:
            p = probe(resolve(u.path, Path(base_dir)))
        except MediaError as e:
            return VideoCount(u.video_id, 0, 0.0, str(e))
        return VideoCount(u.video_id, int(p.n_frames), float(p.audio_duration) if p.has_audio else 0.0)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return Corpus(tuple(pool.map(one, list(units))))


@dataclass(frozen=True)
class Models:
    """How many models of each kind the config runs (each is a job per shard)."""

    face: int = 0
    audio: int = 0
    asr: int = 0

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> Models:
        feats = config.get("features") or {}
        return cls(len(feats.get("face") or []), len(feats.get("audio") or []), len(feats.get("asr") or []))


@dataclass(frozen=True)
class StageEstimate:
    """One stage of the plan: its jobs, its work and the node-hours it takes on each node kind (None: the
    benchmarks have no rate for it there)."""

    stage: str
    jobs: int
    work: float
    unit: str
    hours: dict[str, float | None] = field(default_factory=dict)


def _hours(work: float, rate: float | None) -> float | None:
    return None if rate is None else work / rate / 3600.0


def estimate(corpus: Corpus, models: Models, n_shards: int, face_share: float = 1.0,
             kinds: Sequence[NodeRates] = tuple(NODE_KINDS.values())) -> list[StageEstimate]:
    """The per-stage plan. ``face_share``: the share of frames with a face (each is a crop for every face
    model; 1.0, one face in every frame, is the upper bound for one person per video)."""
    crops = corpus.frames * face_share
    rows = [StageEstimate("faces", n_shards, corpus.frames, "frames",
                          {k.name: _hours(corpus.frames, k.faces_fps) for k in kinds})]
    if models.face:
        rows.append(StageEstimate("face_features", n_shards * models.face, crops * models.face, "face crops",
                                  {k.name: _hours(crops * models.face, k.face_model_cps) for k in kinds}))
    if models.audio:
        rows.append(StageEstimate("audio_features", n_shards * models.audio, corpus.audio_s * models.audio,
                                  "audio s", {k.name: _hours(corpus.audio_s * models.audio, k.audio_rtf)
                                              for k in kinds}))
    if models.asr:
        rows.append(StageEstimate("transcripts", n_shards * models.asr, corpus.audio_s * models.asr, "audio s",
                                  {k.name: _hours(corpus.audio_s * models.asr, k.asr_rtf) for k in kinds}))
    return rows


def suggest_shards(corpus: Corpus, rates: NodeRates, job_hours: float = 1.0, nodes: int = 1,
                   most: int = 4096) -> int:
    """The smallest ``n_shards`` whose longest faces job (the heaviest stage per shard) fits in ``job_hours`` on
    ``rates``' node kind, and at least one per node (else nodes idle), at most one shard per video and at most
    ``most`` (the DAG's cost grows with shards).

    Shards are filled by a hash of the video id, not by length, so the longest shard, not the mean, is what
    is checked.
    """
    limit = max(1, min(most, sum(1 for v in corpus.videos if v.frames)))
    budget = job_hours * 3600.0 * rates.faces_fps
    n = max(1, min(limit, max(nodes, math.ceil(corpus.frames / budget))))
    while n < limit and max(corpus.shard_frames(n).values(), default=0) > budget:
        n += 1
    return n


def plan_table(corpus: Corpus, models: Models, n_shards: int, nodes: int = 1,
               kinds: Sequence[NodeRates] = tuple(NODE_KINDS.values())) -> str:
    """The markdown table ``affectflow plan`` prints: per stage, jobs, work, and wall-clock hours on ``nodes``
    nodes of each kind (a stage's jobs spread over the nodes; never fewer hours than its longest job)."""
    rows = estimate(corpus, models, n_shards, kinds=kinds)
    longest = max(corpus.shard_frames(n_shards).values(), default=0)
    head = "| stage | jobs | work | " + " | ".join(f"hours on {nodes} × {k.name}" for k in kinds) + " |"
    lines = [head, "|---|---:|---:|" + "---:|" * len(kinds)]
    total: dict[str, float | None] = {k.name: 0.0 for k in kinds}
    for r in rows:
        cells = []
        for k in kinds:
            h = r.hours[k.name]
            if h is None:
                cells.append("not measured")
                total[k.name] = None
                continue
            share = longest / corpus.frames if corpus.frames else 0.0  # the longest shard's part of the work
            wall = max(h / max(1, min(nodes, r.jobs)), h * share)
            cells.append(f"{wall:.3g}")
            if total[k.name] is not None:
                total[k.name] += wall
        lines.append(f"| {r.stage} | {r.jobs} | {r.work:,.0f} {r.unit} | " + " | ".join(cells) + " |")
    lines.append("| **all of these** | | | " + " | ".join(
        "n/a (a stage not measured)" if t is None else f"**{t:.3g}**" for t in total.values()) + " |")
    return "\n".join(lines) + "\n"
