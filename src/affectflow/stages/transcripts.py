"""Speech to text with Whisper: segments and word timestamps per video.

Two optional backends run the same model family: ``faster-whisper`` (a CTranslate2 model directory)
and ``openai-whisper`` (the released ``.pt`` checkpoint, a torch pickle, so it is loaded only after
its sha256 is verified, and then with ``weights_only=True``). Audio comes from the media shard, so no
ffmpeg is needed here. Empty audio, or audio quieter than ``silence_rms``, is not sent to the model
(Whisper invents text on silence): such videos get zero segments.

Output per video (``transcripts/{asr}/{shard}.h5``): ``seg_start``, ``seg_end`` (s), ``seg_text``;
``word_start``, ``word_end``, ``word_text``, ``word_prob``, ``word_seg`` (index of the word's
segment); attributes ``language``, ``language_probability``, ``audio_duration``.

Details (model files, backend choice, options): docs/features.md, section "Transcripts (ASR)".
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affectflow.core import joblog
from affectflow.core.device import resolve_device
from affectflow.core.errors import AffectflowError
from affectflow.core.job import Job
from affectflow.core.options import StageOptions, at_least, one_of, runtime, wiring
from affectflow.core.vocabulary import SAMPLE_RATE
from affectflow.io.shards import StageResult, media_audio
from affectflow.io.store import Provenance, ShardReader, ShardWriter, VideoRecord
from affectflow.models.manifest import PreparedModel
from affectflow.plan.rerun import stage_key
from affectflow.stages.audio_features import ResolvedModel, resolve_model, with_device

log = logging.getLogger("affectflow.stages.transcripts")

STAGE = "transcripts"
#: bump when transcripts change for the same audio, model and options (docs/reruns.md)
STAGE_VERSION = 1
BACKENDS = ("auto", "faster-whisper", "openai-whisper")
MIN_SAMPLES = SAMPLE_RATE // 10  # 0.1 s: shorter audio has nothing to transcribe


class ASRError(AffectflowError, RuntimeError):
    """The speech recogniser cannot run (missing package, unusable model files, bad configuration)."""


@dataclass(frozen=True)
class ASRConfig(StageOptions):
    """Config ``asr``; all but ``device``/``cpu_threads`` are part of the rerun key and provenance.

    ``language``: a language code (``"en"``) or ``None`` to detect it
    (English-only ``.en`` models always use ``"en"``). ``compute_type``
    (faster-whisper): ``"auto"`` is ``float16`` on CUDA and ``int8`` on CPU.
    ``temperature``: one value, or the fallback sequence Whisper retries with.
    ``max_new_tokens``: cap on tokens decoded per 30 s window (``None``: Whisper's 224).
    """

    SECTION = "asr"

    model: str = wiring("faster_whisper_tiny_en")
    backend: str = "auto"
    language: str | None = "en"
    word_timestamps: bool = True
    beam_size: int = 5
    temperature: float | tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    condition_on_previous_text: bool = True
    initial_prompt: str | None = None
    vad_filter: bool = False
    max_new_tokens: int | None = None
    compute_type: str = "auto"
    silence_rms: float = 1e-4
    device: str = runtime("auto")
    cpu_threads: int = runtime(0)

    def check(self) -> None:
        one_of("backend", self.backend, BACKENDS)
        if isinstance(self.temperature, list):
            self._set("temperature", tuple(float(t) for t in self.temperature))
        at_least("beam_size", self.beam_size, 1)

    @classmethod
    def from_config(cls, config, **wired):
        return cls.from_mapping(with_device(config, "asr"), **wired)


@dataclass
class Transcript:
    """One recording's transcript: segments, words (if asked for) and language."""

    seg_start: list[float] = field(default_factory=list)
    seg_end: list[float] = field(default_factory=list)
    seg_text: list[str] = field(default_factory=list)
    word_start: list[float] = field(default_factory=list)
    word_end: list[float] = field(default_factory=list)
    word_text: list[str] = field(default_factory=list)
    word_prob: list[float] = field(default_factory=list)
    word_seg: list[int] = field(default_factory=list)
    language: str = ""
    language_probability: float = float("nan")

    @property
    def text(self) -> str:
        return " ".join(t for t in self.seg_text if t)

    def add_segment(
        self, start: float, end: float, text: str, words: Sequence[tuple[float, float, str, float]]
    ) -> None:
        idx = len(self.seg_text)
        self.seg_start.append(float(start))
        self.seg_end.append(float(end))
        self.seg_text.append(text.strip())
        for ws, we, wt, wp in words:
            self.word_start.append(float(ws))
            self.word_end.append(float(we))
            self.word_text.append(wt.strip())
            self.word_prob.append(float(wp))
            self.word_seg.append(idx)

    def to_record(self, video_id: str, attrs: Mapping[str, Any] | None = None) -> VideoRecord:
        return VideoRecord(
            video_id=video_id,
            arrays={
                "seg_start": np.asarray(self.seg_start, dtype=np.float64),
                "seg_end": np.asarray(self.seg_end, dtype=np.float64),
                "seg_text": np.asarray(self.seg_text, dtype=object),
                "word_start": np.asarray(self.word_start, dtype=np.float64),
                "word_end": np.asarray(self.word_end, dtype=np.float64),
                "word_text": np.asarray(self.word_text, dtype=object),
                "word_prob": np.asarray(self.word_prob, dtype=np.float32),
                "word_seg": np.asarray(self.word_seg, dtype=np.int32),
            },
            attrs={"language": self.language, "language_probability": float(self.language_probability),
                   "n_segments": len(self.seg_text), **dict(attrs or {})},
        )


# ----------------------------------------------------------------------------- backends
class FasterWhisperBackend:
    """faster-whisper (CTranslate2) on a local model directory; never downloads."""

    name = "faster-whisper"

    def __init__(self, model_dir: str | os.PathLike[str], cfg: ASRConfig) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:
            raise ASRError(
                "the faster-whisper backend needs the faster-whisper package: pip install faster-whisper "
                f"(it brings ctranslate2; no torch needed) ({e})"
            ) from None
        d = Path(model_dir)
        if not (d / "model.bin").is_file():
            raise ASRError(f"{d}: no model.bin; not a CTranslate2 Whisper model directory")
        self.device = resolve_device(cfg.device)
        compute = cfg.compute_type
        if compute == "auto":
            compute = "float16" if self.device == "cuda" else "int8"
        self.cfg = cfg
        self.model = WhisperModel(str(d), device=self.device, compute_type=compute, cpu_threads=cfg.cpu_threads,
                                  local_files_only=True)
        self.english_only = not self.model.model.is_multilingual

    def transcribe(self, audio: np.ndarray) -> Transcript:
        cfg = self.cfg
        language = "en" if self.english_only else cfg.language
        segments, info = self.model.transcribe(
            np.ascontiguousarray(audio, dtype=np.float32),
            language=language,
            beam_size=cfg.beam_size,
            temperature=list(cfg.temperature) if isinstance(cfg.temperature, tuple) else cfg.temperature,
            condition_on_previous_text=cfg.condition_on_previous_text,
            initial_prompt=cfg.initial_prompt,
            word_timestamps=cfg.word_timestamps,
            vad_filter=cfg.vad_filter,
            max_new_tokens=cfg.max_new_tokens,
        )
        out = Transcript()
        for seg in segments:  # a generator: decoding happens here
            words = [(w.start, w.end, w.word, w.probability) for w in (seg.words or [])]
            out.add_segment(seg.start, seg.end, seg.text, words)
        out.language = str(info.language or language or "")
        out.language_probability = float(info.language_probability if info.language_probability is not None
                                          else float("nan"))
        return out


class OpenAIWhisperBackend:
    """openai-whisper on a verified ``.pt`` checkpoint."""

    name = "openai-whisper"

    def __init__(self, checkpoint: str | os.PathLike[str], cfg: ASRConfig, alignment_heads: str | None = None) -> None:
        try:
            import torch
            import whisper
            from whisper.model import ModelDimensions, Whisper
        except ImportError as e:
            raise ASRError(
                "the openai-whisper backend needs the openai-whisper package and its run-time dependencies: "
                "pip install --no-deps openai-whisper==20250625 && pip install tiktoken more-itertools numba "
                f"(triton is only for GPU kernels and is not needed) ({e})"
            ) from None
        path = Path(checkpoint)
        self.device = resolve_device(cfg.device)
        self.cfg = cfg
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ASRError(f"{path}: not a loadable openai-whisper checkpoint ({e})") from None
        if not isinstance(ckpt, dict) or "dims" not in ckpt or "model_state_dict" not in ckpt:
            raise ASRError(f"{path}: not an openai-whisper checkpoint (expected a dict with 'dims' and "
                           f"'model_state_dict')")
        dims = ModelDimensions(**ckpt["dims"])
        model = Whisper(dims)
        model.load_state_dict(ckpt["model_state_dict"])
        stem = path.name[: -len(".pt")] if path.name.endswith(".pt") else path.stem
        heads = alignment_heads if alignment_heads is not None else whisper._ALIGNMENT_HEADS.get(stem)
        if heads is not None:
            model.set_alignment_heads(heads)
        self.model = model.to(self.device).eval()
        self.english_only = not model.is_multilingual
        self._whisper = whisper

    def transcribe(self, audio: np.ndarray) -> Transcript:
        cfg = self.cfg
        language = "en" if self.english_only else cfg.language
        temps = cfg.temperature
        options: dict[str, Any] = dict(
            language=language,
            temperature=temps,
            condition_on_previous_text=cfg.condition_on_previous_text,
            initial_prompt=cfg.initial_prompt,
            word_timestamps=cfg.word_timestamps,
            fp16=self.device == "cuda",
            verbose=None,
        )
        if cfg.max_new_tokens is not None:
            options["sample_len"] = int(cfg.max_new_tokens)
        if cfg.beam_size > 1:
            options["beam_size"] = cfg.beam_size
            options["best_of"] = cfg.beam_size
        import torch

        with torch.inference_mode():
            result = self._whisper.transcribe(self.model, np.ascontiguousarray(audio, dtype=np.float32), **options)
        out = Transcript()
        for seg in result.get("segments", []):
            words = [(w["start"], w["end"], w["word"], w.get("probability", float("nan")))
                     for w in seg.get("words", []) or []]
            out.add_segment(seg["start"], seg["end"], seg["text"], words)
        out.language = str(result.get("language") or language or "")
        return out


def _pick_backend(cfg: ASRConfig, resolved: ResolvedModel) -> str:
    if cfg.backend != "auto":
        return cfg.backend
    names = [n.rsplit("/", 1)[-1] for n in resolved.files]
    if any(n.endswith(".pt") for n in names):
        return "openai-whisper"
    if "model.bin" in names:
        return "faster-whisper"
    raise ASRError(f"cannot tell the backend of model {resolved.name} from its files {names}; set asr backend")


def load_recognizer(resolved: ResolvedModel, cfg: ASRConfig) -> FasterWhisperBackend | OpenAIWhisperBackend:
    """The backend for a resolved (verified) registry model."""
    backend = _pick_backend(cfg, resolved)
    if backend == "openai-whisper":
        pts = [p for n, p in resolved.files.items() if n.endswith(".pt")]
        if len(pts) != 1:
            raise ASRError(f"model {resolved.name}: expected exactly one .pt checkpoint, found {len(pts)}")
        return OpenAIWhisperBackend(pts[0], cfg)
    if resolved.directory is None:
        raise ASRError(f"model {resolved.name} has no files")
    return FasterWhisperBackend(resolved.directory, cfg)


def transcribe_audio(recognizer: FasterWhisperBackend | OpenAIWhisperBackend, audio: np.ndarray,
                     silence_rms: float = 1e-4) -> tuple[Transcript, str]:
    """(transcript, note): empty or silent audio gives zero segments and a note saying why."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if len(audio) < MIN_SAMPLES:
        return Transcript(language=_fixed_language(recognizer)), "audio shorter than 0.1 s"
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    if not np.isfinite(rms) or rms < silence_rms:
        return Transcript(language=_fixed_language(recognizer)), f"silent audio (rms {rms:.2e})"
    return recognizer.transcribe(audio), ""


def _fixed_language(recognizer: FasterWhisperBackend | OpenAIWhisperBackend) -> str:
    return "en" if recognizer.english_only else (recognizer.cfg.language or "")


# ----------------------------------------------------------------------------- stage
def transcribe_shard(
    media_shard: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    cfg: Mapping[str, Any] | ASRConfig,
    *,
    models_dir: str | os.PathLike[str] | None = None,
    pins: Mapping[str, str] | None = None,
    spec: Any | None = None,
    progress: bool | None = None,
    key: str | None = None,
) -> StageResult:
    """Write ``transcripts/{asr}/{shard}.h5``: Whisper segments and words for every video of a media shard.

    The model is the registry entry ``cfg["model"]`` (or ``spec``), verified in
    ``models_dir`` (config ``models_dir``; ``$AFFECTFLOW_MODELS_DIR`` wins),
    with ``pins`` (config ``model_pins``) for files without a registry hash.
    """
    from tqdm import tqdm

    conf = ASRConfig.coerce(cfg)
    rerun = stage_key(STAGE, conf, expected=key)
    resolved = resolve_model(spec if spec is not None else conf.model, models_dir, pins)
    recognizer = load_recognizer(resolved, conf)
    prov = Provenance.of(rerun, model=conf.model, weights_sha256=resolved.weights_sha256,
                         resolved={"backend_used": recognizer.name, "registry_name": resolved.name})
    result = StageResult()
    with ShardReader(media_shard, stage="media") as reader, ShardWriter(out_path, prov) as writer:
        skipped = list(reader.skipped())
        for vid in tqdm(reader.video_ids(), desc=f"asr {conf.model}", unit="video",
                        disable=None if progress is None else not progress):
            audio = media_audio(reader.read(vid), media_shard)
            if audio is None:
                skipped.append((vid, "media record has no audio array"))
                continue
            transcript, note = transcribe_audio(recognizer, audio, conf.silence_rms)
            if note:
                log.info("%s: %s: no transcription", vid, note)
            writer.add(transcript.to_record(vid, {"audio_duration": len(audio) / SAMPLE_RATE, "note": note}))
            result.written.append(vid)
        result.skipped = skipped
        writer.set_skipped(skipped)
    return result


def run(job: Job) -> None:
    """The rule: ``input.media`` and ``input.model`` (a manifest) -> ``output[0]``, the transcripts shard."""
    joblog.setup(job.log)
    model = PreparedModel.for_job(job.input.model, job.config["models_dir"])
    transcribe_shard(job.input.media, job.output[0], ASRConfig.from_config(job.config, model=model.name),
                     models_dir=model.root, pins=model.pins, key=job.params.key)
