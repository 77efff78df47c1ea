"""Blending, temporal smoothing, confidence filtering and the post-processing pipeline."""

import numpy as np
import pytest

from affectflow.evaluate.metrics import EXPR_CLASSES, expr_macro_f1
from affectflow.fuse.postprocess import (
    AFFECTNET8_CLASSES,
    AFFECTNET8_TO_AFFWILD2,
    FER2013_CLASSES,
    FER2013_TO_AFFWILD2,
    PostConfig,
    blend,
    blend_many,
    confidence_filter,
    decide,
    map_posteriors,
    postprocess_video,
    predict_videos,
    smooth,
    smooth_videos,
    softmax,
)

# ------------------------------------------------------------------- blend


def test_blend_two_and_many():
    p1, p2 = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    np.testing.assert_allclose(blend(p1, p2, 0.7), [[0.7, 0.3]])
    np.testing.assert_allclose(blend(p1, p2, 1.0), p1)
    p3 = np.array([[0.5, 0.5]])
    np.testing.assert_allclose(blend_many([p1, p2, p3], [2, 1, 1]), [[0.625, 0.375]])  # weights normalised
    np.testing.assert_allclose(blend_many([p1, p2]), [[0.5, 0.5]])
    with pytest.raises(ValueError):
        blend(p1, p2, 1.5)
    with pytest.raises(ValueError):
        blend_many([p1, p2], [-1, 2])
    with pytest.raises(ValueError):
        blend_many([p1, np.zeros((2, 2))])


# ------------------------------------------------------------------ smooth


def test_box_smoothing_shrinking_window_known_values():
    x = np.array([0.0, 0.0, 3.0, 0.0, 0.0, 6.0])
    # k=3: window [i-1, i+1] clipped at the edges (mean over existing frames)
    np.testing.assert_allclose(smooth(x, 3), [0, 1, 1, 1, 2, 3])
    # reference implementation of the authors' ABAW code: np.mean(p[max(i-d,0):i+d+1])
    rng = np.random.default_rng(0)
    p = rng.random((50, 8))
    for d in (0, 2, 7):
        ref = np.stack([p[max(i - d, 0) : i + d + 1].mean(axis=0) for i in range(50)])
        np.testing.assert_allclose(smooth(p, 2 * d + 1), ref, rtol=1e-5)
    np.testing.assert_allclose(smooth(p, 1), p, rtol=1e-6)
    q = p / p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(smooth(q, 9).sum(axis=1), 1.0, rtol=1e-5)  # posteriors stay normalised
    # even k: k//2 frames before, (k-1)//2 after
    np.testing.assert_allclose(smooth(x, 2), [0, 0, 1.5, 1.5, 0, 3])
    # window longer than the video: every frame gets the video mean
    np.testing.assert_allclose(smooth(x, 101), np.full(6, 1.5))


def test_gaussian_and_median_smoothing():
    x = np.array([0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0])
    g = smooth(x, 5, "gaussian", sigma=1.0)
    w = np.exp(-np.array([4, 1, 0, 1, 4]) / 2.0)
    assert g[3] == pytest.approx(9 * w[2] / w.sum(), rel=1e-5)
    assert g[0] == pytest.approx(0.0)
    e = smooth(np.ones(7), 5, "gaussian")  # constant stays constant at the edges (renormalised)
    np.testing.assert_allclose(e, 1.0, rtol=1e-6)
    m = smooth(x, 3, "median")
    np.testing.assert_allclose(m, 0.0)  # a one-frame spike is removed
    np.testing.assert_allclose(smooth(np.array([1.0, 5.0, 9.0]), 3, "median"), [3, 5, 7])  # shrinking window
    with pytest.raises(ValueError):
        smooth(x, 0)
    with pytest.raises(ValueError):
        smooth(x, 3, "bogus")  # type: ignore[arg-type]


def test_smoothing_never_crosses_videos():
    a, b = np.zeros((5, 2)), np.ones((5, 2))
    out = smooth_videos({"a": a, "b": b}, 7)
    np.testing.assert_array_equal(out["a"], 0)
    np.testing.assert_array_equal(out["b"], 1)


# ------------------------------------------------------- confidence filter


def test_class_mappings_send_names_to_affwild2():
    aliases = {"Contempt": "Other", "angry": "Anger", "happy": "Happiness", "sad": "Sadness"}
    for names, mapping in ((AFFECTNET8_CLASSES, AFFECTNET8_TO_AFFWILD2), (FER2013_CLASSES, FER2013_TO_AFFWILD2)):
        for src, tgt in zip(names, mapping, strict=True):
            assert EXPR_CLASSES[tgt] == aliases.get(src, src.capitalize())


def test_map_posteriors():
    q = np.zeros((1, 8))
    q[0, 1] = 0.6  # Contempt -> Other
    q[0, 5] = 0.4  # Neutral
    m = map_posteriors(q, AFFECTNET8_TO_AFFWILD2)
    assert m[0, 7] == pytest.approx(0.6) and m[0, 0] == pytest.approx(0.4)


def test_confident_pretrained_beats_bad_head():
    """(d) a perfect pre-trained posterior above t wins over a head that is always wrong."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 8, 400)
    inverse = np.argsort(AFFECTNET8_TO_AFFWILD2)  # Aff-Wild2 class -> AffectNet index
    pre = np.full((400, 8), 0.02)
    pre[np.arange(400), inverse[y]] = 0.86  # perfect and confident (max 0.86 > t)
    head = np.eye(8)[(y + 1) % 8]  # always wrong
    assert expr_macro_f1(y, head) == 0.0
    res = confidence_filter(head, pre, t=0.7)
    assert res.replaced.all()
    assert expr_macro_f1(y, res.posteriors) == 1.0
    # below the threshold the head keeps its (wrong) decision; t=None disables
    assert not confidence_filter(head, pre, t=0.9).replaced.any()
    np.testing.assert_array_equal(confidence_filter(head, pre, t=None).posteriors, head)
    mapped = confidence_filter(head, pre, t=0.7, mode="mapped").posteriors
    np.testing.assert_allclose(mapped.sum(axis=1), 1.0, rtol=1e-5)
    assert expr_macro_f1(y, mapped) == 1.0
    with pytest.raises(ValueError, match="logits"):
        confidence_filter(head, np.log(pre) * 3, t=0.7)


def test_fer2013_mapping_in_filter():
    y = np.array([0, 1, 4])  # Neutral, Anger, Happiness
    fer = np.zeros((3, 7))
    fer[0, 6] = fer[1, 0] = fer[2, 3] = 1.0
    out = confidence_filter(np.full((3, 8), 1 / 8), fer, 0.5, FER2013_TO_AFFWILD2).posteriors
    assert out.argmax(axis=1).tolist() == y.tolist()


def test_filter_then_smooth_order():
    """A confident frame is replaced first, then smoothing spreads it to its neighbours."""
    head = np.tile(np.eye(8)[0], (5, 1))  # the head says Neutral everywhere
    pre = np.full((5, 8), 0.3 / 7)
    pre[:, 5] = 0.7  # AffectNet Neutral -> Aff-Wild2 0 for most frames (not confident)
    pre[2] = np.full(8, 0.05 / 7)
    pre[2, 4] = 0.95  # frame 2: confident Happiness (Aff-Wild2 4)
    cfg = PostConfig("expr", ("face",), t=0.9, k=3)
    p = postprocess_video({"face": head, "pretrained": pre}, cfg)
    # smoothing the one-hot with k=3: frames 1..3 get 1/3 of Happiness
    np.testing.assert_allclose(p[:, 4], [0, 1 / 3, 1 / 3, 1 / 3, 0], atol=1e-6)
    assert decide(p, cfg).tolist() == [0, 0, 0, 0, 0]


# ----------------------------------------------------------------- pipeline


def test_post_config_validation_and_params():
    cfg = PostConfig("expr", ("face", "audio"))
    assert cfg.with_param("w", 0.3).weights == (0.3, 0.7)
    assert cfg.with_param("k", 5).k == 5
    assert cfg.with_param("t", 0.8).needed_sources == ("face", "audio", "pretrained")
    with pytest.raises(ValueError):
        PostConfig("expr", ("face",)).with_param("w", 0.5)
    with pytest.raises(ValueError):
        PostConfig("emi", ("a",), k=5)
    with pytest.raises(ValueError):
        PostConfig("ah", ("a",), t=0.5)
    with pytest.raises(ValueError):
        PostConfig("expr", ("a", "b"), weights=(1.0,))


def test_predict_videos_ah_video_filter_and_emi():
    posts = {"text": {"v1": np.array([0.9, 0.8, 0.2]), "v2": np.array([0.9, 0.9, 0.9])}}
    cfg = PostConfig("ah", ("text",), video_filter=True)
    out = predict_videos(posts, cfg, {"v1": 1, "v2": 0})
    assert out["v1"].tolist() == [1, 1, 0] and out["v2"].tolist() == [0, 0, 0]
    with pytest.raises(ValueError):
        predict_videos(posts, cfg)
    emi = {"a": {"x": np.full(6, 0.2)}, "b": {"x": np.full(6, 0.6)}}
    got = predict_videos(emi, PostConfig("emi", ("a", "b"), weights=(0.5, 0.5)))
    np.testing.assert_allclose(got["x"], 0.4, rtol=1e-6)


def test_softmax():
    p = softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]]))
    np.testing.assert_allclose(p, [[0.5, 0.5], [0.25, 0.75]], rtol=1e-6)
