"""Reading the files a dataset config names: paths spelled one way, text read strictly, parses cached.

Every adapter reads label files and lists; doing it one way here keeps their
error messages alike (each names the file as the config gives it) and their
parses cheap when the workflow asks for the same file many times.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from affectflow.data.adapters.errors import LabelError


def resolve(given: str, base: Path) -> Path:
    """Where a configured path is: relative paths are under ``base`` (the workflow directory); the units keep
    its :func:`canonical` spelling, relative where it lies under ``base``, so a units table stays valid when the
    project folder moves."""
    p = Path(given)
    return p if p.is_absolute() else base / p


def canonical(given: str, base: Path) -> str:
    """One spelling per file, for the units table and the rerun keys: ``./v/a.mp4``, ``v//a.mp4``, ``../w/v/a.mp4``
    and ``/w/v/a.mp4`` from a workflow directory ``/w`` are all ``v/a.mp4``, so writing a folder another way
    reruns nothing. A path outside ``base`` keeps its form (absolute, or relative as ``../shared/v``); so does an
    absolute path when ``base`` is not the working directory (a relative one would not open from here).
    Symbolic links are kept (``..`` is folded by text, as the shell's ``cd`` does)."""
    if not given:
        return given
    p = os.path.normpath(given)
    root = os.path.abspath(base)
    if os.path.isabs(p) and root != os.getcwd():
        return p
    full = p if os.path.isabs(p) else os.path.normpath(os.path.join(root, p))
    if os.path.commonpath([full, root]) == root:
        return os.path.relpath(full, root)
    return p


#: a ``{name}`` in a path, which Snakemake reads as a wildcard wherever the path is a job's input
_WILDCARD = re.compile(r"\{[^{}]*\}")


def name_problem(name: str, noun: str = "name") -> str:
    """Why a file or folder name cannot be a job's input (``""``: it can).

    Snakemake reads ``{...}`` in an input path as a wildcard, so the whole run stopped on one such name without
    naming it; a name that is not UTF-8 (an old zip's or a Windows code page's) cannot be written to the
    HDF5 files, tables and pages that name the video.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return f"its {noun} is not valid UTF-8 (copied from an old zip or a Windows code page?): rename it"
    found = _WILDCARD.search(name)
    if found:
        return f"its {noun} holds {found.group(0)!r}, which Snakemake reads as a wildcard: rename it without braces"
    return ""


def shown(path: str) -> str:
    """``path`` as it can be printed and written to a UTF-8 table (bytes that are not UTF-8 as ``\\xe9``)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def existing_folder(given: str, base: Path, what: str) -> Path:
    """A configured folder (``what``: "videos", "labels"), which must exist and be a folder: a file given
    where a folder belongs is named as such, not as missing; and one whose path no job could read."""
    problem = name_problem(given, "path")
    if problem:
        raise LabelError(f"{shown(given)}: the {what} folder cannot be used: {problem}")
    folder = resolve(given, base)
    if folder.is_file():
        raise LabelError(f"{given}: the {what} folder is a file ({folder}); give the folder that holds it")
    if not folder.is_dir():
        raise LabelError(f"{given}: {what} folder not found ({folder})")
    return folder


def labels_dir(given: str, base: Path) -> Path:
    """The configured labels folder, which must exist."""
    return existing_folder(given, base, "labels")


def read_lines(path: Path, shown: str, what: str = "label file") -> list[str]:
    """Text lines (universal newlines, BOM dropped); missing/undecodable -> LabelError."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LabelError(f"{shown}: {what} not found") from None
    except IsADirectoryError:
        raise LabelError(f"{shown}: is a folder, expected a file") from None
    except UnicodeDecodeError as e:
        raise LabelError(f"{shown}: not UTF-8 text ({e})") from None
    return text.split("\n")


def cached(parse: Callable[..., Any], path: Path, shown: str, what: str, *args: Any) -> Any:
    """``parse`` (an lru-cached parser) of the file at ``path``, keyed by its mtime and size: a file that
    changes is read again, an unchanged one once per process."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise LabelError(f"{shown}: {what} not found") from None
    return parse(str(path.resolve()), shown, *args, st.st_mtime_ns, st.st_size)

