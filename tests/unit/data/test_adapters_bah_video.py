"""BAH video level: the split/{train,val,test}.txt + video_annotation_transcript.yaml layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from affectflow.data.adapters import LabelError, build_units, read_ah_video_label, read_task_labels
from affectflow.data.units import UnitsTable
from affectflow.testing.dataset_fixtures import make_videos

# the organisers' layout: videos under participant folders, named by path in the split files
A = "Videos/82813/Visite_1/82813_Question_3_2025-01-31_19-18-58_Video.mp4"
B = "Videos/82813/Visite_1/82813_Question_4_2025-01-31_19-20-11_Video.mp4"
C = "Videos/90210/Visite_1/90210_Question_1_2025-02-02_10-00-00_Video.mp4"
T = "Videos/77777/Visite_1/77777_Question_2_2025-03-03_09-09-09_Video.mp4"


def _dataset(root: Path, splits: dict[str, list[str]] | None = None, annotations: dict | None = None) -> dict:
    for rel in (A, B, C, T):
        make_videos((root / rel).parent, [Path(rel).name])
    splits = splits or {
        "train": [f"{A},1,Well, I am not sure, maybe.", f"{B},0,I will do it."],
        "val": [f"{C},0,Yes."],
        "test": [f"{T},,"],
    }
    for split, lines in splits.items():
        path = root / "split" / f"{split}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    if annotations is not None:
        (root / "video_annotation_transcript.yaml").write_text(yaml.dump(annotations), encoding="utf-8")
    return {"adapter": "bah_video", "videos": "bah", "labels": "bah"}


def test_units_from_nested_paths_with_labels_and_a_test_split(tmp_path: Path) -> None:
    entry = _dataset(tmp_path / "bah", annotations={A: {"global_ah": 1, "time_detailed_ah": [(1.0, 2.5)]},
                                                    B: {"global_ah": 0}})
    table = build_units([entry], n_shards=2, base_dir=tmp_path)
    by_id = {u.video_id: u for u in table}
    a = by_id[Path(A).stem]
    assert (a.path, a.split, a.ah_video_labels) == (f"bah/{A}", "train", "bah/split/train.txt")
    assert by_id[Path(C).stem].split == "val"
    t = by_id[Path(T).stem]
    assert (t.split, t.ah_video_labels) == ("test", "")
    # the labels, read back the way the learn and fuse jobs do (the yaml agrees; it has tuples in it)
    assert read_ah_video_label(tmp_path / a.ah_video_labels, a.video_id) == 1
    assert read_ah_video_label(tmp_path / "bah/split/train.txt", Path(B).stem) == 0
    np.testing.assert_array_equal(read_task_labels("ah_video", tmp_path / "bah/split/val.txt", Path(C).stem, 99), [0])
    # the column survives the units table on disk, and old tables without it still read
    table.write_tsv(tmp_path / "units.tsv")
    assert UnitsTable.read_tsv(tmp_path / "units.tsv").get(a.video_id).ah_video_labels == "bah/split/train.txt"


def test_the_same_videos_merge_with_the_frame_level_adapter(tmp_path: Path) -> None:
    entry = _dataset(tmp_path / "bah")
    frame = tmp_path / "bah" / "frames"
    (frame / "Train_Set").mkdir(parents=True)
    (frame / "Train_Set" / f"{Path(A).stem}.txt").write_text("AH\n0\n1\n", encoding="utf-8")
    videos = str(Path("bah") / Path(A).parent)
    table = build_units([entry, {"adapter": "bah", "videos": videos, "labels": "bah/frames"}], 2, tmp_path)
    u = table.get(Path(A).stem)
    assert u.ah_labels and u.ah_video_labels and u.split == "train"


@pytest.mark.parametrize(("line", "match"), [
    (f"{A},2,text", "line 1|'2' for|expected 0 or 1"),
    (f"{A},,text", "line 1|no label|expected 0 or 1"),
    (f"{A}", "line 1|no label"),
    ("notes.txt,1,x", "line 1|'notes.txt' is not a video path"),
])
def test_bad_label_lines_name_the_file_and_line(tmp_path: Path, line: str, match: str) -> None:
    entry = _dataset(tmp_path / "bah", {"train": [line], "val": [f"{C},0,"]})
    with pytest.raises(LabelError) as info:
        build_units([entry], 1, tmp_path)
    assert "split/train.txt" in str(info.value)
    for part in match.split("|"):
        assert part in str(info.value)


def test_a_header_line_and_test_lines_without_labels_are_accepted(tmp_path: Path) -> None:
    entry = _dataset(tmp_path / "bah", {"train": ["video_path,label,transcript", f"{A},1,x"], "test": [T]})
    table = build_units([entry], 1, tmp_path)
    assert {u.split for u in table} == {"train", "test"}


def test_missing_video_duplicates_and_missing_split_files(tmp_path: Path) -> None:
    entry = _dataset(tmp_path / "bah", {"train": [f"{A},1,x", "Videos/none/missing.mp4,0,y"]})
    with pytest.raises(LabelError, match=r"split/train.txt, line 2: no video 'Videos/none/missing.mp4' in bah"):
        build_units([entry], 1, tmp_path)
    entry = _dataset(tmp_path / "b2", {"train": [f"{A},1,x"], "val": [f"{A},0,x"]})
    with pytest.raises(LabelError, match="split/val.txt, line 1: video .* is also on .*split/train.txt, line 1"):
        build_units([{**entry, "videos": "b2", "labels": "b2"}], 1, tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LabelError, match=r"none of train.txt, val.txt, test.txt in the labels folder"):
        build_units([{"adapter": "bah_video", "videos": "empty", "labels": "empty"}], 1, tmp_path)
    with pytest.raises(LabelError, match="remove test_list"):
        build_units([{**entry, "videos": "b2", "labels": "b2", "test_list": "x.txt"}], 1, tmp_path)


def test_annotations_that_disagree_with_the_split_file_are_an_error(tmp_path: Path) -> None:
    entry = _dataset(tmp_path / "bah", annotations={A: {"global_ah": 0}})
    build_units([entry], 1, tmp_path)  # parse time lists files only
    with pytest.raises(LabelError, match=r"split/train.txt, line 1: label 1 .* says global_ah: 0"):
        read_ah_video_label(tmp_path / "bah/split/train.txt", Path(A).stem)


def test_annotations_never_construct_python_objects(tmp_path: Path) -> None:
    entry = _dataset(tmp_path / "bah")
    (tmp_path / "bah" / "video_annotation_transcript.yaml").write_text(
        f"{A}:\n  global_ah: !!python/object/apply:os.system ['echo owned']\n", encoding="utf-8")
    build_units([entry], 1, tmp_path)
    with pytest.raises(LabelError, match="unreadable annotations"):
        read_ah_video_label(tmp_path / "bah/split/train.txt", Path(A).stem)
