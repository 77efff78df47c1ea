"""The OpenAI and GigaChat embedding APIs: batched requests with retries, keys from the environment only.

A key is read from its environment variable (:data:`OPENAI_KEY_ENV`,
:data:`GIGACHAT_KEY_ENV`) when a client is made, kept private to it, and
scrubbed from every message, so it never reaches logs, errors or the output
file. Requests are retried on 429/5xx and dropped connections with exponential
backoff (``Retry-After`` honoured up to a minute); GigaChat's OAuth token is
fetched on first use, renewed a minute before it expires and once more on HTTP
401. Details: docs/features.md, section "Text features".
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from affectflow.text.errors import TextFeatureError

log = logging.getLogger(__name__)

OPENAI_KEY_ENV = "OPENAI_API_KEY"
GIGACHAT_KEY_ENV = "GIGACHAT_CREDENTIALS"
OPENAI_BASE_URL = "https://api.openai.com/v1"
GIGACHAT_BASE_URL = "https://gigachat.devices.sberbank.ru/api/v1"
GIGACHAT_AUTH_URL = "https://ngw.devices.sberbank.ru:9443/api/v2/oauth"
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class APISettings(Protocol):
    """The settings an API client reads (the fields of ``TextFeaturesOptions`` of the same names)."""

    batch_size: int
    scope: str
    ca_bundle: str | None
    max_retries: int
    backoff_s: float
    timeout_s: float


class _APIEncoder:
    """Batched POSTs of an OpenAI-style embeddings request with retries; the key stays private."""

    kind = "api"
    env_var = ""

    def __init__(self, cfg: APISettings, api_model: str, dim: int | None, base_url: str,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.cfg = cfg
        self.api_model = api_model
        self.dim = dim
        self.base_url = base_url.rstrip("/")
        self._sleep = sleep
        # inner whitespace too: `base64` wraps its output at 76 characters, and a header with a line break
        # in it makes http.client raise an error that quotes the whole header
        secret = "".join(os.environ.get(self.env_var, "").split())
        if not secret:
            raise TextFeatureError(f"{self.kind} embeddings need the environment variable {self.env_var}; it is "
                                   f"not set (keys are read from the environment only, never from the config)")
        if not all(33 <= ord(c) <= 126 for c in secret):
            raise TextFeatureError(f"{self.kind} embeddings: the environment variable {self.env_var} holds "
                                   f"characters an HTTP header cannot carry (only printable ASCII can be sent; "
                                   f"its value is not shown)")
        self.__secret = secret
        self._ssl = None
        if cfg.ca_bundle:
            import ssl

            self._ssl = ssl.create_default_context(cafile=cfg.ca_bundle)

    # the secret is reachable only through this method, and scrubbed from every message
    def _secret(self) -> str:
        return self.__secret

    def _scrub(self, text: str) -> str:
        return scrub(text, self.__secret)

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
                detail = self._scrub(_error_detail(e))[:300]  # scrubbed first: a cut could split the key
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
            except TextFeatureError:
                raise
            except Exception as e:  # anything else may quote the request (http.client quotes a bad header)
                raise TextFeatureError(f"{what}: {url}: {self._scrub(f'{type(e).__name__}: {e}')}") from None
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
        """``{"embeddings": (N, D) float32}`` for ``texts``, in the order given (``batch_size`` per request)."""
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
    """OpenAI's embeddings endpoint, with the key of :data:`OPENAI_KEY_ENV` as a bearer token."""

    kind = "openai"
    env_var = OPENAI_KEY_ENV

    def _auth_header(self) -> str:
        return f"Bearer {self._secret()}"


class GigaChatEncoder(_APIEncoder):
    """GigaChat's embeddings endpoint, with an OAuth token obtained with the credentials of :data:`GIGACHAT_KEY_ENV`."""

    kind = "gigachat"
    env_var = GIGACHAT_KEY_ENV

    def __init__(self, cfg: APISettings, api_model: str, dim: int | None, base_url: str, auth_url: str,
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
        return scrub(super()._scrub(text), getattr(self, "_token", ""))

    def _auth_header(self) -> str:
        if not self._token or time.time() >= self._expires_at:
            self._fetch_token()
        return f"Bearer {self._token}"

    def _on_unauthorized(self) -> bool:
        self._token = ""  # expired or revoked early: fetch a new one
        return True


#: an Authorization header as an error page may echo it (``Authorization: Bearer x``, ``'Authorization':
#: 'Basic x'``, any case): its credential, whoever's it is, up to a quote, a comma, a brace or a space
_CREDENTIAL = re.compile(r"""(?i)(authorization['"]?\s*[:=]\s*['"]?(?:bearer|basic)\s+)[^\s'",}]+""")
#: a key's piece at the edge of a text cut short, shorter than this, is not taken for the key
_MIN_PIECE = 6


def scrub(text: str, secret: str) -> str:
    """``text`` without ``secret``: the whole of it, any credential of an Authorization header it quotes, and a
    piece of it where the text was cut (a server's message read to a limit may end in the key's first
    characters)."""
    if not secret:
        return text
    text = _CREDENTIAL.sub(r"\1***", text.replace(secret, "***"))
    for n in range(len(secret) - 1, _MIN_PIECE - 1, -1):
        if text.endswith(secret[:n]):
            text = text[:-n] + "***"
        if text.startswith(secret[-n:]):
            text = "***" + text[n:]
    return text


def _error_detail(e: urllib.error.HTTPError) -> str:
    """The server's error message (its JSON ``error.message`` when it has one), as read (2,000 bytes at most)."""
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
    return raw or str(e.reason)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        v = float(value)
        return v if math.isfinite(v) and v >= 0 else None
    except ValueError:
        return None
