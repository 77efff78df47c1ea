"""Text features: one embedding per transcript segment.

Encoders (the kind is taken from the registry entry, or set with ``kind``): ``sentence``
(sentence-transformers checkpoints such as all-MiniLM-L6-v2, SentenceBERT and E5, run with
``transformers`` as their own files describe), ``goemotions`` (RoBERTa-GoEmotions: logits over its
28 labels and a pooled embedding), and the ``openai`` and ``gigachat`` embedding APIs, whose keys come
from the environment only and never reach logs, messages or the output file.

Output per video (``features/text/{asr}/{model}/{shard}.h5``): ``seg_start``, ``seg_end``,
``embeddings`` (N, D) and, for GoEmotions, ``logits`` (N, 28). A video without speech has zero
segments: ``embeddings`` is an empty (0, D) array, not an error.

Details (pooling, prefixes, the API requests and their retries): docs/features.md, section
"Text features".
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from affectflow.core import joblog
from affectflow.core.device import resolve_device
from affectflow.core.errors import AffectflowError
from affectflow.core.job import Job
from affectflow.core.options import StageOptions, at_least, one_of, runtime, wiring
from affectflow.io.shards import StageResult
from affectflow.io.store import Provenance, ShardReader, ShardWriter, VideoRecord
from affectflow.models.manifest import PreparedModel
from affectflow.plan.rerun import stage_key
from affectflow.stages.audio_features import ResolvedModel, resolve_model, with_device

log = logging.getLogger("affectflow.stages.text_features")

STAGE = "text_features"
#: bump when embeddings change for the same transcripts, model and options (docs/reruns.md)
STAGE_VERSION = 1
KINDS = ("auto", "sentence", "goemotions", "openai", "gigachat")
OPENAI_KEY_ENV = "OPENAI_API_KEY"
GIGACHAT_KEY_ENV = "GIGACHAT_CREDENTIALS"
OPENAI_BASE_URL = "https://api.openai.com/v1"
GIGACHAT_BASE_URL = "https://gigachat.devices.sberbank.ru/api/v1"
GIGACHAT_AUTH_URL = "https://ngw.devices.sberbank.ru:9443/api/v2/oauth"
# API model id per registry name (the registry names the model, the API wants its own id)
API_MODELS = {"openai_text_embedding_3_small": "text-embedding-3-small", "gigachat_embeddings": "Embeddings"}
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class TextFeatureError(AffectflowError, RuntimeError):
    """A text encoder cannot run or an embedding API refused the request."""


@dataclass(frozen=True)
class TextFeatureConfig(StageOptions):
    """Config ``text``; device, batch size, the CA bundle and the API client's retries, backoff and
    timeout change no vector, so they stay out of the rerun key and provenance.

    ``prefix``: text put before every segment (``None``: ``"query: "`` for E5,
    nothing otherwise). ``pooling``/``normalize``/``max_length``: ``None``
    takes them from the checkpoint's sentence-transformers files. API options:
    ``api_model`` (the API's model id), ``base_url``, ``auth_url`` and
    ``scope`` (GigaChat), ``ca_bundle`` (a CA file for TLS verification),
    ``dim`` (vector width, for videos without speech; default from the
    registry), ``max_retries``, ``backoff_s``, ``timeout_s``.
    """

    SECTION = "text"

    model: str = wiring("all_minilm_l6_v2")
    kind: str = "auto"
    prefix: str | None = None
    pooling: str | None = None
    normalize: bool | None = None
    max_length: int | None = None
    api_model: str | None = None
    base_url: str | None = None
    auth_url: str | None = None
    scope: str = "GIGACHAT_API_PERS"
    dim: int | None = None
    batch_size: int = runtime(32)
    device: str = runtime("auto")
    ca_bundle: str | None = runtime(None)
    max_retries: int = runtime(5)
    backoff_s: float = runtime(1.0)
    timeout_s: float = runtime(60.0)

    def check(self) -> None:
        one_of("kind", self.kind, KINDS)
        one_of("pooling", self.pooling, (None, "mean", "cls", "max"))
        at_least("batch_size", self.batch_size, 1)

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None, **wired: Any) -> TextFeatureConfig:
        cfg = dict(cfg or {})
        secret = sorted(k for k in cfg if any(w in k.lower() for w in ("key", "credential", "token", "secret")))
        if secret:
            raise ValueError(
                f"text feature config has {secret}: API keys are read from the environment only "
                f"({OPENAI_KEY_ENV}, {GIGACHAT_KEY_ENV}), never from the config"
            )
        return super().from_mapping(cfg, **wired)

    @classmethod
    def from_config(cls, config, **wired):
        return cls.from_mapping(with_device(config, "text"), **wired)


def _kind_of(spec: Any) -> str:
    family = f"{getattr(spec, 'family', '')} {getattr(spec, 'name', '')}".lower()
    if "openai" in family:
        return "openai"
    if "gigachat" in family:
        return "gigachat"
    if "goemotions" in family or "go_emotions" in family:
        return "goemotions"
    return "sentence"


# ----------------------------------------------------------------------------- local encoders
class _HFEncoder:
    def __init__(self, model_dir: Path, cfg: TextFeatureConfig) -> None:
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

    def __init__(self, model_dir: Path, cfg: TextFeatureConfig, default_prefix: str = "") -> None:
        super().__init__(model_dir, cfg)
        from transformers import AutoModel

        st = _sentence_transformers_layout(model_dir)
        self.pooling = cfg.pooling or st["pooling"]
        self.normalize = st["normalize"] if cfg.normalize is None else cfg.normalize
        self.do_lower_case = st["do_lower_case"]
        self.prefix = default_prefix if cfg.prefix is None else cfg.prefix
        limit = int(getattr(self.tokenizer, "model_max_length", 512) or 512)
        self.max_length = cfg.max_length or st["max_seq_length"] or min(limit, 512)
        self.model = AutoModel.from_pretrained(str(model_dir)).to(self.device).eval()
        self.dim = int(self.model.config.hidden_size)

    def embed(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
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

    def __init__(self, model_dir: Path, cfg: TextFeatureConfig) -> None:
        super().__init__(model_dir, cfg)
        from transformers import AutoModelForSequenceClassification

        self.model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).to(self.device).eval()
        self.dim = int(self.model.config.hidden_size)
        id2label = self.model.config.id2label
        self.classes = [str(id2label[i]) for i in range(len(id2label))]
        self.pooling = cfg.pooling or "mean"
        self.prefix = cfg.prefix or ""
        self.max_length = cfg.max_length or 512

    def embed(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
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


# ----------------------------------------------------------------------------- API encoders
class _APIEncoder:
    """Batched POSTs of an OpenAI-style embeddings request with retries; the key stays private."""

    kind = "api"
    env_var = ""

    def __init__(self, cfg: TextFeatureConfig, api_model: str, dim: int | None, base_url: str,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.cfg = cfg
        self.api_model = api_model
        self.dim = dim
        self.base_url = base_url.rstrip("/")
        self._sleep = sleep
        secret = os.environ.get(self.env_var, "").strip()
        if not secret:
            raise TextFeatureError(f"{self.kind} embeddings need the environment variable {self.env_var}; it is "
                                   f"not set (keys are read from the environment only, never from the config)")
        self.__secret = secret
        self._ssl = None
        if cfg.ca_bundle:
            import ssl

            self._ssl = ssl.create_default_context(cafile=cfg.ca_bundle)

    # the secret is reachable only through this method, and scrubbed from every message
    def _secret(self) -> str:
        return self.__secret

    def _scrub(self, text: str) -> str:
        s = self.__secret
        return text.replace(s, "***") if s else text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(api_model={self.api_model!r}, base_url={self.base_url!r})"

    def _auth_header(self) -> str:
        raise NotImplementedError

    def _request(self, url: str, body: bytes, headers: Mapping[str, str], what: str,
                 refresh_on_401: bool = False) -> Any:
        """POST with retries on 429/5xx and dropped connections; returns the decoded JSON answer.

        ``refresh_on_401``: on HTTP 401, renew the credentials once and repeat.
        """
        attempt = 0
        refreshed = False
        while True:
            req = urllib.request.Request(url, data=body, method="POST", headers=dict(headers))
            retry_after: float | None = None
            try:
                with urllib.request.urlopen(req, timeout=self.cfg.timeout_s, context=self._ssl) as resp:
                    raw = resp.read()
                try:
                    return json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    raise TextFeatureError(f"{what}: {url} answered with something that is not JSON") from None
            except urllib.error.HTTPError as e:
                status = e.code
                detail = self._scrub(_error_detail(e))
                if status == 401 and refresh_on_401 and not refreshed and self._on_unauthorized():
                    refreshed = True
                    headers = {**headers, "Authorization": self._auth_header()}
                    continue
                if status not in RETRY_STATUS:
                    raise TextFeatureError(f"{what}: {url} answered HTTP {status}: {detail}") from None
                retry_after = _retry_after(e.headers.get("Retry-After") if e.headers else None)
                error = f"HTTP {status}: {detail}"
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                error = self._scrub(f"{type(e).__name__}: {getattr(e, 'reason', e)}")
            if attempt >= self.cfg.max_retries:
                raise TextFeatureError(f"{what}: {url} failed after {attempt + 1} attempts ({error})")
            delay = self.cfg.backoff_s * (2**attempt) * (1 + 0.1 * random.random())
            if retry_after is not None:
                delay = max(delay, min(retry_after, 60.0))
            attempt += 1
            log.warning("%s: %s; retry %d/%d in %.1f s", what, error, attempt, self.cfg.max_retries, delay)
            self._sleep(delay)

    def _on_unauthorized(self) -> bool:
        """Called on HTTP 401 of an embeddings request: renew credentials; True to repeat the request."""
        return False

    def embed(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        vecs: list[np.ndarray] = []
        for i in range(0, len(texts), self.cfg.batch_size):
            batch = [t if t.strip() else " " for t in texts[i : i + self.cfg.batch_size]]
            body = json.dumps({"model": self.api_model, "input": batch}).encode("utf-8")
            headers = {"Content-Type": "application/json", "Accept": "application/json",
                       "Authorization": self._auth_header()}
            answer = self._request(f"{self.base_url}/embeddings", body, headers, f"{self.kind} embeddings",
                                   refresh_on_401=True)
            vecs.append(self._parse(answer, len(batch)))
        if not vecs:
            return {"embeddings": np.zeros((0, self.dim or 0), dtype=np.float32)}
        emb = np.concatenate(vecs).astype(np.float32)
        if self.dim is not None and emb.shape[1] != self.dim:
            raise TextFeatureError(f"{self.kind} model {self.api_model} returned {emb.shape[1]}-d vectors, "
                                   f"expected {self.dim} (set text option dim)")
        self.dim = emb.shape[1]
        return {"embeddings": emb}

    def _parse(self, answer: Any, n: int) -> np.ndarray:
        try:
            data = answer["data"]
            items = sorted(data, key=lambda d: int(d.get("index", 0))) if all("index" in d for d in data) else data
            rows = [np.asarray(d["embedding"], dtype=np.float32) for d in items]
        except (KeyError, TypeError, ValueError):
            raise TextFeatureError(f"{self.kind} embeddings: unexpected answer (no data[i].embedding)") from None
        if len(rows) != n or len({r.shape for r in rows}) > 1:
            raise TextFeatureError(f"{self.kind} embeddings: asked for {n} vectors, got {len(rows)}")
        return np.stack(rows)


class OpenAIEncoder(_APIEncoder):
    kind = "openai"
    env_var = OPENAI_KEY_ENV

    def _auth_header(self) -> str:
        return f"Bearer {self._secret()}"


class GigaChatEncoder(_APIEncoder):
    kind = "gigachat"
    env_var = GIGACHAT_KEY_ENV

    def __init__(self, cfg: TextFeatureConfig, api_model: str, dim: int | None, base_url: str, auth_url: str,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(cfg, api_model, dim, base_url, sleep)
        self.auth_url = auth_url
        self._token = ""
        self._expires_at = 0.0

    def _fetch_token(self) -> None:
        body = urllib.parse.urlencode({"scope": self.cfg.scope}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
                   "RqUID": str(uuid.uuid4()), "Authorization": f"Basic {self._secret()}"}
        answer = self._request(self.auth_url, body, headers, "gigachat oauth")
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not token:
            raise TextFeatureError("gigachat oauth: the answer has no access_token")
        self._token = str(token)
        exp = answer.get("expires_at")
        # expires_at is in milliseconds since the epoch; refresh a minute early
        self._expires_at = (float(exp) / 1000.0 if exp else time.time() + 1800) - 60

    def _scrub(self, text: str) -> str:
        text = super()._scrub(text)
        tok = getattr(self, "_token", "")
        return text.replace(tok, "***") if tok else text

    def _auth_header(self) -> str:
        if not self._token or time.time() >= self._expires_at:
            self._fetch_token()
        return f"Bearer {self._token}"

    def _on_unauthorized(self) -> bool:
        self._token = ""  # expired or revoked early: fetch a new one
        return True


# ----------------------------------------------------------------------------- loading
Encoder = SentenceEncoder | GoEmotionsEncoder | OpenAIEncoder | GigaChatEncoder


def load_text_encoder(resolved: ResolvedModel, cfg: TextFeatureConfig,
                      sleep: Callable[[float], None] = time.sleep) -> Encoder:
    """The encoder for a resolved registry model (``kind="auto"``: from its family)."""
    spec = resolved.spec
    kind = _kind_of(spec) if cfg.kind == "auto" else cfg.kind
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


def _error_detail(e: urllib.error.HTTPError) -> str:
    try:
        raw = e.read(2000).decode("utf-8", errors="replace")
    except Exception:
        raw = ""
    try:
        obj = json.loads(raw)
        msg = obj.get("error", obj) if isinstance(obj, dict) else obj
        if isinstance(msg, dict):
            msg = msg.get("message", msg)
        raw = str(msg)
    except (json.JSONDecodeError, AttributeError):
        pass
    return (raw or str(e.reason))[:300]


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        v = float(value)
        return v if math.isfinite(v) and v >= 0 else None
    except ValueError:
        return None


# ----------------------------------------------------------------------------- stage
#: one video of a transcripts shard: id, segment starts and ends (s), segment texts
_Segments = tuple[str, np.ndarray, np.ndarray, list[str]]


def embed_shard(
    transcripts_shard: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    cfg: Mapping[str, Any] | TextFeatureConfig,
    *,
    models_dir: str | os.PathLike[str] | None = None,
    pins: Mapping[str, str] | None = None,
    spec: Any | None = None,
    progress: bool | None = None,
    sleep: Callable[[float], None] = time.sleep,
    key: str | None = None,
) -> StageResult:
    """Write ``features/text/{asr}/{model}/{shard}.h5``: an embedding per transcript segment.

    All segments of the shard are embedded in batches of ``batch_size``
    (fewer API calls), then split back per video.
    """
    conf = TextFeatureConfig.coerce(cfg)
    rerun = stage_key(STAGE, conf, expected=key)
    resolved = resolve_model(spec if spec is not None else conf.model, models_dir, pins)
    encoder = load_text_encoder(resolved, conf, sleep)
    asr_model, records, skipped = _read_segments(transcripts_shard)
    outputs = _embed_texts(encoder, [t for _, _, _, texts in records for t in texts], conf, progress)
    dim = int(getattr(encoder, "dim", None) or 0)
    classes = list(getattr(encoder, "classes", []) or [])
    prov = Provenance.of(rerun, model=conf.model, weights_sha256=resolved.weights_sha256,
                         resolved=_resolved_config(encoder, resolved, asr_model, dim, classes))
    return _write_embeddings(out_path, prov, records, outputs, dim, classes, skipped)


def _read_segments(transcripts_shard: str | os.PathLike[str]) -> tuple[str, list[_Segments], list[tuple[str, str]]]:
    """(ASR model, every video's segments, skipped videos) of a transcripts shard."""
    records: list[_Segments] = []
    with ShardReader(transcripts_shard, stage="transcripts") as reader:
        asr_model = reader.provenance.model
        skipped = list(reader.skipped())
        for rec in reader:
            texts = [str(t) for t in rec.arrays.get("seg_text", np.zeros(0, dtype=object))]
            records.append((rec.video_id, np.asarray(rec.arrays.get("seg_start", np.zeros(0)), dtype=np.float64),
                            np.asarray(rec.arrays.get("seg_end", np.zeros(0)), dtype=np.float64), texts))
    return asr_model, records, skipped


def _embed_texts(encoder: Encoder, all_texts: list[str], conf: TextFeatureConfig,
                 progress: bool | None) -> dict[str, np.ndarray]:
    """The encoder's outputs (``embeddings``, and ``logits`` for GoEmotions) for ``all_texts``, in order.

    Texts go to the encoder ``8 * batch_size`` at a time; an empty list gives an empty dict.
    """
    from tqdm import tqdm

    if not all_texts:
        return {}
    parts: list[dict[str, np.ndarray]] = []
    step = max(conf.batch_size, 1) * 8
    for i in tqdm(range(0, len(all_texts), step), desc=f"text {conf.model}", unit="batch",
                  disable=None if progress is None else not progress):
        parts.append(encoder.embed(all_texts[i : i + step]))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _resolved_config(encoder: Encoder, resolved: ResolvedModel, asr_model: str, dim: int,
                     classes: list[str]) -> dict[str, Any]:
    """What the encoder resolved at run time, for the output's provenance."""
    prov_cfg = {"kind_used": encoder.kind, "registry_name": resolved.name, "asr": asr_model,
                "dim": dim}
    if isinstance(encoder, SentenceEncoder | GoEmotionsEncoder):
        prov_cfg.update(prefix=encoder.prefix, pooling=encoder.pooling, max_length=encoder.max_length)
        if isinstance(encoder, SentenceEncoder):
            prov_cfg["normalize"] = encoder.normalize
    else:
        prov_cfg.update(api_model=encoder.api_model, base_url=encoder.base_url)
    if classes:
        prov_cfg["classes"] = classes
    return prov_cfg


def _write_embeddings(out_path: str | os.PathLike[str], prov: Provenance, records: list[_Segments],
                      outputs: Mapping[str, np.ndarray], dim: int, classes: list[str],
                      skipped: list[tuple[str, str]]) -> StageResult:
    """Split the shard's outputs back per video and write them, with the skipped videos."""
    result = StageResult()
    with ShardWriter(out_path, prov) as writer:
        pos = 0
        for vid, starts, ends, texts in records:
            n = len(texts)
            arrays = {"seg_start": starts, "seg_end": ends}
            arrays["embeddings"] = outputs["embeddings"][pos : pos + n] if n else np.zeros((0, dim), np.float32)
            if classes:
                arrays["logits"] = outputs["logits"][pos : pos + n] if n else np.zeros((0, len(classes)), np.float32)
            pos += n
            writer.add(VideoRecord(video_id=vid, arrays=arrays, attrs={"n_segments": n}))
            result.written.append(vid)
        result.skipped = skipped
        writer.set_skipped(skipped)
    return result


def run(job: Job) -> None:
    """The rule: ``input.transcripts`` and ``input.model`` (a manifest) -> ``output[0]``, the features shard."""
    joblog.setup(job.log)
    model = PreparedModel.for_job(job.input.model, job.config["models_dir"])
    embed_shard(job.input.transcripts, job.output[0], TextFeatureConfig.from_config(job.config, model=model.name),
                models_dir=model.root, pins=model.pins, key=job.params.key)
