"""Progress of a job's long loops: a bar on a terminal, a log line a minute in a batch job's log.

Why: tqdm's bars switch themselves off when stderr is not a terminal, which is every Slurm job, so a job
killed at its time limit left a log that did not say how far it had got, nor how long the rest would take.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")

#: seconds between two lines of a job's log
LOG_EVERY_S = 60.0


class _LogLines(io.StringIO):
    """A file for tqdm that hands each state of the bar to a logger, a line each."""

    def __init__(self, log: logging.Logger) -> None:
        super().__init__()
        self._log = log

    def write(self, s: str) -> int:
        line = s.strip("\r\n\x1b[A ")
        if line:
            self._log.info("%s", line)
        return len(s)

    def flush(self) -> None:
        pass


def progress_bar(iterable: Iterable[T] | None = None, total: int | None = None, *, desc: str, unit: str,
                 log: logging.Logger, show: bool | None = None, every_s: float = LOG_EVERY_S, **kw: Any) -> tqdm:
    """A tqdm bar over ``iterable`` (or ``total`` ``unit``, advanced by ``update``): on stderr where it is a
    terminal (or ``show`` is True), else (``show`` None) a line in ``log`` every ``every_s`` seconds and at the
    end; nothing with ``show`` False."""
    if show is False:
        return tqdm(iterable, total=total, desc=desc, unit=unit, disable=True, **kw)
    if show or sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, **kw)
    kw.pop("mininterval", None)
    # disable=False: tqdm takes TQDM_DISABLE from the environment as its default, which is about bars on a
    # terminal; these lines are the job's log
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=_LogLines(log), mininterval=every_s,
                maxinterval=every_s, ascii=True, ncols=100, disable=False, **kw)
