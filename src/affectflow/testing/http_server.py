"""A real HTTP server on 127.0.0.1 for tests: serves byte strings, with Range support and failure modes.

Usage::

    with LocalHTTPServer() as srv:
        url = srv.add("/w.bin", payload)                     # Range requests honoured
        url = srv.add("/x.bin", payload, ranges=False)       # Range ignored: always 200 + full body
        url = srv.add("/y.bin", payload, drop_after=1000, drops=1)  # first response cut after 1000 bytes
        url = srv.add("/z.bin", payload, status=404)
        ...
        srv.requests  # [(path, Range header or None, status sent), ...]

A dropped response announces the full Content-Length, sends ``drop_after``
bytes and then closes the socket, as a broken connection does.
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes
    ranges: bool = True
    drop_after: int | None = None
    drops: int = 0
    status: int = 200


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # silence the default stderr log
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        range_header = self.headers.get("Range")
        with owner.lock:
            route = owner.routes.get(path)
            drop = route is not None and route.drops > 0 and route.drop_after is not None and not head
            if drop:
                route.drops -= 1
        if route is None or route.status != 200:
            status = 404 if route is None else route.status
            owner._log(path, range_header, status)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body, start, status = route.body, 0, 200
        m = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if route.ranges and m:
            start = int(m.group(1))
            if start >= len(body):
                owner._log(path, range_header, 416)
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        owner._log(path, range_header, status)
        chunk = body[start:]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(chunk)))
        if route.ranges:
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        if head:
            return
        if drop:
            self.wfile.write(chunk[: route.drop_after])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(chunk)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: LocalHTTPServer


class LocalHTTPServer:
    """An http.server in a background thread, bound to 127.0.0.1 on a free port."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str | None, int]] = []
        self.lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="local-http", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, path: str, body: bytes, **kw: object) -> str:
        """Serve ``body`` at ``path`` (see :class:`Route` for options); returns its URL."""
        with self.lock:
            self.routes[path] = Route(body=body, **kw)  # type: ignore[arg-type]
        return self.base_url + path

    def hits(self, path: str) -> list[tuple[str | None, int]]:
        """(Range header, status) of every request made for ``path``."""
        with self.lock:
            return [(r, s) for p, r, s in self.requests if p == path]

    def _log(self, path: str, range_header: str | None, status: int) -> None:
        with self.lock:
            self.requests.append((path, range_header, status))

    def start(self) -> LocalHTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LocalHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
