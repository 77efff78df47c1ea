"""The speech encoder on a wav2vec 2.0 stand-in (random weights, the real architecture and files): chunking,
hidden layers, short and silent audio, and the pooling of :mod:`affectflow.audio.embedding` on top of it
(here, with the encoder they need, so that the stand-in is built once)."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from affectflow.audio.embedding import audio_record, embed_audio
from affectflow.audio.speech_encoder import AudioFeatureError, SpeechEncoder
from affectflow.models.catalogue.weights import WeightsError
from affectflow.models.standins import speech as standins
from affectflow.stages.audio_features import AudioFeaturesOptions
from affectflow.testing.media import espeak_wav, ffmpeg

SPEECH = "Hello there. The weather today is mild, with a light breeze from the west."


def read_wav16(path: Path) -> np.ndarray:
    out = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1",
                          "-ar", "16000", "pipe:1"], capture_output=True, check=True)
    return np.frombuffer(out.stdout, dtype=np.float32).copy()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """The registry's wav2vec2_base_960h as a seeded random-weight stand-in, in the Hub's file layout."""
    return standins.build_wav2vec2_base_960h(tmp_path_factory.mktemp("standin") / "w2v")


@pytest.fixture(scope="module")
def encoder(checkpoint: Path) -> SpeechEncoder:
    return SpeechEncoder(checkpoint, device="cpu")


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    """Real synthetic speech: espeak-ng, resampled to 16 kHz mono by ffmpeg."""
    d = tmp_path_factory.mktemp("speech")
    raw = espeak_wav(SPEECH, d / "s.raw.wav")
    ffmpeg("-i", str(raw), "-ar", "16000", "-ac", "1", str(d / "s.wav"))
    return read_wav16(d / "s.wav")


def test_chunked_equals_unchunked_away_from_borders(encoder: SpeechEncoder, speech: np.ndarray) -> None:
    audio = speech[: 16000 * 6]
    t_full, full0 = encoder.frame_features(audio, layer=0, chunk_s=60)
    t_chunk, chunk0 = encoder.frame_features(audio, layer=0, chunk_s=2.0, overlap_s=1.5, batch_size=2)
    assert np.array_equal(t_full, t_chunk)
    # Everything before self-attention is local once the context covers the positional convolution
    # (+-64 frames) and the first conv's group norm uses whole-recording statistics: exact, everywhere.
    assert np.abs(full0 - chunk0).max() < 1e-3 * np.abs(full0).max()
    # The transformer layers attend to the whole chunk, so deeper layers only approximate the
    # whole-recording vectors; away from chunk borders they stay close.
    _, full = encoder.frame_features(audio, layer="last", chunk_s=60)
    _, chunk = encoder.frame_features(audio, layer="last", chunk_s=2.0, overlap_s=1.5, batch_size=2)
    idx = np.arange(len(t_full))
    far = np.minimum(idx % 100, 100 - idx % 100) >= 25  # chunk borders every 100 frames (2 s)
    cos = (full * chunk).sum(1) / np.linalg.norm(full, axis=1) / np.linalg.norm(chunk, axis=1)
    print(f"last layer, chunked vs whole: min cosine {cos[far].min():.4f} away from borders, {cos.min():.4f} overall")
    assert cos[far].min() > 0.99


def test_hidden_layer_matches_full_forward(encoder: SpeechEncoder, speech: np.ndarray) -> None:
    import torch

    audio = speech[:16000]
    x = torch.from_numpy((audio - audio.mean()) / np.sqrt(audio.var() + 1e-7))[None].float()
    with torch.inference_mode():
        hs = encoder.model(x, output_hidden_states=True).hidden_states
    for k in (0, 4, -1):
        _, got = encoder.frame_features(audio, layer=k)
        assert np.allclose(got, hs[k][0].numpy(), atol=1e-4), k
    _, last = encoder.frame_features(audio, layer="last")
    assert np.allclose(last, hs[-1][0].numpy(), atol=1e-4)
    with pytest.raises(Exception, match="does not exist"):
        encoder.frame_features(audio, layer=13)


def test_empty_short_and_silent_audio(encoder: SpeechEncoder) -> None:
    for n in (0, 399):
        ts, emb = encoder.frame_features(np.zeros(n, dtype=np.float32))
        assert ts.shape == (0,) and emb.shape == (0, 768)
    ts, emb = encoder.frame_features(np.zeros(400, dtype=np.float32))
    assert ts.shape == (1,) and emb.shape == (1, 768)
    ts, emb = encoder.frame_features(np.zeros(16000, dtype=np.float32))
    assert emb.shape == (49, 768) and np.all(np.isfinite(emb))
    cfg = AudioFeaturesOptions(pooling="window")
    ts, emb = embed_audio(np.zeros(0, dtype=np.float32), encoder, cfg)
    assert ts.shape == (0,) and emb.shape == (0, 768)


def test_window_and_utterance_pooling(encoder: SpeechEncoder, speech: np.ndarray) -> None:
    audio = speech[: int(16000 * 2.5)]
    t, frames = embed_audio(audio, encoder, AudioFeaturesOptions(pooling="frame"))
    tw, win = embed_audio(audio, encoder, AudioFeaturesOptions(pooling="window", window_s=1.0, hop_s=0.5))
    assert np.allclose(tw, [0.5, 1.0, 1.5, 2.0])
    first = frames[(t >= 0) & (t < 1.0)].mean(axis=0)
    assert np.allclose(win[0], first, atol=1e-5)
    tu, utt = embed_audio(audio, encoder, AudioFeaturesOptions(pooling="utterance"))
    assert tu.shape == (1,) and np.allclose(utt[0], frames.mean(axis=0), atol=1e-5)


def test_frame_grid(encoder: SpeechEncoder) -> None:
    """wav2vec 2.0's front end: 400-sample receptive field, 320-sample stride; frames timed at their centres."""
    assert (encoder.receptive_field, encoder.stride) == (400, 320)
    assert [encoder.n_frames(n) for n in (0, 399, 400, 719, 720, 16000)] == [0, 0, 1, 1, 2, 49]
    assert np.allclose(encoder.frame_times(3), [0.0125, 0.0325, 0.0525])
    assert np.allclose(encoder.frame_times(2, first=10), [0.2125, 0.2325])


def test_audio_record(encoder: SpeechEncoder, speech: np.ndarray) -> None:
    """One video's record: the pooled vectors with their times, and what the shard's attributes say of them."""
    audio = speech[: int(16000 * 2.5)]
    cfg = AudioFeaturesOptions(pooling="window", window_s=1.0, hop_s=0.5)
    rec = audio_record("v", audio, encoder, cfg)
    times, emb = embed_audio(audio, encoder, cfg)
    assert rec.video_id == "v" and np.array_equal(rec.arrays["timestamps"], times)
    assert np.array_equal(rec.arrays["embeddings"], emb) and rec.arrays["embeddings"].dtype == np.float32
    assert rec.attrs == {"audio_duration": 2.5, "n_vectors": 4, "dim": 768, "device": "cpu"}


def test_not_a_speech_checkpoint_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(AudioFeatureError, match="no config.json"):
        SpeechEncoder(tmp_path, device="cpu")
    (tmp_path / "config.json").write_bytes((checkpoint / "config.json").read_bytes())
    with pytest.raises(WeightsError, match="no weights file"):
        SpeechEncoder(tmp_path, device="cpu")


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def transformers_log():
    """Every message transformers logs at WARNING or above (its own handler does not propagate to caplog)."""
    hf = logging.getLogger("transformers")
    handler, level = _Records(), hf.level
    hf.addHandler(handler)
    hf.setLevel(logging.WARNING)
    try:
        yield handler.messages
    finally:
        hf.removeHandler(handler)
        hf.setLevel(level)


def test_the_ctc_checkpoint_loads_without_a_load_report(
    checkpoint: Path, transformers_log: list[str], capsys, caplog, load_bars
) -> None:
    """wav2vec2-base-960h's CTC head (lm_head.*) is unused by the bare encoder: expected, so no "LOAD REPORT".

    Nor transformers' "Loading weights" progress bar, redrawn into every job's log.
    """
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    caplog.set_level(logging.DEBUG, logger="affectflow.audio.speech_encoder")
    SpeechEncoder(checkpoint, device="cpu")
    assert hf_logging.is_progress_bar_enabled()  # switched off for our load only
    assert load_bars and not any(drawn for _, drawn in load_bars), load_bars
    out, err = capsys.readouterr()
    printed = out + err + "\n".join(transformers_log) + caplog.text
    assert "LOAD REPORT" not in printed and "\x1b[" not in printed
    assert "UNEXPECTED" not in printed and "Loading weights" not in printed
    # the unused head is still on record, at DEBUG
    assert any(r.levelno == logging.DEBUG and "lm_head.weight" in r.getMessage() for r in caplog.records)
    assert not any(r.levelno >= logging.WARNING for r in caplog.records)
    # ... while a plain load of the same files reports them: the switch is off again after our load
    AutoModel.from_pretrained(str(checkpoint))
    assert any("LOAD REPORT" in m and "lm_head" in m for m in transformers_log)
    assert ("Loading weights", True) in load_bars


def _edited_checkpoint(checkpoint: Path, out: Path, drop: str) -> Path:
    import torch

    shutil.copytree(checkpoint, out)
    state = torch.load(out / "pytorch_model.bin", weights_only=True)
    del state[drop]
    torch.save(state, out / "pytorch_model.bin")
    return out


def test_a_missing_encoder_weight_is_a_clear_error(checkpoint: Path, tmp_path: Path, transformers_log) -> None:
    bad = _edited_checkpoint(checkpoint, tmp_path / "bad", "wav2vec2.encoder.layers.0.attention.k_proj.weight")
    with pytest.raises(AudioFeatureError) as err:
        SpeechEncoder(bad, device="cpu")
    msg = str(err.value)
    assert str(bad / "pytorch_model.bin") in msg
    assert "encoder.layers.0.attention.k_proj.weight" in msg and "random" in msg
    assert not any("LOAD REPORT" in m for m in transformers_log)


def test_a_missing_training_only_weight_is_fine(checkpoint: Path, tmp_path: Path) -> None:
    """SpecAugment's mask vector is not used to encode (facebook/wav2vec2-base-960h ships without it)."""
    ok = _edited_checkpoint(checkpoint, tmp_path / "ok", "wav2vec2.masked_spec_embed")
    enc = SpeechEncoder(ok, device="cpu")
    assert enc.frame_features(np.zeros(16000, dtype=np.float32))[1].shape == (49, 768)
