"""Local text encoders on the real all-MiniLM-L6-v2 (shipped in a wheel, offline): the same vectors as
sentence-transformers, input order kept through length batching, and E5's prefix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from affectflow.models.catalogue.registry import ModelSpec, get
from affectflow.models.resolve import resolve_model
from affectflow.stages.text_features import TextFeaturesOptions
from affectflow.text.loading import load_text_encoder

# the segment texts of the stage tests' transcripts shard (tests/unit/stages/test_text_features.py)
TEXTS = ["I am so happy to see you again!", "This is wonderful news.",
         "That was really annoying and I am angry about it."]


pytestmark = pytest.mark.usefixtures("no_models_dir_override")


def _texts() -> list[str]:
    return list(TEXTS)


def test_minilm_matches_sentence_transformers() -> None:
    st = pytest.importorskip("sentence_transformers")
    resolved = resolve_model("all_minilm_l6_v2")
    ours = load_text_encoder(resolved, TextFeaturesOptions(device="cpu")).embed(_texts())["embeddings"]
    ref = st.SentenceTransformer(str(resolved.directory), device="cpu").encode(_texts())
    assert np.allclose(ours, ref, atol=1e-5)


def test_batched_embeddings_keep_input_order() -> None:
    """Texts are batched by length internally; a call gives each text's own vector, in the order given."""
    enc = load_text_encoder(resolve_model("all_minilm_l6_v2"), TextFeaturesOptions(device="cpu", batch_size=2))
    texts = [
        "Hi.",
        "I honestly cannot believe how wonderful this whole day has been, from the sunrise to the dinner "
        "with all of my oldest friends, and I am so grateful for every minute of it.",
        "",
        "That was really annoying and I am angry about it.",
        "   ",
        "No way!",
        "Well, I suppose it could have gone worse, but I am still quite disappointed with the result.",
    ]
    assert [len(t) for t in texts] != sorted((len(t) for t in texts), reverse=True)  # not already sorted
    together = enc.embed(texts)["embeddings"]
    alone = np.concatenate([enc.embed([t])["embeddings"] for t in texts])
    assert together.shape == (len(texts), 384) and together.dtype == np.float32
    assert np.allclose(together, alone, atol=1e-5)
    # each vector is its own text's: a permutation would not pass the check above
    assert not np.allclose(together[0], together[1], atol=1e-2)


def test_e5_prefix(tmp_path: Path) -> None:
    """An E5-family model gets 'query: ' before every text (checked with MiniLM's weights under an E5 spec)."""
    minilm = get("all_minilm_l6_v2")
    e5_like = ModelSpec(name="e5_like", modality="text", family="E5", files=minilm.files, embedding_dim=384)
    cfg = TextFeaturesOptions(model="e5_like", device="cpu")
    e5 = load_text_encoder(resolve_model(e5_like), cfg)
    plain = load_text_encoder(resolve_model(minilm), cfg)
    assert e5.prefix == "query: " and plain.prefix == ""
    texts = _texts()
    assert np.allclose(e5.embed(texts)["embeddings"], plain.embed(["query: " + t for t in texts])["embeddings"],
                       atol=1e-6)
    passage = load_text_encoder(resolve_model(e5_like), TextFeaturesOptions(device="cpu", prefix="passage: "))
    assert passage.prefix == "passage: "


def test_loading_draws_no_progress_bar(load_bars) -> None:
    """transformers' "Loading weights" bar would be redrawn into every text_features job's log."""
    from transformers import AutoModel

    resolved = resolve_model("all_minilm_l6_v2")
    load_text_encoder(resolved, TextFeaturesOptions(device="cpu"))
    assert ("Loading weights", False) in load_bars and not any(drawn for _, drawn in load_bars)
    AutoModel.from_pretrained(str(resolved.directory))  # the setting is restored after our load
    assert ("Loading weights", True) in load_bars
