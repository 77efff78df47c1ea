"""EmotiEffLib models on onnxruntime (engine ``onnx``, upstream's ``EmotiEffLibRecognizerOnnx``).

:func:`load_onnx` runs the verified ``<name>.onnx`` in an onnxruntime session with the classifier
Gemm's input added as a second graph output (:mod:`affectflow.models.runtimes.onnx_graph`), so one
session run gives logits and embedding; crops are pre-processed on the host with ``cv2.resize``, as
upstream does. The session's providers come from :func:`affectflow.core.device.ort_providers`, the
one place that choice is made: ``device="cuda"`` where onnxruntime has no CUDA provider is a
:class:`~affectflow.core.device.DeviceError`, never a silent CPU run.

Details: docs/models.md, section "EmotiEffLib models".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affectflow.core.device import on_device, ort_providers, provider_device
from affectflow.models.catalogue import weights
from affectflow.models.catalogue.registry import ModelSpec
from affectflow.models.runtimes.emotiefflib import EmotiEffLibRunner, split_outputs, verified_graph
from affectflow.models.runtimes.errors import FaceModelError
from affectflow.models.runtimes.onnx_graph import Classifier, as_float16, with_embedding_output
from affectflow.models.runtimes.preprocessing import as_crop_list, preprocess
from affectflow.models.runtimes.quantise import INT8, quantise_int8
from affectflow.models.runtimes.torch_runtime import check_precision

log = logging.getLogger(__name__)


@dataclass
class OnnxEmotiEffLib(EmotiEffLibRunner):
    """An EmotiEffLib ONNX model in an onnxruntime session; ``run`` gives (embeddings, logits, VA)."""

    session: Any = None
    input_name: str = "input"
    classifier: Classifier | None = None
    fixed_batch: int | None = None
    engine: str = field(default="onnx", init=False)

    def run(self, crops: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        # onnxruntime's CUDA provider keeps its cuDNN and cuBLAS handles per thread: on the device's one thread
        return on_device(provider_device(self.device), self._run, crops)

    def _run(self, crops: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        items = as_crop_list(crops)
        if not items:
            return self._empty()
        assert self.classifier is not None
        step = self.fixed_batch or self.batch_size
        outs, feats = [], []
        for start in range(0, len(items), step):
            x = preprocess(items[start:start + step], self.prep)
            scores, emb = self.session.run([self.classifier.output_name, self.classifier.input_name],
                                           {self.input_name: x})
            outs.append(scores)
            feats.append(emb.reshape(len(x), -1))
        logits, va = split_outputs(self.name, np.concatenate(outs))
        return np.ascontiguousarray(np.concatenate(feats), np.float32), logits, va


def load_onnx(spec: ModelSpec, path: Path, wf: weights.WeightFile, *, device: str, batch_size: int,
              threads: int | None, precision: str = "fp32") -> OnnxEmotiEffLib:
    """An onnxruntime session on the verified file ``path`` (see the module docstring).

    ``precision="fp16"`` runs a float16 copy of the graph (:func:`as_float16`): for CUDA; on a CPU it is slower.
    ``precision="int8"`` runs a dynamically quantised copy (:func:`affectflow.models.runtimes.quantise.quantise_int8`).
    ``device`` "cuda" where onnxruntime has no CUDA provider raises :class:`~affectflow.core.device.DeviceError`.
    """
    try:
        import onnx  # noqa: F401 - here for the error below; verified_graph parses
        import onnxruntime as ort
    except ImportError as e:
        raise FaceModelError(f"engine='onnx' needs the onnx and onnxruntime packages: {e}") from e
    model, clf, sha, prep = verified_graph(spec, path, wf)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = int(threads)
    providers = ort_providers(device)
    graph = with_embedding_output(model, clf)
    if precision == INT8:
        graph = quantise_int8(graph, what=str(path))  # dynamic: no calibration data (docs/performance.md)
    elif check_precision(precision) == "fp16":
        if providers[0] == "CPUExecutionProvider":
            log.warning("%s: precision fp16 on the CPU is slower than fp32 (use it on CUDA)", spec.name)
        graph = as_float16(graph)
    session = ort.InferenceSession(graph, sess_options=so, providers=providers)
    inp = session.get_inputs()[0]
    shape = list(inp.shape)
    if len(shape) != 4 or shape[1] not in (3, None) or isinstance(shape[1], str):
        raise FaceModelError(f"{path}: input {inp.name!r} has shape {shape}, expected (N, 3, S, S)")
    for axis in (2, 3):
        if isinstance(shape[axis], int) and shape[axis] != prep.size:
            raise FaceModelError(f"{path}: input {inp.name!r} is {shape}, but {spec.name} is pre-processed to "
                                 f"{prep.size}x{prep.size}")
    return OnnxEmotiEffLib(
        name=spec.name, weights_path=path, weights_sha256=sha, classes=spec.classes,
        embedding_dim=int(clf.weight.shape[1]), prep=prep, batch_size=batch_size,
        device=session.get_providers()[0], session=session, input_name=inp.name, classifier=clf,
        fixed_batch=shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None,
    )

