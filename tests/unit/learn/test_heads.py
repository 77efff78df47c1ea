"""MLP heads: known-answer training, determinism, persistence; AH video classifier."""

import json
import logging

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr

from affectflow.evaluate.metrics import emi_scores, expr_macro_f1
from affectflow.learn.heads import (
    MLPHead,
    TrainConfig,
    ah_pos_weight,
    class_weights_inverse_frequency,
    early_fusion,
    emi_emotion_weights,
    load_head,
    save_head,
    sidecar_path,
    train_ah_head,
    train_emi_head,
    train_expr_head,
    weighted_pearson_loss,
)
from affectflow.learn.video_classifier import (
    VideoAHClassifier,
    apply_video_filter,
    fit_video_ah_classifier,
    mean_features,
    video_has_ah,
)

CPU = dict(device="cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny matrices: one thread is fastest and immune to other processes' load
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def expr_data(n, seed, d=16):
    """8 Gaussian classes in d dims; a linear head separates them well."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(123).normal(0, 2.0, size=(8, d))
    y = rng.integers(0, 8, n)
    x = means[y] + rng.normal(size=(n, d))
    return x.astype(np.float32), y


def emi_data(n, seed, d=32):
    """Six intensities in (0, 1) = sigmoid of a linear map of the features plus small noise."""
    rng = np.random.default_rng(seed)
    b = np.random.default_rng(7).normal(size=(d, 6)) / np.sqrt(d)
    x = rng.normal(size=(n, d)).astype(np.float32)
    z = 2.0 * x @ b + rng.normal(0, 0.3, size=(n, 6))
    return x, (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


# ----------------------------------------------------------------- helpers


def test_mlp_head_shapes():
    h = MLPHead(1280, hidden=128, out_dim=8, dropout=0.1)
    assert h(torch.zeros(3, 1280)).shape == (3, 8)
    assert sum(p.numel() for p in h.parameters()) == 1280 * 128 + 128 + 128 * 8 + 8  # paper: 1280 -> 128 -> 8
    assert MLPHead(4, hidden=0, out_dim=2)(torch.zeros(1, 4)).shape == (1, 2)


def test_class_and_emotion_weights():
    w = class_weights_inverse_frequency(np.array([0, 0, 0, 1, -1, 7]))
    assert w[0] == pytest.approx(5 / (3 * 3)) and w[1] == pytest.approx(5 / 3) and w[2] == 0
    assert ah_pos_weight(np.array([0, 0, 0, 1])) == 3.0
    y = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.7]])  # emotion 0 dominant twice, emotion 1 once
    np.testing.assert_allclose(emi_emotion_weights(y), [1 / 3, 2 / 3], rtol=1e-6)
    np.testing.assert_allclose(emi_emotion_weights(y, "mass"), np.array([1 / 1.8, 1 / 1.0]) / (1 / 1.8 + 1), rtol=1e-5)


def test_weighted_pearson_loss_matches_scipy():
    rng = np.random.default_rng(0)
    p, t = rng.random((50, 6)), rng.random((50, 6))
    w = np.array([0.1, 0.2, 0.3, 0.1, 0.2, 0.1])
    ref = 1 - sum(w[i] * pearsonr(p[:, i], t[:, i])[0] for i in range(6))
    got = weighted_pearson_loss(torch.tensor(p), torch.tensor(t), torch.tensor(w))
    assert float(got) == pytest.approx(ref, abs=1e-6)


def test_early_fusion():
    m = early_fusion(np.ones((3, 2)), np.zeros((3, 4)))
    assert m.shape == (3, 6) and m.dtype == np.float32
    with pytest.raises(ValueError):
        early_fusion(np.ones((3, 2)), np.ones((2, 2)))


# ----------------------------------------------------------------- training


def test_emi_head_weighted_pearson_learns_linear_signal():
    """(c) a linear signal exists: held-out mean Pearson r must exceed 0.8 (noise ceiling ~0.98)."""
    x, y = emi_data(1500, seed=0)
    cfg = TrainConfig(epochs=40, lr=3e-3, batch_size=128, patience=10, seed=0, **CPU)
    head = train_emi_head(x[:1000], y[:1000], x[1000:1250], y[1000:1250], cfg)
    r = emi_scores(y[1250:], head.predict_proba(x[1250:]))["pearson_r"]
    assert r > 0.8
    pred = head.predict_proba(x[:5])
    assert pred.shape == (5, 6) and (pred > 0).all() and (pred < 1).all()  # six sigmoid outputs
    assert sum(head.extra["emotion_weights"]) == pytest.approx(1.0)


def test_expr_head_learns_and_logs(caplog):
    x, y = expr_data(3000, seed=1)
    y[::10] = -1  # unlabelled frames are ignored
    xv, yv = expr_data(600, seed=2)
    cfg = TrainConfig(epochs=8, batch_size=256, lr=3e-3, patience=3, seed=0, **CPU)
    with caplog.at_level(logging.INFO, logger="affectflow.learn"):
        head = train_expr_head(x, y, xv, yv, cfg)
    p = head.predict_proba(xv)
    assert p.shape == (600, 8)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert expr_macro_f1(yv, p) > 0.9
    assert head.best_metric == pytest.approx(max(h["val_f1"] for h in head.history))
    assert any("val f1" in r.getMessage() for r in caplog.records)


def test_early_stopping_restores_best():
    x, y = expr_data(400, seed=3)
    xv, yv = expr_data(200, seed=4)
    yv = np.random.default_rng(0).integers(0, 8, 200)  # unlearnable validation -> stops early
    cfg = TrainConfig(epochs=50, batch_size=64, patience=2, seed=0, **CPU)
    head = train_expr_head(x, y, xv, yv, cfg)
    assert len(head.history) < 50
    assert len(head.history) - head.best_epoch == 2
    assert expr_macro_f1(yv, head.predict_proba(xv)) == pytest.approx(head.best_metric)


def test_ah_head_learns():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2000, 8)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=2000) > 1.0).astype(np.int64)  # rare positive class
    cfg = TrainConfig(epochs=10, batch_size=128, lr=3e-3, seed=0, **CPU)
    head = train_ah_head(x[:1500], y[:1500], x[1500:], y[1500:], cfg)
    p = head.predict_proba(x[1500:])
    assert p.shape == (500,)
    assert head.best_metric > 0.7
    assert head.extra["pos_weight"] > 1


def test_ah_head_drops_frames_without_a_label():
    """-1 (frames past the end of a short label file) is never trained on or scored: the head is the one
    trained on the labelled frames alone."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(600, 8)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    cfg = TrainConfig(epochs=3, batch_size=64, lr=3e-3, seed=0, **CPU)
    unlabelled = np.zeros(600, bool)
    unlabelled[::7] = True
    y_missing = np.where(unlabelled, -1, y)
    x_odd = np.where(unlabelled[:, None], 1e3, x)  # what those frames hold must not matter
    a = train_ah_head(x_odd[:400], y_missing[:400], x_odd[400:], y_missing[400:], cfg)
    b = train_ah_head(x[:400][~unlabelled[:400]], y[:400][~unlabelled[:400]], x[400:][~unlabelled[400:]],
                      y[400:][~unlabelled[400:]], cfg)
    assert a.best_metric == b.best_metric and a.extra["pos_weight"] == b.extra["pos_weight"]
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))
    with pytest.raises(ValueError, match="AH labels must be 0 or 1"):
        train_ah_head(x[:10], np.full(10, 2), None, None, cfg)


def test_training_is_deterministic_and_leaves_global_rng_alone():
    """(e) same seed twice -> identical weights on CPU; another seed -> different."""
    x, y = expr_data(800, seed=6)
    xv, yv = expr_data(200, seed=7)
    cfg = TrainConfig(epochs=3, batch_size=64, dropout=0.2, seed=11, **CPU)
    torch.manual_seed(999)
    before = torch.rand(1)
    torch.manual_seed(999)
    a = train_expr_head(x, y, xv, yv, cfg)
    after = torch.rand(1)
    b = train_expr_head(x, y, xv, yv, cfg)
    c = train_expr_head(x, y, xv, yv, TrainConfig(epochs=3, batch_size=64, dropout=0.2, seed=12, **CPU))
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k])
    assert any(not torch.equal(v, c.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    assert torch.equal(before, after)  # caller's RNG stream untouched
    assert a.history == b.history
    assert not torch.are_deterministic_algorithms_enabled()


def test_save_load_roundtrip(tmp_path):
    x, y = emi_data(200, seed=8)
    head = train_emi_head(x[:150], y[:150], x[150:], y[150:], TrainConfig(epochs=2, batch_size=32, **CPU))
    pt, side = save_head(head, tmp_path / "heads" / "emi.pt")
    assert side == sidecar_path(pt) and side.name == "emi.pt.json"
    meta = json.loads(side.read_text())
    assert meta["in_dim"] == 32 and meta["out_dim"] == 6 and meta["task"] == "emi"
    back = load_head(pt)
    np.testing.assert_array_equal(back.predict_proba(x), head.predict_proba(x))
    assert back.config == head.config and back.history == head.history
    # a weights file that does not match its sidecar is refused
    torch.save({k: v * 0 for k, v in head.model.state_dict().items()}, pt)
    with pytest.raises(ValueError, match="sha256"):
        load_head(pt)


def test_bad_inputs():
    with pytest.raises(ValueError):
        TrainConfig(epochs=0)
    x, y = expr_data(10, seed=0)
    with pytest.raises(ValueError):
        train_expr_head(x, y[:5], config=TrainConfig(epochs=1, **CPU))
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        train_expr_head(x, y, config=TrainConfig(epochs=1, **CPU))
    with pytest.raises(ValueError):
        TrainConfig.from_dict({"epochs": 1, "bogus": 2})


# ------------------------------------------------------- AH video classifier


def test_video_classifier_separates_and_zeroes(tmp_path):
    """(g) synthetic text means separate AH videos from the others; rejected videos are zeroed."""
    rng = np.random.default_rng(0)
    d, n_videos = 12, 60
    direction = rng.normal(size=d)
    text, frames = {}, {}
    for i in range(n_videos):
        has = i % 2 == 0
        segs = rng.normal(size=(5, d)) + (1.5 if has else -1.5) * direction / np.linalg.norm(direction)
        text[f"v{i}"] = segs
        y = np.zeros(30, dtype=np.int64)
        if has:
            y[10:20] = 1
        frames[f"v{i}"] = y
    vids = sorted(text)
    target = video_has_ah(frames)
    xm = mean_features(text, vids)
    ym = np.array([target[v] for v in vids])
    clf = fit_video_ah_classifier(xm[:40], ym[:40])
    assert (clf.predict(xm[40:]) == ym[40:]).mean() == 1.0

    clf.save(tmp_path / "ah_video.json")
    back = VideoAHClassifier.load(tmp_path / "ah_video.json")
    np.testing.assert_array_equal(back.predict_proba(xm), clf.predict_proba(xm))

    keep = dict(zip(vids, clf.predict(xm).tolist(), strict=True))
    posts = {v: np.full(30, 0.7) for v in vids}
    filtered = apply_video_filter(posts, keep)
    for v in vids:
        assert (filtered[v] == 0).all() == (not keep[v])
    assert all((p == 0.7).all() for p in apply_video_filter(posts, keep, enabled=False).values())
    assert all((p == 0.7).all() for p in posts.values())  # inputs not modified
    with pytest.raises(ValueError):
        fit_video_ah_classifier(xm[:4], [1, 1, 1, 1])


def test_saved_head_bytes_do_not_depend_on_the_file_name(tmp_path):
    """Same weights, same bytes: the head's sha256 identifies it across runs and machines."""
    import hashlib

    from affectflow.learn.heads import TrainConfig, save_head, train_expr_head

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 8, 64)
    head = train_expr_head(x, y, config=TrainConfig(epochs=1))
    a, _ = save_head(head, tmp_path / "a" / "head.pt")
    b, _ = save_head(head, tmp_path / "b" / "other.pt")
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


def test_heads_train_on_the_cpu_unless_told_cuda(monkeypatch):
    """``train.device: auto`` is the CPU even where torch sees a GPU: only CPU training is bit-reproducible, and a
    cluster's learn jobs see no GPU, so auto on a GPU workstation gave other heads under the same key."""
    from affectflow.learn.heads import TrainConfig, training_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert training_device(TrainConfig()) == torch.device("cpu")
    assert training_device(TrainConfig(device="cpu")) == torch.device("cpu")
    assert training_device(TrainConfig(device="cuda")).type == "cuda"
