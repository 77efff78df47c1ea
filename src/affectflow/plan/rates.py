"""The node kinds ``affectflow plan`` knows and the rates the benchmarks recorded on each.

Why a module of its own: the command's ``--help`` lists the kinds, and building the parser must not import
what probing videos needs (:mod:`affectflow.plan.estimate` imports the media libraries); this one imports
nothing but the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NodeRates:
    """One node kind's recorded rates, per job of the stage (what one Snakemake job reaches on such a node).

    The per-shard stages without a field here (media, contact_sheets, text_features, frame_predictions) were
    never timed as a rate of what the plan counts (text_features' benchmark counts transcript segments, which
    are known only after ASR), so the plan says "not measured" for them instead of guessing.
    """

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
