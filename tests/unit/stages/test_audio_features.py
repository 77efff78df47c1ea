"""Audio features: a wav2vec 2.0 stand-in fetched over HTTP, verified, loaded and run on real media shards."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from affectflow.data.units import Unit
from affectflow.io.store import ShardReader
from affectflow.models.catalogue.registry import get
from affectflow.models.catalogue.weights import WeightFile, WeightsError, fetch
from affectflow.models.resolve import resolve_model
from affectflow.models.standins import speech as standins
from affectflow.stages.audio_features import AudioFeaturesOptions, run_audio_features
from affectflow.stages.media import run_media
from affectflow.testing.http_server import LocalHTTPServer
from affectflow.testing.media import espeak_wav, ffmpeg

MODEL = "wav2vec2_base_960h"  # registry entry; its Hub files have no sha256 on record, so they are pinned


pytestmark = pytest.mark.usefixtures("no_models_dir_override")  # these tests pass their own models dir


def speech_wav(text: str, path: Path) -> Path:
    """Real synthetic speech: espeak-ng, resampled to 16 kHz mono by ffmpeg."""
    raw = espeak_wav(text, path.with_suffix(".raw.wav"))
    ffmpeg("-i", str(raw), "-ar", "16000", "-ac", "1", str(path))
    return path


@pytest.fixture(scope="session")
def w2v_models(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The registry's wav2vec2_base_960h files, as random-weight stand-ins, fetched into a models dir.

    Built once (seeded), served from 127.0.0.1 under the registry's file names,
    fetched with affectflow.models.catalogue.weights.fetch (which verifies the sha256), and
    returned with the pins the registry entry needs.
    """
    build = standins.build_wav2vec2_base_960h(tmp_path_factory.mktemp("standin") / "w2v")
    root = tmp_path_factory.mktemp("models")
    pins: dict[str, str] = {}
    with LocalHTTPServer() as srv:
        for wf in get(MODEL).files:
            data = (build / wf.name.rsplit("/", 1)[-1]).read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            url = srv.add("/" + wf.name, data)
            fetch(WeightFile(wf.name, url, sha, size=len(data)), root, progress=False)
            pins[wf.name] = sha
        assert all(s == 200 for _, _, s in srv.requests)
    return root, pins


@pytest.fixture
def media_shard(tmp_path: Path, video_factory) -> Path:
    """A real media shard: a video with espeak speech, one with silent audio, one without audio."""
    wav = speech_wav("I am happy to see you.", tmp_path / "speech.wav")
    talk = tmp_path / "talk.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=3", "-i", str(wav),
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(talk))
    silent = video_factory("silent.mp4", duration=1.5, audio="silent")
    mute = video_factory("mute.mp4", duration=1.0, audio="none")
    units = [Unit("talk", str(talk), "train", "s0000"), Unit("silent", str(silent), "train", "s0000"),
             Unit("mute", str(mute), "train", "s0000")]
    out = tmp_path / "media" / "s0000.h5"
    run_media(units, out)
    return out


def test_fetch_verify_load_extract(w2v_models, media_shard: Path, tmp_path: Path) -> None:
    root, pins = w2v_models
    out = tmp_path / "features" / "audio" / MODEL / "s0000.h5"
    cfg = {"model": MODEL, "chunk_s": 2.0, "overlap_s": 1.5, "batch_size": 2, "device": "cpu"}
    res = run_audio_features(media_shard, out, root, cfg, pins=pins, progress=False)
    assert sorted(res.written) == ["mute", "silent", "talk"] and res.skipped == []
    with ShardReader(out, stage="audio_features", model=MODEL) as r:
        assert r.provenance.weights_sha256 == pins["hf/facebook--wav2vec2-base-960h/pytorch_model.bin"]
        assert r.provenance.config["layer"] == "last" and r.provenance.config["registry_name"] == MODEL
        for vid in ("talk", "silent", "mute"):
            rec = r.read(vid)
            ts, emb = rec.arrays["timestamps"], rec.arrays["embeddings"]
            dur = rec.attrs["audio_duration"]
            assert emb.shape == (len(ts), 768) and emb.dtype == np.float32
            # one vector per 20 ms frame, centred 12.5 ms into its 25 ms receptive field
            assert len(ts) == (int(dur * 16000) - 400) // 320 + 1
            assert ts[0] == pytest.approx(0.0125) and np.all(np.diff(ts) > 0)
            assert np.allclose(np.diff(ts), 0.02) and ts[-1] < dur
            assert np.all(np.isfinite(emb))
        # silence (and the media stage's silence for a video without audio) still gives finite vectors
        assert r.read("talk").arrays["embeddings"].std() > 0


def test_unpinned_or_tampered_weights_are_refused(w2v_models, tmp_path: Path) -> None:
    root, pins = w2v_models
    with pytest.raises(WeightsError, match="no sha256 is on record"):
        resolve_model(MODEL, root, pins={})
    bad = dict(pins)
    key = next(k for k in bad if k.endswith("pytorch_model.bin"))
    bad[key] = "0" * 64
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        resolve_model(MODEL, root, bad)


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="pooling"):
        AudioFeaturesOptions(pooling="max")
    with pytest.raises(ValueError, match=r"unknown audio option\(s\) \['chunk'\]"):
        AudioFeaturesOptions.from_mapping({"model": "x", "chunk": 3})
    with pytest.raises(ValueError, match="layer"):
        AudioFeaturesOptions(layer="first")


@pytest.mark.parametrize("name, millions", [
    ("wav2vec2-base", 95.04), ("wav2vec2-base-960h", 94.40), ("hubert-base-ls960", 94.37),
    ("hubert-large-ls960-ft", 315.47),
])
def test_speech_standin_configs_have_the_published_size(name: str, millions: float) -> None:
    """The hand-copied configs give the released parameter counts (built on the meta device: no weights)."""
    import torch
    import transformers

    cfg, cls_name, _, _ = standins.SPEECH_STANDINS[name]
    cls = getattr(transformers, cls_name)
    with torch.device("meta"):
        model = cls(cls.config_class(**{k: v for k, v in cfg.items() if k != "model_type"}))
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(millions, abs=0.01)


def test_speech_standin_is_reproducible(w2v_models, tmp_path: Path) -> None:
    """Rebuilt with the same seed, the stand-in has the sha256 that was fetched and pinned."""
    root, pins = w2v_models
    again = standins.build_wav2vec2_base_960h(tmp_path / "again")
    for name, sha in pins.items():
        assert hashlib.sha256((again / name.rsplit("/", 1)[-1]).read_bytes()).hexdigest() == sha, name


def test_audio_starting_late_gives_vectors_as_late_on_the_video_clock(w2v_models, tmp_path: Path) -> None:
    """The same speech muxed 2 s after the first video frame: its vectors come 2 s (four 0.5 s hops) later."""
    wav = speech_wav("I am happy to see you, and I hope you are well today.", tmp_path / "speech.wav")
    base, late = tmp_path / "base.mp4", tmp_path / "late.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=7", "-i", str(wav),
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(base))
    ffmpeg("-i", str(base), "-itsoffset", "2", "-i", str(base), "-map", "0:v", "-map", "1:a", "-c", "copy", str(late))
    media = tmp_path / "media.h5"
    run_media([Unit("base", str(base), "train", "s0000"), Unit("late", str(late), "train", "s0000")], media)
    root, pins = w2v_models
    out = tmp_path / "audio.h5"
    cfg = {"model": MODEL, "pooling": "window", "window_s": 1.0, "hop_s": 0.5, "device": "cpu"}
    run_audio_features(media, out, root, cfg, pins=pins, progress=False)
    with ShardReader(out, stage="audio_features") as r:
        b, lt = r.read("base").arrays, r.read("late").arrays
    np.testing.assert_allclose(np.diff(b["timestamps"])[:-1], 0.5)  # the last window may be shorter
    # the shift (in 0.5 s hops) that lines the two vector sequences up best: four hops, 2 s
    eb, el = (np.asarray(a["embeddings"], np.float64) for a in (b, lt))
    eb, el = (e / np.linalg.norm(e, axis=1, keepdims=True) for e in (eb, el))
    n = min(len(eb), len(el) - 8)
    similarity = {s: float(np.mean(np.sum(eb[:n] * el[s : s + n], axis=1))) for s in range(0, 9)}
    assert max(similarity, key=similarity.get) == 4, similarity
