"""A folder of MPEG transport streams (and files that are not videos) through the folder adapter, the units
table, the media and faces stages and the problems table: the path a user's own folder takes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from affectflow.data.units import UnitsTable
from affectflow.faces.detection import WrappedDetector
from affectflow.io.store import ShardReader
from affectflow.stages.faces import run_faces
from affectflow.stages.media import accepted_units, run_media
from affectflow.stages.problems import run_problems
from affectflow.stages.units import run_units
from affectflow.testing.corpus import BY_NAME

STREAMS = ("mpeg_ts", "bdav_mts", "resolution_change", "joined_ts")


class OneSizePerCall(WrappedDetector):
    """The real MediaPipe detector, refusing a call with frames of several sizes as the batched detectors
    (RetinaFace) do: a resolution change mid-stream must reach them as separate calls."""

    def detect(self, frames_rgb: list[np.ndarray]):
        assert len({f.shape for f in frames_rgb}) == 1, [f.shape for f in frames_rgb]
        return super().detect(frames_rgb)


def test_a_folder_of_transport_streams_gives_faces_and_lists_what_it_leaves_out(
        corpus: dict[str, Path], images: dict[str, Path], detector, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in STREAMS:
        shutil.copyfile(corpus[name], folder / BY_NAME[name].file)
    shutil.copyfile(corpus["good"], folder / "recording")  # no extension: FFmpeg says it is a video
    shutil.copyfile(images["single"], folder / "poster.jpg")
    (folder / "notes.txt").write_text("labels come later\n", encoding="utf-8")
    (folder / "._broadcast.ts").write_bytes(b"\0" * 4096)  # what a macOS copy leaves
    monkeypatch.chdir(tmp_path)

    table = run_units([{"adapter": "folder", "videos": "videos"}], 1, "results/units.tsv")
    ids = ["broadcast", "camcorder", "joined", "recording", "webcam"]
    assert sorted(u.video_id for u in UnitsTable.read_tsv("results/units.tsv")) == ids
    media, faces = Path("results/media/s0000.h5"), Path("results/faces/mediapipe/s0000.h5")
    assert sorted(run_media(table.units, media).written) == ids
    res = run_faces(accepted_units(media, table.units), faces, {"detector": "mediapipe", "batch_size": 8},
                          detector=OneSizePerCall(detector), progress=False)
    assert sorted(res.written) == ids and res.skipped == []

    with ShardReader(faces, stage="faces") as f, ShardReader(media, stage="media") as m:
        for vid in ids:
            rec, times = f.read(vid), m.read(vid).arrays["timestamps"]
            np.testing.assert_allclose(rec.arrays["timestamps"], times, atol=1e-6)  # one clock, from 0
            assert times[0] == 0 and rec.arrays["has_face"][:4].all(), vid
            assert rec.arrays["crops"].shape == (len(times), 224, 224, 3)
        for vid in ("webcam", "joined"):  # 4 frames 320 pixels wide, then 4 frames 480 wide: all decoded
            assert (f.read(vid).attrs["width"], f.read(vid).attrs["n_frames_decoded"]) == (320, 8)

    rows = run_problems([str(media), str(faces)], "results/problems.tsv", skipped=table.skipped)
    assert [(r.stage, r.video_id, r.severity, r.message) for r in rows] == [
        ("units", "._broadcast.ts", "skip", "videos/._broadcast.ts: hidden file"),
        ("units", "notes.txt", "skip", "videos/notes.txt: a text or label file (.txt), not a video"),
        ("units", "poster.jpg", "skip", "videos/poster.jpg: an image (.jpg), not a video"),
        ("media", "joined", "warning", "the video's clock restarts 1 time(s) (recordings joined together?): each "
                                       "part put one frame after the one before"),
        *[("faces/mediapipe", vid, "warning", "the picture size changes 1 time(s) inside the stream: faces are "
                                              "followed across it, boxes and landmarks are in each part's pixels")
          for vid in ("joined", "webcam")],
    ]


def test_a_resolution_change_keeps_the_face_in_both_parts(corpus: dict[str, Path], detector, tmp_path: Path) -> None:
    from affectflow.data.units import Unit

    units = [Unit(n, str(corpus[n]), "test", "s0000") for n in ("resolution_change", "joined_ts")]
    out = tmp_path / "faces.h5"
    run_faces(units, out, {"detector": "mediapipe"}, detector=OneSizePerCall(detector), progress=False)
    with ShardReader(out, stage="faces") as f:
        for u in units:
            rec = f.read(u.video_id)
            assert rec.arrays["has_face"].all(), u.video_id  # crops from both parts
            width = rec.arrays["bbox"][:, 2] - rec.arrays["bbox"][:, 0]
            assert width[4:].mean() == pytest.approx(1.5 * width[:4].mean(), rel=0.1), width
            assert any("picture size changes 1 time(s)" in w for w in rec.attrs["warnings"]), rec.attrs["warnings"]
