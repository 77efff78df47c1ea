"""A stage job SIGKILL-ed while it writes its shard leaves nothing that looks finished, and a rerun completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from affectflow.data.units import Unit
from affectflow.io.store import ShardReader, StoreError, remove_stale_temps
from affectflow.stages.faces import run_faces
from affectflow.stages.media import run_media

CHILD = r"""
import json, sys
from affectflow.data.units import Unit
units = [Unit(**u) for u in json.loads(sys.argv[2])]
if sys.argv[1] == "media":
    from affectflow.stages.media import run_media
    run_media(units, sys.argv[3])
else:
    from affectflow.stages.faces import run_faces
    run_faces(units, sys.argv[3], {"detector": "mediapipe", "batch_size": 4}, progress=False)
"""
# enough work that the job is still writing when it is killed (each video is a real one)
SOURCE = {"media": "short_audio", "faces": "stream_copy_cut"}
N_VIDEOS = 8


def _kill_while_writing(stage: str, units: list[Unit], out: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, stage, json.dumps([vars(u) for u in units]), str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size > 0 for p in out.parent.glob(f".{out.name}.*.tmp") if p.exists()):
            if proc.poll() is not None:
                raise AssertionError(f"the {stage} job ended before it was killed: {proc.stderr.read().decode()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no temporary file of {out.name} appeared")
            time.sleep(0.005)
        time.sleep(0.2)  # well inside the write of the first videos
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL, "the job finished before it could be killed"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


@pytest.mark.parametrize("stage", ["media", "faces"])
def test_sigkill_mid_write_then_rerun(stage: str, corpus: dict[str, Path], detector, tmp_path: Path) -> None:
    video = str(corpus[SOURCE[stage]])
    units = [Unit(f"v{i:02d}", video, "test", "s0000") for i in range(N_VIDEOS)]
    out = tmp_path / stage / "s0000.h5"
    out.parent.mkdir()
    _kill_while_writing(stage, units, out)

    assert not out.exists()
    left = list(out.parent.iterdir())
    assert len(left) == 1 and left[0].name.startswith(f".{out.name}.") and left[0].suffix == ".tmp", left
    for p in left:  # what the killed job left can never be read as a finished shard
        with pytest.raises(StoreError, match="incomplete|not a readable HDF5 file|not an affectflow shard"):
            ShardReader(p)

    if stage == "media":
        res = run_media(units, out)
    else:
        res = run_faces(units, out, {"detector": "mediapipe", "batch_size": 4}, detector=detector,
                              progress=False)
    assert res.written == [u.video_id for u in units] and res.skipped == []
    with ShardReader(out, stage=stage) as r:
        assert len(r.video_ids()) == N_VIDEOS
    assert list(out.parent.iterdir()) == [out]  # the rerun also removed the killed job's temporary file


def test_a_live_writers_temporary_file_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only temporary files nobody holds open are stale: HDF5 locks the ones it is writing."""
    import h5py

    monkeypatch.delenv("HDF5_USE_FILE_LOCKING", raising=False)

    live = tmp_path / ".s0000.h5.abc123.tmp"
    dead = tmp_path / ".s0000.h5.def456.tmp"
    other = tmp_path / ".s0001.h5.def456.tmp"
    dead.write_bytes(b"half a shard")
    other.write_bytes(b"another shard's")
    with h5py.File(live, "w"):
        assert remove_stale_temps(tmp_path / "s0000.h5") == [dead]
        assert live.exists() and other.exists()
    monkeypatch.setenv("HDF5_USE_FILE_LOCKING", "FALSE")  # no lock to tell live from dead: remove nothing
    other.rename(tmp_path / ".s0000.h5.x.tmp")
    assert remove_stale_temps(tmp_path / "s0000.h5") == []
