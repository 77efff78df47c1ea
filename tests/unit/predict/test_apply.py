"""A bundle written from trained heads and fusions, applied to the test videos, gives the fused test
predictions of the run that trained it: the same rows, heads, blend, filter and smoothing."""

import dataclasses
import json
import logging
import re
import shutil

import numpy as np
import pytest

from affectflow.core.vocabulary import feature_stage
from affectflow.data.units import UnitsTable
from affectflow.io.shards import ShardSet, media_frames
from affectflow.io.store import ShardReader
from affectflow.predict.apply import BundleApplier, pretrained_proba
from affectflow.predict.bundle import Bundle, BundleError, TaskSource, write_bundle
from affectflow.stages.fuse import run_fuse
from affectflow.stages.learn import run_learn
from affectflow.testing.stage_fixtures import (
    CFG,
    A,
    F,
    T,
    make_world,
    one_torch_thread,  # noqa: F401 (autouse fixture)
)

SETS = {"face": (F,), "audio_text": (A, T)}
FUSE = {
    "expr": {"k": [1, 5], "t": [0.5, 0.9], "w": [0.0, 0.5, 1.0]},
    "ah": {"k": [1, 5], "w": [0.0, 0.5, 1.0], "ah_video_filter": True},
    "emi": {"w": [0.0, 0.5, 1.0]},
    "ah_video": {"w": [0.0, 0.5, 1.0]},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    w = make_world(root / "w")
    sources = []
    for task, fuse_cfg in FUSE.items():
        preds = {}
        for fs, labels in SETS.items():
            res = run_learn(task, w.units_tsv, w.media, {lb: w.features[lb] for lb in labels},
                            root / "models" / task / fs, CFG)
            preds[fs] = res.predictions
        run_fuse(task, w.units_tsv, w.media, preds, w.pretrained if task == "expr" else None,
                 root / "fusion" / task / "both", fuse_cfg)
        sources.append(TaskSource(task, "both", root / "fusion" / task / "both",
                                  {fs: root / "models" / task / fs for fs in SETS}, pretrained="synth_face"))
    models = {"synth_face": {"files": {"synth.onnx": "0" * 64}, "standin": True}}
    path = write_bundle(root / "bundle", sources, models, {"faces": {"crop_size": 224}}, "synthetic")
    return w, root, path


def _apply_to_test(w, bundle):
    units = {u.video_id: u for u in UnitsTable.read_tsv(w.units_tsv)}
    applier = BundleApplier(bundle)
    out = {}
    with ShardSet(w.media, "media") as media, ShardSet(w.pretrained, "face_features", "pre") as pre:
        sources = {lb: ShardSet(w.features[lb], feature_stage(lb), lb)
                   for lb in (F, A, T)}
        try:
            for vid in w.videos("test"):
                times = media_frames(media, vid)
                out[vid] = applier.apply(units[vid], times, sources, pretrained_proba(pre, vid, len(times)))
        finally:
            for s in sources.values():
                s.close()
    return out


def test_bundle_applied_to_test_videos_equals_the_fused_test_predictions(trained):
    w, root, path = trained
    bundle = Bundle.load(path)
    assert set(bundle.tasks) == set(FUSE)
    assert bundle.tasks["expr"].feature_sets == {"face": [F], "audio_text": [A, T]}
    applied = _apply_to_test(w, bundle)
    for task in FUSE:
        with ShardReader(root / "fusion" / task / "both" / "test_predictions.h5", stage="fuse") as r:
            fused = {rec.video_id: rec for rec in r}
        assert set(fused) == set(w.videos("test"))
        for vid, rec in fused.items():
            got = applied[vid][task]
            ok = got.predicted
            want = np.asarray(rec.arrays["posteriors"])
            if want.ndim and want.shape[0] == ok.shape[0]:
                np.testing.assert_allclose(got.posteriors[ok], want[ok], rtol=1e-5, atol=1e-6, err_msg=task)
                np.testing.assert_array_equal(np.asarray(got.decisions)[ok], np.asarray(rec.arrays["decisions"])[ok])
            else:
                np.testing.assert_allclose(np.ravel(got.posteriors), np.ravel(want), rtol=1e-5, atol=1e-6)
                np.testing.assert_array_equal(np.ravel(got.decisions), np.ravel(rec.arrays["decisions"]))
            assert ok.any()


def test_tampered_or_missing_files_are_refused_by_name(trained, tmp_path):
    _, _, path = trained
    copy = tmp_path / "b"
    shutil.copytree(path, copy)
    head = copy / "heads" / "expr" / "face" / "head.pt"
    head.write_bytes(head.read_bytes() + b"x")
    with pytest.raises(BundleError, match=r"heads/expr/face/head\.pt: sha256 .* does not match"):
        Bundle.load(copy)
    head.unlink()
    with pytest.raises(BundleError, match=r"head\.pt: listed in the bundle's manifest but missing"):
        Bundle.load(copy)
    with pytest.raises(BundleError, match="not a bundle"):
        Bundle.load(tmp_path)


def test_manifest_lists_every_file_and_a_head_left_out_is_refused(trained, tmp_path):
    _, _, path = trained
    m = json.loads((path / "manifest.json").read_text())
    on_disk = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(m["files"]) == on_disk
    assert m["format"] == "affectflow-bundle" and m["tasks"]["expr"]["pretrained"] in (None, "synth_face")
    copy = tmp_path / "b"
    shutil.copytree(path, copy)
    del m["files"]["heads/ah/face/head.pt"]
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="the head of 'face' is not listed"):
        Bundle.load(copy)


def test_weights_other_than_the_bundle_s_are_refused(trained):
    bundle = Bundle.load(trained[2])
    bundle.check_model("synth_face", {"synth.onnx": "0" * 64})
    with pytest.raises(BundleError, match="model 'synth_face' file 'synth.onnx' has sha256 1+ in this run"):
        bundle.check_model("synth_face", {"synth.onnx": "1" * 64})


def test_describe_names_tasks_models_and_stand_ins(trained):
    text = Bundle.load(trained[2]).describe()
    assert "expr: fusion 'both' of face, audio_text (weights=" in text
    emi_line = text.split("  emi: ")[1].split("\n")[0]
    assert emi_line.startswith("fusion 'both' of face, audio_text (weights=") and "k=" not in emi_line
    assert "synth_face (random-weight stand-in): synth.onnx sha256 " + "0" * 64 in text
    assert "all sha256-verified" in text


def test_inspect_shows_blend_weights_as_a_person_reads_them():
    from affectflow.predict.bundle import _shown

    assert _shown([0.8, 0.19999999999999996]) == "[0.8, 0.2]" and _shown(0.30000000000000004) == "0.3"
    assert _shown(5) == "5" and _shown(True) == "True"


def test_the_run_page_names_the_applied_bundle_and_its_stand_ins(trained):
    """An applying run's task columns are the bundle's, not the run's: its page says whose, and whether they
    came from stand-in weights."""
    from affectflow.stages.index_page import describe_applied

    _, _, path = trained
    line = describe_applied(path)
    assert line.startswith(f"{path} (from run 'synthetic', affectflow ")
    assert f"manifest sha256 {Bundle.load(path).digest}" in line
    assert "stand-in weights for synth_face: its task columns carry no emotion" in line


def _inspect(path, capsys) -> tuple[int, str]:
    from affectflow.cli import main

    rc = main(["bundle", "inspect", str(path)])
    out = capsys.readouterr()
    return rc, out.out + out.err


@pytest.mark.parametrize("extra", [
    "heads/expr/head_extra.pt",  # a head beside the task's feature-set folders
    "heads/zzz/face/head.pt",  # a whole feature set the manifest does not know
    "heads/expr/face/.head.pt.Xy12ab",  # what an interrupted copy (rsync) leaves
    "heads/README.md",  # a README is only let through at the top
])
def test_a_file_the_manifest_does_not_list_is_refused_by_inspect_and_load(trained, tmp_path, capsys, extra):
    _, _, path = trained
    copy = tmp_path / "b"
    shutil.copytree(path, copy)
    (copy / extra).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(copy / "heads" / "expr" / "face" / "head.pt", copy / extra)
    named = f"{copy / extra}: in the bundle folder but not listed in its manifest"
    with pytest.raises(BundleError, match=re.escape(named)):
        Bundle.load(copy)
    with pytest.raises(BundleError, match=re.escape(named)):  # as the workflow gives it: the config's string
        Bundle.load(str(copy))
    rc, text = _inspect(copy, capsys)
    assert rc == 1 and f"affectflow: error: {named}" in text and "sha256-verified" not in text
    if extra.rsplit("/", 1)[-1].startswith("."):
        assert "perhaps left by an interrupted copy" in text


def test_the_manifest_snakemake_s_marker_and_a_readme_need_no_listing(trained, tmp_path, capsys):
    _, _, path = trained
    copy = tmp_path / "b"
    shutil.copytree(path, copy)
    for name in (".snakemake_timestamp", "README.md"):
        (copy / name).write_text("")
    (copy / "heads" / "empty").mkdir()  # an empty folder holds no unverified file
    assert set(Bundle.load(copy).tasks) == set(FUSE)
    rc, text = _inspect(copy, capsys)
    assert rc == 0 and "all sha256-verified, none unlisted" in text


def test_the_manifest_s_own_path_means_its_folder_and_relative_paths_are_the_working_directory_s(
        trained, tmp_path, monkeypatch, capsys):
    _, _, path = trained
    cwd = tmp_path.resolve()  # what the working directory reads as
    shutil.copytree(path, cwd / "run" / "bundle")
    monkeypatch.chdir(cwd)
    for given in ("run/bundle", "run/bundle/manifest.json", cwd / "run" / "bundle" / "manifest.json"):
        bundle = Bundle.load(given)
        assert bundle.root == cwd / "run" / "bundle" and bundle.root.is_absolute()
        assert bundle.digest == Bundle.load(path).digest
    rc, text = _inspect("run/bundle/manifest.json", capsys)
    assert rc == 0 and text.startswith(f"bundle {cwd / 'run' / 'bundle'} (from run 'synthetic'")


@pytest.mark.parametrize(("given", "says"), [
    ("nope/bundle", "{cwd}/nope/bundle: no such bundle folder, the path does not exist (the bundle path "
                    "'nope/bundle' is read from the working directory)"),
    ("{cwd}/nope", "{cwd}/nope: no such bundle folder, the path does not exist"),
    ("run/bundle/heads/expr/face/head.pt", "{cwd}/run/bundle/heads/expr/face/head.pt: a file, not a bundle folder"),
    ("run/bundle/heads", "{cwd}/run/bundle/heads: not a bundle, no manifest.json in this folder"),
    ("run", "{cwd}/run: not a bundle, no manifest.json in this folder (the bundle path 'run' is read from the "
            "working directory); did you mean {cwd}/run/bundle?"),
])
def test_a_path_that_is_no_bundle_says_what_is_there(trained, tmp_path, monkeypatch, capsys, given, says):
    _, _, path = trained
    cwd = tmp_path.resolve()
    shutil.copytree(path, cwd / "run" / "bundle")
    monkeypatch.chdir(cwd)
    given, says = given.format(cwd=cwd), says.format(cwd=cwd)
    with pytest.raises(BundleError, match=re.escape(says)):
        Bundle.load(given)
    rc, text = _inspect(given, capsys)
    assert rc == 1 and f"affectflow: error: {says}" in text
    if "a file" in says:
        assert "give the folder that holds manifest.json" in text


def test_the_workflow_stops_at_the_start_naming_the_unlisted_file_or_the_missing_folder(trained, tmp_path):
    """The config's ``bundle:`` goes through the same load: Snakemake's error is that one message."""
    from affectflow.testing.snakerun import make_bare_workdir, parse_plan

    _, _, path = trained
    copy = tmp_path / "b"
    shutil.copytree(path, copy)
    (copy / "heads" / "expr" / "face" / "extra.pt").write_bytes(b"x")
    wd = make_bare_workdir(tmp_path / "wd")
    missing = f"{wd.path.resolve()}/nope/bundle: no such bundle folder, the path does not exist"
    for given, says in [(str(copy), f"{copy}/heads/expr/face/extra.pt: in the bundle folder but not listed"),
                        ("nope/bundle", missing)]:
        proc = wd.run("--dry-run", "--config", f"bundle={given}", check=False, timeout=120)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0 and says in out, out
        assert parse_plan(proc.stdout) == set()


def test_a_faceless_video_a_drop_head_leaves_out_is_named(trained, tmp_path, caplog):
    """A head trained with ``missing_face: drop`` has nothing to say about a video without a face: the bundle
    gives it no prediction for that task, and says so (task, video, feature set), not silently."""
    w, _, path = trained
    bundle = Bundle.load(path)
    faceless = w.videos("test")[0]
    w2 = make_world(tmp_path / "w", no_face=("train_01", faceless))
    applier = BundleApplier(bundle)
    emi = bundle.tasks["emi"]
    for fs in emi.feature_sets:
        head = applier.head(emi, fs)
        head.options = dataclasses.replace(head.options, missing_face="drop")
    unit = next(u for u in UnitsTable.read_tsv(w2.units_tsv) if u.video_id == faceless)
    caplog.set_level(logging.WARNING)
    with ShardSet(w2.media, "media") as media:
        sources = {lb: ShardSet(w2.features[lb], feature_stage(lb), lb) for lb in (F, A, T)}
        try:
            out = applier.apply(unit, media_frames(media, faceless), sources, None)
        finally:
            for s in sources.values():
                s.close()
    assert "emi" not in out and "ah_video" in out
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"emi: video {faceless!r}")]
    assert len(said) == 1 and "leaves such videos out (missing_face: drop); no emi prediction" in said[0], said
