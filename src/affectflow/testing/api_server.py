"""A real HTTP server on 127.0.0.1 that speaks the embeddings APIs the text stage calls.

OpenAI: ``POST /v1/embeddings`` (Bearer key). GigaChat: ``POST /api/v2/oauth``
(Basic credentials, ``RqUID`` header, form ``scope=GIGACHAT_API_PERS``) for an
access token, then ``POST /api/v1/embeddings`` with it. Usage::

    with EmbeddingAPIServer(openai_key, giga_creds, giga_token) as api:
        api.fail["/v1/embeddings"] = [429, 503]   # statuses to answer first, then normal service
        api.token_ok = False                      # the next GigaChat token is refused once (expired)
        ...  # point the client at api.url
        api.log   # [(path, headers, body), ...]; api.auth: every Authorization header received

A failure's body echoes the request's headers (``Authorization`` too, like some
real error pages), so tests can check that the client never shows a key. Vectors
come from the text (:func:`vector`), in reverse order: the client must sort them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

#: the fake credentials the tests hand the clients (through the environment, as a user would)
OPENAI_KEY = "sk-test-Zq9VERYSECRETkey1234567890"
GIGA_CREDS = base64.b64encode(b"client-id:client-SECRET-xyz").decode()
GIGA_TOKEN = "giga-access-token-abcdef"
SECRETS = (OPENAI_KEY, GIGA_CREDS, GIGA_TOKEN, "client-SECRET-xyz")


def assert_no_secret(*texts: str, secrets: tuple[str, ...] = SECRETS, piece: int = 8) -> None:
    """No key, credential or token (nor the secret half of the credentials) in any of ``texts``, not even a
    ``piece`` of one: a message cut short can end in a key's first characters."""
    for t in texts:
        for secret in secrets:
            for i in range(max(1, len(secret) - piece + 1)):
                assert secret[i:i + piece] not in t, f"a piece of a secret is shown: {secret[i:i + piece]!r}"


def vector(text: str, dim: int) -> list[float]:
    """The server's embedding of ``text``: derived from the text, so order and content can be checked."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")
    return np.random.default_rng(seed).standard_normal(dim).round(6).tolist()


class EmbeddingAPIServer:
    """OpenAI and GigaChat embeddings on one local port; see the module docstring."""

    def __init__(self, openai_key: str, giga_creds: str, giga_token: str, *,
                 openai_dim: int = 1536, giga_dim: int = 1024) -> None:
        self.fail: dict[str, list[int]] = {}
        self.log: list[tuple[str, dict[str, str], bytes]] = []
        self.token_ok = True
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                path = self.path
                auth = self.headers.get("Authorization", "")
                owner.log.append((path, dict(self.headers), body))
                queue = owner.fail.get(path, [])
                if queue:
                    status = queue.pop(0)
                    echo = json.dumps({"error": {"message": f"status {status}: rejected request with "
                                                            f"Authorization: {auth}; you sent {dict(self.headers)}"}})
                    return self._send(status, echo.encode(), {"Retry-After": "0"} if status == 429 else {})
                if path == "/v1/embeddings":
                    if auth != f"Bearer {openai_key}":
                        return self._send(401, b'{"error": {"message": "bad key"}}')
                    return self._embeddings(body, openai_dim)
                if path == "/api/v2/oauth":
                    form = urllib.parse.parse_qs(body.decode())
                    if (auth != f"Basic {giga_creds}" or not self.headers.get("RqUID")
                            or form.get("scope") != ["GIGACHAT_API_PERS"]):
                        return self._send(401, b'{"message": "bad credentials"}')
                    return self._send(200, json.dumps({"access_token": giga_token,
                                                       "expires_at": 4102444800000}).encode())
                if path == "/api/v1/embeddings":
                    if auth != f"Bearer {giga_token}" or not owner.token_ok:
                        owner.token_ok = True  # a new token is accepted again
                        return self._send(401, b'{"message": "token expired"}')
                    return self._embeddings(body, giga_dim)
                return self._send(404, b"{}")

            def _embeddings(self, body: bytes, dim: int) -> None:
                req = json.loads(body)
                data = [{"object": "embedding", "index": i, "embedding": vector(t, dim)}
                        for i, t in enumerate(req["input"])]
                data.reverse()  # the client must order by index
                self._send(200, json.dumps({"object": "list", "data": data, "model": req["model"]}).encode())

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def auth(self) -> list[str]:
        """The Authorization header of every request received, in order."""
        return [h.get("Authorization", "") for _, h, _ in self.log]

    def __enter__(self) -> EmbeddingAPIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
