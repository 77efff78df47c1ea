"""The openai-whisper backend loads only plain tensors: a checkpoint that would run code is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from affectflow.models.standins import whisper as standins
from affectflow.stages.transcripts import TranscriptsOptions
from affectflow.text.errors import ASRError
from affectflow.text.whisper import FasterWhisperBackend, OpenAIWhisperBackend


class _NotAWeight:
    def __reduce__(self):
        return (print, ("arbitrary code ran",))


def test_checkpoint_with_code_is_not_unpickled(tmp_path: Path) -> None:
    """Even a verified file is loaded with weights_only=True: a pickle that would run code is refused."""
    path = tmp_path / "evil.pt"
    torch.save({"dims": dict(standins.WHISPER_DIMS["tiny.en"]), "model_state_dict": {}, "x": _NotAWeight()}, path)
    with pytest.raises(ASRError, match="not a loadable openai-whisper checkpoint"):
        OpenAIWhisperBackend(path, TranscriptsOptions(model="x", device="cpu"))


def test_faster_whisper_needs_a_ctranslate2_directory(tmp_path: Path) -> None:
    pytest.importorskip("faster_whisper")
    with pytest.raises(ASRError, match="no model.bin"):
        FasterWhisperBackend(tmp_path, TranscriptsOptions(device="cpu"))


@pytest.mark.usefixtures("no_models_dir_override")
def test_a_precision_the_cpu_cannot_run_names_the_key_and_the_fix() -> None:
    """CTranslate2 refuses float16 on a CPU without fast float16 with its own ValueError; the job says which
    config key and what to set."""
    import ctranslate2

    from affectflow.models.resolve import resolve_model

    if "float16" in ctranslate2.get_supported_compute_types("cpu"):
        pytest.skip("this CPU runs float16 in CTranslate2")
    tiny = resolve_model("faster_whisper_tiny_en")
    with pytest.raises(ASRError, match=r"asr.compute_type 'float16' cannot run on this job's device \(cpu\).*int8"):
        FasterWhisperBackend(tiny.directory, TranscriptsOptions(device="cpu", compute_type="float16"))


def test_openai_whisper_runs_float32_unless_the_key_says_float16(tmp_path: Path) -> None:
    """openai-whisper's half precision follows the keyed ``asr.compute_type``, never the device: fp16 on every
    CUDA job put other words under the key of a CPU's float32 transcript."""
    from affectflow.text.whisper import openai_half

    for device in ("cuda", "cuda:1", "cpu"):
        assert not openai_half("int8", device) and not openai_half("float32", device)
    assert openai_half("float16", "cuda") and openai_half("float16", "cuda:1")
    ckpt = standins.build_whisper_checkpoint(tmp_path / "tiny.en.pt")
    assert OpenAIWhisperBackend(ckpt, TranscriptsOptions(model="x", device="cpu", compute_type="int8")).fp16 is False


def test_openai_whisper_float16_on_a_cpu_is_refused_with_the_fix(tmp_path: Path) -> None:
    ckpt = standins.build_whisper_checkpoint(tmp_path / "tiny.en.pt")
    with pytest.raises(ASRError, match=r"asr.compute_type 'float16': openai-whisper runs float16 only on a GPU.*"
                                       r"device is cpu.*float32"):
        OpenAIWhisperBackend(ckpt, TranscriptsOptions(model="x", device="cpu", compute_type="float16"))
