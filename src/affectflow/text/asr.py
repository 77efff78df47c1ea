"""Which Whisper backend a model gets, and one recording to its transcript (silence never reaches the model).

Empty audio, or audio quieter than ``silence_rms``, is not sent to the model
(Whisper invents text on silence): such recordings get zero segments and a
note saying why.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from affectflow.core.vocabulary import SAMPLE_RATE
from affectflow.models.resolve import ResolvedModel
from affectflow.text.errors import ASRError
from affectflow.text.transcript import Transcript
from affectflow.text.whisper import FasterWhisperBackend, OpenAIWhisperBackend, RecognizerSettings

BACKENDS = ("auto", "faster-whisper", "openai-whisper")
MIN_SAMPLES = SAMPLE_RATE // 10  # 0.1 s: shorter audio has nothing to transcribe

Recognizer = FasterWhisperBackend | OpenAIWhisperBackend


class BackendSettings(RecognizerSettings, Protocol):
    """The settings :func:`load_recognizer` reads: a backend's, and which backend (``TranscriptsOptions.backend``)."""

    backend: str


def pick_backend(cfg: BackendSettings, resolved: ResolvedModel) -> str:
    """``cfg.backend``, or for ``auto`` the one the model's files are for (``.pt``: openai-whisper,
    ``model.bin``: faster-whisper)."""
    if cfg.backend != "auto":
        return cfg.backend
    names = [n.rsplit("/", 1)[-1] for n in resolved.files]
    if any(n.endswith(".pt") for n in names):
        return "openai-whisper"
    if "model.bin" in names:
        return "faster-whisper"
    raise ASRError(f"cannot tell the backend of model {resolved.name} from its files {names}; set asr backend")


def load_recognizer(resolved: ResolvedModel, cfg: BackendSettings) -> Recognizer:
    """The backend for a resolved (verified) registry model."""
    backend = pick_backend(cfg, resolved)
    if backend == "openai-whisper":
        pts = [p for n, p in resolved.files.items() if n.endswith(".pt")]
        if len(pts) != 1:
            raise ASRError(f"model {resolved.name}: expected exactly one .pt checkpoint, found {len(pts)}")
        return OpenAIWhisperBackend(pts[0], cfg, data=resolved.read_weights())
    if resolved.directory is None:
        raise ASRError(f"model {resolved.name} has no files")
    return FasterWhisperBackend(resolved.directory, cfg)


def transcribe_audio(recognizer: Recognizer, audio: np.ndarray, silence_rms: float = 1e-4) -> tuple[Transcript, str]:
    """(transcript, note): empty or silent audio gives zero segments and a note saying why."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if len(audio) < MIN_SAMPLES:
        return Transcript(language=_fixed_language(recognizer)), "audio shorter than 0.1 s"
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    if not np.isfinite(rms) or rms < silence_rms:
        return Transcript(language=_fixed_language(recognizer)), f"silent audio (rms {rms:.2e})"
    return recognizer.transcribe(audio), ""


def _fixed_language(recognizer: Recognizer) -> str:
    """The language a transcript without speech is labelled with: the model's own for ``.en`` models."""
    return "en" if recognizer.english_only else (recognizer.cfg.language or "")
