"""Which text encoder a registry model gets, built from the stage's settings.

``kind="auto"`` takes the kind from the registry entry's family and name:
``openai``, ``gigachat``, ``goemotions``, else ``sentence``; E5 models get the
``"query: "`` prefix unless one is set.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from affectflow.models.resolve import ResolvedModel
from affectflow.text.api_clients import (
    GIGACHAT_AUTH_URL,
    GIGACHAT_BASE_URL,
    OPENAI_BASE_URL,
    APISettings,
    GigaChatEncoder,
    OpenAIEncoder,
)
from affectflow.text.encoders import GoEmotionsEncoder, LocalEncoderSettings, SentenceEncoder
from affectflow.text.errors import TextFeatureError

KINDS = ("auto", "sentence", "goemotions", "openai", "gigachat")
# API model id per registry name (the registry names the model, the API wants its own id)
API_MODELS = {"openai_text_embedding_3_small": "text-embedding-3-small", "gigachat_embeddings": "Embeddings"}

Encoder = SentenceEncoder | GoEmotionsEncoder | OpenAIEncoder | GigaChatEncoder


class TextEncoderSettings(LocalEncoderSettings, APISettings, Protocol):
    """Everything :func:`load_text_encoder` and the encoders read (``TextFeaturesOptions`` has it all)."""

    kind: str
    dim: int | None
    api_model: str | None
    base_url: str | None
    auth_url: str | None


def kind_of(spec: Any) -> str:
    """A registry model's own kind (what ``kind: auto`` gives it)."""
    family = f"{getattr(spec, 'family', '')} {getattr(spec, 'name', '')}".lower()
    if "openai" in family:
        return "openai"
    if "gigachat" in family:
        return "gigachat"
    if "goemotions" in family or "go_emotions" in family:
        return "goemotions"
    return "sentence"


def load_text_encoder(resolved: ResolvedModel, cfg: TextEncoderSettings,
                      sleep: Callable[[float], None] = time.sleep) -> Encoder:
    """The encoder for a resolved registry model (``kind="auto"``: from its family)."""
    spec = resolved.spec
    kind = kind_of(spec) if cfg.kind == "auto" else cfg.kind
    dim = cfg.dim or getattr(spec, "embedding_dim", None)
    if kind in ("openai", "gigachat"):
        api_model = cfg.api_model or API_MODELS.get(spec.name, spec.name)
        if kind == "openai":
            return OpenAIEncoder(cfg, api_model, dim, cfg.base_url or OPENAI_BASE_URL, sleep)
        return GigaChatEncoder(cfg, api_model, dim, cfg.base_url or GIGACHAT_BASE_URL,
                               cfg.auth_url or GIGACHAT_AUTH_URL, sleep)
    if resolved.directory is None:
        raise TextFeatureError(f"text model {resolved.name} has no files to load")
    if kind == "goemotions":
        return GoEmotionsEncoder(resolved.directory, cfg)
    is_e5 = str(getattr(spec, "family", "")).strip().upper() == "E5" or spec.name.lower().startswith("e5")
    return SentenceEncoder(resolved.directory, cfg, default_prefix="query: " if is_e5 else "")
