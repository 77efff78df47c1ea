"""Fuse, submit and report stages on synthetic learn outputs: val-only selection, class mapping, files."""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from affectflow.data.units import Unit
from affectflow.fuse.postprocess import FER2013_CLASSES, FER2013_TO_AFFWILD2, softmax
from affectflow.io.store import Provenance, ShardReader, ShardWriter, VideoRecord
from affectflow.report.tables import COLUMNS
from affectflow.stages.fuse import FuseError, run_fuse
from affectflow.stages.learn import run_learn
from affectflow.stages.report_tables import run_report_tables
from affectflow.stages.submit import run_submit
from affectflow.submit.formats import read_ah_submission, read_emi_submission, read_expr_submission
from affectflow.submit.rows import complete_decisions, names_in_test_list
from affectflow.testing.stage_fixtures import (
    CFG,
    A,
    F,
    T,
    make_world,
    one_torch_thread,  # noqa: F401 (autouse fixture)
)

K = [1, 3, 5, 9]


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    root = tmp_path_factory.mktemp("learned")
    w = make_world(root / "w")
    runs = {
        ("expr", "face"): {F: w.features[F]},
        ("expr", "audio"): {A: w.features[A]},
        ("ah", "face"): {F: w.features[F]},
        ("ah", "audio_text"): {A: w.features[A], T: w.features[T]},
    }
    out = {key: run_learn(key[0], w.units_tsv, w.media, feats, root / "models" / key[0] / key[1], CFG)
           for key, feats in runs.items()}
    return w, out


def fused_records(path):
    with ShardReader(path, stage="fuse") as r:
        return {rec.video_id: rec for rec in r}, r.provenance


def write_predictions(path, task, world, posteriors, vids):
    """A learn-stage predictions file with given posteriors (no training needed)."""
    with ShardWriter(path, Provenance(stage="predictions", model="hand", config={"task": task})) as wr:
        for v in vids:
            wr.add(VideoRecord(v, {"posteriors": posteriors(v), "timestamps": np.arange(world.n_frames[v]) / 25.0},
                               {"split": world.split[v], "n_frames": world.n_frames[v]}))
    return path


def test_fuse_expr_sweeps_on_val_and_writes_tables(learned, tmp_path):
    w, out = learned
    preds = {"face": out["expr", "face"].predictions, "audio": out["expr", "audio"].predictions}
    cfg = {"k": K, "t": [0.5, 0.7, 0.9], "w": [0.0, 0.25, 0.5, 0.75, 1.0]}
    res = run_fuse("expr", w.units_tsv, w.media, preds, w.pretrained, tmp_path, cfg)

    for name in ("sweep_w.csv", "sweep_w.png", "sweep_t.csv", "sweep_t.png", "sweep_k.csv", "sweep_k.png",
                 "chosen.json", "metrics.json", "test_predictions.h5"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "sweep_k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    chosen = json.loads((tmp_path / "chosen.json").read_text())
    cfg_out = chosen["config"]
    assert cfg_out["weights"][0] in cfg["w"] and cfg_out["k"] in K
    assert cfg_out["t"] is None or cfg_out["t"] in cfg["t"]
    assert chosen["pretrained_classes"] == list(FER2013_CLASSES)
    assert tuple(cfg_out["mapping"]) == FER2013_TO_AFFWILD2

    # each table's winner (first best in grid order) is what was chosen for the blend
    k_table = pd.read_csv(tmp_path / "sweep_k.csv")
    assert set(k_table["config"]) == {"face", "audio", "fused"}
    fused_k = k_table[k_table["config"] == "fused"]
    assert fused_k["k"].tolist() == K
    assert fused_k.loc[fused_k["f1"].idxmax(), "k"] == cfg_out["k"]
    t_table = pd.read_csv(tmp_path / "sweep_t.csv")
    assert 1.0 in t_table["t"].tolist()  # t = 1: the no-filtering baseline is in the grid
    w_table = pd.read_csv(tmp_path / "sweep_w.csv")
    assert w_table["w"].tolist() == cfg["w"]

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["split"] == "val" and metrics["main"] == "f1"
    rows = {r["name"]: r for r in metrics["rows"]}
    assert {"face", "audio", "face+audio"} <= set(rows)
    chosen_rows = [r for r in metrics["rows"] if r["chosen"]]
    assert len(chosen_rows) == 1 and chosen_rows[0]["name"].startswith("face+audio")
    best = res.report.score
    assert chosen_rows[0]["metrics"]["f1"] == pytest.approx(best)
    # the grids include w = 0/1, t = 1 and k = 1, so the chosen config is at least as good as any raw set
    assert best >= max(rows["face"]["metrics"]["f1"], rows["audio"]["metrics"]["f1"])
    assert best > 0.5
    # a line that filters: its "smoothing" row is at the kernel chosen without filtering, never below its raw row
    filtering = [label for label, cfg in chosen["sweeps"]["t"].items() if cfg["best"] < 1.0]
    assert filtering, "the fixture's data should make some line filter"
    alone = pd.read_csv(tmp_path / "sweep_k_without_filtering.csv")
    assert set(alone["config"]) == set(filtering) and 1 in alone["k"].tolist()
    for label in filtering:
        title = "face+audio" if label == "fused" else label
        best_k = chosen["sweeps"]["k_without_filtering"][label]["best"]
        smoothing = rows.get(f"{title}, smoothing")
        assert (smoothing is not None) == (best_k > 1), (label, best_k)  # a row when smoothing alone helps
        if smoothing is not None:
            assert smoothing["post"]["k"] == best_k and smoothing["post"]["t"] is None
            assert smoothing["metrics"]["f1"] >= rows[title]["metrics"]["f1"] - 1e-12

    recs, prov = fused_records(tmp_path / "test_predictions.h5")
    assert prov.config["task"] == "expr" and sorted(recs) == w.videos("test")
    for v, rec in recs.items():
        d = rec.arrays["decisions"]
        assert d.shape == (w.n_frames[v],) and d.min() >= 0 and d.max() <= 7


def test_confidence_filter_maps_fer2013_classes(learned, tmp_path):
    w, _ = learned
    vids = w.videos("val") + w.videos("test")
    # a useless head: Neutral everywhere; all the information is in the pre-trained FER2013 logits
    neutral = write_predictions(tmp_path / "p.h5", "expr", w, lambda v: np.tile(
        np.array([0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], np.float32), (w.n_frames[v], 1)), vids)
    res = run_fuse("expr", w.units_tsv, w.media, {"neutral": neutral}, w.pretrained, tmp_path / "f",
                   {"k": [1], "t": [0.5, 0.9]})
    assert res.chosen.t == 0.9 and res.chosen.mapping == FER2013_TO_AFFWILD2
    rows = json.loads((tmp_path / "f" / "metrics.json").read_text())["rows"]
    raw = next(r for r in rows if r["name"] == "neutral")["metrics"]["f1"]
    assert res.report.score > raw + 0.3
    assert not (tmp_path / "f" / "sweep_w.csv").exists()  # one feature set: no blend sweep

    # on test, every confidently recognised face frame gets the Aff-Wild2 class of its FER2013 class
    recs, _ = fused_records(tmp_path / "f" / "test_predictions.h5")
    with ShardReader(w.pretrained[0]) as r0, ShardReader(w.pretrained[1]) as r1:
        for v in w.videos("test"):
            face = (r0 if v in r0 else r1).read(v)
            p = softmax(face.arrays["logits"])
            conf = p.max(axis=1) > 0.9
            frames = face.arrays["frame_index"][conf]
            expected = np.array(FER2013_TO_AFFWILD2)[p[conf].argmax(axis=1)]
            d = recs[v].arrays["decisions"]
            np.testing.assert_array_equal(d[frames], expected)
            truth = w.expr[v][frames]
            assert np.mean(expected[truth >= 0] == truth[truth >= 0]) == 1.0  # planted: confident = right
            others = np.setdiff1d(np.arange(w.n_frames[v]), frames)
            assert (d[others] == 0).all()  # no face or not confident: the head's Neutral stays


def test_threshold_below_uniform_is_rejected(learned, tmp_path):
    w, out = learned
    with pytest.raises(FuseError, match="below 1/7"):
        run_fuse("expr", w.units_tsv, w.media, {"face": out["expr", "face"].predictions}, w.pretrained, tmp_path,
                 {"t": [0.1, 0.5]})


def test_fuse_ah_video_filter_and_submission(learned, tmp_path):
    w, out = learned
    preds = {"face": out["ah", "face"].predictions, "audio_text": out["ah", "audio_text"].predictions}
    res = run_fuse("ah", w.units_tsv, w.media, preds, None, tmp_path / "f", {"k": K, "ah_video_filter": True})
    chosen = json.loads((tmp_path / "f" / "chosen.json").read_text())
    assert chosen["video_filter_source"] == "audio_text"  # the set with a text modality
    assert res.chosen.video_filter is True
    assert not (tmp_path / "f" / "sweep_t.csv").exists()  # t is EXPR only
    recs, _ = fused_records(tmp_path / "f" / "test_predictions.h5")
    for rec in recs.values():
        assert rec.attrs["video_keep"] in (0, 1)
        if rec.attrs["video_keep"] == 0:
            assert not rec.arrays["decisions"].any()

    # BAH names a frame <video path under the videos folder, extension included>/frame-<i>.jpg (the units' paths
    # here are videos/<id>.mp4)
    sub = run_submit("ah", w.units_tsv, tmp_path / "f" / "test_predictions.h5", w.media, tmp_path / "ah.txt",
                     videos_folders=["videos"])
    first = sorted(w.videos("test"))[0]
    assert sub.is_file() and sub.read_text().splitlines()[0] == f"{first}.mp4/frame-0.jpg," + str(
        int(recs[first].arrays["decisions"][0]))
    back = read_ah_submission(sub)
    assert set(back) == {f"{v}.mp4" for v in w.videos("test")}
    for v in w.videos("test"):
        assert len(back[f"{v}.mp4"]) == w.n_frames[v]
        np.testing.assert_array_equal(back[f"{v}.mp4"], recs[v].arrays["decisions"])


def test_fuse_and_submit_expr_round_trip(learned, tmp_path):
    w, out = learned
    run_fuse("expr", w.units_tsv, w.media, {"face": out["expr", "face"].predictions}, None, tmp_path / "f",
             {"k": K})
    assert not (tmp_path / "f" / "sweep_t.csv").exists()  # no pre-trained source: no filtering sweep
    path = run_submit("expr", w.units_tsv, tmp_path / "f" / "test_predictions.h5", w.media, tmp_path / "expr.txt")
    assert path.is_file()
    back = read_expr_submission(path)
    assert {v: len(d) for v, d in back.items()} == {v: w.n_frames[v] for v in w.videos("test")}
    lines = path.read_text().splitlines()
    assert lines[0].startswith("image_location,Neutral") and lines[1].split(",")[0].endswith("/00001.jpg")


def test_submit_fills_undecided_frames_and_writes_emi(learned, tmp_path):
    w, _ = learned
    fused = tmp_path / "fused.h5"
    vid = w.videos("test")[0]
    n = w.n_frames[vid]
    dec = np.full(n, -1)
    dec[[2, 10]] = [3, 5]
    with ShardWriter(fused, Provenance(stage="fused", config={"task": "expr"})) as wr:
        wr.add(VideoRecord(vid, {"decisions": dec}, {"split": "test"}))
    back = read_expr_submission(run_submit("expr", w.units_tsv, fused, w.media, tmp_path / "e.txt"))
    assert list(back) == [vid] and len(back[vid]) == n
    # frame 6 is as near frame 2 as frame 10: the earlier wins
    assert back[vid][:7].tolist() == [3] * 7 and (back[vid][7:] == 5).all()
    np.testing.assert_array_equal(complete_decisions([4, 6], 5, [1, 3]), [4, 4, 4, 6, 6])

    emi = tmp_path / "emi.h5"
    values = {v: np.linspace(0.1, 0.6, 6) + 0.05 * i for i, v in enumerate(w.videos("test"))}
    with ShardWriter(emi, Provenance(stage="fused", config={"task": "emi"})) as wr:
        for v, x in values.items():
            wr.add(VideoRecord(v, {"decisions": x}, {"split": "test"}))
    got = read_emi_submission(run_submit("emi", w.units_tsv, emi, w.media, tmp_path / "emi.csv"))
    assert set(got) == set(values)
    for v in values:
        np.testing.assert_array_equal(got[v], values[v])
    with pytest.raises(ValueError, match="not 'ah'"):
        run_submit("ah", w.units_tsv, emi, w.media, tmp_path / "x")


def test_fuse_emi_blends_without_smoothing(tmp_path):
    w = make_world(tmp_path / "w", n_train=2, n_val=12, n_test=2, frames=(10, 12))
    vids = w.videos("val") + w.videos("test")
    rng = np.random.default_rng(0)
    good = write_predictions(tmp_path / "good.h5", "emi", w, lambda v: w.emi[v] + rng.normal(0, 0.05, 6), vids)
    noisy = write_predictions(tmp_path / "noisy.h5", "emi", w, lambda v: rng.random(6), vids)
    res = run_fuse("emi", w.units_tsv, w.media, {"good": good, "noisy": noisy}, None, tmp_path / "f", {})
    files = sorted(p.name for p in res.files)
    assert files == ["chosen.json", "metrics.json", "sweep_w.csv", "sweep_w.png", "test_predictions.h5"]
    assert res.chosen.weights[0] >= 0.7 and res.report.score > 0.9
    recs, _ = fused_records(tmp_path / "f" / "test_predictions.h5")
    assert all(r.arrays["decisions"].shape == (6,) for r in recs.values())


def test_fuse_excludes_videos_missing_from_one_set(tmp_path, caplog):
    w = make_world(tmp_path / "w", drop={"audio": ["val_03"]})
    vids = w.videos("val") + w.videos("test")

    def onehot(v):
        return np.eye(8, dtype=np.float32)[np.maximum(w.expr[v], 0)]

    a = write_predictions(tmp_path / "a.h5", "expr", w, onehot, vids)
    b = write_predictions(tmp_path / "b.h5", "expr", w, onehot, [v for v in vids if v != "val_03"])
    with caplog.at_level(logging.WARNING, logger="affectflow.fuse"):
        res = run_fuse("expr", w.units_tsv, w.media, {"a": a, "b": b}, None, tmp_path / "f", {"k": [1]})
    assert [v for v, _ in res.excluded] == ["val_03"] and "not predicted by b" in res.excluded[0][1]
    assert "val_03" in caplog.text
    assert res.report.n == sum(int((w.expr[v] >= 0).sum()) for v in w.videos("val") if v != "val_03")


def test_selection_needs_labelled_val(tmp_path):
    w = make_world(tmp_path / "w", labelled_splits=("train",))
    p = write_predictions(tmp_path / "p.h5", "expr", w, lambda v: np.full((w.n_frames[v], 8), 0.125, np.float32),
                          w.videos("val") + w.videos("test"))
    with pytest.raises(FuseError, match="task expr: split 'val' has no labelled video"):
        run_fuse("expr", w.units_tsv, w.media, {"p": p}, None, tmp_path / "f", {})
    with pytest.raises(FuseError, match="predictions for task 'expr', not 'ah'"):
        run_fuse("ah", w.units_tsv, w.media, {"p": p}, None, tmp_path / "f", {})


def test_report_tables(learned, tmp_path):
    w, out = learned
    run_fuse("expr", w.units_tsv, w.media, {"face": out["expr", "face"].predictions}, w.pretrained, tmp_path / "f",
             {"k": K, "t": [0.9]})
    files = {"expr/face": out["expr", "face"].metrics, "ah/face": out["ah", "face"].metrics,
             "expr/fusion": tmp_path / "f" / "metrics.json"}
    run_report_tables(files, tmp_path / "m.csv", tmp_path / "m.html")
    table = pd.read_csv(tmp_path / "m.csv")
    assert tuple(table.columns) == COLUMNS
    assert set(table["stage"]) == {"learn", "fuse"} and set(table["task"]) == {"expr", "ah"}
    learn_f1 = table[(table["name"] == "expr/face") & (table["metric"] == "f1")]["value"].item()
    assert learn_f1 == pytest.approx(out["expr", "face"].report.score)
    assert table["name"].str.contains(r"\(chosen\)").any()
    assert "f1:Neutral" in set(table["metric"])
    html = (tmp_path / "m.html").read_text()
    assert "<h2>EXPR</h2>" in html and "<h2>AH</h2>" in html


def noisy_expr_predictions(w, folder, noise: dict[str, float]) -> dict[str, Path]:
    """EXPR predictions of val and test per set: the true class plus uniform noise of the set's scale."""
    vids = w.videos("val") + w.videos("test")
    rng = np.random.default_rng(1)

    def noisy(scale):
        def post(v):
            p = np.eye(8, dtype=np.float32)[np.maximum(w.expr[v], 0)] + rng.random((w.n_frames[v], 8)) * scale
            return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
        return post

    return {n: write_predictions(folder / f"{n}.h5", "expr", w, noisy(s), vids) for n, s in noise.items()}


def test_three_sets_use_given_weights_without_w_sweep(learned, tmp_path):
    w, _ = learned
    preds = noisy_expr_predictions(w, tmp_path, {"a": 0.5, "b": 4.0, "c": 8.0})
    res = run_fuse("expr", w.units_tsv, w.media, preds, None, tmp_path / "f", {"k": [1, 3], "weights": [2, 1, 1]})
    assert res.chosen.sources == ("a", "b", "c") and res.chosen.weights == (2.0, 1.0, 1.0)
    assert not (tmp_path / "f" / "sweep_w.csv").exists() and (tmp_path / "f" / "sweep_k.csv").exists()
    names = [r["name"] for r in json.loads((tmp_path / "f" / "metrics.json").read_text())["rows"]]
    assert "a+b+c" in names
    with pytest.raises(FuseError, match="2 values for 3 feature sets"):
        run_fuse("expr", w.units_tsv, w.media, preds, None, tmp_path / "g", {"weights": [1, 1]})


def test_three_sets_weighed_on_val_by_their_reliability(learned, tmp_path):
    """weights_on_val: the paper weighs each modality by its reliability (section 3.2); the least noisy set
    gets the largest weight, chosen on val, and the blend is at least as good as equal weights there."""
    w, _ = learned
    preds = noisy_expr_predictions(w, tmp_path, {"a": 8.0, "b": 0.5, "c": 8.0})
    res = run_fuse("expr", w.units_tsv, w.media, preds, None, tmp_path / "f", {"k": [1], "weights_on_val": True})
    weights = res.chosen.weights
    assert weights is not None and abs(sum(weights) - 1.0) < 1e-9 and weights[1] == max(weights) > 1 / 3
    table = pd.read_csv(tmp_path / "f" / "sweep_weights.csv")
    assert list(table.columns[:3]) == ["a", "b", "c"] and len(table) == 66
    best = table.loc[table["f1"].idxmax()]
    assert tuple(best[["a", "b", "c"]]) == pytest.approx(weights)
    equal = run_fuse("expr", w.units_tsv, w.media, preds, None, tmp_path / "e", {"k": [1]})
    assert res.report.score >= equal.report.score
    with pytest.raises(FuseError, match="weights_on_val: the weights are given"):
        run_fuse("expr", w.units_tsv, w.media, preds, None, tmp_path / "g", {"weights": [1, 1, 1],
                                                                           "weights_on_val": True})
    with pytest.raises(FuseError, match=r"weights_on_val: the w grid \[0.5\] gives 0 weight vectors of 3 sets"):
        run_fuse("expr", w.units_tsv, w.media, preds, None, tmp_path / "h", {"w": [0.5], "weights_on_val": True})


def test_fuse_and_submit_ah_video_one_line_per_video(tmp_path):
    from affectflow.submit.formats import check_submission, read_ah_video_submission

    w = make_world(tmp_path / "w", n_train=16, n_val=8, n_test=3, frames=(20, 30), seed=5)
    preds = {name: run_learn("ah_video", w.units_tsv, w.media, fs, tmp_path / "m" / name, CFG).predictions
             for name, fs in (("face", {F: w.features[F]}), ("text", {T: w.features[T]}))}
    res = run_fuse("ah_video", w.units_tsv, w.media, preds, None, tmp_path / "f", {"k": K})
    files = sorted(p.name for p in res.files)
    assert "sweep_k.csv" not in files and "sweep_w.csv" in files  # one prediction per video: no smoothing
    assert res.chosen.task == "ah_video" and res.chosen.k == 1
    assert res.report.main == "f1" and res.report.score > 0.75
    rows = json.loads((tmp_path / "f" / "metrics.json").read_text())["rows"]
    assert any(r["chosen"] for r in rows)
    recs, prov = fused_records(tmp_path / "f" / "test_predictions.h5")
    assert prov.config["task"] == "ah_video" and sorted(recs) == w.videos("test")
    assert all(r.arrays["decisions"].shape == (1,) for r in recs.values())

    # the organisers' with_probabilities form by default: P(no A/H), P(A/H) of the fused posterior, the decision
    sub = run_submit("ah_video", w.units_tsv, tmp_path / "f" / "test_predictions.h5", w.media, tmp_path / "v.txt")
    decided = {v: int(recs[v].arrays["decisions"][0]) for v in w.videos("test")}
    p1 = {v: float(np.asarray(recs[v].arrays["posteriors"]).ravel()[-1]) for v in w.videos("test")}
    assert sub.read_text().splitlines() == [f"{v},{1 - round(p1[v], 4):.4f},{round(p1[v], 4):.4f},{decided[v]}"
                                            for v in w.videos("test")]
    assert read_ah_video_submission(sub) == decided
    plain = run_submit("ah_video", w.units_tsv, tmp_path / "f" / "test_predictions.h5", w.media,
                       tmp_path / "plain.txt", video_probabilities=False)
    assert plain.read_text().splitlines() == [f"{v},{decided[v]}" for v in w.videos("test")]
    # with the organisers' test list as template: their paths, their order
    listed = [f"Videos/p{i}/{v}.mp4" for i, v in enumerate(reversed(w.videos("test")))]
    (tmp_path / "test.txt").write_text("".join(f"{p},,some words, with commas\n" for p in listed), encoding="utf-8")
    sub = run_submit("ah_video", w.units_tsv, tmp_path / "f" / "test_predictions.h5", w.media, tmp_path / "t.txt",
                     template=tmp_path / "test.txt")
    assert [line.split(",")[0] for line in sub.read_text().splitlines()] == listed
    assert check_submission("ah_video", sub, tmp_path / "test.txt") == []


def test_the_probabilities_setting_keys_only_the_ah_video_submission():
    from affectflow.plan.rerun import stage_key
    from affectflow.stages.submit import STAGE, SubmitOptions

    def key(task: str, probabilities: bool) -> str:
        cfg = {"submit_fusion": "f", "submission": {"ah_video_probabilities": probabilities}}
        return stage_key(STAGE, SubmitOptions.from_config(cfg, task=task)).text

    assert key("ah_video", True) != key("ah_video", False)
    for task in ("expr", "emi", "ah"):
        assert key(task, True) == key(task, False)
    assert SubmitOptions.from_config({"submit_fusion": "f"}, task="ah_video").video_probabilities  # the default


def test_ah_video_lines_without_a_template_name_the_path_as_in_the_test_list():
    """BAH's test.txt names a video by its path under the videos folder (with spaces, in subfolders); without
    the organisers' template that path, not the id, starts each line."""
    units = [Unit("82579_Q1 16-03-28_Video", "BAH/Videos/82579/Visite_1/82579_Q1 16-03-28_Video.mp4", "test", "s0000"),
             Unit("nested", "BAH/extra/Videos/nested.mp4", "test", "s0000"),
             Unit("elsewhere", "other/elsewhere.mp4", "test", "s0000")]
    names = names_in_test_list(units, ["BAH/", "BAH/extra", "BAH/Videos/82579/Visite"])
    assert names == {"82579_Q1 16-03-28_Video": "Videos/82579/Visite_1/82579_Q1 16-03-28_Video.mp4",
                     "nested": "Videos/nested.mp4"}  # the deepest folder wins; a folder name is no prefix match
