"""Dataset adapters: units from each on-disk layout, label parsing, and clear errors."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from affectflow.data.adapters import (
    EMI_EMOTIONS,
    LabelError,
    build_units,
    read_ah_labels,
    read_emi_labels,
    read_expr_labels,
)
from affectflow.data.adapters.frame_labels import frame_count_note
from affectflow.data.adapters.labels import frame_label_rows
from affectflow.data.units import UnitsError, UnitsTable, shard_of
from affectflow.testing.dataset_fixtures import (
    make_demo_like,
    make_videos,
    write_ah,
    write_emi_csv,
    write_expr,
    write_frame_labels,
    write_list,
)


def _entry(adapter: str, **kw: str) -> dict:
    labels = {} if adapter == "folder" else {"labels": "labels"}
    return {"adapter": adapter, "videos": "videos", **labels, **kw}


def _raises(fn, *args, match: str, **kw) -> str:
    """Call fn, expect a LabelError whose message contains every |-separated part of match."""
    with pytest.raises(LabelError) as info:
        fn(*args, **kw)
    msg = str(info.value)
    for part in match.split("|"):
        assert part in msg, f"{part!r} not in {msg!r}"
    return msg


# ------------------------------------------------------------ happy paths


def test_merges_the_same_video_across_three_adapters(tmp_path: Path) -> None:
    table = build_units(make_demo_like(tmp_path), n_shards=4, base_dir=tmp_path)
    by_id = {u.video_id: u for u in table}
    assert sorted(by_id) == ["a", "b", "c", "d e", "test1"]

    a = by_id["a"]
    assert (a.path, a.split) == ("data/videos/a.mp4", "train")
    assert a.expr_labels == "data/labels/EXPR/Train_Set/a.txt"
    assert a.emi_labels == "data/labels/EMI/train_split.csv"
    assert a.ah_labels == "data/labels/AH/Train_Set/a.txt"

    b = by_id["b"]
    assert (b.split, b.expr_labels, b.emi_labels, b.ah_labels) == (
        "val",
        "data/labels/EXPR/Validation_Set/b.txt",
        "data/labels/EMI/valid_split.csv",
        "",
    )
    assert (by_id["c"].expr_labels, by_id["c"].emi_labels) == ("", "data/labels/EMI/train_split.csv")
    assert by_id["d e"].path == "data/videos/d e.avi"
    assert by_id["d e"].ah_labels == "data/labels/AH/Validation_Set/d e.txt"

    t = by_id["test1"]
    assert (t.path, t.split, t.expr_labels, t.emi_labels, t.ah_labels) == ("data/videos/test1.mov", "test", "", "", "")

    # Labels can be read back through the stored paths.
    np.testing.assert_array_equal(read_expr_labels(tmp_path / a.expr_labels, 4), [0, 1, -1, 7])
    np.testing.assert_array_equal(read_ah_labels(tmp_path / a.ah_labels, 4), [0, 1, 1, 0])
    np.testing.assert_allclose(read_emi_labels(tmp_path / a.emi_labels, "a"), [0, 0.1, 0.2, 0.3, 0.4, 1])


def test_shards_are_stable_in_range_and_non_empty(tmp_path: Path) -> None:
    config = make_demo_like(tmp_path)
    table = build_units(config, n_shards=3, base_dir=tmp_path)
    again = build_units(config, n_shards=3, base_dir=tmp_path)
    assert [(u.video_id, u.shard) for u in table] == [(u.video_id, u.shard) for u in again]
    for u in table:
        assert u.shard == shard_of(u.video_id, 3)
        assert re.fullmatch(r"s000[0-2]", u.shard)
    assert table.shards() == sorted({u.shard for u in table})
    assert all(table.in_shard(s) for s in table.shards())
    assert {u.shard for u in build_units(config, n_shards=1, base_dir=tmp_path)} == {"s0000"}


def test_affwild2_splits_and_left_right_lookup(tmp_path: Path) -> None:
    make_videos(tmp_path / "videos", ["two.mp4", "solo.mkv", "x_left.webm", "x.mp4", "unlabelled.mp4", "t.m4v"])
    lab = tmp_path / "labels"
    write_expr(lab, "Train_Set", "two_left", [1])
    write_expr(lab, "Train_Set", "two_right", [2])
    write_expr(lab, "Validation_Set", "solo", [3])
    write_expr(lab, "Validation_Set", "x_left", [0])  # its own video wins over x.mp4
    write_list(tmp_path / "test.txt", ["t", ""])
    table = build_units([_entry("affwild2", test_list="test.txt")], 2, tmp_path)
    got = {u.video_id: (u.path, u.split, u.expr_labels) for u in table}
    assert got == {
        "two_left": ("videos/two.mp4", "train", "labels/Train_Set/two_left.txt"),
        "two_right": ("videos/two.mp4", "train", "labels/Train_Set/two_right.txt"),
        "solo": ("videos/solo.mkv", "val", "labels/Validation_Set/solo.txt"),
        "x_left": ("videos/x_left.webm", "val", "labels/Validation_Set/x_left.txt"),
        "t": ("videos/t.m4v", "test", ""),
    }
    # the two people of two.mp4 are told apart by their side; a video of one's own has none
    assert {u.video_id: u.side for u in table} == {"two_left": "left", "two_right": "right", "solo": "",
                                                   "x_left": "", "t": ""}
    out = tmp_path / "units.tsv"
    table.write_tsv(out)
    assert {u.video_id: u.side for u in UnitsTable.read_tsv(out)} == {u.video_id: u.side for u in table}


def test_bah_has_no_left_right_rule(tmp_path: Path) -> None:
    make_videos(tmp_path / "videos", ["v.mp4"])
    write_ah(tmp_path / "labels", "Train_Set", "v", [0, 1])
    table = build_units([_entry("bah")], 4, tmp_path)
    assert [(u.video_id, u.ah_labels, u.expr_labels) for u in table] == [("v", "labels/Train_Set/v.txt", "")]
    write_ah(tmp_path / "labels", "Train_Set", "v_left", [1])
    _raises(build_units, [_entry("bah")], 4, tmp_path, match="labels/Train_Set/v_left.txt|no video|'v_left'")


def test_folder_lists_videos_as_given_without_sanitising(tmp_path: Path) -> None:
    weird = "it's $(x) ü;&.b"
    make_videos(tmp_path / "in", ["b.MP4", "a.avi", f"{weird}.mov", "readme.txt", "._a.mp4"])
    (tmp_path / "in" / "sub.mp4").mkdir()  # a folder is not a video
    table = build_units([{"adapter": "folder", "videos": "in"}], 8, tmp_path)
    assert [(u.video_id, u.path, u.split) for u in table] == sorted(
        [("a", "in/a.avi", "test"), ("b", "in/b.MP4", "test"), (weird, f"in/{weird}.mov", "test")]
    )
    assert all(u.labels(t) == "" for u in table for t in ("expr", "emi", "ah"))


def test_paths_are_stored_relative_to_the_workflow_directory_in_one_spelling(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """However the config writes a folder, a video has one path in the units table (and so in the rerun keys):
    relative to the workflow directory when under it, absolute otherwise."""
    make_videos(tmp_path / "proj/videos", ["a.mp4"])
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "proj")  # the workflow directory, where Snakemake runs
    absolute = str(tmp_path / "proj/videos")
    for given in ("videos/", "./videos", "videos//", "../proj/videos", absolute, absolute + "/"):
        table = build_units([{"adapter": "folder", "videos": given}], 2, base_dir=".")
        assert [u.path for u in table] == ["videos/a.mp4"], given
    monkeypatch.chdir(tmp_path)  # another base than the working directory: relative to it, absolute kept
    assert [u.path for u in build_units([{"adapter": "folder", "videos": "./videos/"}], 2, "proj")] == [
        "videos/a.mp4"]
    assert [u.path for u in build_units([{"adapter": "folder", "videos": absolute + "/."}], 2, "proj")] == [
        absolute + "/a.mp4"]
    monkeypatch.chdir(tmp_path / "other")
    assert [u.path for u in build_units([{"adapter": "folder", "videos": absolute + "/."}], 2)] == [
        absolute + "/a.mp4"]
    (tmp_path / "proj/videos/readme.txt").write_text("notes")
    table = build_units([{"adapter": "folder", "videos": "./videos//"}], 2, base_dir=tmp_path / "proj")
    assert [s.path for s in table.skipped] == ["videos/readme.txt"]  # problems.tsv names it the same way


def test_label_paths_are_spelt_as_video_paths_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_expr(tmp_path / "labels", "Train_Set", "v", [0, 1])
    make_videos(tmp_path / "videos", ["v.mp4"])
    monkeypatch.chdir(tmp_path)
    entry = {"adapter": "affwild2", "videos": str(tmp_path / "videos") + "/", "labels": "./labels//"}
    [unit] = build_units([entry], 2, ".")
    assert (unit.path, unit.expr_labels) == ("videos/v.mp4", "labels/Train_Set/v.txt")


def test_emi_filename_with_or_without_extension_and_test_csv(tmp_path: Path) -> None:
    make_videos(tmp_path / "videos", ["00001.mp4", "00002.mp4", "00003.mp4"])
    write_emi_csv(tmp_path / "labels/train_split.csv", [["00001.mp4", 0, 0, 0, 0, 0, 0.25]])
    write_emi_csv(tmp_path / "labels/valid_split.csv", [["00002", 1, 0, 0, 0, 0, 0]])
    write_emi_csv(tmp_path / "labels/test_split.csv", [["00003.MP4"]], header="Filename")
    got = {u.video_id: (u.split, u.emi_labels) for u in build_units([_entry("hume_vidmimic2")], 4, tmp_path)}
    assert got == {
        "00001": ("train", "labels/train_split.csv"),
        "00002": ("val", "labels/valid_split.csv"),
        "00003": ("test", ""),
    }
    row = read_emi_labels(tmp_path / "labels/train_split.csv", "00001")
    assert row.dtype == np.float32 and row.shape == (len(EMI_EMOTIONS),)
    np.testing.assert_allclose(row, [0, 0, 0, 0, 0, 0.25])


def test_emi_filenames_read_as_numbers_are_the_zero_padded_files(tmp_path: Path) -> None:
    """The release's Filename column holds 00000-style names that a spreadsheet or pandas writes back as 0."""
    make_videos(tmp_path / "videos", ["00000.mp4", "00017.mp4", "123456.mp4"])
    write_emi_csv(tmp_path / "labels/train_split.csv", [["0", 0, 0, 0, 0, 0, 0.5], ["17", 1, 0, 0, 0, 0, 0],
                                                        ["123456", 0, 1, 0, 0, 0, 0]])
    got = {u.video_id: u.path for u in build_units([_entry("hume_vidmimic2")], 4, tmp_path)}
    assert got == {"00000": "videos/00000.mp4", "00017": "videos/00017.mp4", "123456": "videos/123456.mp4"}
    csv_path = tmp_path / "labels/train_split.csv"
    np.testing.assert_allclose(read_emi_labels(csv_path, "00000"), [0, 0, 0, 0, 0, 0.5])
    np.testing.assert_allclose(read_emi_labels(csv_path, "17"), [1, 0, 0, 0, 0, 0])
    write_emi_csv(csv_path, [["0", 0, 0, 0, 0, 0, 0.5], ["00000.mp4", 1, 0, 0, 0, 0, 0]])
    _raises(build_units, [_entry("hume_vidmimic2")], 2, tmp_path, match="line 3|duplicate Filename '00000.mp4'")


def test_frame_labels_tolerate_crlf_bom_and_trailing_newlines(tmp_path: Path) -> None:
    p = tmp_path / "x.txt"
    p.write_bytes(b"\xef\xbb\xbfNeutral, Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\r\n3\r\n-1\r\n\r\n\r\n")
    labels = read_expr_labels(p, n_frames=2)
    assert labels.dtype == np.int8
    np.testing.assert_array_equal(labels, [3, -1])


def test_emi_cache_sees_a_changed_file(tmp_path: Path) -> None:
    p = write_emi_csv(tmp_path / "train_split.csv", [["a", 0, 0, 0, 0, 0, 0]])
    assert read_emi_labels(p, "a")[0] == 0
    write_emi_csv(p, [["a", 0.5, 0, 0, 0, 0, 0]])
    os.utime(p, ns=(1, 1))  # a different mtime even on coarse-clock file systems
    assert read_emi_labels(p, "a")[0] == 0.5


# ------------------------------------------------------- broken label files


def test_label_rows_are_fitted_to_the_decoded_frames_and_the_fit_is_said(tmp_path: Path) -> None:
    """The organisers' files are often a row or so off the decoded video: rows past the end are dropped,
    frames past the last row are -1 (never trained on or scored), and the note says which happened."""
    p = write_expr(tmp_path, "Train_Set", "v", [0, 1, 2, 3])
    np.testing.assert_array_equal(read_expr_labels(p, n_frames=5), [0, 1, 2, 3, -1])
    np.testing.assert_array_equal(read_expr_labels(p, n_frames=3), [0, 1, 2])
    np.testing.assert_array_equal(read_expr_labels(p, n_frames=4), [0, 1, 2, 3])
    q = write_ah(tmp_path, "Train_Set", "w", [0, 1, 1])
    np.testing.assert_array_equal(read_ah_labels(q, 2), [0, 1])
    np.testing.assert_array_equal(read_ah_labels(q, 4), [0, 1, 1, -1])
    assert frame_label_rows("expr", p, "v") == 4 and frame_label_rows("ah", q, "w") == 3
    assert frame_count_note(4, 4) == ""
    assert "the last 1 rows are past the video's end" in frame_count_note(4, 3)
    assert "the last 2 frames have no label (-1" in frame_count_note(3, 5)


def test_non_numeric_frame_label_names_file_and_line(tmp_path: Path) -> None:
    p = write_expr(tmp_path, "Train_Set", "v", [0, "happy", 2])
    _raises(read_expr_labels, p, match=f"{p}, line 3|'happy' is not an integer")
    q = write_ah(tmp_path, "Train_Set", "w", [0, "1.0"])
    _raises(read_ah_labels, q, match=f"{q}, line 3|not an integer")
    r = write_ah(tmp_path, "Train_Set", "gap", [0, "", 1])
    _raises(read_ah_labels, r, match=f"{r}, line 3|empty line")


def test_out_of_range_frame_label(tmp_path: Path) -> None:
    p = write_expr(tmp_path, "Train_Set", "v", [0, 8])
    _raises(read_expr_labels, p, match=f"{p}, line 3|value 8 out of range -1..7")
    q = write_ah(tmp_path, "Train_Set", "w", [-1])
    _raises(read_ah_labels, q, match=f"{q}, line 2|value -1 out of range 0..1")


def test_missing_or_wrong_header(tmp_path: Path) -> None:
    p = write_frame_labels(tmp_path, "Train_Set", "v", [0, 1], header=None)
    _raises(read_expr_labels, p, match=f"{p}, line 1|missing header")
    q = write_frame_labels(tmp_path, "Train_Set", "w", [0, 1], header="Neutral,Anger")
    _raises(read_expr_labels, q, match=f"{q}, line 1|header 'Neutral,Anger' is not")
    r = write_frame_labels(tmp_path, "Train_Set", "x", [0], header="ah")
    _raises(read_ah_labels, r, match=f"{r}, line 1|'AH'")


def test_missing_empty_and_header_only_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    _raises(read_expr_labels, missing, match=f"{missing}|not found")
    _raises(read_emi_labels, tmp_path / "nope.csv", "a", match="nope.csv|not found")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    _raises(read_ah_labels, empty, match=f"{empty}|empty label file")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n")
    _raises(read_expr_labels, blank, match=f"{blank}|empty label file")
    header_only = write_ah(tmp_path, "Train_Set", "h", [])
    _raises(read_ah_labels, header_only, match=f"{header_only}|no frame labels")
    empty_csv = tmp_path / "train_split.csv"
    empty_csv.write_text("")
    _raises(read_emi_labels, empty_csv, "a", match=f"{empty_csv}|empty label file")


def test_emi_csv_problems_name_file_line_and_column(tmp_path: Path) -> None:
    def csv(name: str, *rows: list) -> Path:
        return write_emi_csv(tmp_path / name, [["ok", 0, 0, 0, 0, 0, 0], *rows])

    p = csv("nan.csv", ["v", 0, 0, "high", 0, 0, 0])
    _raises(read_emi_labels, p, "ok", match=f"{p}, line 3, column 4 (Determination)|'high' is not a number")
    p = csv("range.csv", ["v", 0, 0, 0, 0, 0, 1.5])
    _raises(read_emi_labels, p, "ok", match=f"{p}, line 3, column 7 (Joy)|1.5 out of range [0, 1]")
    p = csv("neg.csv", ["v", -0.1, 0, 0, 0, 0, 0])
    _raises(read_emi_labels, p, "ok", match=f"{p}, line 3, column 2 (Admiration)|out of range")
    p = csv("realnan.csv", ["v", "nan", 0, 0, 0, 0, 0])
    _raises(read_emi_labels, p, "ok", match=f"{p}, line 3, column 2|out of range")
    p = csv("missing.csv", ["v", 0, "", 0, 0, 0, 0])
    _raises(read_emi_labels, p, "ok", match=f"{p}, line 3, column 3 (Amusement)|missing value")
    p = csv("short.csv", ["v", 0, 0])
    _raises(read_emi_labels, p, "ok", match=f"{p}, line 3|3 fields but the header has 7")
    p = csv("dup.csv", ["ok.mp4", 0, 0, 0, 0, 0, 0])
    _raises(read_emi_labels, p, "ok", match=f"{p}, line 3|duplicate Filename 'ok.mp4'|first on line 2")
    p = write_emi_csv(tmp_path / "nojoy.csv", [["v", 0, 0, 0, 0, 0]], header="Filename," + ",".join(EMI_EMOTIONS[:-1]))
    _raises(read_emi_labels, p, "v", match=f"{p}, line 1|lacks columns ['Joy']")
    p = csv("fine.csv")
    _raises(read_emi_labels, p, "other", match=f"{p}|no row for video 'other'")


# --------------------------------------------------- broken dataset layouts


def test_unknown_ids_name_the_label_file(tmp_path: Path) -> None:
    make_videos(tmp_path / "videos", ["a.mp4"])
    write_emi_csv(tmp_path / "labels/train_split.csv", [["a", 0, 0, 0, 0, 0, 0], ["ghost", 0, 0, 0, 0, 0, 0]])
    _raises(
        build_units, [_entry("hume_vidmimic2")], 2, tmp_path, match="labels/train_split.csv, line 3|no video|'ghost'"
    )
    write_expr(tmp_path / "labels", "Validation_Set", "ghost", [0])
    _raises(build_units, [_entry("affwild2")], 2, tmp_path, match="labels/Validation_Set/ghost.txt|no video")
    write_list(tmp_path / "test.txt", ["a", "ghost2"])
    make_videos(tmp_path / "v2", ["ghost.mp4"])
    entry = {**_entry("affwild2", test_list="test.txt"), "videos": "v2"}
    _raises(build_units, [entry], 2, tmp_path, match="test.txt, line 1|no video for test id 'a'")


def test_emi_csv_errors_surface_in_build_units(tmp_path: Path) -> None:
    make_videos(tmp_path / "videos", ["a.mp4"])
    write_emi_csv(tmp_path / "labels/train_split.csv", [["a", 0, 0, 0, 0, 0, 0], ["a.mp4", 0, 0, 0, 0, 0, 0]])
    _raises(build_units, [_entry("hume_vidmimic2")], 2, tmp_path, match="train_split.csv, line 3|duplicate Filename")
    write_emi_csv(tmp_path / "labels/train_split.csv", [["a", 0, 0, 0, 0, 0, 2]])
    _raises(build_units, [_entry("hume_vidmimic2")], 2, tmp_path, match="train_split.csv, line 2, column 7|range")
    write_emi_csv(tmp_path / "labels/train_split.csv", [["a", 0, 0, 0, 0, 0, 0]])
    write_emi_csv(tmp_path / "labels/valid_split.csv", [["a", 0, 0, 0, 0, 0, 0]])
    _raises(
        build_units, [_entry("hume_vidmimic2")], 2, tmp_path, match="valid_split.csv, line 2|also in labels/train_split"
    )


def test_wrong_labels_for_adapter_are_caught_by_header(tmp_path: Path) -> None:
    make_videos(tmp_path / "videos", ["a.mp4"])
    write_ah(tmp_path / "labels", "Train_Set", "a", [0, 1])  # AH labels given to the EXPR adapter
    _raises(build_units, [_entry("affwild2")], 2, tmp_path, match="labels/Train_Set/a.txt, line 1|header 'AH'")
    (tmp_path / "labels/Train_Set/a.txt").write_text("")
    _raises(build_units, [_entry("bah")], 2, tmp_path, match="labels/Train_Set/a.txt|empty label file")


def test_one_id_in_two_splits(tmp_path: Path) -> None:
    make_videos(tmp_path / "videos", ["a.mp4"])
    write_expr(tmp_path / "labels", "Train_Set", "a", [0])
    write_expr(tmp_path / "labels", "Validation_Set", "a", [0])
    _raises(build_units, [_entry("affwild2")], 2, tmp_path, match="Validation_Set/a.txt|also has labels in")
    (tmp_path / "labels/Validation_Set/a.txt").unlink()
    write_list(tmp_path / "t.txt", ["a"])
    _raises(build_units, [_entry("affwild2", test_list="t.txt")], 2, tmp_path, match="t.txt, line 1|also has labels")
    write_list(tmp_path / "t2.txt", ["b", "b"])
    make_videos(tmp_path / "videos", ["b.mp4"])
    _raises(build_units, [_entry("affwild2", test_list="t2.txt")], 2, tmp_path, match="t2.txt, line 2|duplicate")


def test_duplicate_ids_across_entries_with_different_paths(tmp_path: Path) -> None:
    make_videos(tmp_path / "one", ["x.mp4"])
    make_videos(tmp_path / "two", ["x.mp4"])
    config = [{"adapter": "folder", "videos": "one"}, {"adapter": "folder", "videos": "two"}]
    with pytest.raises(UnitsError, match="duplicate video id 'x': one/x.mp4 and two/x.mp4"):
        build_units(config, 2, tmp_path)


def test_two_videos_with_one_stem(tmp_path: Path) -> None:
    make_videos(tmp_path / "in", ["x.mp4", "x.avi"])
    _raises(build_units, [{"adapter": "folder", "videos": "in"}], 2, tmp_path, match="in|several videos|'x'")


def test_missing_folders_and_files(tmp_path: Path) -> None:
    _raises(build_units, [{"adapter": "folder", "videos": "nope"}], 2, tmp_path, match="nope: videos folder not found")
    (tmp_path / "one.mp4").write_bytes(b"")
    _raises(build_units, [{"adapter": "folder", "videos": "one.mp4"}], 2, tmp_path,  # a file, where its folder belongs
            match="one.mp4: the videos folder is a file")
    make_videos(tmp_path / "videos", ["a.mp4"])
    _raises(build_units, [_entry("bah")], 2, tmp_path, match="labels|labels folder not found")
    (tmp_path / "labels").mkdir()
    _raises(build_units, [_entry("bah")], 2, tmp_path, match="labels|no Train_Set or Validation_Set")
    _raises(build_units, [_entry("hume_vidmimic2")], 2, tmp_path, match="labels|none of train_split.csv")
    write_ah(tmp_path / "labels", "Train_Set", "a", [0])
    _raises(build_units, [_entry("bah", test_list="t.txt")], 2, tmp_path, match="t.txt|test list not found")
    make_videos(tmp_path / "empty", [])
    _raises(build_units, [{"adapter": "folder", "videos": "empty"}], 2, tmp_path, match="datasets[0]|no units")


def test_bad_config_entries(tmp_path: Path) -> None:
    make_videos(tmp_path / "videos", ["a.mp4"])
    _raises(build_units, [{"adapter": "kinetics", "videos": "videos"}], 2, tmp_path, match="unknown adapter")
    _raises(build_units, [{"adapter": "bah", "videos": "videos"}], 2, tmp_path, match="'labels' folder not given")
    _raises(build_units, [{"adapter": "folder", "videos": "videos", "labels": "x"}], 2, tmp_path, match="no labels")
    with pytest.raises(ValueError, match="n_shards"):
        build_units([{"adapter": "folder", "videos": "videos"}], 0, tmp_path)


# ------------------------------------------------------------ which files of a folder are videos


def test_folder_takes_any_video_ffmpeg_opens_and_lists_every_other_file(
        tmp_path: Path, video_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    import affectflow.media.decode as decode

    folder = make_videos(tmp_path / "in", ["a.ts", "b.MTS", "c.m2ts", "d.mpg", "e.flv", "f.wmv", "g.3gp", "h.mxf",
                                           "notes.txt", "labels.CSV", "poster.jpg", "song.mp3", ".DS_Store",
                                           "._a.ts"])
    clip = video_factory("clip.mp4").read_bytes()
    (folder / "recording").write_bytes(clip)  # no extension: FFmpeg says it is a video
    (folder / "take.weird").write_bytes(clip)
    cv2.imwrite(str(tmp_path / "s.png"), np.zeros((8, 8, 3), np.uint8))
    (folder / "scan.dat").write_bytes((tmp_path / "s.png").read_bytes())
    (folder / "junk.xyz").write_bytes(bytes(range(256)) * 4)
    (folder / "sub").mkdir()
    opened: list[str] = []
    real = decode.video_stream_problem
    monkeypatch.setattr(decode, "video_stream_problem", lambda p: opened.append(Path(p).name) or real(p))

    table = build_units([{"adapter": "folder", "videos": "in"}], 4, tmp_path)
    assert sorted(u.video_id for u in table) == ["a", "b", "c", "d", "e", "f", "g", "h", "recording", "take"]
    assert table.get("b").path == "in/b.MTS" and table.get("recording").path == "in/recording"
    # a name that says "video" or says something else is never opened: only the four unknown ones are
    assert sorted(opened) == ["junk.xyz", "recording", "scan.dat", "take.weird"]
    reasons = {s.path: s.reason for s in table.skipped}
    assert [s.path for s in table.skipped] == sorted(reasons)  # one per file, in name order
    assert reasons == {
        "in/.DS_Store": "hidden file",
        "in/._a.ts": "hidden file",
        "in/junk.xyz": "not a video: FFmpeg cannot read it (Invalid data found when processing input)",
        "in/labels.CSV": "a text or label file (.csv), not a video",
        "in/notes.txt": "a text or label file (.txt), not a video",
        "in/poster.jpg": "an image (.jpg), not a video",
        "in/scan.dat": "not a video: a still image or text to FFmpeg (format png_pipe)",
        "in/song.mp3": "a sound file (.mp3), not a video",
        "in/sub": "a folder: only the files directly in the videos folder are read",
    }


def test_left_out_files_are_listed_once_and_by_the_folder_adapter_only(tmp_path: Path) -> None:
    make_videos(tmp_path / "in", ["a.mp4", "a.txt"])
    table = build_units([{"adapter": "folder", "videos": "in"}, {"adapter": "folder", "videos": "in"}], 2, tmp_path)
    assert [s.path for s in table.skipped] == ["in/a.txt"]  # the same folder twice: listed once
    table.write_tsv(tmp_path / "units.tsv")
    assert UnitsTable.read_tsv(tmp_path / "units.tsv").skipped == []  # units.tsv holds units only
    # the challenge adapters read their folders the same way but list nothing: other files are not their units
    make_videos(tmp_path / "videos", ["v.ts", "v.txt"])
    write_ah(tmp_path / "labels", "Train_Set", "v", [0])
    table = build_units([_entry("bah")], 2, tmp_path)
    assert [u.path for u in table] == ["videos/v.ts"] and table.skipped == []


def test_one_stem_in_two_containers_is_an_error_naming_both(tmp_path: Path) -> None:
    make_videos(tmp_path / "in", ["talk.mp4", "talk.ts"])
    _raises(build_units, [{"adapter": "folder", "videos": "in"}], 2, tmp_path,
            match="in: several videos for id 'talk': talk.mp4, talk.ts")


def test_a_folder_without_videos_names_what_it_holds(tmp_path: Path) -> None:
    make_videos(tmp_path / "in", [f"n{i}.txt" for i in range(7)] + [".hidden"])
    msg = _raises(build_units, [{"adapter": "folder", "videos": "in"}], 2, tmp_path, match="datasets[0]|no units")
    assert msg.endswith("left out: .hidden: hidden file; n0.txt: a text or label file (.txt), not a video; "
                        "n1.txt: a text or label file (.txt), not a video; n2.txt: a text or label file (.txt), "
                        "not a video; n3.txt: a text or label file (.txt), not a video; and 3 more")


def test_a_video_name_no_job_could_read_is_left_out_and_listed_not_a_stop(tmp_path: Path) -> None:
    """``{w}`` in a name is a Snakemake wildcard (the whole run stopped on it without naming the file); a name
    that is not UTF-8 cannot be written to the tables (problems.tsv was lost). Both are listed, with why."""
    make_videos(tmp_path / "in", ["good.mp4", "{w}.mp4", "a{b.mp4", "x{{y}}.mp4"])
    with open(os.fsencode(tmp_path / "in") + b"/lat\xe9n.mp4", "wb"):
        pass
    with open(os.fsencode(tmp_path / "in") + b"/not\xe9s.txt", "wb"):
        pass
    table = build_units([{"adapter": "folder", "videos": "in"}], 2, tmp_path)
    assert [u.video_id for u in table] == ["a{b", "good"]  # an unbalanced brace is no wildcard
    reasons = {s.path: s.reason for s in table.skipped}
    assert set(reasons) == {"in/{w}.mp4", "in/x{{y}}.mp4", "in/lat\\xe9n.mp4", "in/not\\xe9s.txt"}
    assert reasons["in/{w}.mp4"] == ("its name holds '{w}', which Snakemake reads as a wildcard: rename it "
                                     "without braces")
    assert reasons["in/lat\\xe9n.mp4"].startswith("its name is not valid UTF-8")
    for s in table.skipped:
        s.path.encode("utf-8")  # printable, and writable to problems.tsv


def test_a_labelled_id_whose_video_is_left_out_or_written_in_another_unicode_form_says_so(tmp_path: Path) -> None:
    import unicodedata

    make_videos(tmp_path / "videos", ["{w}.mp4"])
    write_expr(tmp_path / "labels", "Train_Set", "{w}", [0, 1])
    _raises(build_units, [_entry("affwild2")], 2, tmp_path,
            match="no video for id '{w}'|its video '{w}' was left out, its name holds '{w}'")
    with open(os.fsencode(tmp_path / "videos") + b"/lat\xe9n.mp4", "wb"):  # Latin-1 bytes of a label's "latén"
        pass
    write_expr(tmp_path / "labels", "Train_Set", "latén", [0, 1])
    (tmp_path / "labels" / "Train_Set" / "{w}.txt").unlink()
    _raises(build_units, [_entry("affwild2")], 2, tmp_path,
            match="no video for id 'latén'|its video 'lat\\xe9n' was left out, its name is not valid UTF-8")
    nfd, nfc = unicodedata.normalize("NFD", "café"), unicodedata.normalize("NFC", "café")
    make_videos(tmp_path / "mac", [f"{nfd}.mp4"])
    write_expr(tmp_path / "labels2", "Train_Set", nfc, [0, 1])
    _raises(build_units, [{"adapter": "affwild2", "videos": "mac", "labels": "labels2"}], 2, tmp_path,
            match=f"no video for id {nfc!r}|{nfd + '.mp4'!r} looks the same but is written in another Unicode form")


def test_a_videos_folder_whose_path_no_job_could_read_is_named(tmp_path: Path) -> None:
    make_videos(tmp_path / "v{x}", ["a.mp4"])
    _raises(build_units, [{"adapter": "folder", "videos": "v{x}"}], 2, tmp_path,
            match="v{x}: the videos folder cannot be used: its path holds '{x}', which Snakemake reads as a wildcard")
