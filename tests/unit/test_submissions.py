"""(h) Submission files are written atomically in the challenge formats and parse back."""

import csv

import numpy as np
import pytest

from affectflow.metrics import EMI_EMOTIONS
from affectflow.submissions import (
    SubmissionError,
    read_ah_submission,
    read_emi_submission,
    read_expr_submission,
    write_ah_submission,
    write_emi_submission,
    write_expr_submission,
)


def expr_preds(seed=0):
    rng = np.random.default_rng(seed)
    return {"10-60-1280x720_right": rng.integers(0, 8, 7), "2-30-640x360": rng.integers(0, 8, 3)}


def test_expr_single_file_format_and_roundtrip(tmp_path):
    preds = expr_preds()
    path = write_expr_submission(tmp_path / "sub" / "expr.txt", preds)
    lines = path.read_text().splitlines()
    assert lines[0] == "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
    assert lines[1] == f"10-60-1280x720_right/00001.jpg,{preds['10-60-1280x720_right'][0]}"
    assert lines[8].startswith("2-30-640x360/00001.jpg,")
    assert len(lines) == 1 + 7 + 3
    back = read_expr_submission(path)
    assert back.keys() == preds.keys()
    for v in preds:
        np.testing.assert_array_equal(back[v], preds[v])
    assert [p.name for p in path.parent.iterdir()] == ["expr.txt"]  # no temp files left


def test_expr_per_video_and_custom_frame_names(tmp_path):
    preds = expr_preds(1)
    folder = write_expr_submission(tmp_path / "expr", preds, layout="per_video")
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{v}.txt" for v in preds)
    text = (folder / "2-30-640x360.txt").read_text().splitlines()
    assert text[0] == "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other" and len(text) == 4
    back = read_expr_submission(folder)
    for v in preds:
        np.testing.assert_array_equal(back[v], preds[v])
    # rewriting replaces the folder whole (stale videos disappear)
    write_expr_submission(folder, {"only": np.array([1, 2])}, layout="per_video")
    assert [p.name for p in folder.iterdir()] == ["only.txt"]
    names = {"a": ["00010.jpg", "00012.jpg"]}
    f = write_expr_submission(tmp_path / "named.txt", {"a": [3, 4]}, frame_names=names)
    assert f.read_text().splitlines()[1:] == ["a/00010.jpg,3", "a/00012.jpg,4"]


def test_expr_rejects_bad_predictions(tmp_path):
    for bad in ({"v": np.array([0, -1])}, {"v": np.array([8])}, {"v": np.array([0.5])}, {}, {"a/b": [1]}):
        with pytest.raises(SubmissionError):
            write_expr_submission(tmp_path / "x" / "e", bad, layout="per_video")
    assert not (tmp_path / "x" / "e").exists()
    with pytest.raises(SubmissionError):
        write_expr_submission(tmp_path / "e.txt", {"v": [1, 2]}, frame_names={"v": ["00001.jpg"]})


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
    with pytest.raises(SubmissionError):
        write_emi_submission(tmp_path / "bad.csv", {"v": [0.1] * 5})
    with pytest.raises(SubmissionError):
        write_emi_submission(tmp_path / "bad.csv", {"v": [np.nan] * 6})
    order = write_emi_submission(tmp_path / "o.csv", preds, video_order=sorted(preds, reverse=True))
    assert list(read_emi_submission(order)) == sorted(preds, reverse=True)


def test_ah_both_layouts(tmp_path):
    preds = {"p1_q3": np.array([0, 1, 1, 0]), "p2_q1": np.array([0, 0])}
    folder = write_ah_submission(tmp_path / "ah", preds)
    assert (folder / "p1_q3.txt").read_text() == "AH\n0\n1\n1\n0\n"
    for v, y in read_ah_submission(folder).items():
        np.testing.assert_array_equal(y, preds[v])
    single = write_ah_submission(tmp_path / "ah.txt", preds, layout="single")
    assert single.read_text().splitlines()[:2] == ["image_location,AH", "p1_q3/00001.jpg,0"]
    back = read_ah_submission(single)
    assert {v: y.tolist() for v, y in back.items()} == {v: y.tolist() for v, y in preds.items()}
    with pytest.raises(SubmissionError):
        write_ah_submission(tmp_path / "bad", {"v": np.array([2])})


def test_ah_submission_reads_as_bah_labels(tmp_path):
    datasets = pytest.importorskip("affectflow.datasets")
    folder = write_ah_submission(tmp_path / "ah", {"v": np.array([0, 1, 1])})
    np.testing.assert_array_equal(datasets.read_ah_labels(folder / "v.txt", 3), [0, 1, 1])
