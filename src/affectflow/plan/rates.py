"""The node kinds ``affectflow plan`` knows and the rates the benchmarks recorded on each.

Why a module of its own: the command's ``--help`` lists the kinds, and building the parser must not import
what probing videos needs (:mod:`affectflow.plan.estimate` imports the media libraries); this one imports
nothing but the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

#: faster-whisper decodes a recording in windows of this many seconds; a shorter clip is padded to one
WHISPER_WINDOW_S = 30.0
#: the faces settings every faces rate below was measured with (the defaults): another detector, or a detector
#: that runs on every n-th frame only, costs otherwise, and ``affectflow plan`` says so (``setting_notes``)
FACES_MEASURED_WITH = {"detector": "retinaface_mnet025", "frame_stride": 1}


@dataclass(frozen=True)
class SizeRate:
    """The faces stage's rate on videos of one size."""

    width: int
    height: int
    fps: float

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True, eq=False)
class NodeRates:
    """One node kind's recorded rates, per job of the stage (what one Snakemake job reaches on such a node).

    A stage without a rate on a kind says "not measured" there instead of guessing; so does a face model
    without a recorded rate. ``job_start_s``: what one job of a stage pays before its work (Python,
    Snakemake's script wrapper, imports, the model's load and verification), by rule, or by
    ``face_features/<model>`` for a face model of its own; a stage without one is charged none.
    """

    name: str
    description: str
    source: str
    # faces stage (decode + detect with RetinaFace mnet0.25 + track + crop) on videos of each measured size
    faces: tuple[SizeRate, ...]
    # face_features stage, crops/s of one model's job (its load included), by model
    face_model_cps: Mapping[str, float] = field(default_factory=dict)
    audio_rtf: float | None = None  # audio_features stage (wav2vec 2.0 base), audio seconds per second
    asr_window_s: float | None = None  # transcripts stage (faster-whisper tiny.en), seconds per 30 s window
    media_videos_per_s: float | None = None  # media stage, videos per second (probing and audio per file)
    sheets_per_s: float | None = None  # contact_sheets stage, videos per second
    text_videos_per_s: float | None = None  # text_features stage (MiniLM over each video's transcript), videos/s
    predictions_fps: float | None = None  # frame_predictions stage, frame rows per second
    job_start_s: Mapping[str, float] = field(default_factory=dict)
    gpu: bool = False  # a GPU node: profiles/slurm-gpu's jobs, with its time limits

    def start_s(self, stage: str, model: str = "") -> float:
        """A job's fixed start for ``stage`` (and face ``model``): 0 where none was measured."""
        return self.job_start_s.get(f"{stage}/{model}", self.job_start_s.get(stage, 0.0))

    def faces_seconds_per_frame(self, width: int, height: int) -> float:
        """What one frame of a ``width`` x ``height`` video costs the faces stage: interpolated in seconds per
        frame over pixels between the measured sizes (decoding, the resize to the detector's input and the
        network all grow with them), extrapolated along the last two past the largest (never below the
        largest's cost: two noisy measurements must not make a larger frame cheaper), and the smallest size's
        cost below it (or for a size the probe did not find). With one measured size, that size's cost for
        every video: :meth:`measured_up_to` says how far that holds."""
        points = sorted({r.pixels: 1.0 / r.fps for r in self.faces}.items())  # one cost per pixel count
        px = width * height
        if len(points) == 1 or px <= points[0][0]:
            return points[0][1]
        for (p0, t0), (p1, t1) in zip(points, points[1:], strict=False):
            if px <= p1:
                return t0 + (t1 - t0) * (px - p0) / (p1 - p0)
        (p0, t0), (p1, t1) = points[-2:]
        return t1 + max(0.0, t1 - t0) * (px - p1) / (p1 - p0)

    @property
    def measured_up_to(self) -> SizeRate:
        """The largest size the faces rate was measured at."""
        return max(self.faces, key=lambda r: r.pixels)


def whisper_windows(audio_s: float) -> int:
    """The 30 s windows faster-whisper decodes for ``audio_s`` seconds of audio: a 3 s clip costs one window, as
    a 30 s one does (its encoder always sees 30 s), so a corpus of short clips is charged per clip."""
    return math.ceil(audio_s / WHISPER_WINDOW_S) if audio_s > 0 else 0


#: the node kinds the benchmarks measured (a test keeps these equal to the recorded files)
NODE_KINDS: dict[str, NodeRates] = {r.name: r for r in (
    NodeRates("cpu2", "2 CPU cores (the CI machine's kind; onnxruntime engines)",
              "benchmarks/results/latest.json: faces_stage_by_size, face_features_threads (crops_per_s_by_model), "
              "audio_embedding, asr_faster_vs_openai_whisper (faster_whisper_s over its windows), "
              "stage_job_start (each job's start; media, contact_sheets, text_features, frame_predictions)",
              faces=(SizeRate(640, 360, 92.44), SizeRate(960, 540, 46.1),
                     SizeRate(1280, 720, 22.0), SizeRate(1920, 1080, 15.38)),
              face_model_cps={"fer_minixception": 395.3, "enet_b0_8_best_vgaf": 97.29},
              audio_rtf=8.667, asr_window_s=0.8293,
              # stage_job_start (each job as Snakemake runs it); contact_sheets' time did not grow from 1 to 16
              # videos: its work is below what the figure resolves, and only its jobs' starts are charged
              media_videos_per_s=6.9, sheets_per_s=math.inf, text_videos_per_s=90.43, predictions_fps=4061.0,
              job_start_s={"media": 1.275, "faces": 2.369, "contact_sheets": 1.011,
                           "face_features/fer_minixception": 2.433, "face_features/enet_b0_8_best_vgaf": 3.313,
                           "audio_features": 7.027, "transcripts": 2.201, "text_features": 5.709,
                           "frame_predictions": 3.748}),
    NodeRates("h100", "1 NVIDIA H100 80GB and 16 CPU cores (torch engines, fp16)",
              "benchmarks/results/gpu-nvidia-h100-80gb-hbm3.json: gpu_face_path (its faces stage, on 640x360 "
              "video), gpu_face_features_stage",
              faces=(SizeRate(640, 360, 799.0),), face_model_cps={"enet_b0_8_best_vgaf": 10070.0}, gpu=True),
)}
