"""The learn stage on synthetic shards with a planted signal: outputs, metrics, exclusions, errors."""

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from affectflow.data.units import UnitsTable
from affectflow.evaluate.metrics import MetricReport
from affectflow.io.shards import fill_nearest
from affectflow.io.store import ShardReader
from affectflow.learn.heads import load_head, sidecar_path
from affectflow.learn.video_classifier import VideoAHClassifier
from affectflow.stages.learn import LearnError, run_learn
from affectflow.testing.stage_fixtures import (
    CFG,
    FACE_DIM,
    TEXT_DIM,
    A,
    F,
    T,
    make_world,
    one_torch_thread,  # noqa: F401 (autouse fixture)
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("world"))


def feats(world, *labels):
    return {lb: world.features[lb] for lb in labels}


def read_predictions(path):
    with ShardReader(path, stage="learn") as r:
        return {rec.video_id: rec for rec in r}, r.skipped(), r.provenance


def test_expr_early_fusion_writes_outputs_and_beats_chance(world, tmp_path):
    res = run_learn("expr", world.units_tsv, world.media, feats(world, F, A), tmp_path / "m", CFG)
    out = tmp_path / "m"
    for name in ("head.pt", "head.pt.json", "predictions.h5", "metrics.json"):
        assert (out / name).is_file(), name
    assert not (out / "video_classifier.json").exists()
    assert res.head == out / "head.pt" and sidecar_path(res.head).is_file()

    head = load_head(res.head)
    cols = {name: [a, b] for name, a, b in head.extra["feature_columns"]}
    # early fusion: face, audio, then the missing-face indicator
    assert [c[0] for c in head.extra["feature_columns"]] == [F, A, "face_missing"]
    assert cols[F] == [0, FACE_DIM]
    assert len(head.extra["standardize"]["mean"]) == head.in_dim == cols["face_missing"][1]
    assert head.extra["learn_config"]["missing_face"] == "other_modalities"

    preds, skipped, prov = read_predictions(res.predictions)
    assert prov.config["task"] == "expr" and skipped == []
    assert sorted(preds) == sorted(world.videos("val") + world.videos("test"))
    for vid, rec in preds.items():
        p = rec.arrays["posteriors"]
        assert p.shape == (world.n_frames[vid], 8)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
        assert rec.attrs["split"] == world.split[vid]
        assert rec.arrays["timestamps"].shape == (world.n_frames[vid],)
        assert rec.arrays["predicted"].all()  # every frame is predicted under other_modalities

    report = MetricReport.load(out / "metrics.json")
    assert report.task == "expr" and report.split == "val"
    assert report.score == pytest.approx(res.report.score)
    assert report.score > 0.4  # chance macro F1 over 8 classes is ~0.125
    # the metric is over all labelled val frames (-1 ignored)
    assert report.n == sum(int((world.expr[v] != -1).sum()) for v in world.videos("val"))


def test_ah_video_classifier_on_text(world, tmp_path):
    res = run_learn("ah", world.units_tsv, world.media, feats(world, F, T), tmp_path / "ah", CFG)
    assert res.video_classifier == tmp_path / "ah" / "video_classifier.json"
    vc = VideoAHClassifier.load(res.video_classifier)
    assert vc.meta["fitted"] and vc.meta["source"] == "text" and vc.dim == TEXT_DIM
    preds, _, _ = read_predictions(res.predictions)
    for vid, rec in preds.items():
        assert rec.arrays["posteriors"].shape == (world.n_frames[vid],)
        assert rec.attrs["video_keep"] in (0, 1) and 0.0 <= rec.attrs["video_proba"] <= 1.0
    # the planted text direction separates videos with and without AH
    for vid in world.videos("val"):
        if vid != "val_01":  # no speech: mean text features are zeros
            assert preds[vid].attrs["video_keep"] == int(world.ah[vid].any()), vid
    y = np.concatenate([world.ah[v] for v in world.videos("val")])
    all_ones_f1 = 2 * y.mean() / (1 + y.mean())
    assert res.report.score > all_ones_f1 + 0.05
    assert "video_classifier_f1" in res.report.metrics


def test_ah_video_classifier_with_one_class_keeps_every_video(world, tmp_path):
    # without a text modality the classifier uses mean frame features, and when disabled it keeps everything
    res = run_learn("ah", world.units_tsv, world.media, feats(world, F), tmp_path / "ah",
                    {**CFG, "ah_video_classifier": False})
    vc = VideoAHClassifier.load(res.video_classifier)
    assert vc.meta["fitted"] is False and vc.meta["source"] == "features"
    preds, _, _ = read_predictions(res.predictions)
    assert all(rec.attrs["video_keep"] == 1 for rec in preds.values())


def test_emi_on_stat_descriptors(tmp_path):
    w = make_world(tmp_path / "w", n_train=40, n_val=16, n_test=2, frames=(20, 30), seed=3)
    cfg = {"train": {**CFG["train"], "epochs": 40, "batch_size": 16, "patience": 10}}
    res = run_learn("emi", w.units_tsv, w.media, feats(w, F, A), tmp_path / "emi", cfg)
    head = load_head(res.head)
    cols = {name: [a, b] for name, a, b in head.extra["feature_columns"]}
    assert cols[F] == [0, 4 * FACE_DIM] and cols[A][1] - cols[A][0] == 4 * 6  # mean, std, min, max
    assert head.extra["learn_config"]["text_fill"] == "nearest"
    preds, _, _ = read_predictions(res.predictions)
    assert sorted(preds) == sorted(w.videos("val") + w.videos("test"))
    assert all(rec.arrays["posteriors"].shape == (6,) for rec in preds.values())
    assert res.report.score > 0.4  # mean Pearson r; chance is 0
    assert json.loads((tmp_path / "emi" / "metrics.json").read_text())["main"] == "pearson_r"


def test_split_without_labelled_videos_is_a_clear_error(tmp_path):
    w = make_world(tmp_path / "w", labelled_splits=("train",))
    (tmp_path / "m").mkdir()
    stale = [tmp_path / "m" / name for name in ("head.pt.json", "video_classifier.json")]  # an earlier run's
    for path in stale:
        path.write_text("{}")
    with pytest.raises(LearnError, match=r"task expr: split 'val' has no labelled video"):
        run_learn("expr", w.units_tsv, w.media, feats(w, F), tmp_path / "m", CFG)
    assert not any(p.exists() for p in stale)  # never left beside the head a failed run did not write
    with pytest.raises(LearnError, match=r"task emi: split 'val'"):
        run_learn("emi", w.units_tsv, w.media, feats(w, F), tmp_path / "m", CFG)


def test_video_missing_from_one_modality_is_excluded_and_logged(tmp_path, caplog):
    w = make_world(tmp_path / "w", drop={"audio": ["val_03", "test_01"]})
    with caplog.at_level(logging.WARNING, logger="affectflow.learn"):
        res = run_learn("expr", w.units_tsv, w.media, feats(w, F, A), tmp_path / "fa", CFG)
    assert sorted(v for v, _ in res.excluded) == ["test_01", "val_03"]
    assert all("synthetic skip for the test" in why for _, why in res.excluded)
    assert "val_03" in caplog.text and "audio/synth_audio" in caplog.text
    preds, skipped, _ = read_predictions(res.predictions)
    assert "val_03" not in preds and "test_01" not in preds
    assert sorted(v for v, _ in skipped) == ["test_01", "val_03"]
    assert "val_03" not in res.videos["val"]
    # a feature set without that modality keeps the video
    res_face = run_learn("expr", w.units_tsv, w.media, feats(w, F), tmp_path / "f", CFG)
    assert res_face.excluded == [] and "val_03" in res_face.videos["val"]


def test_label_files_a_few_rows_off_are_fitted_or_refused_or_skipped(tmp_path):
    """on_label_mismatch: fit (default: -1 past a short file's end, never trained on), error, skip."""
    w = make_world(tmp_path / "w")
    unit = next(u for u in UnitsTable.read_tsv(w.units_tsv) if u.video_id == "train_02")
    label = Path(unit.expr_labels)
    lines = label.read_text().splitlines()
    label.write_text("\n".join(lines[:-3]) + "\n")  # three frames short, as organisers' files can be
    fit = run_learn("expr", w.units_tsv, w.media, feats(w, F), tmp_path / "fit", CFG)
    assert fit.excluded == [] and "train_02" in fit.videos["train"]
    with pytest.raises(LearnError, match=rf"{label}: {len(lines) - 4} frame labels but the video has "
                                         rf"{len(lines) - 1} frames"):
        run_learn("expr", w.units_tsv, w.media, feats(w, F), tmp_path / "err", {**CFG, "on_label_mismatch": "error"})
    skip = run_learn("expr", w.units_tsv, w.media, feats(w, F), tmp_path / "skip", {**CFG, "on_label_mismatch": "skip"})
    assert [v for v, _ in skip.excluded] == ["train_02"] and "train_02" not in skip.videos["train"]


def test_missing_face_policies(world, tmp_path):
    res = run_learn("expr", world.units_tsv, world.media, feats(world, F), tmp_path / "auto", CFG)
    assert load_head(res.head).extra["learn_config"]["missing_face"] == "carry_last"  # face-only default
    res = run_learn("expr", world.units_tsv, world.media, feats(world, F), tmp_path / "drop",
                    {**CFG, "missing_face": "drop", "standardize": False})
    assert load_head(res.head).extra["standardize"] is None
    preds, _, _ = read_predictions(res.predictions)
    for rec in preds.values():
        p, predicted, face = rec.arrays["posteriors"], rec.arrays["predicted"], rec.arrays["face_present"]
        assert np.isfinite(p).all() and p.shape[1] == 8
        np.testing.assert_array_equal(predicted, face)  # only face frames are predicted, the rest filled
        assert not predicted.all()
    assert res.report.score > 0.4


def test_config_errors(world, tmp_path):
    with pytest.raises(LearnError, match=r"unknown learn option\(s\) \[.epochs.\]"):
        run_learn("expr", world.units_tsv, world.media, feats(world, F), tmp_path, {"epochs": 3})
    with pytest.raises(LearnError, match="must start with one of"):
        run_learn("expr", world.units_tsv, world.media, {"video/x": world.features[F]}, tmp_path, CFG)
    with pytest.raises(LearnError, match="unknown task"):
        run_learn("va", world.units_tsv, world.media, feats(world, F), tmp_path, CFG)
    with pytest.raises(LearnError, match="expected a 'audio_features' shard|audio_features"):
        run_learn("expr", world.units_tsv, world.media, {A: world.features[F]}, tmp_path, CFG)


def test_fill_nearest_known_answer():
    rows = np.array([10, 20, 30])
    np.testing.assert_array_equal(fill_nearest(rows, [1, 4, 5], 8), [10, 10, 10, 20, 20, 30, 30, 30])
    np.testing.assert_array_equal(fill_nearest(np.eye(2), [0, 3], 4), [[1, 0], [1, 0], [0, 1], [0, 1]])
    with pytest.raises(ValueError):
        fill_nearest(np.zeros(0), [], 3)


def test_ah_video_head_on_pooled_features_and_the_video_classifier(tmp_path):
    w = make_world(tmp_path / "w", n_train=16, n_val=8, n_test=2, frames=(20, 30), seed=5)
    res = run_learn("ah_video", w.units_tsv, w.media, feats(w, F, T), tmp_path / "ahv", CFG)
    head = load_head(res.head)
    cols = {name: [a, b] for name, a, b in head.extra["feature_columns"]}
    assert cols[F] == [0, 4 * FACE_DIM] and cols[T][1] - cols[T][0] == 4 * TEXT_DIM  # STAT descriptors
    assert head.task == "ah_video" and head.extra["learn_config"]["text_fill"] == "nearest"
    preds, _, prov = read_predictions(res.predictions)
    assert prov.config["task"] == "ah_video"
    assert sorted(preds) == sorted(w.videos("val") + w.videos("test"))
    for rec in preds.values():
        assert rec.arrays["posteriors"].shape == (1,) and 0.0 <= rec.arrays["posteriors"][0] <= 1.0
        assert "predicted" not in rec.arrays and rec.attrs["video_keep"] in (0, 1)
    # the planted text direction says which videos have A/H: both the head and the classifier find it
    truth = {v: int(w.ah[v].any()) for v in w.videos("val")}
    assert res.report.task == "ah_video" and res.report.main == "f1"
    assert set(res.report.per_class) == {"no A/H", "A/H"} and res.report.n == len(truth)
    assert res.report.score > 0.75, res.report.metrics  # macro F1; a constant answer scores <= 0.5
    assert res.report.metrics["video_classifier_f1"] > 0.75
    vc = VideoAHClassifier.load(res.video_classifier)
    assert vc.meta["fitted"] and vc.meta["source"] == "text"


def test_only_the_task_s_own_test_videos_are_predicted(world, tmp_path):
    """A test video that only another release's test list names (test_of) gets no prediction from this task's
    heads, so it can never reach this task's fusion or submission."""
    units = UnitsTable.read_tsv(world.units_tsv)
    tests = sorted(u.video_id for u in units if u.split == "test")
    assert len(tests) >= 2
    mine, other = tests[0], tests[1:]
    retold = UnitsTable([dataclasses.replace(u, test_of="expr" if u.video_id == mine else "emi")
                         if u.split == "test" else u for u in units])
    retold.write_tsv(tmp_path / "units.tsv")
    res = run_learn("expr", tmp_path / "units.tsv", world.media, feats(world, F), tmp_path / "m", CFG)
    preds, _, _ = read_predictions(res.predictions)
    predicted_tests = sorted(v for v, rec in preds.items() if rec.attrs.get("split") == "test")
    assert predicted_tests == [mine] and not set(other) & set(preds)
