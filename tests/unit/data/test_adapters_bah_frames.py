"""BAH frame level as ABAW-8 shipped it (annotation.yml per split folder), the split-0 folder of the video-level
release (class_id.yaml), and Aff-Wild2's batch folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from affectflow.data.adapters import LabelError, build_units, read_ah_labels, read_task_labels
from affectflow.data.adapters.bah_annotation import annotation_keys, read_annotations
from affectflow.testing.dataset_fixtures import make_videos, write_expr

K1 = "82557/Visite 1/82557_Question_1_2024-08-22 14-46-11_Video.mp4"
K2 = "82557/Visite 1/82557_Question_2_2024-08-22 14-48-30_Video.mp4"


def _annotation(key: str, labels: list) -> dict:
    return {"fr_detailed_ah": [], "frame_annotation": [[f"{key}/frame-{k}.jpg", v] for k, v in enumerate(labels)],
            "global_ah": int(any(v == 1 for v in labels)), "time_detailed_ah": []}


def _abaw8(root: Path, records: dict | None = None, videos: tuple[str, ...] = (K1, K2)) -> dict:
    for key in videos:
        make_videos((root / "videos" / key).parent, [Path(key).name])
    records = records if records is not None else {K1: _annotation(K1, [0, 1, 1]), K2: _annotation(K2, [0, 0])}
    (root / "annotation.yml").write_text(yaml.dump(records), encoding="utf-8")
    return {"adapter": "bah", "split": "train", "videos": f"{root.name}/videos", "labels": root.name}


def test_abaw8_annotation_units_and_labels(tmp_path: Path) -> None:
    entry = _abaw8(tmp_path / "train")
    units = {u.video_id: u for u in build_units([entry], 1, tmp_path)}
    u = units[Path(K1).stem]
    assert (u.path, u.split, u.ah_labels) == (f"train/videos/{K1}", "train", "train/annotation.yml")
    np.testing.assert_array_equal(read_ah_labels(tmp_path / u.ah_labels, None, u.video_id), [0, 1, 1])
    np.testing.assert_array_equal(read_task_labels("ah", tmp_path / u.ah_labels, u.video_id, 4), [0, 1, 1, -1])
    np.testing.assert_array_equal(read_task_labels("ah", tmp_path / u.ah_labels, Path(K2).stem, 1), [0])


def test_a_test_list_may_name_videos_by_path(tmp_path: Path) -> None:
    entry = _abaw8(tmp_path / "train", videos=(K1, K2, "82599/Visite 1/82599_Question_7_x_Video.mp4"))
    (tmp_path / "test.txt").write_text("82599/Visite 1/82599_Question_7_x_Video.mp4\n")
    units = {u.video_id: u for u in build_units([{**entry, "test_list": "test.txt"}], 1, tmp_path)}
    assert units["82599_Question_7_x_Video"].split == "test"
    assert units["82599_Question_7_x_Video"].path == "train/videos/82599/Visite 1/82599_Question_7_x_Video.mp4"


@pytest.mark.parametrize(("records", "match"), [
    ({K1: {**_annotation(K1, [0, 1]), "frame_annotation": [[f"{K1}/frame-0.jpg", 0], [f"{K1}/frame-2.jpg", 1]]}},
     r"frame_annotation\[1\]: .*frame-2.jpg.* where frame-1.jpg was expected"),
    ({K1: _annotation(K1, [0, 2])}, r"frame_annotation\[1\]: label 2 is not 0 or 1"),
    ({K1: {**_annotation(K1, [0]), "frame_annotation": [[f"{K1}/00001.jpg", 0]]}}, "is not a frame-<k>.jpg name"),
    ({K1: {**_annotation(K1, [0]), "global_ah": 3}}, "global_ah 3 is not 0 or 1"),
    ({K1: {"global_ah": 1}}, "no frame_annotation for video"),
])
def test_broken_records_name_the_file_and_the_video_when_labels_are_read(tmp_path: Path, records,
                                                                         match: str) -> None:
    """The units table reads only the keys (a release's file is tens of MB); the jobs that read labels check
    every record, whichever video they ask for."""
    entry = _abaw8(tmp_path / "train", records)
    (u,) = build_units([entry], 1, tmp_path)
    with pytest.raises(LabelError, match=match) as info:
        read_task_labels("ah", tmp_path / u.ah_labels, u.video_id, 3)
    assert "annotation.yml" in str(info.value)


@pytest.mark.parametrize(("records", "match"), [
    ({"82000/Visite 1/missing_Video.mp4": _annotation("x", [0])}, "no video '82000/Visite 1/missing_Video.mp4'"),
    ([1, 2], "expected a mapping of video path -> annotations, got list"),
    ({K1: _annotation(K1, [0]), f"other/{Path(K1).name}": _annotation(K1, [0])}, "is also listed as"),
])
def test_broken_files_stop_the_units_table(tmp_path: Path, records, match: str) -> None:
    entry = _abaw8(tmp_path / "train", records)
    with pytest.raises(LabelError, match=match) as info:
        build_units([entry], 1, tmp_path)
    assert "annotation.yml" in str(info.value)


def test_keys_are_read_without_the_records_and_agree_with_a_full_parse(tmp_path: Path) -> None:
    odd = "82557/Visite 1/it's: odd # name_Video.mp4"  # quoted by PyYAML
    records = {K1: _annotation(K1, [0, 1]), odd: _annotation(odd, [1]), K2: _annotation(K2, [0])}
    path = tmp_path / "annotation.yml"
    path.write_text(yaml.dump(records), encoding="utf-8")
    assert sorted(annotation_keys(path).values()) == sorted(records)
    path.write_text(yaml.dump(records, default_flow_style=True), encoding="utf-8")  # another writer's shape
    assert sorted(annotation_keys(path).values()) == sorted(records)
    assert annotation_keys(path) == {v: r.key for v, r in read_annotations(path).items()}


def test_python_tags_other_than_tuple_are_refused(tmp_path: Path) -> None:
    entry = _abaw8(tmp_path / "train")
    (tmp_path / "train/annotation.yml").write_text(f"'{K1}': !!python/object/apply:os.system ['true']\n")
    with pytest.raises(LabelError, match="unreadable annotations"):
        build_units([entry], 1, tmp_path)


def test_split_goes_with_an_annotation_file(tmp_path: Path) -> None:
    entry = _abaw8(tmp_path / "train")
    with pytest.raises(LabelError, match="say which with split: train or split: val"):
        build_units([{k: v for k, v in entry.items() if k != "split"}], 1, tmp_path)
    with pytest.raises(LabelError, match="split 'test' is not one of"):
        build_units([{**entry, "split": "test"}], 1, tmp_path)
    write_expr(tmp_path / "own", "Train_Set", "v", [0])
    with pytest.raises(LabelError, match="'split' is for a labels folder with annotation.yml"):
        build_units([{**entry, "labels": "own"}], 1, tmp_path)
    with pytest.raises(LabelError, match="'split' is only for the bah adapter"):
        build_units([{"adapter": "affwild2", "videos": "train/videos", "labels": "own", "split": "train"}], 1,
                    tmp_path)


def test_bah_video_reads_the_published_split_folder_and_checks_class_ids(tmp_path: Path) -> None:
    key = "Videos/82579/Visite_1/82579_Question_1_2024-10-02 16-03-28_Video.mp4"
    make_videos((tmp_path / "bah" / key).parent, [Path(key).name])
    split0 = tmp_path / "split-0"
    split0.mkdir()
    (split0 / "train.txt").write_text(f"{key},1,Well, I think so, yes.\n", encoding="utf-8")
    (split0 / "class_id.yaml").write_bytes(b"With A-H: 1\nNo A-H: 0")
    entry = {"adapter": "bah_video", "videos": "bah", "labels": "split-0"}
    (u,) = build_units([entry], 1, tmp_path)
    assert (u.ah_video_labels, u.path) == ("split-0/train.txt", f"bah/{key}")
    assert read_task_labels("ah_video", tmp_path / u.ah_video_labels, u.video_id, 0)[0] == 1
    (split0 / "class_id.yaml").write_bytes(b"With A-H: 0\nNo A-H: 0")
    with pytest.raises(LabelError, match="split-0/class_id.yaml: expected two class names mapped to 1 and 0"):
        build_units([entry], 1, tmp_path)
    (split0 / "class_id.yaml").write_bytes(b"With A-H: 0\nNo A-H: 1")  # every label would be read turned around
    with pytest.raises(LabelError, match="class_id.yaml: 'With A-H' is mapped to 0, .* the classes are swapped"):
        build_units([entry], 1, tmp_path)
    (split0 / "class_id.yaml").write_bytes(b"ambivalent: 1\ncalm: 0")  # names it cannot read: the 0/1 check only
    assert len(build_units([entry], 1, tmp_path)) == 1


def test_affwild2_finds_videos_one_folder_down_and_never_deeper(tmp_path: Path) -> None:
    make_videos(tmp_path / "videos/batch1", ["video1.mp4"])
    make_videos(tmp_path / "videos/batch2", ["10-60-1280x720.avi"])
    make_videos(tmp_path / "videos/new_vids/deeper", ["video9.mp4"])
    for vid in ("video1", "10-60-1280x720_right"):
        write_expr(tmp_path / "labels", "Train_Set", vid, [0])
    entry = {"adapter": "affwild2", "videos": "videos", "labels": "labels"}
    units = {u.video_id: u for u in build_units([entry], 1, tmp_path)}
    assert units["video1"].path == "videos/batch1/video1.mp4"
    assert (units["10-60-1280x720_right"].path, units["10-60-1280x720_right"].side) == (
        "videos/batch2/10-60-1280x720.avi", "right")
    write_expr(tmp_path / "labels", "Train_Set", "video9", [0])
    with pytest.raises(LabelError, match="no video for id 'video9'"):
        build_units([entry], 1, tmp_path)


def test_a_yaml_error_names_its_line_and_column(tmp_path: Path) -> None:
    """A release's annotation.yml is tens of MB: the error must say where the parser stopped."""
    _abaw8(tmp_path / "train")
    path = tmp_path / "train/annotation.yml"
    lines = path.read_text().splitlines()
    assert len(lines) > 3
    lines[2] = "   " + lines[2]  # one line indented out of its block
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LabelError, match=r"annotation\.yml: unreadable annotations \(line \d+, column \d+: "):
        read_annotations(path)
