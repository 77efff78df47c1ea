"""Choosing a Whisper backend from a model's files, and silence that never reaches the model (real Whisper tiny.en,
shipped in a wheel, offline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from affectflow.models.catalogue.registry import get
from affectflow.models.resolve import ResolvedModel, resolve_model
from affectflow.stages.transcripts import TranscriptsOptions
from affectflow.text.asr import load_recognizer, pick_backend, transcribe_audio
from affectflow.text.errors import ASRError

pytestmark = pytest.mark.usefixtures("no_models_dir_override")


def test_empty_and_short_audio_give_no_segments() -> None:
    rec = load_recognizer(resolve_model("faster_whisper_tiny_en"), TranscriptsOptions(device="cpu"))
    for audio in (np.zeros(0, np.float32), np.zeros(800, np.float32), np.zeros(32000, np.float32)):
        tr, note = transcribe_audio(rec, audio)
        assert tr.seg_text == [] and tr.word_text == [] and note and tr.language == "en"
        assert tr.to_record("v").arrays["seg_text"].shape == (0,)


def _with_files(*names: str) -> ResolvedModel:
    return ResolvedModel(spec=get("faster_whisper_tiny_en"), directory=Path("/unused"),
                         files={n: Path("/unused") / n for n in names}, weights_sha256="")


def test_backend_from_the_model_files() -> None:
    auto = TranscriptsOptions(device="cpu")
    assert pick_backend(auto, _with_files("whisper/small.en.pt")) == "openai-whisper"
    assert pick_backend(auto, _with_files("fw/model.bin", "fw/config.json")) == "faster-whisper"
    chosen = TranscriptsOptions(backend="faster-whisper")
    assert pick_backend(chosen, _with_files("whisper/small.en.pt")) == "faster-whisper"
    with pytest.raises(ASRError, match="cannot tell the backend"):
        pick_backend(auto, _with_files("weights.onnx"))
    with pytest.raises(ASRError, match="exactly one .pt"):
        load_recognizer(_with_files("a.pt", "b.pt"), auto)
