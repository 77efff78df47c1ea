"""(f) Challenge metrics against scikit-learn / scipy on random data."""

import warnings

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.metrics import accuracy_score, f1_score

from affectflow.evaluate.metrics import (
    EMI_EMOTIONS,
    EXPR_CLASSES,
    ConstantInputWarning,
    MetricReport,
    ah_macro_f1,
    ah_report,
    ah_scores,
    ah_video_f1,
    emi_report,
    emi_scores,
    expr_report,
    expr_scores,
    pearson_r,
)


@pytest.mark.parametrize("seed", range(5))
def test_expr_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = 2000
    y = rng.integers(-1, 8, n)
    p = rng.random((n, 8)) ** 3
    valid = y != -1
    pred = p.argmax(axis=1)
    s = expr_scores(y, p)
    ref = f1_score(y[valid], pred[valid], labels=list(range(8)), average="macro", zero_division=0)
    assert s["f1"] == pytest.approx(ref, abs=1e-12)
    assert s["accuracy"] == pytest.approx(accuracy_score(y[valid], pred[valid]))
    assert s["n"] == valid.sum()
    assert list(s["per_class_f1"]) == list(EXPR_CLASSES)


def test_expr_absent_class_counts_as_zero():
    y = np.array([0, 0, 1, 1, -1])
    pred = np.array([0, 0, 1, 1, 5])  # the -1 frame is ignored
    s = expr_scores(y, pred)
    assert s["f1"] == pytest.approx(2 / 8)  # two perfect classes, six absent ones score 0
    assert s["accuracy"] == 1.0
    with pytest.raises(ValueError):
        expr_scores([-1, -1], [0, 1])
    with pytest.raises(ValueError):
        expr_scores([0, 1], [0, 8])


def test_datasets_constants_agree():
    datasets = pytest.importorskip("affectflow.data.adapters")
    assert datasets.EXPR_CLASSES is EXPR_CLASSES
    assert datasets.EMI_EMOTIONS is EMI_EMOTIONS


@pytest.mark.parametrize("seed", range(5))
def test_emi_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    y = rng.random((100, 6))
    p = 0.5 * y + rng.random((100, 6))
    s = emi_scores(y, p)
    ref = [pearsonr(y[:, i], p[:, i])[0] for i in range(6)]
    np.testing.assert_allclose(list(s["per_emotion_r"].values()), ref, atol=1e-12)
    assert s["pearson_r"] == pytest.approx(np.mean(ref), abs=1e-12)
    assert list(s["per_emotion_r"]) == list(EMI_EMOTIONS)


def test_constant_prediction_gives_zero_with_warning():
    y = np.random.default_rng(0).random((20, 6))
    p = y.copy()
    p[:, 2] = 0.3
    with pytest.warns(ConstantInputWarning):
        s = emi_scores(y, p)
    assert s["per_emotion_r"]["Determination"] == 0.0
    assert s["pearson_r"] == pytest.approx(5 / 6)
    assert not np.isnan(s["pearson_r"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pearson_r([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        pearson_r([1.0], [1.0])


def _organisers_ap(gt, probs_cl_1):
    """LIVIAETS/bah-dataset ``bah_metrics.average_precision``, loop for loop: precision and recall at the
    thresholds 0, 0.001, ..., 0.999 and ``sklearn.metrics.auc`` of that curve."""
    from sklearn.metrics import auc

    gt, probs_cl_1 = np.asarray(gt, dtype=float), np.asarray(probs_cl_1)
    n_pos = gt.sum().item()
    l_prec, l_rec = [], []
    for th in np.arange(0, 1, 0.001).tolist():
        preds = (probs_cl_1 >= th).astype(float)
        tp = np.sum(np.logical_and(preds == 1, gt == 1))
        fp = np.sum(np.logical_and(preds == 1, gt == 0))
        fn = np.sum(np.logical_and(preds == 0, gt == 1))
        assert tp + fn == n_pos
        l_prec.append((tp / (tp + fp)).item() if tp + fp > 0 else 0.0)
        l_rec.append((tp / (tp + fn)).item())
    return float(auc(np.array(l_rec), np.array(l_prec)))


@pytest.mark.parametrize("seed", range(4))
def test_ah_average_precision_is_the_organisers_figure_not_sklearns(seed):
    from sklearn.metrics import average_precision_score

    from affectflow.evaluate.metrics import ah_average_precision

    rng = np.random.default_rng(seed)
    y = (rng.random(500) < 0.25).astype(int)
    p = np.clip(0.3 * y + rng.random(500) * 0.7, 0, 1)
    p[:20] = np.round(p[:20], 3)  # scores that fall exactly on a threshold
    assert ah_average_precision(y, p) == pytest.approx(_organisers_ap(y, p), abs=1e-12)
    assert abs(ah_average_precision(y, p) - average_precision_score(y, p)) > 1e-4  # a different estimate


@pytest.mark.parametrize("seed", range(3))
def test_ah_matches_sklearn(seed):
    """Frame level as the BAH organisers score it: macro F1 over both classes, the A/H class's F1 and AP."""
    rng = np.random.default_rng(seed)
    t = {f"v{i}": (rng.random(rng.integers(5, 50)) < 0.2).astype(int) for i in range(30)}
    sc = {v: rng.random(len(y)) for v, y in t.items()}
    p = {v: (sc[v] >= 0.7).astype(int) for v in t}
    vids = sorted(t)
    yt = np.concatenate([t[v] for v in vids])
    yp = np.concatenate([p[v] for v in vids])
    assert ah_macro_f1(yt, yp) == pytest.approx(f1_score(yt, yp, average="macro"))
    vt = [int(t[v].any()) for v in vids]
    vp = [int(p[v].any()) for v in vids]
    assert ah_video_f1(t, p) == pytest.approx(f1_score(vt, vp, labels=[0, 1], average="macro", zero_division=0))
    s = ah_scores(t, p, sc)
    assert s["f1"] == pytest.approx(f1_score(yt, yp, average="macro")) and s["n_videos"] == 30
    assert s["f1_ah"] == pytest.approx(f1_score(yt, yp)) and s["f1"] != pytest.approx(s["f1_ah"])
    assert s["ap_ah"] == pytest.approx(_organisers_ap(yt, np.concatenate([sc[v] for v in vids])))
    assert "ap_ah" not in ah_scores(t, p)


def test_ah_frame_ignores_unlabelled_frames_in_every_score():
    """-1 frames leave the F1s, the AP and the video label alike."""
    t = {"a": np.array([1, 0, -1, -1]), "b": np.array([0, 0, 1])}
    sc = {"a": np.array([0.9, 0.2, 0.99, 0.01]), "b": np.array([0.1, 0.6, 0.3])}
    p = {v: (x >= 0.5).astype(int) for v, x in sc.items()}
    s = ah_scores(t, p, sc)
    yt, ys = np.array([1, 0, 0, 0, 1]), np.array([0.9, 0.2, 0.1, 0.6, 0.3])
    assert s["n"] == 5 and s["f1"] == pytest.approx(f1_score(yt, ys >= 0.5, average="macro"))
    assert s["ap_ah"] == pytest.approx(_organisers_ap(yt, ys))
    with pytest.raises(ValueError, match="scores"):
        ah_scores(t, p, {"a": sc["a"][:2], "b": sc["b"]})


def test_ah_no_positive_is_zero_not_nan():
    assert ah_macro_f1([0, 0, 0], [0, 0, 0]) == pytest.approx(0.5)  # no A/H anywhere: that class scores 0
    assert ah_macro_f1([0, 0, 0], [1, 1, 1]) == 0.0
    with pytest.raises(ValueError):
        ah_macro_f1([0, 2], [0, 1])


def test_report_json_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    r = expr_report(rng.integers(0, 8, 50), rng.integers(0, 8, 50), "val", {"k": 15, "w": np.float64(0.7)})
    back = MetricReport.load(r.save(tmp_path / "r" / "expr.json"))
    assert back == MetricReport.from_json(r.to_json())
    assert back.config["w"] == 0.7 and back.score == r.metrics["f1"] and back.main == "f1"
    e = emi_report(rng.random((10, 6)), rng.random((10, 6)), "val")
    assert MetricReport.from_json(e.to_json()).per_class.keys() == set(EMI_EMOTIONS)
    a = ah_report({"v": np.array([0, 1])}, {"v": np.array([1, 1])}, "test")
    assert a.metrics["video_f1"] == 0.5 and a.split == "test"  # one video, A/H: the no-A/H class scores 0
    assert a.per_class == {"no A/H": 0.0, "A/H": pytest.approx(2 / 3)} and a.main == "f1"
    with pytest.raises(ValueError):
        MetricReport("va", "val", {})


def test_ah_video_is_macro_f1_over_both_classes():
    from affectflow.evaluate.metrics import ah_video_report, ah_video_scores

    yt, yp = [1, 1, 0, 0, 0], [1, 0, 0, 0, 1]
    s = ah_video_scores(yt, yp)
    # A/H: precision 1/2, recall 1/2 -> 0.5; no A/H: precision 2/3, recall 2/3 -> 2/3
    assert s["f1"] == pytest.approx((0.5 + 2 / 3) / 2) == pytest.approx(f1_score(yt, yp, average="macro"))
    assert s["f1_ah"] == pytest.approx(0.5) and s["accuracy"] == pytest.approx(0.6)
    # a constant answer gets at most 0.5: the class it never says scores 0
    assert ah_video_scores(yt, [1] * 5)["f1"] == pytest.approx((2 * 0.4 / 1.4) / 2)
    r = ah_video_report(yt, yp, "val")
    assert (r.task, r.main, r.score, r.n) == ("ah_video", "f1", s["f1"], 5)
    assert r.per_class == {"no A/H": pytest.approx(2 / 3), "A/H": pytest.approx(0.5)}
    for bad in (([0, 2], [0, 1]), ([], []), ([0, 1], [0])):
        with pytest.raises(ValueError):
            ah_video_scores(*bad)


def test_ah_video_reports_the_ap_of_the_ah_class_beside_the_macro_f1():
    """As the BAH organisers' bah_metrics.py: macro F1 (mean of both classes' F1) and AP of class 1."""
    from affectflow.evaluate.metrics import ah_video_report, ah_video_scores

    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.1, 0.6, 0.8, 0.4, 0.9, 0.2])
    s = ah_video_scores(y, (p >= 0.5).astype(int), p)
    assert s["ap_ah"] == pytest.approx(_organisers_ap(y, p))
    assert s["f1"] == pytest.approx(np.mean(list(s["per_class_f1"].values())))  # the mean of both classes
    assert "ap_ah" not in ah_video_scores(y, y)  # no scores: no AP
    assert "ap_ah" not in ah_video_scores(np.ones(3, int), np.ones(3, int), [0.2, 0.5, 0.9])  # one class: undefined
    report = ah_video_report(y, (p >= 0.5).astype(int), "val", scores=p)
    assert report.metrics["ap_ah"] == pytest.approx(s["ap_ah"]) and report.main == "f1"
