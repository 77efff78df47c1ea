"""Sweeps of k, t, w on validation only, with known answers; plots."""

import numpy as np
import pandas as pd
import pytest

from affectflow.fuse.postprocess import AFFECTNET8_TO_AFFWILD2, PostConfig, softmax
from affectflow.fuse.sweeps import (
    SelectionOnTestError,
    SplitDataset,
    SweepResult,
    evaluate,
    plot_sweep,
    sweep,
    sweep_many,
)

RUN = 15  # label run length L


def runs_dataset(split="val", seed=0, n_videos=20, n_frames=600, sigma=1.2):
    """(a) Labels in runs of L=15 frames (next run always another class), i.i.d. noise on the posteriors."""
    rng = np.random.default_rng(seed)
    labels, post = {}, {}
    for v in range(n_videos):
        y, prev = [], -1
        while len(y) < n_frames:
            c = prev
            while c == prev:
                c = int(rng.integers(8))
            y += [c] * RUN
            prev = c
        y = np.array(y[:n_frames])
        labels[f"v{v:02d}"] = y
        post[f"v{v:02d}"] = softmax(2.0 * (np.eye(8)[y] + rng.normal(0, sigma, (n_frames, 8))))
    return SplitDataset(split, "expr", labels, {"face": post})


def blend_dataset(seed=0, s1=1.0, s2=2.0, n_videos=10, n_frames=2000):
    """(b) Two modalities = true one-hot + independent Gaussian noise of std s1, s2.

    The blend w*p1 + (1-w)*p2 keeps the signal (weights sum to 1) and has noise
    variance w^2 s1^2 + (1-w)^2 s2^2, minimal at w* = s2^2 / (s1^2 + s2^2); argmax
    accuracy (and, by symmetry over classes, macro F1) decreases with that variance.
    """
    rng = np.random.default_rng(seed)
    labels, a, b = {}, {}, {}
    for v in range(n_videos):
        y = rng.integers(0, 8, n_frames)
        labels[f"v{v}"] = y
        a[f"v{v}"] = np.eye(8)[y] + rng.normal(0, s1, (n_frames, 8))
        b[f"v{v}"] = np.eye(8)[y] + rng.normal(0, s2, (n_frames, 8))
    return SplitDataset("val", "expr", labels, {"face": a, "audio": b})


def test_smoothing_raises_f1_and_k_sweep_finds_run_length():
    """Bound: the selected k lies within L +- L/3 (odd grid 1..61), and smoothing adds > 0.2 macro F1."""
    ds = runs_dataset()
    base = PostConfig("expr", ("face",))
    res = sweep(ds, base, "k", list(range(1, 62, 2)))
    raw = evaluate(ds, base).score
    assert res.table.loc[res.table.k == 1, "f1"].item() == pytest.approx(raw)
    assert res.best_score > raw + 0.2
    assert RUN - RUN / 3 <= res.best_value <= RUN + RUN / 3
    assert isinstance(res.table, pd.DataFrame) and list(res.table.columns) == ["k", "f1", "accuracy"]
    assert res.best_config(base).k == res.best_value


def test_blend_beats_each_modality_and_sweep_finds_analytic_w():
    s1, s2 = 1.0, 2.0
    w_star = s2**2 / (s1**2 + s2**2)  # 0.8
    ds = blend_dataset(s1=s1, s2=s2)
    base = PostConfig("expr", ("face", "audio"))
    grid = [round(w, 2) for w in np.linspace(0, 1, 21)]
    res = sweep(ds, base, "w", grid)
    face_only = res.table.loc[res.table.w == 1.0, "f1"].item()
    audio_only = res.table.loc[res.table.w == 0.0, "f1"].item()
    assert res.best_score > face_only + 0.02 and res.best_score > audio_only + 0.1
    assert abs(res.best_value - w_star) <= 0.1


def test_threshold_sweep_prefers_filtering_when_pretrained_is_good():
    rng = np.random.default_rng(3)
    labels, head, pre = {}, {}, {}
    inverse = np.argsort(AFFECTNET8_TO_AFFWILD2)
    for v in range(6):
        y = rng.integers(0, 8, 300)
        labels[f"v{v}"] = y
        head[f"v{v}"] = softmax(np.eye(8)[y] + rng.normal(0, 1.5, (300, 8)))
        conf = rng.random(300) < 0.5  # half the frames: pre-trained model confident and right
        q = softmax(rng.normal(0, 0.3, (300, 8)))
        q[conf] = 0.01
        q[conf, inverse[y[conf]]] = 0.93
        pre[f"v{v}"] = q
    ds = SplitDataset("val", "expr", labels, {"face": head, "pretrained": pre})
    res = sweep(ds, PostConfig("expr", ("face",)), "t", [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0])
    assert 0.5 <= res.best_value <= 0.9
    assert res.best_score > res.table.loc[res.table.t == 1.0, "f1"].item() + 0.1  # t = 1 never filters


def test_selection_refuses_train_and_test_but_evaluation_works():
    for split in ("test", "train"):
        ds = runs_dataset(split=split, n_videos=2, n_frames=60)
        with pytest.raises(SelectionOnTestError):
            sweep(ds, PostConfig("expr", ("face",)), "k", [1, 3])
        with pytest.raises(SelectionOnTestError):
            sweep_many(ds, {"a": PostConfig("expr", ("face",))}, "k", [1, 3])
        assert evaluate(ds, PostConfig("expr", ("face",), k=15)).split == split
    with pytest.raises(ValueError):
        runs_dataset(split="validation", n_videos=1, n_frames=15)


def test_dataset_consistency_checks():
    y = {"a": np.zeros(5, dtype=int)}
    with pytest.raises(ValueError):
        SplitDataset("val", "expr", y, {"face": {"a": np.zeros((4, 8))}})
    with pytest.raises(ValueError):
        SplitDataset("val", "expr", y, {"face": {"b": np.zeros((5, 8))}})


def test_emi_w_sweep_and_ah_k_sweep():
    rng = np.random.default_rng(0)
    y = {f"v{i}": rng.random(6) for i in range(200)}
    a = {v: t + rng.normal(0, 0.3, 6) for v, t in y.items()}
    b = {v: t + rng.normal(0, 0.3, 6) for v, t in y.items()}
    res = sweep(SplitDataset("val", "emi", y, {"a": a, "b": b}), PostConfig("emi", ("a", "b")), "w", [0, 0.5, 1])
    assert res.metric == "pearson_r" and res.best_value == 0.5  # equal noise: equal weights

    labels, post = {}, {}
    for v in range(10):
        t = np.repeat(rng.integers(0, 2, 20), RUN)
        labels[f"v{v}"] = t
        post[f"v{v}"] = np.clip(t * 0.6 + 0.2 + rng.normal(0, 0.3, t.size), 0, 1)
    res = sweep(SplitDataset("val", "ah", labels, {"text": post}), PostConfig("ah", ("text",)), "k", [1, 5, 9, 15])
    assert res.best_value > 1 and "video_f1" in res.table.columns


def test_plots_written(tmp_path):
    ds = runs_dataset(n_videos=4, n_frames=300)
    configs = {
        "face": PostConfig("expr", ("face",)),
        "face, gaussian": PostConfig("expr", ("face",), smoothing="gaussian"),
    }
    results = sweep_many(ds, configs, "k", [1, 5, 9, 15, 21])
    out = plot_sweep(results, tmp_path / "fig" / "f1_vs_k.png", title="EXPR, validation")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    single = plot_sweep(results["face"], tmp_path / "single.png")
    assert single.stat().st_size > 1000
    csv = results["face"].save_table(tmp_path / "k.csv")
    assert pd.read_csv(csv).shape == (5, 3)
    assert not list(tmp_path.glob("**/.*tmp*"))
    with pytest.raises(ValueError):
        plot_sweep({}, tmp_path / "x.png")
    assert isinstance(results["face"], SweepResult)
