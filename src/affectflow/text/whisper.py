"""The two Whisper backends: ``faster-whisper`` (a CTranslate2 model directory) and ``openai-whisper`` (``.pt``).

Both are optional imports: a missing package is an :class:`ASRError` saying
what to install. The openai-whisper checkpoint is a torch pickle, so it is
loaded only after its sha256 is verified (by the caller, through
:func:`affectflow.models.resolve.resolve_model`), and then with
``weights_only=True``. Details: docs/features.md, section "Transcripts (ASR)".
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from affectflow.core.device import is_cuda, resolve_device
from affectflow.text.errors import ASRError
from affectflow.text.transcript import Transcript


class RecognizerSettings(Protocol):
    """The settings a backend reads (the fields of ``TranscriptsOptions`` of the same names)."""

    device: str
    language: str | None
    word_timestamps: bool
    beam_size: int
    temperature: float | tuple[float, ...]
    condition_on_previous_text: bool
    initial_prompt: str | None
    vad_filter: bool
    max_new_tokens: int | None
    compute_type: str
    cpu_threads: int


class FasterWhisperBackend:
    """faster-whisper (CTranslate2) on a local model directory; never downloads."""

    name = "faster-whisper"

    def __init__(self, model_dir: str | os.PathLike[str], cfg: RecognizerSettings) -> None:
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
        self.cfg = cfg
        try:
            self.model = WhisperModel(str(d), device=self.device, compute_type=cfg.compute_type,
                                      cpu_threads=cfg.cpu_threads, local_files_only=True)
        except ValueError as e:  # CTranslate2: this device cannot run this precision (float16 on most CPUs)
            if "compute type" not in str(e):
                raise
            raise ASRError(f"asr.compute_type {cfg.compute_type!r} cannot run on this job's device "
                           f"({self.device}): {e}. Set asr.compute_type to int8 (what a CPU runs), or run the "
                           "transcripts on a GPU") from None
        self.english_only = not self.model.model.is_multilingual

    def transcribe(self, audio: np.ndarray) -> Transcript:
        """The transcript of ``audio`` (16 kHz mono float32)."""
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


def openai_half(compute_type: str, device: str) -> bool:
    """Whether openai-whisper runs in half precision: only when the keyed ``asr.compute_type`` is ``float16``
    (any other runs float32), never because the job got a GPU, which put other words under the key of a CPU's
    float32 transcript; ``float16`` on a CPU is refused."""
    if compute_type != "float16":
        return False
    if not is_cuda(device):
        raise ASRError(f"asr.compute_type {compute_type!r}: openai-whisper runs float16 only on a GPU, and this "
                       f"job's device is {device}. Set asr.compute_type to float32 (or int8, which openai-whisper "
                       "runs as float32), or run the transcripts on a GPU")
    return True


class OpenAIWhisperBackend:
    """openai-whisper on a verified ``.pt`` checkpoint."""

    name = "openai-whisper"

    def __init__(self, checkpoint: str | os.PathLike[str], cfg: RecognizerSettings,
                 alignment_heads: str | None = None, data: bytes | None = None) -> None:
        """``data``: the checkpoint's verified bytes (:meth:`ResolvedModel.read_weights`), parsed instead of
        reading ``checkpoint`` (its name, for messages and alignment heads) again after it was verified."""
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
        self.fp16 = openai_half(cfg.compute_type, self.device)
        try:
            ckpt = torch.load(io.BytesIO(data) if data is not None else path, map_location="cpu", weights_only=True)
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
        """The transcript of ``audio`` (16 kHz mono float32)."""
        cfg = self.cfg
        language = "en" if self.english_only else cfg.language
        temps = cfg.temperature
        options: dict[str, Any] = dict(
            language=language,
            temperature=temps,
            condition_on_previous_text=cfg.condition_on_previous_text,
            initial_prompt=cfg.initial_prompt,
            word_timestamps=cfg.word_timestamps,
            fp16=self.fp16,
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
