"""Logging for workflow jobs: everything a stage says goes to the rule's log file.

Snakemake gives each job a ``log:`` path; warnings about skipped or odd videos
must end up there (and on stderr) so a user can find why a video is missing.
A job that stops on an :class:`~affectflow.core.errors.AffectflowError` logs
its message as one line (it names the file and the problem); any other
exception is a bug and is logged with its traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from types import TracebackType

from affectflow.core.errors import AffectflowError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup(log_path: str | os.PathLike[str] | None = None, level: int = logging.INFO) -> None:
    """Send affectflow's log records to ``log_path`` (truncated) and stderr."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    for h in handlers:
        h.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(h)
    root.setLevel(level)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """The job's last word, in its log: the message of an expected error, the traceback of anything else."""
    log = logging.getLogger("affectflow")
    if issubclass(kind, AffectflowError):
        log.error("%s", exc)
    else:
        log.error("unexpected %s", kind.__name__, exc_info=(kind, exc, tb))
