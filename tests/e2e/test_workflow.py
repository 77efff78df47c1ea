"""The real Snakemake workflow on the demo: outputs, restarts and what reruns."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest

from affectflow.store import ShardReader
from affectflow.units import UnitsTable
from snakerun import make_workdir

pytestmark = pytest.mark.slow

SHARD_RULES = {"media", "faces", "contact_sheets"}


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """One complete run of the default workflow on the demo."""
    wd = make_workdir(tmp_path_factory.mktemp("wf"))
    wd.run()
    return wd


def _shard_jobs(jobs, shard):
    return {(r, o) for r, o in jobs if r in SHARD_RULES and f"/{shard}" in o}


def test_outputs_for_every_demo_video(done):
    res = done.results()
    units = UnitsTable.read_tsv(res / "units.tsv")
    assert len(units) >= 8
    for shard, members in units.by_shard().items():
        with ShardReader(res / "media" / f"{shard}.h5", stage="media") as media:
            assert set(media.video_ids()) == {u.video_id for u in members}
            for rec in media:
                assert rec.attrs["sample_rate"] == 16000
                n = len(rec.arrays["audio"])
                assert 0 < n <= 16000 * (rec.attrs["duration"] + 0.2)
                if not rec.attrs["has_audio"]:  # silence of the video's length, and a warning
                    assert n >= 16000 * (rec.attrs["duration"] - 0.1) and not rec.arrays["audio"].any()
                    assert any("no audio stream" in w for w in rec.attrs["warnings"])
        with ShardReader(res / "faces" / "mediapipe" / f"{shard}.h5", stage="faces", model="mediapipe") as faces:
            assert set(faces.video_ids()) == {u.video_id for u in members}
            for rec in faces:
                crops = rec.arrays["crops"]
                assert crops.shape[1:] == (224, 224, 3) and crops.dtype == np.uint8
                assert np.all(np.diff(rec.arrays["timestamps"]) > 0)
        sheets = list((res / "faces" / "mediapipe" / "sheets" / shard).glob("*.png"))
        assert len(sheets) == len(members)


def test_faces_found_where_there_are_faces(done):
    res = done.results()
    rates = {}
    for shard in UnitsTable.read_tsv(res / "units.tsv").shards():
        with ShardReader(res / "faces" / "mediapipe" / f"{shard}.h5") as faces:
            for rec in faces:
                rates[rec.video_id] = float(np.mean(rec.arrays["has_face"]))
    assert any(r > 0.9 for r in rates.values()), rates
    no_face = [v for v in rates if v.startswith("no_face")]
    assert no_face and all(rates[v] < 0.05 for v in no_face), rates


def test_second_run_has_nothing_to_do(done):
    assert done.planned_jobs() == set()


def test_changing_one_video_reruns_only_its_shard(done, tmp_path):
    units = UnitsTable.read_tsv(done.results() / "units.tsv")
    unit = units.units[0]
    path = done.path / unit.path
    backup = tmp_path / "backup"
    shutil.copy2(path, backup)
    with open(path, "ab") as f:  # new content (a trailing byte the demuxer ignores)
        f.write(b"\0")
    try:
        jobs = done.planned_jobs()
        shard_jobs = {(r, o) for r, o in jobs if r in SHARD_RULES}
        assert shard_jobs == _shard_jobs(jobs, unit.shard)
        assert {r for r, _ in shard_jobs} == SHARD_RULES
    finally:
        shutil.copy2(backup, path)  # same content and mtime as before: up to date again
    assert done.planned_jobs() == set()


def test_touch_without_content_change_reruns_nothing(done):
    """Snakemake compares checksums when only the mtime moved."""
    path = done.path / UnitsTable.read_tsv(done.results() / "units.tsv").units[0].path
    stat = path.stat()
    now = time.time() + 5
    os.utime(path, (now, now))
    try:
        assert done.planned_jobs() == set()
    finally:
        os.utime(path, (stat.st_atime, stat.st_mtime))


def test_faces_config_change_reruns_faces_not_media(done):
    original = done.config_path.read_text()
    cfg = done.config()
    cfg["faces"]["margin"] = 0.3
    done.write_config(cfg)
    try:
        jobs = done.planned_jobs()
        rules = {r for r, _ in jobs}
        assert "media" not in rules
        shards = UnitsTable.read_tsv(done.results() / "units.tsv").shards()
        assert {o for r, o in jobs if r == "faces"} == {
            f"{done.config()['results_dir']}/demo/faces/mediapipe/{s}.h5" for s in shards
        }
    finally:
        done.config_path.write_text(original)
    assert done.planned_jobs() == set()
