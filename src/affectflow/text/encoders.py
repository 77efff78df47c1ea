"""Local text encoders on ``transformers``: sentence-transformers checkpoints and RoBERTa-GoEmotions.

``SentenceEncoder`` runs a sentence-transformers checkpoint (all-MiniLM-L6-v2,
SentenceBERT, E5) as its own files describe (pooling, normalisation, max length,
lower-casing) without needing the sentence-transformers package;
``GoEmotionsEncoder`` gives logits over its 28 labels and a pooled embedding.
Details: docs/features.md, section "Text features".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from affectflow.core.device import resolve_device
from affectflow.models.hf_progress import no_load_progress


class LocalEncoderSettings(Protocol):
    """The settings a local encoder reads (the fields of ``TextFeaturesOptions`` of the same names)."""

    device: str
    batch_size: int
    prefix: str | None
    pooling: str | None
    normalize: bool | None
    max_length: int | None


class _HFEncoder:
    def __init__(self, model_dir: Path, cfg: LocalEncoderSettings) -> None:
        import torch
        from transformers import AutoTokenizer

        self._torch = torch
        self.model_dir = model_dir
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))

    def _batches(self, texts: Sequence[str]) -> tuple[list[list[str]], np.ndarray]:
        """``texts`` in batches, longest first, and the index array that puts the outputs back in input order.

        Each batch is padded to its longest text, and the encoder's cost grows
        with the padded length, so batching texts of similar length wastes
        less work on padding (sentence-transformers' ``encode`` does the same,
        sorting by character length, which is free and close enough to the
        token count). The outputs, concatenated over batches, are in sorted
        order: index them with the returned array.
        """
        order = np.argsort([-len(t) for t in texts], kind="stable")
        ranked = [texts[i] for i in order]
        bs = self.cfg.batch_size
        return [ranked[i : i + bs] for i in range(0, len(ranked), bs)], np.argsort(order)

    def _encode(self, texts: list[str], max_length: int) -> dict[str, Any]:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return {k: v.to(self.device) for k, v in enc.items()}


def _pool(hidden: Any, mask: Any, mode: str) -> Any:
    import torch

    if mode == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "max":
        return torch.where(m > 0, hidden, torch.finfo(hidden.dtype).min).max(dim=1).values
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp_min(1e-9)


class SentenceEncoder(_HFEncoder):
    """A sentence-transformers checkpoint, run as its modules.json describes."""

    kind = "sentence"

    def __init__(self, model_dir: Path, cfg: LocalEncoderSettings, default_prefix: str = "") -> None:
        super().__init__(model_dir, cfg)
        from transformers import AutoModel

        st = _sentence_transformers_layout(model_dir)
        self.pooling = cfg.pooling or st["pooling"]
        self.normalize = st["normalize"] if cfg.normalize is None else cfg.normalize
        self.do_lower_case = st["do_lower_case"]
        self.prefix = default_prefix if cfg.prefix is None else cfg.prefix
        limit = int(getattr(self.tokenizer, "model_max_length", 512) or 512)
        self.max_length = cfg.max_length or st["max_seq_length"] or min(limit, 512)
        with no_load_progress():
            self.model = AutoModel.from_pretrained(str(model_dir)).to(self.device).eval()
        self.dim = int(self.model.config.hidden_size)

    def embed(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """``{"embeddings": (N, D) float32}`` for ``texts``, in the order given."""
        torch = self._torch
        out = []
        batches, restore = self._batches(texts)
        for batch in batches:
            batch = [self.prefix + (t.lower() if self.do_lower_case else t) for t in batch]
            enc = self._encode(batch, self.max_length)
            with torch.inference_mode():
                hidden = self.model(**enc).last_hidden_state
                vec = _pool(hidden, enc["attention_mask"], self.pooling)
                if self.normalize:
                    vec = torch.nn.functional.normalize(vec, p=2, dim=1)
            out.append(vec.float().cpu().numpy())
        emb = np.concatenate(out)[restore] if out else np.zeros((0, self.dim), dtype=np.float32)
        return {"embeddings": emb.astype(np.float32)}


def _sentence_transformers_layout(model_dir: Path) -> dict[str, Any]:
    """Pooling, normalisation, max length and lower-casing from the sentence-transformers files."""
    layout: dict[str, Any] = {"pooling": "mean", "normalize": False, "max_seq_length": None, "do_lower_case": False}
    modules = model_dir / "modules.json"
    if modules.is_file():
        mods = json.loads(modules.read_text(encoding="utf-8"))
        layout["normalize"] = any(str(m.get("type", "")).endswith("Normalize") for m in mods)
        for m in mods:
            if str(m.get("type", "")).endswith("Pooling"):
                pcfg = model_dir / m.get("path", "1_Pooling") / "config.json"
                if pcfg.is_file():
                    p = json.loads(pcfg.read_text(encoding="utf-8"))
                    if p.get("pooling_mode_cls_token"):
                        layout["pooling"] = "cls"
                    elif p.get("pooling_mode_max_tokens"):
                        layout["pooling"] = "max"
                    else:
                        layout["pooling"] = "mean"
    sb = model_dir / "sentence_bert_config.json"
    if sb.is_file():
        cfg = json.loads(sb.read_text(encoding="utf-8"))
        layout["max_seq_length"] = cfg.get("max_seq_length")
        layout["do_lower_case"] = bool(cfg.get("do_lower_case", False))
    return layout


class GoEmotionsEncoder(_HFEncoder):
    """RoBERTa-GoEmotions: logits over its labels plus a pooled last-layer embedding."""

    kind = "goemotions"

    def __init__(self, model_dir: Path, cfg: LocalEncoderSettings) -> None:
        super().__init__(model_dir, cfg)
        from transformers import AutoModelForSequenceClassification

        with no_load_progress():
            self.model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).to(self.device).eval()
        self.dim = int(self.model.config.hidden_size)
        id2label = self.model.config.id2label
        self.classes = [str(id2label[i]) for i in range(len(id2label))]
        self.pooling = cfg.pooling or "mean"
        self.prefix = cfg.prefix or ""
        self.max_length = cfg.max_length or 512

    def embed(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """``{"embeddings": (N, D), "logits": (N, 28)}`` (float32) for ``texts``, in the order given."""
        torch = self._torch
        embs, logits = [], []
        batches, restore = self._batches(texts)
        for batch in batches:
            enc = self._encode([self.prefix + t for t in batch], self.max_length)
            with torch.inference_mode():
                out = self.model(**enc, output_hidden_states=True)
                embs.append(_pool(out.hidden_states[-1], enc["attention_mask"], self.pooling).float().cpu().numpy())
                logits.append(out.logits.float().cpu().numpy())
        n = len(self.classes)
        return {
            "embeddings": (np.concatenate(embs)[restore] if embs else np.zeros((0, self.dim))).astype(np.float32),
            "logits": (np.concatenate(logits)[restore] if logits else np.zeros((0, n))).astype(np.float32),
        }
