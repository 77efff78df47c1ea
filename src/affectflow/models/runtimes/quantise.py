"""int8 copies of a face model's ONNX graph, made with onnxruntime's own quantisation tools.

:func:`quantise_int8` is to ``precision="int8"`` what
:func:`affectflow.models.runtimes.onnx_graph.as_float16` is to ``"fp16"``: it takes the float32 graph
*after* the embedding output was added and returns a graph with the same inputs and outputs, all
still float32, whose convolutions and matrix products run on int8 weights. Two methods, chosen by
whether real calibration crops are given (measured in ``benchmarks/quantise.py``, figures and the
reasoning in docs/performance.md, section "int8 on the CPU"):

- no ``calibration`` (the default, what ``load_onnx`` gets): **dynamic** quantisation
  (``quantize_dynamic``): Conv and MatMul weights stored as uint8, activations quantised at run time,
  so no data is needed and nothing depends on a calibration set. uint8 weights, because onnxruntime's
  CPU ``ConvInteger`` with int8 weights measured 2-7x slower than with uint8, for the same agreement.
  It stays closest to float32 of the methods tried (FER2013 mini-Xception, real weights: embedding
  cosine 0.998, same top class on 82 of 83 demo face crops) but is slower than float32 on the CPU
  (0.4-0.95x): its gain is a 2-4x smaller graph. Its activation ranges are taken per batch, so at
  batch > 1 a crop's output depends on the crops beside it; at batch 1 (the onnx engine's CPU batch)
  it does not.
- ``calibration`` given (preprocessed real face crops): **static QDQ** quantisation
  (``quantize_static``): int8 weights per output channel, uint8 activations with ranges from the
  calibration crops (MinMax), fused by onnxruntime into QLinearConv/QLinearMatMul. This is the one
  that can be faster: MobileViT 1.2-1.7x, EfficientNet-B0 0.94-1.14x, MobileFaceNet and the
  mini-Xception slower. It must be real faces: ranges from noise or smooth random images gave
  embedding cosine 0.96 / 0.89 on the real-weight model, against 0.996 from demo crops.

In both, the layer that makes the logits (the last Conv/Gemm/MatMul in graph order: EmotiEffLib's
classifier Gemm, the mini-Xception's final Conv) stays float32: one small layer, free to keep
(measured: logits cosine changes by < 0.001 either way; the error comes from the backbone).
Quantising is deterministic: the same graph (and calibration array) gives the same bytes.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from affectflow.core.errors import AffectflowError

INT8 = "int8"  # the precision this module makes (onnxruntime engine only)
WEIGHT_OPS = ("Conv", "MatMul", "Gemm")  # the ops whose weights int8 is about
DYNAMIC_OPS = ("Conv", "MatMul")  # onnxruntime's dynamic (integer-op) quantiser has no Gemm
MIN_QDQ_OPSET = 13  # per-channel DequantizeLinear needs the ``axis`` attribute (opset 13)
CALIBRATION_BATCH = 8
GEMM_AS_MATMUL = "_MatMul"  # the suffix onnxruntime's quantiser gives a Gemm it rewrites as MatMul + Add

log = logging.getLogger(__name__)


class QuantisationError(AffectflowError, RuntimeError):
    """A graph cannot be quantised to int8 (not ONNX, nothing to quantise, bad calibration, a tool failure)."""


def quantise_int8(graph: bytes, *, what: str = "model", calibration: np.ndarray | None = None,
                  keep_classifier_float: bool = True) -> bytes:
    """The serialized float32 ONNX ``graph`` with int8 weights: same input and output names, float32 outputs.

    ``calibration``: preprocessed real face crops shaped like the graph's input, (N, C, H, W) float32,
    for static QDQ quantisation; without it, dynamic quantisation (see the module docstring for why
    and what each costs). ``keep_classifier_float``: leave the last Conv/Gemm/MatMul in float32 (the
    default; False is there to measure what that is worth). ``what`` names the model in errors.
    Raises :class:`QuantisationError`.
    """
    import onnx

    if not isinstance(graph, bytes | bytearray | memoryview):
        raise QuantisationError(f"{what}: expected the serialized ONNX graph as bytes, got {type(graph).__name__}")
    model = _parse(bytes(graph), what)
    keep = _last_weight_node(model, what)
    keep = keep if keep_classifier_float else None
    before = _io_signature(model)
    try:
        with _quiet_quantiser(), tempfile.TemporaryDirectory(prefix="affectflow-int8-") as tmp:
            out = Path(tmp) / "int8.onnx"
            if calibration is None:
                _dynamic(model, out, keep)
            else:
                _static(model, out, keep, _check_calibration(calibration, model, what))
            quantised = onnx.load_model(str(out))
    except QuantisationError:
        raise
    except Exception as e:  # anything onnxruntime's tools raise: name the model and the method
        method = "dynamic" if calibration is None else "static QDQ"
        raise QuantisationError(f"{what}: {method} int8 quantisation failed: {type(e).__name__}: {e}") from e
    _check_result(quantised, before, what)
    if keep and not _kept_float(quantised, keep):
        log.warning("%s: onnxruntime's quantiser did not leave %r in float32 as asked (quantised it anyway)",
                    what, keep)
    data = quantised.SerializeToString()
    _check_loads(data, what)
    return data


# ---------------------------------------------------------------- the two methods
def _dynamic(model: Any, out: Path, keep: str | None) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The dynamic quantiser first rewrites every Gemm as MatMul (named <gemm>_MatMul) + Add, then
    # quantises the MatMuls: a Gemm is kept float by excluding that new name.
    quantize_dynamic(model, out, op_types_to_quantize=list(DYNAMIC_OPS), per_channel=False,
                     weight_type=QuantType.QUInt8, nodes_to_exclude=[keep, keep + GEMM_AS_MATMUL] if keep else None)


def _static(model: Any, out: Path, keep: str | None, calibration: np.ndarray) -> None:
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Crops(CalibrationDataReader):
        """The calibration crops, a few at a time."""

        def __init__(self, x: np.ndarray, input_name: str) -> None:
            self._batches = iter([{input_name: x[i:i + CALIBRATION_BATCH]}
                                  for i in range(0, len(x), CALIBRATION_BATCH)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    if _opset(model) < MIN_QDQ_OPSET:  # EmotiEffLib's files are opset 11
        model = version_converter.convert_version(model, MIN_QDQ_OPSET)
    reader = Crops(calibration, _graph_inputs(model)[0].name)
    # Only the weight ops get Q/DQ pairs: Pad/MaxPool would be calibrated too otherwise, and the
    # mini-Xception pads with -inf before its max-pools (a range of -inf gives a NaN scale).
    quantize_static(model, out, reader, quant_format=QuantFormat.QDQ, op_types_to_quantize=list(WEIGHT_OPS),
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    nodes_to_exclude=[keep] if keep else None, calibrate_method=CalibrationMethod.MinMax,
                    calibration_providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------- checks
def _parse(graph: bytes, what: str) -> Any:
    import onnx

    try:
        model = onnx.load_model_from_string(graph)
    except Exception as e:  # a protobuf DecodeError
        raise QuantisationError(f"{what}: not a readable ONNX model: {type(e).__name__}: {e}") from e
    if not model.graph.node or not _graph_inputs(model) or not model.graph.output:
        raise QuantisationError(f"{what}: not an ONNX model with nodes, inputs and outputs "
                                f"({len(model.graph.node)} nodes, {len(model.graph.output)} outputs)")
    return model


def _opset(model: Any) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _graph_inputs(model: Any) -> list[Any]:
    """The real inputs (older exporters list the initializers among the inputs too)."""
    inits = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def _io_signature(model: Any) -> list[tuple[str, str, int]]:
    return ([("input", i.name, i.type.tensor_type.elem_type) for i in _graph_inputs(model)]
            + [("output", o.name, o.type.tensor_type.elem_type) for o in model.graph.output])


def _last_weight_node(model: Any, what: str) -> str | None:
    """The name of the node kept in float32: the last Conv/Gemm/MatMul (nodes are in topological order).

    Unnamed nodes cannot be excluded by name; they get a name here (the copy is ours to change).
    """
    weight_nodes = [n for n in model.graph.node if n.op_type in WEIGHT_OPS]
    if not weight_nodes:
        raise QuantisationError(f"{what}: the graph has no Conv, Gemm or MatMul node: nothing to quantise to int8")
    if len(weight_nodes) == 1:
        return None  # the classifier is the only weight op: quantise it rather than nothing
    last = weight_nodes[-1]
    if not last.name:
        last.name = "affectflow_float_classifier"
    return str(last.name)


def _check_calibration(calibration: np.ndarray, model: Any, what: str) -> np.ndarray:
    x = np.asarray(calibration)
    dims = _graph_inputs(model)[0].type.tensor_type.shape.dim
    want = [d.dim_value if d.dim_value else None for d in dims]
    if x.ndim != len(want) or any(w is not None and w != s for w, s in zip(want[1:], x.shape[1:], strict=True)):
        raise QuantisationError(f"{what}: calibration crops shaped {x.shape} do not fit the graph's input {want}; "
                                f"pass preprocessed crops as the model sees them (N, C, H, W)")
    if len(x) == 0 or not np.issubdtype(x.dtype, np.floating) or not np.isfinite(x).all():
        raise QuantisationError(f"{what}: calibration needs at least one preprocessed crop of finite floats "
                                f"(got {len(x)} of {x.dtype})")
    return np.ascontiguousarray(x, np.float32)


def _check_result(quantised: Any, before: list[tuple[str, str, int]], what: str) -> None:
    """Same inputs and outputs (names and element types) as before, and every quantisation scale finite."""
    from onnx import numpy_helper

    after = _io_signature(quantised)
    if after != before:
        raise QuantisationError(f"{what}: int8 graph changed the inputs/outputs from {before} to {after}")
    inits = {t.name: t for t in quantised.graph.initializer}
    for node in quantised.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and node.input[1] in inits:
            scale = numpy_helper.to_array(inits[node.input[1]])
            if not (np.isfinite(scale).all() and (scale > 0).all()):
                raise QuantisationError(f"{what}: quantisation scale {node.input[1]!r} is not a finite positive "
                                        f"number (calibration saw infinite or constant values there)")


def _kept_float(quantised: Any, keep: str) -> bool:
    """Whether node ``keep`` is still a float op (by its name, or the MatMul a Gemm was rewritten to)."""
    names = {n.name: n.op_type for n in quantised.graph.node}
    return any(names.get(n) in WEIGHT_OPS for n in (keep, keep + GEMM_AS_MATMUL))


def _check_loads(data: bytes, what: str) -> None:
    """onnxruntime accepts the graph (checked here, without graph optimisations, so the error names ``what``)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        ort.InferenceSession(data, sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise QuantisationError(f"{what}: onnxruntime rejects the int8 graph: {type(e).__name__}: {e}") from e


@contextlib.contextmanager
def _quiet_quantiser() -> Iterator[None]:
    """Silence the quantiser's warnings for the call: it logs through the root logger (advice to run its
    pre-processing, every tensor it cannot quantise with the whole type proto), which says nothing a user
    can act on."""
    root = logging.getLogger()

    def drop(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "onnxruntime" not in record.pathname

    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)
