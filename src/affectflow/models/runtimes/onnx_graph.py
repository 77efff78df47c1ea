"""An EmotiEffLib ONNX graph made ready for onnxruntime: its classifier found, the embedding added as an output,
and a float16 copy.

EmotiEffLib's graphs end with the classifier ``Gemm``, whose input is the embedding. emotiefflib
removes that node and recomputes the logits in numpy; affectflow instead adds the Gemm's input as a
second graph output (:func:`with_embedding_output`), so one session run gives logits and embedding.
:func:`classifier_of` checks the graph really ends that way (and gives the Gemm's weights, which the
torch engine and the checks against the registry use).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from affectflow.models.runtimes.errors import FaceModelError


@dataclass(frozen=True)
class Classifier:
    """The final Gemm: logits = embedding @ weight.T + bias."""

    weight: np.ndarray  # (C, D)
    bias: np.ndarray  # (C,)
    input_name: str  # the embedding tensor
    output_name: str  # the logits tensor


def classifier_of(model: Any) -> Classifier:
    """The last node of an EmotiEffLib ONNX graph, checked to be the classifier Gemm (as emotiefflib assumes)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    if not graph.node:
        raise FaceModelError("ONNX graph has no nodes")
    gemm = graph.node[-1]
    if gemm.op_type != "Gemm" or len(gemm.input) < 3:
        raise FaceModelError(f"the last ONNX node is {gemm.op_type} with {len(gemm.input)} inputs, "
                             f"not the classifier Gemm (embedding, weight, bias) that EmotiEffLib graphs end with")
    outputs = [o.name for o in graph.output]
    if outputs != [gemm.output[0]]:
        raise FaceModelError(f"graph outputs {outputs} are not just the classifier Gemm's output {gemm.output[0]!r}")
    attrs = {a.name: helper.get_attribute_value(a) for a in gemm.attribute}
    if attrs.get("transA", 0) != 0 or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
        raise FaceModelError(f"classifier Gemm has unsupported attributes {attrs}")
    inits = {t.name: t for t in graph.initializer}
    missing = [n for n in gemm.input[1:3] if n not in inits]
    if missing:
        raise FaceModelError(f"classifier Gemm parameters {missing} are not graph initializers")
    w = numpy_helper.to_array(inits[gemm.input[1]]).astype(np.float32)
    b = numpy_helper.to_array(inits[gemm.input[2]]).astype(np.float32).reshape(-1)
    if attrs.get("transB", 0) == 0:
        w = w.T
    if w.ndim != 2 or b.shape != (w.shape[0],):
        raise FaceModelError(f"classifier Gemm weight {w.shape} / bias {b.shape} do not fit together")
    return Classifier(np.ascontiguousarray(w), b, gemm.input[0], gemm.output[0])


def with_embedding_output(model: Any, clf: Classifier) -> bytes:
    """The serialized graph with the Gemm's input (the embedding) added as a second output."""
    from onnx import TensorProto, helper

    batch = model.graph.output[0].type.tensor_type.shape.dim[0]
    batch_dim = batch.dim_param or (batch.dim_value if batch.dim_value else None)
    model.graph.output.append(
        helper.make_tensor_value_info(clf.input_name, TensorProto.FLOAT, [batch_dim, clf.weight.shape[1]]))
    return model.SerializeToString()


def as_float16(graph: bytes) -> bytes:
    """The graph with float16 weights and arithmetic, float32 inputs and outputs (casts at the edges).

    onnxruntime does not lower precision by itself; this is its own converter
    (``onnxruntime.transformers.float16``), applied after the embedding output
    is added so that it too comes back as float32.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(onnx.load_model_from_string(graph), keep_io_types=True).SerializeToString()
