"""Which encoder a registry model gets: the kind from the registry entry (or ``kind``), the API's own model id."""

from __future__ import annotations

import pytest

from affectflow.models.catalogue.registry import get
from affectflow.models.resolve import resolve_model
from affectflow.stages.text_features import TextFeaturesOptions
from affectflow.text.api_clients import GIGACHAT_AUTH_URL, GIGACHAT_KEY_ENV, OPENAI_BASE_URL, OPENAI_KEY_ENV
from affectflow.text.encoders import SentenceEncoder
from affectflow.text.errors import TextFeatureError
from affectflow.text.loading import load_text_encoder

pytestmark = pytest.mark.usefixtures("no_models_dir_override")


def test_api_models_get_their_api_id_and_default_endpoints(monkeypatch) -> None:
    """Made without a request: the registry name maps to the API's model id, the width to the registry's."""
    monkeypatch.setenv(OPENAI_KEY_ENV, "sk-unused")
    monkeypatch.setenv(GIGACHAT_KEY_ENV, "unused")
    openai = load_text_encoder(resolve_model("openai_text_embedding_3_small"),
                               TextFeaturesOptions(model="openai_text_embedding_3_small"))
    assert (openai.kind, openai.api_model, openai.base_url) == ("openai", "text-embedding-3-small", OPENAI_BASE_URL)
    assert openai.dim == get("openai_text_embedding_3_small").embedding_dim
    giga = load_text_encoder(resolve_model("gigachat_embeddings"), TextFeaturesOptions(model="gigachat_embeddings",
                                                                                     api_model="EmbeddingsGigaR"))
    assert (giga.kind, giga.api_model, giga.auth_url) == ("gigachat", "EmbeddingsGigaR", GIGACHAT_AUTH_URL)


def test_kind_auto_and_set(monkeypatch) -> None:
    minilm = resolve_model("all_minilm_l6_v2")
    assert isinstance(load_text_encoder(minilm, TextFeaturesOptions(device="cpu")), SentenceEncoder)
    # an API kind set by hand on a local model makes an API client, which needs its key, not the files
    monkeypatch.delenv(OPENAI_KEY_ENV, raising=False)
    with pytest.raises(TextFeatureError, match=OPENAI_KEY_ENV):
        load_text_encoder(minilm, TextFeaturesOptions(kind="openai"))
