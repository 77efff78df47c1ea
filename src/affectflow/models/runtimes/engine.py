"""Which engine, precision and batch size a face model runs with on a device, chosen before anything is loaded.

``engine="auto"`` is torch where torch sees a CUDA GPU (it runs the ONNX file's weights with
pre-processing on the card) and onnxruntime on the CPU (the fastest there); asking for CUDA where
neither runtime can use it is a :class:`~affectflow.core.device.DeviceError` naming both causes,
never a silent CPU run. ``batch_size="auto"`` is what the batch sweep measured best for the engine
on that kind of device (docs/performance.md). These choices live apart from the loaders so that a
stage can check its options (and the workflow plan them) without importing a runtime.
"""

from __future__ import annotations

import operator

from affectflow.core.device import DeviceError, is_cuda, ort_providers
from affectflow.models.runtimes.quantise import INT8
from affectflow.models.runtimes.torch_runtime import PRECISIONS as TORCH_PRECISIONS

AUTO = "auto"
#: the engines of EmotiEffLib models: onnxruntime; plain torch from the ONNX file; EmotiEffLib's pickled .pt
EMOTIEFFLIB_ENGINES = ("onnx", "torch", "timm")
ENGINES = (AUTO, *EMOTIEFFLIB_ENGINES)
#: what a face model can run in: fp32, fp16, or int8 (onnxruntime engine only)
PRECISIONS = (*TORCH_PRECISIONS, INT8)

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
    """The engine ``engine="auto"`` means for ``device``: torch where torch sees a GPU, onnxruntime otherwise.

    ``device="cuda"`` where torch sees no GPU falls back to onnxruntime only when
    it has a CUDA provider (:func:`affectflow.core.device.ort_providers` decides);
    where neither runtime can use CUDA it raises
    :class:`~affectflow.core.device.DeviceError` naming why for each. Other
    engines are returned as they are.
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
    try:
        ort_providers(device)
    except DeviceError as e:
        if not is_cuda(device):
            raise  # not a device at all: that error says so
        import onnxruntime as ort

        why = ("a CPU-only build" if torch.version.cuda is None
               else f"built for CUDA {torch.version.cuda}, but no GPU or driver is visible")
        raise DeviceError(
            f"device={device!r} with engine 'auto', but neither runtime here can use CUDA: torch "
            f"{torch.__version__} sees no CUDA device ({why}), and onnxruntime {ort.__version__} has no "
            f"CUDAExecutionProvider (available: {', '.join(ort.get_available_providers())}); "
            f"use device 'auto' or 'cpu'") from e
    return "onnx"


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
