"""The OpenAI and GigaChat embedding clients against a local server that speaks both protocols (and, like some
real error pages, echoes the request's Authorization header): errors and logs never show a key."""

from __future__ import annotations

import logging

import pytest

from affectflow.models.catalogue.registry import get
from affectflow.models.resolve import resolve_model
from affectflow.stages.text_features import TextFeaturesOptions
from affectflow.testing.api_server import EmbeddingAPIServer, assert_no_secret
from affectflow.text.api_clients import OPENAI_KEY_ENV, _retry_after
from affectflow.text.errors import TextFeatureError
from affectflow.text.loading import load_text_encoder


def test_api_errors_never_show_the_key(api: EmbeddingAPIServer, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    spec = get("openai_text_embedding_3_small")
    cfg = TextFeaturesOptions(model=spec.name, base_url=api.url + "/v1", max_retries=2)
    enc = load_text_encoder(resolve_model(spec), cfg, sleep=lambda s: None)
    api.fail["/v1/embeddings"] = [400]  # the server echoes our Authorization header in its error body
    with pytest.raises(TextFeatureError, match="HTTP 400") as e400:
        enc.embed(["hello"])
    api.fail["/v1/embeddings"] = [429, 429, 429, 429]
    with pytest.raises(TextFeatureError, match="after 3 attempts") as e429:
        enc.embed(["hello"])
    assert "***" in str(e400.value)
    assert_no_secret(str(e400.value), str(e429.value), repr(enc), caplog.text)
    giga = load_text_encoder(resolve_model(get("gigachat_embeddings")),
                             TextFeaturesOptions(model="gigachat_embeddings", base_url=api.url + "/api/v1",
                                               auth_url=api.url + "/api/v2/oauth", max_retries=0))
    api.fail["/api/v2/oauth"] = [401]
    with pytest.raises(TextFeatureError, match="gigachat oauth") as eauth:
        giga.embed(["hello"])
    assert_no_secret(str(eauth.value), repr(giga), caplog.text)


def test_api_keys_come_from_the_environment_only(monkeypatch) -> None:
    monkeypatch.delenv(OPENAI_KEY_ENV, raising=False)
    spec = get("openai_text_embedding_3_small")
    with pytest.raises(TextFeatureError, match=OPENAI_KEY_ENV):
        load_text_encoder(resolve_model(spec), TextFeaturesOptions(model=spec.name))


def test_retry_after_header() -> None:
    """Seconds are honoured; an HTTP date, a negative or a non-finite value is ignored (the backoff decides)."""
    assert _retry_after("2.5") == 2.5 and _retry_after("0") == 0.0
    for value in (None, "", "Wed, 21 Oct 2015 07:28:00 GMT", "-1", "inf", "nan"):
        assert _retry_after(value) is None, value
