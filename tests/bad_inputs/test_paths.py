"""Video ids become HDF5 group and file names only through store.video_key: nothing lands outside the results."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import h5py
import pytest

from affectflow.data import adapters
from affectflow.data.units import COLUMNS, UnitsTable
from affectflow.io.store import ShardReader, video_id_from_key, video_key
from affectflow.report.problems import read_problems_tsv
from affectflow.stages.contact_sheets import run_contact_sheets
from affectflow.stages.faces import run_faces
from affectflow.stages.media import run_media
from affectflow.stages.problems import run_problems

HOSTILE_IDS = ("../../x", "a/b", "..", ".", "/abs/y", "a\\b", "x%2Fy", " lead", "ü/../é", "$(touch pwned)", "-rf")
SAFE_NAME = re.compile(r"[A-Za-z0-9_%\-]+")


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def _run_stages(units, out: Path, detector) -> None:
    """media -> faces -> contact sheets -> problems, per shard, as the workflow does."""
    by_shard: dict[str, list] = {}
    for u in units:
        by_shard.setdefault(u.shard, []).append(u)
    shards = []
    for shard, members in sorted(by_shard.items()):
        media = out / "media" / f"{shard}.h5"
        faces = out / "faces" / "mediapipe" / f"{shard}.h5"
        run_media(members, media)
        run_faces(members, faces, {"frame_stride": 2}, detector=detector, progress=False)
        run_contact_sheets(faces, out / "faces" / "mediapipe" / "sheets" / shard)
        shards += [str(media), str(faces)]
    run_problems(shards, str(out / "problems.tsv"))


def _check_shards(out: Path, ids: set[str]) -> None:
    found: set[str] = set()
    for h5 in out.rglob("*.h5"):
        with h5py.File(h5, "r") as f:
            assert list(f) == ["videos"]
            for key, group in f["videos"].items():  # one flat group per video, named by its safe key
                assert SAFE_NAME.fullmatch(key) and isinstance(group, h5py.Group), key
                assert all(isinstance(member, h5py.Dataset) for member in group.values()), key
        with ShardReader(h5) as r:
            found |= set(r.video_ids())
            for vid in r.video_ids():
                assert r.read(vid).video_id == vid  # the id is kept exactly, only its storage name is encoded
    assert found == ids


def test_hostile_ids_from_a_units_table_stay_inside_the_results(corpus, detector, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    if "table" not in adapters.ADAPTERS:
        pytest.skip("this checkout's datasets module has no 'table' adapter")
    work = tmp_path / "project" / "deep" / "er"  # "../../x" from results/run would land in project/
    (work / "data").mkdir(parents=True)
    shutil.copyfile(corpus["good"], work / "data" / "good.mp4")
    rows = ["\t".join(COLUMNS)] + [f"{vid}\tdata/good.mp4\ttest\ts0000\t\t\t" for vid in HOSTILE_IDS]
    (work / "data" / "units.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    monkeypatch.chdir(work)
    units = adapters.build_units([{"adapter": "table", "table": "data/units.tsv"}], n_shards=3, base_dir=".")
    assert {u.video_id for u in units} == set(HOSTILE_IDS)
    before = _files(tmp_path)
    out = work / "results" / "run"
    _run_stages(units, out, detector)
    new = _files(tmp_path) - before
    outside = [p for p in new if out not in p.parents]
    assert not outside, f"written outside {out}: {outside}"
    _check_shards(out, set(HOSTILE_IDS))
    sheets = [p for p in new if p.suffix == ".png"]
    assert len(sheets) == len(HOSTILE_IDS)
    for png in sheets:
        assert png.parent.parent.name == "sheets" and SAFE_NAME.fullmatch(png.stem), png
        assert video_id_from_key(png.stem) in HOSTILE_IDS
    assert read_problems_tsv(out / "problems.tsv") == []


def test_odd_file_names_through_the_folder_adapter(corpus, detector, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    longest = "访谈" * 41 + ".mp4"  # 250 bytes: its percent-encoded key is three times longer
    names = ["a b;$(x)`ü'.mp4", "12:30.mp4", "-x.mp4", "a{b.mp4", "tab\there.mp4", longest]
    (tmp_path / "v").mkdir()
    for n in names + ["x{y}.mp4"]:
        shutil.copyfile(corpus["good"], tmp_path / "v" / n)
    monkeypatch.chdir(tmp_path)
    units = adapters.build_units([{"adapter": "folder", "videos": "v"}], n_shards=2, base_dir=".")
    ids = {os.path.splitext(n)[0] for n in names}
    # a Snakemake wildcard in a name would stop the whole workflow: that file is left out and listed instead
    assert [(s.path, s.reason.split(",")[0]) for s in units.skipped] == [("v/x{y}.mp4", "its name holds '{y}'")]
    assert {u.video_id for u in units} == ids  # ids are the file stems, unchanged
    units.write_tsv(tmp_path / "units.tsv")
    assert UnitsTable.read_tsv(tmp_path / "units.tsv").units == sorted(units, key=lambda u: (u.shard, u.video_id))
    before = _files(tmp_path)
    out = tmp_path / "results" / "run"
    _run_stages(units, out, detector)
    assert all(out in p.parents for p in _files(tmp_path) - before)
    _check_shards(out, ids)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    sheets = sorted(p.name for p in out.rglob("*.png"))
    assert len(sheets) == len(names) and all(len(n.encode()) <= 255 for n in sheets)
    assert sum(re.fullmatch(r"(%E8%AE%BF%E8%B0%88)+[%0-9A-F]*~[0-9a-f]{12}\.png", n) is not None for n in sheets) == 1


@pytest.mark.parametrize("vid", HOSTILE_IDS)
def test_video_key_has_no_path_parts(vid: str) -> None:
    key = video_key(vid)
    assert SAFE_NAME.fullmatch(key) and key not in (".", "..") and video_id_from_key(key) == vid
