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



def test_tqdm_disable_in_the_environment_keeps_the_log_lines() -> None:
    """TQDM_DISABLE (the benchmarks set it; a user may) is about bars on a terminal: a batch job's log still says
    how far it got. tqdm reads it when imported, so a fresh interpreter shows it."""
    import os
    import subprocess

    code = ("import logging, sys; logging.basicConfig(stream=sys.stdout, level=logging.INFO, format='%(message)s')\n"
            "from affectflow.core.progress import progress_bar\n"
            "list(progress_bar(range(2), desc='faces s0002.h5', unit='video', log=logging.getLogger('x'), "
            "every_s=0))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "TQDM_DISABLE": "1"}, check=True,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout
    assert "faces s0002.h5: 100%" in out and "2/2" in out, out
