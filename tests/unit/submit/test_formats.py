"""Submission files in the organisers' exact formats: written atomically, checked, and read back.

The template files below are written the way the organisers publish their
test-set examples (EXPR: ``image_location`` header and 1-based five-digit
frame names; AH: no header, ``<video path>/frame-<i>.jpg`` with 0-based frames).
"""

import csv
from pathlib import Path

import numpy as np
import pytest

from affectflow.cli import main
from affectflow.evaluate.metrics import EMI_EMOTIONS
from affectflow.submit.formats import (
    EXPR_HEADER,
    SubmissionError,
    check_submission,
    read_ah_submission,
    read_emi_submission,
    read_expr_submission,
    read_template,
    write_ah_submission,
    write_emi_submission,
    write_expr_submission,
)


def expr_preds(seed=0):
    rng = np.random.default_rng(seed)
    return {"10-60-1280x720_right": rng.integers(0, 8, 7), "2-30-640x360": rng.integers(0, 8, 3)}


def test_expr_file_in_the_abaw8_format_and_roundtrip(tmp_path):
    preds = expr_preds()
    path = write_expr_submission(tmp_path / "sub" / "expr.txt", preds)
    lines = path.read_text().splitlines()
    assert lines[0] == "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
    assert lines[1] == f"10-60-1280x720_right/00001.jpg,{preds['10-60-1280x720_right'][0]}"
    assert lines[7] == f"10-60-1280x720_right/00007.jpg,{preds['10-60-1280x720_right'][6]}"
    assert lines[8].startswith("2-30-640x360/00001.jpg,") and len(lines) == 1 + 7 + 3
    back = read_expr_submission(path)
    assert {v: y.tolist() for v, y in back.items()} == {v: y.tolist() for v, y in preds.items()}
    assert check_submission("expr", path) == []
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["expr.txt"]  # no temporary file left


def test_expr_rejects_bad_predictions_and_keeps_the_old_file(tmp_path):
    path = write_expr_submission(tmp_path / "e.txt", {"v": [1, 2]})
    before = path.read_bytes()
    for bad in ({"v": np.array([8])}, {"v": np.array([-1])}, {"v": np.zeros(0)}, {"a,b": [1]}, {"v": [0.5]}):
        with pytest.raises(SubmissionError):
            write_expr_submission(path, bad)
    assert path.read_bytes() == before


def test_expr_template_gives_exactly_its_frames(tmp_path):
    template = tmp_path / "expr_test_example.txt"
    template.write_text(EXPR_HEADER + "\n" + "".join(
        f"{v}/{i:05d}.jpg,\n" for v, frames in (("2-30-640x360", (1, 2, 3)), ("10-60-1280x720_right", (2, 9)))
        for i in frames))
    preds = expr_preds()
    t = read_template("expr", template)
    path = write_expr_submission(tmp_path / "expr.txt", preds, template=t)
    lines = path.read_text().splitlines()
    right, small = preds["10-60-1280x720_right"], preds["2-30-640x360"]
    assert lines == [EXPR_HEADER, f"2-30-640x360/00001.jpg,{small[0]}", f"2-30-640x360/00002.jpg,{small[1]}",
                     f"2-30-640x360/00003.jpg,{small[2]}", f"10-60-1280x720_right/00002.jpg,{right[1]}",
                     f"10-60-1280x720_right/00009.jpg,{right[6]}"]  # frame 9 is past the 7th: the last one's
    assert check_submission("expr", path, template) == []
    # a template video without a prediction cannot be submitted
    with pytest.raises(SubmissionError, match="1 template video.*2-30-640x360"):
        write_expr_submission(tmp_path / "x.txt", {"10-60-1280x720_right": right}, template=t)


def test_ah_file_in_the_abaw8_format_with_a_template_of_test_list_paths(tmp_path):
    preds = {"p1_q3": np.array([0, 1, 1, 0]), "p2_q1": np.array([0, 0])}
    path = write_ah_submission(tmp_path / "ah.txt", preds)
    assert path.read_text().splitlines() == ["p1_q3/frame-0.jpg,0", "p1_q3/frame-1.jpg,1", "p1_q3/frame-2.jpg,1",
                                             "p1_q3/frame-3.jpg,0", "p2_q1/frame-0.jpg,0", "p2_q1/frame-1.jpg,0"]
    back = read_ah_submission(path)
    assert {v: y.tolist() for v, y in back.items()} == {v: y.tolist() for v, y in preds.items()}
    # the organisers' example names the videos by their path in the test list
    template = tmp_path / "ah_example.txt"
    template.write_text("test/p2_q1/frame-1.jpg,0\ntest/p1_q3/frame-2.jpg,0\ntest/p1_q3/frame-3.jpg,0\n")
    path = write_ah_submission(tmp_path / "ah_t.txt", preds, template=read_template("ah", template))
    assert path.read_text().splitlines() == ["test/p2_q1/frame-1.jpg,0", "test/p1_q3/frame-2.jpg,1",
                                             "test/p1_q3/frame-3.jpg,0"]
    assert check_submission("ah", path, template) == []
    with pytest.raises(SubmissionError):
        write_ah_submission(tmp_path / "bad.txt", {"v": np.array([2])})


def test_emi_csv_roundtrip_exact(tmp_path):
    rng = np.random.default_rng(2)
    preds = {f"{i:05d}": rng.random(6) for i in range(5)}
    path = write_emi_submission(tmp_path / "emi.csv", preds)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["Filename", *EMI_EMOTIONS]
    assert rows[0] == "Filename,Admiration,Amusement,Determination,Empathic Pain,Excitement,Joy".split(",")
    back = read_emi_submission(path)
    assert list(back) == sorted(preds)
    for v in preds:
        np.testing.assert_array_equal(back[v], preds[v])  # bit-identical through repr
    for bad in ({"v": [0.1] * 5}, {"v": [np.nan] * 6}, {"v": [1.5] * 6}):
        with pytest.raises(SubmissionError):
            write_emi_submission(tmp_path / "bad.csv", bad)
    order = write_emi_submission(tmp_path / "o.csv", preds, video_order=sorted(preds, reverse=True))
    assert list(read_emi_submission(order)) == sorted(preds, reverse=True)
    assert check_submission("emi", order) == []


@pytest.mark.parametrize(("task", "text", "problem"), [
    ("expr", "image_location,Neutral\nv/00001.jpg,1\n", "line 1 must be"),
    ("expr", EXPR_HEADER + "\nv/00001.jpg,9\n", "line 2: value 9 is not in 0..7"),
    ("expr", EXPR_HEADER + "\nv/1.jpg,1\n", "line 2: expected <video>/<00001>.jpg,<0-7>"),
    ("expr", EXPR_HEADER + "\nv/00001.jpg,1\nv/00003.jpg,1\n", "video 'v': frames must run v/00001.jpg onwards"),
    ("expr", EXPR_HEADER + "\n", "no prediction line"),
    ("ah", "v/frame-1.jpg,1\n", "video 'v': frames must run v/frame-0.jpg onwards"),
    ("ah", "image_location,AH\nv/frame-0.jpg,1\n", "line 1: expected <video>/frame-<i>.jpg,<0|1>"),
    ("ah", "v/frame-0.jpg,0\nv/frame-0.jpg,1\n", "without gaps, repeats"),
    ("emi", "Filename,Joy\n", "line 1 must be"),
    ("emi", "Filename,Admiration,Amusement,Determination,Empathic Pain,Excitement,Joy\na,1,1,1,1,1\n", "6 columns"),
    ("ah_video", "video_path,label\nv.mp4,1\n", "line 1: expected <video>,<0|1> or <video>,<p0>,<p1>,<0|1> (no "
                 "header)"),
    ("ah_video", "v.mp4,0.5000,0.5001,0\n", "line 1: p0 + p1 = 1.0001, not 1"),
    ("ah_video", "v.mp4,1.2,-0.2,0\n", "line 1: probabilities '1.2', '-0.2' are not numbers in [0, 1]"),
    ("ah_video", "v.mp4,0.5000,0.5000,0\nw.mp4,1\n", "line 2: 2 columns, line 1 has 4"),
    ("ah_video", "v.mp4,2\n", "line 1: value 2 is not 0 or 1"),
    ("ah_video", "v.mp4,1\nw.mp4,0\nv.mp4,0\n", "line 3: video 'v.mp4' again (first on line 1)"),
    ("ah_video", "v.mp4/frame-0.jpg\n", "line 1: expected <video>,<0|1>"),
    ("ah_video", "", "no prediction line"),
])
def test_checker_says_what_is_wrong(tmp_path, task, text, problem):
    path = tmp_path / "sub.txt"
    path.write_text(text)
    problems = check_submission(task, path)
    assert any(problem in p for p in problems), problems


def test_checker_against_a_template_and_from_the_command_line(tmp_path, capsys):
    template = tmp_path / "example.txt"
    template.write_text("a/frame-0.jpg,0\na/frame-1.jpg,0\nb/frame-0.jpg,0\n")
    good = tmp_path / "good.txt"
    good.write_text("a/frame-0.jpg,1\na/frame-1.jpg,0\nb/frame-0.jpg,1\n")
    short = tmp_path / "short.txt"
    short.write_text("a/frame-0.jpg,1\nb/frame-0.jpg,1\n")
    assert check_submission("ah", good, template) == []
    problems = check_submission("ah", short, template)
    assert "2 lines for the template's 3" in problems and any("line 2 is b/frame-0.jpg" in p for p in problems)
    assert main(["submission", "check", "ah", str(good), "--template", str(template)]) == 0
    assert "valid" in capsys.readouterr().out
    assert main(["submission", "check", "ah", str(short), "--template", str(template)]) == 1
    assert "2 lines for the template's 3" in capsys.readouterr().out


def test_ah_video_one_line_per_video_and_the_test_list_as_template(tmp_path):
    from affectflow.submit.formats import read_ah_video_submission, write_ah_video_submission

    preds = {"b": np.array([1]), "a": 0, "c d": [1]}
    path = write_ah_video_submission(tmp_path / "v.txt", preds)
    assert path.read_text() == "a,0\nb,1\nc d,1\n"  # no header, sorted ids without a template
    assert read_ah_video_submission(path) == {"a": 0, "b": 1, "c d": 1}
    # the organisers' split/test.txt: <path>,<label or nothing>,<transcript with commas>; their order wins
    test_list = tmp_path / "test.txt"
    test_list.write_text("Videos/9/c d.mp4,,Well, maybe.\nVideos/1/a.mp4,,Yes\nVideos/5/b.mp4,,No, no.\n")
    path = write_ah_video_submission(tmp_path / "t.txt", preds, template=read_template("ah_video", test_list))
    assert path.read_text() == "Videos/9/c d.mp4,1\nVideos/1/a.mp4,0\nVideos/5/b.mp4,1\n"
    assert check_submission("ah_video", path, test_list) == []
    swapped = tmp_path / "swapped.txt"
    swapped.write_text("Videos/1/a.mp4,0\nVideos/9/c d.mp4,1\nVideos/5/b.mp4,1\n")
    assert any("video 1 is 'Videos/1/a.mp4', the template has 'Videos/9/c d.mp4'" in p
               for p in check_submission("ah_video", swapped, test_list))
    with pytest.raises(SubmissionError, match="1 template video"):
        write_ah_video_submission(tmp_path / "x.txt", {"a": 0, "b": 1}, template=read_template("ah_video", test_list))
    with pytest.raises(SubmissionError, match="predictions must be in 0..1"):
        write_ah_video_submission(tmp_path / "x.txt", {"a": 2})
    assert not (tmp_path / "x.txt").exists()


# The BAH organisers' two templates (sbelharbi/ah3rd-challenge-abaw11, predictions-submissions/*/trial-0.txt),
# their first lines copied in form
WITH_PROBABILITIES = (
    "Videos/82964/Visite_1/82964_Question_1_2025-04-12_15-24-21_Video.mp4,0.5000,0.5000,0\n"
    "Videos/82964/Visite_1/82964_Question_2_2025-04-12_15-31-38_Video.mp4,0.5000,0.5000,0\n"
    "Videos/83195/Visite_1/83195_Question_1_2025-07-31_19-16-18_Video.mp4,0.5000,0.5000,0\n"
)
NO_PROBABILITIES = "".join(f"{line.split(',')[0]},0\n" for line in WITH_PROBABILITIES.splitlines())


def test_ah_video_in_both_forms_of_the_organisers_templates(tmp_path):
    from affectflow.submit.formats import read_ah_video_submission, write_ah_video_submission

    with_p, no_p = tmp_path / "with.txt", tmp_path / "no.txt"
    with_p.write_text(WITH_PROBABILITIES)
    no_p.write_text(NO_PROBABILITIES)
    t_with, t_no = read_template("ah_video", with_p), read_template("ah_video", no_p)
    assert (t_with.columns, t_no.columns) == (4, 2) and t_with.videos() == t_no.videos()
    assert check_submission("ah_video", with_p, with_p) == [] and check_submission("ah_video", no_p, no_p) == []
    ids = [Path(v).stem for v in t_with.videos()]
    preds = dict(zip(ids, ([1], [0], [1]), strict=True))
    probs = dict(zip(ids, (0.73456, 0.0, 1 / 3), strict=True))
    out = write_ah_video_submission(tmp_path / "a.txt", preds, template=t_with, probabilities=probs)
    lines = out.read_text().splitlines()
    assert lines[0] == "Videos/82964/Visite_1/82964_Question_1_2025-04-12_15-24-21_Video.mp4,0.2654,0.7346,1"
    assert [ln.split(",", 1)[1] for ln in lines[1:]] == ["1.0000,0.0000,0", "0.6667,0.3333,1"]
    for line in lines:  # the organisers' own test: the two columns sum to exactly 1.0
        _, p0, p1, _ = line.split(",")
        assert float(p0) + float(p1) == 1.0
    assert read_ah_video_submission(out) == dict(zip(t_with.videos(), (1, 0, 1), strict=True))
    # the template's form decides: no probabilities for the no_probabilities template, even when given
    plain = write_ah_video_submission(tmp_path / "b.txt", preds, template=t_no, probabilities=probs)
    assert plain.read_text() == "".join(f"{v},{d}\n" for v, d in zip(t_no.videos(), (1, 0, 1), strict=True))
    assert any("2 columns, the template" in p for p in check_submission("ah_video", plain, with_p))
    assert any("4 columns, the template" in p for p in check_submission("ah_video", out, no_p))
    with pytest.raises(SubmissionError, match="the template has probabilities, the predictions none"):
        write_ah_video_submission(tmp_path / "c.txt", preds, template=t_with)
    # their validator compares the first character of the names only; a wrong video is caught here
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(WITH_PROBABILITIES.replace("Question_2", "Question_9"))
    assert any("the template has 'Videos/82964/Visite_1/82964_Question_2" in p
               for p in check_submission("ah_video", wrong, with_p))
