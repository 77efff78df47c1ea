"""The OpenAI and GigaChat embedding clients against a local server that speaks both protocols (and, like some
real error pages, echoes the request's Authorization header): errors and logs never show a key."""

from __future__ import annotations

import logging

import pytest

from affectflow.models.catalogue.registry import get
from affectflow.models.resolve import resolve_model
from affectflow.stages.text_features import TextFeaturesOptions
from affectflow.testing.api_server import GIGA_CREDS, EmbeddingAPIServer, assert_no_secret
from affectflow.text.api_clients import GIGACHAT_KEY_ENV, OPENAI_KEY_ENV, _retry_after, scrub
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


def test_a_long_key_in_an_error_message_cut_short_is_not_shown(api: EmbeddingAPIServer, caplog,
                                                                 monkeypatch) -> None:
    """The server's message is cut to a limit: the key it echoes must go before the cut, not after."""
    key = "sk-proj-" + "".join(f"{i:x}Q" for i in range(200))  # echoed across the 300-character limit
    monkeypatch.setenv(OPENAI_KEY_ENV, key)
    spec = get("openai_text_embedding_3_small")
    enc = load_text_encoder(resolve_model(spec), TextFeaturesOptions(model=spec.name, base_url=api.url + "/v1",
                                                                     max_retries=1), sleep=lambda s: None)
    caplog.set_level(logging.DEBUG)
    for status in (400, 503):
        api.fail["/v1/embeddings"] = [status, status]
        with pytest.raises(TextFeatureError) as e:
            enc.embed(["hello"])
        assert_no_secret(str(e.value), caplog.text, secrets=(key,))


def test_scrub_removes_a_key_whole_after_a_scheme_and_cut_at_either_edge() -> None:
    key = "sk-abcdefghijklmnop"
    assert scrub(f"x {key} y", key) == "x *** y"
    assert scrub("Authorization: Bearer other-token.1", key) == "Authorization: Bearer ***"
    assert scrub("{'authorization': 'bearer some:one.elses', 'Host': 'x'}", key) == (
        "{'authorization': 'bearer ***', 'Host': 'x'}")
    assert scrub("Basic authentication is not supported; use a Bearer token", key) == (
        "Basic authentication is not supported; use a Bearer token")
    assert scrub(f"headers: {key[:9]}", key) == "headers: ***"
    assert scrub(f"{key[-7:]} and more", key) == "*** and more"
    assert scrub("ends in sk-ab", key) == "ends in sk-ab"  # 5 characters: not taken for the key


def test_credentials_wrapped_by_base64_are_sent_whole_and_unsendable_ones_refused_unseen(
        api: EmbeddingAPIServer, caplog, monkeypatch) -> None:
    """`base64` wraps at 76 characters: the line break inside must not reach a header (http.client's error
    for it quotes the whole header)."""
    monkeypatch.setenv(GIGACHAT_KEY_ENV, GIGA_CREDS[:20] + "\n" + GIGA_CREDS[20:] + "\n")
    giga = load_text_encoder(resolve_model(get("gigachat_embeddings")),
                             TextFeaturesOptions(model="gigachat_embeddings", base_url=api.url + "/api/v1",
                                                 auth_url=api.url + "/api/v2/oauth", max_retries=0))
    assert giga.embed(["hello"])["embeddings"].shape[0] == 1
    bad = "sk-caf\u00e9-secret-value"
    monkeypatch.setenv(OPENAI_KEY_ENV, bad)
    spec = get("openai_text_embedding_3_small")
    with pytest.raises(TextFeatureError, match="cannot carry") as e:
        load_text_encoder(resolve_model(spec), TextFeaturesOptions(model=spec.name, base_url=api.url + "/v1"))
    assert_no_secret(str(e.value), caplog.text, secrets=(bad, GIGA_CREDS))


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
