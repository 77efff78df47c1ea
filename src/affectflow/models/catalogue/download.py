"""HTTP downloads of weight files: resumed after a dropped connection, retried with backoff, with a progress bar.

:func:`download` fills a ``.part`` file with the bytes at a :class:`WeightFile`'s URL; it verifies nothing (the
caller, :func:`affectflow.models.catalogue.weights.fetch`, checks the finished file before moving it into place).
Kept apart from the verification rules because it is the only part that talks to a network.
"""

from __future__ import annotations

import errno
import http.client
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from affectflow.models.catalogue.weight_file import WeightFile, WeightsError

log = logging.getLogger(__name__)

USER_AGENT = "affectflow-weights/1"
CHUNK = 1 << 20
# HTTP statuses worth retrying; any other HTTP error is final.
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


def download(wf: WeightFile, part: Path, *, retries: int, timeout: float, backoff: float,
             progress: bool | None) -> None:
    """Fill ``part`` with the bytes at ``wf.url``, resuming after drops."""
    attempt = 0
    while True:
        offset = _resume_offset(wf, part)
        try:
            _request(wf, part, offset, timeout=timeout, progress=progress)
            return
        except (OSError, http.client.HTTPException) as e:
            error = _retryable(wf, part, offset, e)
        if attempt >= retries:
            kept = (f"; the partial file {part} is kept and the next fetch resumes it"
                    if part.exists() and part.stat().st_size else "")
            raise WeightsError(
                f"{wf.name}: download from {wf.url} failed after {attempt + 1} attempts: {error!r}{kept}"
            )
        delay = backoff * (2**attempt)
        attempt += 1
        log.warning("%s: download interrupted (%r); retry %d/%d in %.1f s", wf.name, error, attempt, retries, delay)
        time.sleep(delay)


def open_part(part: Path, mode: str) -> BinaryIO:
    """``part`` opened to write (``mode`` "wb" or "ab") as a file of its own, never through a link.

    Why: ``<dest>.part`` has a name anyone who can write the models folder knows. A symbolic link planted
    there would make the download overwrite, or append to, the file it points at, with the fetching user's
    rights, and the link would then be moved to ``dest``.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if mode == "ab" else os.O_TRUNC)
    try:
        fd = os.open(part, flags, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise WeightsError(f"{part}: a symbolic link where a partial download goes; nothing is written "
                               f"through it (remove it, and see who put it there)") from None
        raise
    return os.fdopen(fd, mode)


def _resume_offset(wf: WeightFile, part: Path) -> int:
    """Where a download into ``part`` resumes: its size, or 0 (``part`` deleted) when it is longer than ``wf``."""
    offset = part.lstat().st_size if part.exists() and not part.is_symlink() else 0
    if wf.size is not None and offset > wf.size:
        part.unlink()
        offset = 0
    return offset


def _request(wf: WeightFile, part: Path, offset: int, *, timeout: float, progress: bool | None) -> None:
    """One request for ``wf.url``, from byte ``offset`` on when the server honours the range, else from the start;
    an incomplete body raises :class:`http.client.IncompleteRead`."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with urllib.request.urlopen(urllib.request.Request(wf.url, headers=headers), timeout=timeout) as resp:
        status = resp.status
        if offset and status == 206 and _range_start(resp.headers.get("Content-Range")) == offset:
            mode = "ab"
            log.info("%s: resuming at byte %d", wf.name, offset)
        else:
            if offset:
                log.info("%s: server ignored the range request; restarting from scratch", wf.name)
            mode, offset = "wb", 0
        length = resp.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        total = offset + expected if expected is not None else wf.size
        received = _save_body(wf, resp, part, mode, offset=offset, total=total, progress=progress)
        if expected is not None and received < expected:
            raise http.client.IncompleteRead(b"", expected - received)


def _save_body(wf: WeightFile, resp: http.client.HTTPResponse, part: Path, mode: str, *, offset: int,
               total: int | None, progress: bool | None) -> int:
    """Write the body of ``resp`` to ``part`` (``mode`` "ab" or "wb") with a progress bar; the bytes received."""
    from tqdm import tqdm

    received = 0
    with open_part(part, mode) as out, tqdm(
        total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
        desc=PurePosixPath(wf.name).name, file=sys.stderr, leave=False,
        disable=None if progress is None else not progress,
    ) as bar:
        while True:
            chunk = resp.read(CHUNK)
            if not chunk:
                break
            out.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    return received


def _retryable(wf: WeightFile, part: Path, offset: int, e: OSError | http.client.HTTPException) -> Exception:
    """``e``, a failed request's error, when a retry may help; else the final :class:`WeightsError` is raised."""
    if isinstance(e, urllib.error.HTTPError):
        if e.code == 416 and offset:  # range beyond the end: stale or complete .part; start over
            part.unlink(missing_ok=True)
        elif e.code not in _RETRY_STATUS:
            raise WeightsError(f"{wf.name}: download from {wf.url} failed: HTTP {e.code} {e.reason}") from None
        return e
    if isinstance(e, (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)):
        return e
    # socket errors not covered above; disk errors end the download
    if e.errno is not None and e.errno in (28, 30, 13):  # ENOSPC, EROFS, EACCES
        raise WeightsError(f"{wf.name}: cannot write {part}: {e}") from None
    return e


def _range_start(content_range: str | None) -> int | None:
    m = re.match(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)", content_range or "")
    return int(m.group(1)) if m else None
