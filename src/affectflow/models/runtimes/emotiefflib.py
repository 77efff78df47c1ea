"""What the EmotiEffLib engines share: the models' files, output layout, the runner base and the checks.

EmotiEffNet, MT-EmotiEffNet, MT-EmotiMobileFaceNet and MT-EmotiMobileViT are loaded the way
emotiefflib 1.1.1 loads them, but from a verified local file instead of an unchecked download, by
one of three engines: ``onnx`` (:mod:`affectflow.models.runtimes.emotiefflib_onnx`), ``torch`` (the
ONNX file's weights in the repository's plain-torch network) and ``timm`` (EmotiEffLib's pickled
``.pt``), the latter two in :mod:`affectflow.models.runtimes.emotiefflib_torch`. Each runner's
``run(crops)`` returns (embeddings (N, D), logits (N, C), valence/arousal (N, 2) or None), all
float32. This module holds what all three need, so that the engines agree on file names, output
splitting and the checks against the registry.

Details: docs/models.md, section "EmotiEffLib models".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from affectflow.models.catalogue import weights
from affectflow.models.catalogue.registry import ModelSpec, get
from affectflow.models.runtimes.errors import FaceModelError
from affectflow.models.runtimes.onnx_graph import Classifier, classifier_of
from affectflow.models.runtimes.preprocessing import Preprocessing, preprocessing

N_VA = 2  # valence, arousal at the end of a multi-task model's output

# git blob ids of models/affectnet_emotions/<name>.pt at EmotiEffLib commit f1df0e8
# (read with `git ls-tree -r HEAD models/affectnet_emotions` of the upstream repository).
TORCH_BLOBS = {
    "enet_b0_8_best_vgaf": "7219cfb037209b253ea8b81cf969e60a00e9181c",
    "enet_b0_8_best_afew": "9540c8beff661f1c2fca16de63b530cce24bb17d",
    "enet_b2_8": "eed81e6368877e89f8a99cfabadae7c3ddc3a949",
    "enet_b0_8_va_mtl": "b7223bd1ab092a1b5a42bc04a5f4fbfe4d9f8b9b",
    "mbf_va_mtl": "522bdabca7c655a7abde9cfca17e3dfcceadf9a0",
    "mobilevit_va_mtl": "d648cb1a20a5b1ab0af64192ec9be39e5cdd3961",
}


def is_emotiefflib(spec: ModelSpec) -> bool:
    """Whether ``spec`` is an EmotiEffLib model with a file to load (the registry names emotiefflib as its package)."""
    return spec.package.startswith("emotiefflib") and bool(spec.files)


# ---------------------------------------------------------------- files
def onnx_weight_file(name: str) -> weights.WeightFile:
    """The registry's one file of EmotiEffLib model ``name``: ``emotiefflib/<name>.onnx``."""
    (wf,) = get(name).files
    return wf


def torch_weight_file(name: str) -> weights.WeightFile:
    """The ``<name>.pt`` file next to the registry's ONNX file (same URL pattern, its own git blob id)."""
    onnx_wf = onnx_weight_file(name)
    if name not in TORCH_BLOBS:
        raise FaceModelError(f"{name}: no torch checkpoint of it is known")
    url = onnx_wf.url.replace(f"/onnx/{name}.onnx", f"/{name}.pt")
    return weights.WeightFile(f"emotiefflib/{name}.pt", url, "", git_sha1=TORCH_BLOBS[name])


def is_mtl(name: str) -> bool:
    """Whether ``name`` is a multi-task model (``*_va_mtl``): its outputs end with valence and arousal."""
    return "_mtl" in name


def split_outputs(name: str, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(logits, valence/arousal or None): multi-task models end with 2 valence/arousal outputs."""
    scores = np.asarray(scores, np.float32)
    if is_mtl(name):
        return np.ascontiguousarray(scores[:, :-N_VA]), np.ascontiguousarray(scores[:, -N_VA:])
    return scores, None


@dataclass
class EmotiEffLibRunner:
    """What the onnx and torch runners of an EmotiEffLib model share: identity, classes, pre-processing."""

    name: str
    weights_path: Path
    weights_sha256: str
    classes: tuple[str, ...]
    embedding_dim: int
    prep: Preprocessing
    batch_size: int
    device: str
    standin: bool = False  # set by affectflow.models.faces from the model's manifest

    @property
    def input_size(self) -> int:
        return self.prep.size

    @property
    def has_valence_arousal(self) -> bool:
        return is_mtl(self.name)

    def _empty(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        va = np.zeros((0, N_VA), np.float32) if is_mtl(self.name) else None
        return np.zeros((0, self.embedding_dim), np.float32), np.zeros((0, len(self.classes)), np.float32), va


def check_classes(spec: ModelSpec, n_out: int, dim: int) -> None:
    """The classifier's outputs and input width must be what the registry says: a file of another model (or
    another head) is refused at load time rather than giving outputs under the wrong class names."""
    want = len(spec.classes) + (N_VA if is_mtl(spec.name) else 0)
    if n_out != want:
        raise FaceModelError(f"{spec.name}: the classifier has {n_out} outputs, expected {want} "
                             f"({len(spec.classes)} classes{' + valence, arousal' if is_mtl(spec.name) else ''})")
    if spec.embedding_dim is not None and dim != spec.embedding_dim:
        raise FaceModelError(f"{spec.name}: embedding has {dim} dimensions, the registry says {spec.embedding_dim}")


def check_prep(spec: ModelSpec, prep: Preprocessing) -> None:
    """The registry's input size must be the one emotiefflib's rules give, or the two records disagree."""
    if spec.input_size is not None and spec.input_size != prep.size:
        raise FaceModelError(f"{spec.name}: registry input size {spec.input_size} != emotiefflib's {prep.size}")


def verified_graph(spec: ModelSpec, path: Path, wf: weights.WeightFile) -> tuple[Any, Classifier, str, Preprocessing]:
    """The parsed ONNX graph of the verified file ``path`` (the bytes parsed are the bytes just hashed), its
    classifier Gemm checked against ``spec``, the file's sha256 and the model's preprocessing: what both the
    onnx and the torch engine start from. Errors name the file."""
    import onnx

    data, sha = weights.read_verified(path, wf)
    prep = preprocessing(spec.name)
    check_prep(spec, prep)
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # a DecodeError from protobuf
        raise FaceModelError(f"{path}: not a readable ONNX model: {e}") from e
    try:
        clf = classifier_of(model)
        check_classes(spec, clf.weight.shape[0], clf.weight.shape[1])
    except FaceModelError as e:
        raise FaceModelError(f"{path}: {e}") from None
    return model, clf, sha, prep

