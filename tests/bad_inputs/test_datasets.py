"""Dataset and label problems: duplicate ids, label files that disagree with the video, missing labels."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from affectflow.data.adapters import (
    LabelError,
    build_units,
    frame_count_notes,
    frame_label_rows,
    read_ah_labels,
    read_emi_labels,
    read_expr_labels,
)
from affectflow.data.units import UnitsError
from affectflow.io.store import ShardReader
from affectflow.stages.media import run_media
from affectflow.stages.units import run_units

EXPR_HEADER = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
EMI_HEADER = "Filename,Admiration,Amusement,Determination,Empathic Pain,Excitement,Joy"


def _affwild2(root: Path, corpus: dict[str, Path], labels: dict[str, list[str]]) -> dict:
    """An Aff-Wild2 layout: real videos, one label file per video in Train_Set."""
    (root / "videos").mkdir(parents=True)
    (root / "labels" / "Train_Set").mkdir(parents=True)
    for vid, lines in labels.items():
        shutil.copyfile(corpus["good"], root / "videos" / f"{vid}.mp4")
        (root / "labels" / "Train_Set" / f"{vid}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"adapter": "affwild2", "videos": "videos", "labels": "labels"}


def _n_frames(root: Path, units) -> dict[str, int]:
    """Decoded frame counts from the real media stage (what the learn and fuse stages check labels against)."""
    out = root / "media.h5"
    run_media(list(units), out)
    with ShardReader(out, stage="media") as r:
        return {rec.video_id: int(rec.attrs["n_frames"]) for rec in r}


def test_duplicate_ids_in_one_folder(corpus: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "v").mkdir()
    shutil.copyfile(corpus["good"], tmp_path / "v" / "x.mp4")
    shutil.copyfile(corpus["good"], tmp_path / "v" / "x.avi")
    with pytest.raises(LabelError, match=r"v: several videos for id 'x': x\.avi, x\.mp4"):
        build_units([{"adapter": "folder", "videos": "v"}], n_shards=2, base_dir=tmp_path)
    # an adapter with labels refuses the same way when a label file names that id
    (tmp_path / "labels" / "Train_Set").mkdir(parents=True)
    (tmp_path / "labels" / "Train_Set" / "x.txt").write_text(f"{EXPR_HEADER}\n0\n", encoding="utf-8")
    with pytest.raises(LabelError, match="several videos for id 'x'"):
        build_units([{"adapter": "affwild2", "videos": "v", "labels": "labels"}], n_shards=2, base_dir=tmp_path)


def test_duplicate_ids_across_dataset_entries(corpus: dict[str, Path], tmp_path: Path) -> None:
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        shutil.copyfile(corpus["good"], tmp_path / d / "x.mp4")
    entries = [{"adapter": "folder", "videos": "a"}, {"adapter": "folder", "videos": "b"}]
    with pytest.raises(UnitsError, match=r"duplicate video id 'x': a/x\.mp4 and b/x\.mp4"):
        build_units(entries, n_shards=2, base_dir=tmp_path)


def test_label_file_with_wrong_frame_count(corpus: dict[str, Path], tmp_path: Path) -> None:
    """Fitted to the decoded frames, never silently: the rows that exist keep their frames, -1 where none."""
    entry = _affwild2(tmp_path, corpus, {"long": [EXPR_HEADER] + ["4"] * 10, "fits": [EXPR_HEADER] + ["1"] * 4})
    units = build_units([entry], n_shards=1, base_dir=tmp_path)  # only headers are read when the table is built
    frames = _n_frames(tmp_path, [type(u)(**{**vars(u), "path": str(tmp_path / u.path)}) for u in units])
    assert frames == {"long": 4, "fits": 4}
    label = tmp_path / units.get("long").expr_labels
    assert read_expr_labels(label, n_frames=frames["long"]).tolist() == [4, 4, 4, 4]
    assert frame_label_rows("expr", label, "long") == 10
    assert read_expr_labels(tmp_path / units.get("fits").expr_labels, n_frames=4).tolist() == [1, 1, 1, 1]
    short = tmp_path / "ah.txt"
    short.write_text("AH\n0\n1\n", encoding="utf-8")
    assert read_ah_labels(short, n_frames=4).tolist() == [0, 1, -1, -1]
    absolute = [type(u)(**{**vars(u), "expr_labels": str(tmp_path / u.expr_labels)}) for u in units]
    ((u, task, note),) = frame_count_notes(absolute, frames)
    assert (u.video_id, task) == ("long", "expr") and note == (
        f"{label}: 10 label rows for 4 decoded frames: the last 6 rows are past the video's end and are not used")


def test_non_numeric_labels_name_file_and_line(corpus: dict[str, Path], tmp_path: Path) -> None:
    entry = _affwild2(tmp_path, corpus, {"v": [EXPR_HEADER, "0", "happy", "1", "1"]})
    units = build_units([entry], n_shards=1, base_dir=tmp_path)
    label = tmp_path / units.get("v").expr_labels
    with pytest.raises(LabelError, match=re.escape(f"{label}, line 3: 'happy' is not an integer")):
        read_expr_labels(label, n_frames=4)
    # EMI intensities are parsed when the units table is built: the workflow refuses to start
    (tmp_path / "emi").mkdir()
    (tmp_path / "emi" / "train_split.csv").write_text(f"{EMI_HEADER}\nv.mp4,0.1,high,0.3,0.4,0.5,0.6\n",
                                                      encoding="utf-8")
    with pytest.raises(LabelError, match=r"train_split\.csv, line 2, column 3 \(Amusement\): 'high' is not a number"):
        build_units([{"adapter": "hume_vidmimic2", "videos": "videos", "labels": "emi"}], n_shards=1,
                    base_dir=tmp_path)


def test_the_units_rule_reads_every_label_value(corpus: dict[str, Path], tmp_path: Path) -> None:
    """A value out of range stops the units rule among a run's first jobs (learn waits for its table), naming
    the file and line, instead of the learn job after the extraction; nothing is written. Labels of a task the
    run does not train (a bundle applied with `tasks: []`) are not read."""
    entry = _affwild2(tmp_path, corpus, {"a": [EXPR_HEADER, "0", "1"], "b": [EXPR_HEADER, "0", "7", "-1"]})
    out = tmp_path / "run" / "units.tsv"
    run_units([entry], 1, out, base_dir=tmp_path)  # relative label paths, read under the workflow directory
    before = out.read_bytes()
    bad = tmp_path / "labels" / "Train_Set" / "b.txt"
    bad.write_text(f"{EXPR_HEADER}\n0\n9\n", encoding="utf-8")
    build_units([entry], n_shards=1, base_dir=tmp_path)  # headers only: the workflow still parses
    with pytest.raises(LabelError, match=re.escape(f"{bad}, line 3: value 9 out of range -1..7")):
        run_units([entry], 1, out, base_dir=tmp_path)
    assert out.read_bytes() == before
    run_units([entry], 1, out, base_dir=tmp_path, tasks=["emi"])


def test_missing_label_files(corpus: dict[str, Path], tmp_path: Path) -> None:
    entry = _affwild2(tmp_path, corpus, {"v": [EXPR_HEADER, "0", "0", "0", "0"]})
    units = build_units([entry], n_shards=1, base_dir=tmp_path)
    label = tmp_path / units.get("v").expr_labels
    label.unlink()  # gone after the table was built (moved, deleted, unmounted)
    with pytest.raises(LabelError, match=re.escape(f"{label}: label file not found")):
        read_expr_labels(label, n_frames=4)
    with pytest.raises(LabelError, match=r"no units found in videos"):
        build_units([entry], n_shards=1, base_dir=tmp_path)  # the split folder is now empty
    (tmp_path / "labels" / "Train_Set").rmdir()
    with pytest.raises(LabelError, match="no Train_Set or Validation_Set folder"):
        build_units([entry], n_shards=1, base_dir=tmp_path)
    shutil.rmtree(tmp_path / "labels")
    with pytest.raises(LabelError, match=r"labels: labels folder not found"):
        build_units([entry], n_shards=1, base_dir=tmp_path)
    (tmp_path / "emi").mkdir()
    with pytest.raises(LabelError, match="none of train_split.csv, valid_split.csv, test_split.csv"):
        build_units([{"adapter": "hume_vidmimic2", "videos": "videos", "labels": "emi"}], n_shards=1,
                    base_dir=tmp_path)
    with pytest.raises(LabelError, match="label file not found"):
        read_emi_labels(tmp_path / "emi" / "train_split.csv", "v")


def test_labelled_id_without_video_and_unlabelled_videos(corpus: dict[str, Path], tmp_path: Path) -> None:
    entry = _affwild2(tmp_path, corpus, {"v": [EXPR_HEADER, "0"]})
    shutil.copyfile(corpus["good"], tmp_path / "videos" / "unlabelled.mp4")
    units = build_units([entry], n_shards=1, base_dir=tmp_path)
    assert [u.video_id for u in units] == ["v"]  # videos of other tasks in the same folder are not units
    (tmp_path / "videos" / "v.mp4").unlink()
    with pytest.raises(LabelError, match=r"Train_Set/v\.txt: no video for id 'v' in videos"):
        build_units([entry], n_shards=1, base_dir=tmp_path)
