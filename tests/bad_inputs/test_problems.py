"""problems.tsv: one table from the shards' skipped lists and per-video warnings (affectflow.report.problems)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from affectflow.data.units import Unit
from affectflow.io.store import Provenance, ShardReader, ShardWriter, StoreError, VideoRecord
from affectflow.report.problems import COLUMNS, Problem, read_problems_tsv, summary
from affectflow.stages.faces import run_faces
from affectflow.stages.media import accepted_units, run_media
from affectflow.stages.problems import main, run_problems


def _shard(path: Path, stage: str, videos: dict[str, list[str]], skipped: list[tuple[str, str]],
           model: str = "") -> str:
    with ShardWriter(path, Provenance(stage=stage, model=model)) as w:
        for vid, warnings in videos.items():
            w.add(VideoRecord(vid, {"x": [1.0]}, {"warnings": warnings} if warnings is not None else {}))
        w.set_skipped(skipped)
    return str(path)


def test_rows_from_skipped_lists_and_warnings(tmp_path: Path) -> None:
    media0 = _shard(tmp_path / "media" / "s0000.h5", "media", {"b": ["audio is silent"], "a": [], "c": None},
                    [("z", "z.mp4: file is empty (0 bytes)")])
    media1 = _shard(tmp_path / "media" / "s0001.h5", "media", {"d": ["no audio stream", "variable frame rate"]}, [])
    faces0 = _shard(tmp_path / "faces" / "mediapipe" / "s0000.h5", "faces", {"b": ["no face detected"]},
                    [("a", "a.mp4: decoding failed\tafter 3 frames\n(truncated)")], model="mediapipe")
    out = tmp_path / "problems.tsv"
    rows = run_problems([media0, media1, faces0], str(out))
    assert rows == [
        Problem("media", "s0000", "b", "warning", "audio is silent"),
        Problem("media", "s0000", "z", "skip", "z.mp4: file is empty (0 bytes)"),
        Problem("media", "s0001", "d", "warning", "no audio stream"),
        Problem("media", "s0001", "d", "warning", "variable frame rate"),
        Problem("faces/mediapipe", "s0000", "a", "skip", "a.mp4: decoding failed after 3 frames (truncated)"),
        Problem("faces/mediapipe", "s0000", "b", "warning", "no face detected"),
    ]
    assert read_problems_tsv(out) == rows
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "\t".join(COLUMNS) and len(lines) == 1 + len(rows)  # one line per row, always
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    assert summary(rows) == "media: 1 skipped, 2 with warnings; faces/mediapipe: 1 skipped, 1 with warnings"


def test_odd_ids_and_messages_survive_the_tsv(tmp_path: Path) -> None:
    vid = 'a\tb "c"\nd ü/../x'
    shard = _shard(tmp_path / "s0000.h5", "media", {vid: ['say "hi"\tnow']}, [("e,f", "g")])
    rows = run_problems([shard], str(tmp_path / "p.tsv"))
    assert read_problems_tsv(tmp_path / "p.tsv") == rows
    assert {r.video_id for r in rows} == {vid, "e,f"}
    with open(tmp_path / "p.tsv", newline="", encoding="utf-8") as f:
        assert len(list(csv.reader(f, delimiter="\t"))) == 3


def test_nothing_to_report_still_writes_the_header(tmp_path: Path) -> None:
    shard = _shard(tmp_path / "s0000.h5", "media", {"a": []}, [])
    assert run_problems([shard], str(tmp_path / "p.tsv")) == []
    assert (tmp_path / "p.tsv").read_text(encoding="utf-8") == "\t".join(COLUMNS) + "\n"
    assert run_problems([], str(tmp_path / "none.tsv")) == []


def test_unfinished_shard_is_refused_and_the_old_table_kept(tmp_path: Path) -> None:
    good = _shard(tmp_path / "s0000.h5", "media", {"a": ["audio is silent"]}, [])
    out = tmp_path / "p.tsv"
    run_problems([good], str(out))
    before = out.read_bytes()
    unfinished = tmp_path / "s0001.h5"  # what a killed writer's temporary file holds
    with h5py.File(unfinished, "w") as f:
        f.attrs.update(Provenance(stage="media").to_attrs())
        f.attrs["complete"] = False
        f.create_group("videos")
    with pytest.raises(StoreError, match="incomplete"):
        run_problems([good, str(unfinished)], str(out))
    with pytest.raises(StoreError, match="does not exist"):
        run_problems([good, str(tmp_path / "s0002.h5")], str(out))
    assert out.read_bytes() == before


def test_real_stage_shards(corpus: dict[str, Path], detector, tmp_path: Path) -> None:
    names = ["good", "truncated", "no_audio", "no_face", "empty"]
    units = [Unit(n, str(corpus[n]), "test", "s0000") for n in names]
    media = tmp_path / "media" / "s0000.h5"
    faces = tmp_path / "faces" / "mediapipe" / "s0000.h5"
    run_media(units, media)
    run_faces(accepted_units(media, units), faces, {"frame_stride": 2}, detector=detector, progress=False)
    out = tmp_path / "problems.tsv"
    assert main([str(out), str(media), str(faces)]) == 0
    got = {(r.stage, r.video_id, r.severity) for r in read_problems_tsv(out)}
    assert got == {
        ("media", "truncated", "skip"),
        ("media", "empty", "skip"),
        ("media", "no_audio", "warning"),
        ("faces/mediapipe", "no_face", "warning"),
    }
    skip = next(r for r in read_problems_tsv(out) if r.video_id == "truncated")
    assert str(corpus["truncated"]) in skip.message and "truncated" in skip.message


def test_a_video_that_lost_its_face_is_listed(tmp_path: Path) -> None:
    """More than problems.face_missing_share of the frames without the face: a warning naming the share."""

    from affectflow.stages.problems import ProblemsOptions

    path = tmp_path / "faces" / "mediapipe_full" / "s0000.h5"
    with ShardWriter(path, Provenance(stage="faces", model="mediapipe_full")) as w:
        w.add(VideoRecord("lost", {"has_face": np.array([True] * 3 + [False] * 7)}, {"warnings": []}))
        w.add(VideoRecord("kept", {"has_face": np.array([True] * 6 + [False] * 4)}, {"warnings": []}))
        w.add(VideoRecord("none", {"has_face": np.zeros(5, bool)}, {"warnings": ["no face detected in any"]}))
    rows = run_problems([str(path)], str(tmp_path / "p.tsv"))
    assert [(r.video_id, r.message) for r in rows] == [
        ("lost", "target face missing in 70% of 10 analysed frames (more than problems.face_missing_share 0.5)"),
        ("none", "no face detected in any"),
    ]
    strict = run_problems([str(path)], str(tmp_path / "p.tsv"), ProblemsOptions(face_missing_share=0.3))
    assert {r.video_id for r in strict} == {"lost", "kept", "none"}
    with pytest.raises(ValueError, match="face_missing_share must be in"):
        ProblemsOptions(face_missing_share=1.5)


def test_files_of_a_folder_that_are_no_videos_come_first(tmp_path: Path) -> None:
    """The units table's left-out files (a folder dataset's notes, images, ...) are rows of stage ``units``: no
    shard, the file's name for an id, its path in the message; the rule's job hands them over as mappings."""
    from types import SimpleNamespace

    from affectflow.core.job import Job
    from affectflow.data.units import SkippedFile
    from affectflow.stages.problems import run

    media = _shard(tmp_path / "media" / "s0000.h5", "media", {"a": ["audio is silent"]}, [])
    skipped = [SkippedFile("in/z.jpg", "an image (.jpg), not a video"), SkippedFile("in/.x", "hidden file")]
    out = tmp_path / "problems.tsv"
    job = Job(input=SimpleNamespace(media=[media], faces=[]), output=[str(out)], config={},
              params=SimpleNamespace(skipped=[vars(s) for s in skipped]))
    run(job)
    rows = read_problems_tsv(out)
    assert rows == [
        Problem("units", "", ".x", "skip", "in/.x: hidden file"),
        Problem("units", "", "z.jpg", "skip", "in/z.jpg: an image (.jpg), not a video"),
        Problem("media", "s0000", "a", "warning", "audio is silent"),
    ]
    assert summary(rows) == "units: 2 skipped, 0 with warnings; media: 0 skipped, 1 with warnings"


def test_label_files_that_do_not_fit_their_video_are_listed_last(tmp_path: Path) -> None:
    """Aff-Wild2's files are often a row off the decoded video: fitted, and said here per video and task."""
    media = tmp_path / "media" / "s0000.h5"
    with ShardWriter(media, Provenance(stage="media")) as w:
        for vid, n in (("long", 3), ("short", 5), ("exact", 2), ("broken", 2)):
            w.add(VideoRecord(vid, {"x": [1.0]}, {"n_frames": n}))
    labels = tmp_path / "labels"
    labels.mkdir()
    header = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n"
    for vid, rows in (("long", "0\n1\n-1\n2\n"), ("short", "0\n1\n2\n"), ("exact", "0\n1\n"), ("broken", "0\nx\n")):
        (labels / f"{vid}.txt").write_text(header + rows)
    (labels / "short_ah.txt").write_text("AH\n0\n1\n1\n1\n1\n")
    units = [Unit(v, f"{v}.mp4", "train", "s0000", expr_labels=str(labels / f"{v}.txt"))
             for v in ("long", "short", "exact", "broken")]
    units[1] = Unit("short", "short.mp4", "train", "s0000", expr_labels=str(labels / "short.txt"),
                    ah_labels=str(labels / "short_ah.txt"))
    units.append(Unit("not_decoded", "n.mp4", "train", "s0001", expr_labels=str(labels / "missing.txt")))
    rows = run_problems([str(media)], str(tmp_path / "problems.tsv"), units=units)
    assert [(r.stage, r.video_id, r.severity) for r in rows] == [
        ("labels", "long", "warning"), ("labels", "short", "warning"), ("labels", "broken", "warning")]
    assert rows[0].message == (f"expr: {labels / 'long.txt'}: 4 label rows for 3 decoded frames: the last 1 rows "
                               "are past the video's end and are not used")
    assert "3 label rows for 5 decoded frames: the last 2 frames have no label (-1" in rows[1].message
    assert rows[2].message.startswith("expr: ") and "line 3: 'x' is not an integer" in rows[2].message
    assert read_problems_tsv(tmp_path / "problems.tsv") == rows


def test_a_warning_names_the_video_file_as_a_skip_does(tmp_path: Path) -> None:
    """With the units table, a warning row says which file it is about, like a skip's reason."""
    media = _shard(tmp_path / "media" / "s0000.h5", "media", {"a": ["audio is silent"]}, [])
    rows = run_problems([media], str(tmp_path / "problems.tsv"),
                        units=[Unit("a", "data/in/a b.mp4", "test", "s0000")])
    assert rows == [Problem("media", "s0000", "a", "warning", "data/in/a b.mp4: audio is silent")]


def test_the_run_page_reads_the_rows_the_file_holds(tmp_path: Path) -> None:
    """One reader of problems.tsv: the run page's table is the file's rows, and a hand-edited file that lost a
    cell is refused naming the file and the line, not shown shifted."""
    from affectflow.report.collect import problems_frame

    media = _shard(tmp_path / "s0000.h5", "media", {"a": ["audio is silent"], "b": []}, [("c", "c.mp4: empty")])
    out = tmp_path / "problems.tsv"
    rows = run_problems([media], str(out))
    frame = problems_frame(out)
    assert list(frame.columns) == list(COLUMNS)
    assert [Problem(*r) for r in frame.itertuples(index=False)] == rows
    run_problems([str(_shard(tmp_path / "s0001.h5", "media", {"a": []}, []))], str(out))
    assert problems_frame(out).empty and list(problems_frame(out).columns) == list(COLUMNS)
    out.write_text("\t".join(COLUMNS) + "\nmedia\ts0000\ta\twarning\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"problems\.tsv, line 2: 4 cells, not 5"):
        problems_frame(out)


def test_the_documented_rule_is_the_rule() -> None:
    """docs/bad_inputs.md quotes the problems rule; the quote is the file's rule, word for word."""
    root = Path(__file__).resolve().parents[2]
    rule = (root / "workflow" / "rules" / "problems.smk").read_text(encoding="utf-8")
    rule = rule[rule.index("rule problems:"):].rstrip()
    doc = (root / "docs" / "bad_inputs.md").read_text(encoding="utf-8")
    quoted = doc[doc.index("```python\nrule problems:") + len("```python\n"):]
    assert quoted[:quoted.index("\n```")] == rule


@pytest.mark.parametrize("ext, audio", [("mp4", "aac"), ("avi", "pcm_s16le")])
def test_frames_lost_to_damaged_data_are_listed(ext: str, audio: str, detector, tmp_path: Path) -> None:
    """A file damaged in the middle decodes (the decoder passes over the bad packets) but with fewer frames than
    its packets: the frames after the damage keep the media stage's numbers (their labels stay theirs), and
    problems.tsv says frames were lost, not only the log. An AVI (decode times only, B-frames) alike."""
    from affectflow.testing.media import ffmpeg

    good = tmp_path / f"good.{ext}"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=24", "-f", "lavfi", "-i", "sine=frequency=440",
           "-t", "3", "-c:v", "libx264", "-g", "12", "-pix_fmt", "yuv420p", "-c:a", audio, "-shortest", str(good))
    data = bytearray(good.read_bytes())
    # a third into the file; into the AVI's video a third in (its sound, PCM, is most of the file)
    at = len(data) // 3 if ext == "mp4" else [m.start() for m in re.finditer(b"00dc", data)][24] + 8
    data[at:at + 2500] = bytes(2500)
    damaged = tmp_path / f"damaged.{ext}"
    damaged.write_bytes(bytes(data))
    units = [Unit("damaged", str(damaged), "test", "s0000"), Unit("good", str(good), "test", "s0000")]
    media, faces = tmp_path / "media" / "s0000.h5", tmp_path / "faces" / "mediapipe" / "s0000.h5"
    run_media(units, media)
    run_faces(units, faces, {"frame_stride": 1}, detector=detector, progress=False, media_shard=media)  # as the rule
    rows = [r for r in run_problems([str(media), str(faces)], str(tmp_path / "p.tsv"), units=units)
            if "decoded" in r.message]
    assert [(r.stage, r.video_id, r.severity) for r in rows] == [("faces/mediapipe", "damaged", "warning")]
    found = re.fullmatch(rf"{re.escape(str(damaged))}: (\d+) of the video's 72 frames decoded: the decoder passed "
                         r"over damaged data, and the (\d+) frame\(s\) lost there have no face rows", rows[0].message)
    assert found and int(found[1]) + int(found[2]) == 72 and int(found[2]) > 0, rows[0].message
    with ShardReader(faces) as f, ShardReader(media) as m:  # the frames after the damage keep their numbers
        rec, times = f.read("damaged"), m.read("damaged", names=("timestamps",)).arrays["timestamps"]
        index = rec.arrays["frame_index"]
        assert len(index) == int(found[1]) and index[-1] == 71 and (np.diff(index) > 0).all()
        np.testing.assert_allclose(rec.arrays["timestamps"], times[index], atol=1e-6)
        assert f.read("good").arrays["frame_index"].tolist() == list(range(72))
    pooled = tmp_path / "pooled.h5"  # decoded in a process of the job's pool: the same numbers
    run_faces(units, pooled, {"frame_stride": 1, "decode": "process"}, detector=detector, progress=False,
              media_shard=media)
    with ShardReader(pooled) as p:
        assert p.read("damaged").arrays["frame_index"].tolist() == index.tolist()
