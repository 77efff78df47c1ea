"""Progress of long loops reaches a batch job's log, where tqdm's own bars switch themselves off."""

from __future__ import annotations

import logging
import sys

from affectflow.core.progress import progress_bar


def test_off_a_terminal_progress_is_logged_as_lines(caplog, monkeypatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)  # as in a batch job, whatever runs the tests
    log = logging.getLogger("affectflow.test_progress")
    caplog.set_level(logging.INFO, logger=log.name)
    assert list(progress_bar(range(3), desc="faces s0001.h5", unit="video", log=log, every_s=0)) == [0, 1, 2]
    lines = [r.getMessage() for r in caplog.records if r.name == log.name]
    assert lines and lines[-1].startswith("faces s0001.h5: 100%") and "3/3" in lines[-1], lines
    assert not any("\r" in line or "\x1b" in line for line in lines)
    caplog.clear()
    with progress_bar(total=2, desc="quiet", unit="video", log=log, show=False) as bar:
        bar.update(2)
    assert not [r for r in caplog.records if r.name == log.name]
