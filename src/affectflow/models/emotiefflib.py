"""EmotiEffLib face models (EmotiEffNet, MT-EmotiEffNet, MT-EmotiMobileFaceNet, MT-EmotiMobileViT).

Loaded the way emotiefflib 1.1.1 loads them, but from a verified local file instead of an
unchecked download, by one of three engines. ``onnx``: :func:`load_onnx` runs ``<name>.onnx`` in
onnxruntime with the classifier Gemm's input added as a second graph output. ``torch``:
:func:`load_torch_onnx` loads the weights of that same ONNX file into the repository's plain-torch
rebuild of the network (:mod:`affectflow.models.onnx_weights`; no timm, no torchvision, no
unpickling) and preprocesses on the device. ``timm``: :func:`load_torch` unpickles EmotiEffLib's
``<name>.pt`` only from the bytes whose hash was just checked. Each runner's ``run(crops)`` returns
(embeddings (N, D), logits (N, C), valence/arousal (N, 2) or None), all float32.

Details: docs/models.md, section "EmotiEffLib models".
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import io
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from affectflow.core.device import CUDA_PROVIDER, is_cuda, on_device, provider_device
from affectflow.core.errors import AffectflowError
from affectflow.models import weights
from affectflow.models.registry import ModelSpec, get
from affectflow.models.torch_runtime import HostStaging, TorchRuntime, check_precision, torch_runtime

log = logging.getLogger(__name__)

INT8 = "int8"  # onnxruntime engine only: weights quantised to 8 bits (affectflow.models.quantise)
ENGINES = ("onnx", "torch", "timm")  # onnxruntime; plain torch from the ONNX file; pickled .pt
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


class FaceModelError(AffectflowError, RuntimeError):
    """A face model cannot be loaded or run as asked (wrong engine, missing runtime, unexpected graph)."""


def is_emotiefflib(spec: ModelSpec) -> bool:
    return spec.package.startswith("emotiefflib") and bool(spec.files)


# ---------------------------------------------------------------- files
def onnx_weight_file(name: str) -> weights.WeightFile:
    (wf,) = get(name).files
    return wf


def torch_weight_file(name: str) -> weights.WeightFile:
    """The ``<name>.pt`` file next to the registry's ONNX file (same URL pattern, its own git blob id)."""
    onnx_wf = onnx_weight_file(name)
    if name not in TORCH_BLOBS:
        raise FaceModelError(f"{name}: no torch checkpoint of it is known")
    url = onnx_wf.url.replace(f"/onnx/{name}.onnx", f"/{name}.pt")
    return weights.WeightFile(f"emotiefflib/{name}.pt", url, "", git_sha1=TORCH_BLOBS[name])


def read_verified(path: Path, wf: weights.WeightFile) -> tuple[bytes, str]:
    """The bytes of ``path`` and their sha256, checked against ``wf`` once more as they are read.

    :func:`affectflow.models.weights.ensure` has verified the file; hashing the very
    bytes that get parsed closes the gap between that check and the load.
    """
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if wf.sha256:
        ok = sha == wf.sha256
    elif wf.git_sha1:
        ok = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == wf.git_sha1
    else:
        ok = False
    if not ok:
        raise weights.WeightsError(f"{path}: weight file {wf.name} changed after it was verified; refusing to load it")
    return data, sha


# ---------------------------------------------------------------- pre-processing
@dataclass(frozen=True)
class Preprocessing:
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def preprocessing(name: str) -> Preprocessing:
    """Input side and normalisation, by emotiefflib's rules on the model name (facial_analysis.py)."""
    if "mbf_" in name:
        return Preprocessing(112, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    imagenet = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    if "_b2_" in name:
        return Preprocessing(260, *imagenet)
    if "ddamfnet" in name:
        return Preprocessing(112, *imagenet)
    return Preprocessing(224, *imagenet)


def is_mtl(name: str) -> bool:
    return "_mtl" in name


def as_crop_list(crops: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """RGB uint8 crops, (N,H,W,3) or a list of (H,W,3) of any sizes, as a checked list."""
    if isinstance(crops, np.ndarray):
        if crops.ndim == 3:
            crops = crops[None]
        if crops.ndim != 4 or crops.shape[-1] != 3:
            raise ValueError(f"expected RGB crops shaped (N,H,W,3), got {crops.shape}")
    items = list(crops)
    for i, img in enumerate(items):
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[-1] != 3 or 0 in img.shape:
            raise ValueError(f"crop {i}: expected a non-empty RGB image (H,W,3), got {getattr(img, 'shape', img)}")
        if img.dtype != np.uint8:
            raise ValueError(f"crop {i}: expected uint8 pixels, got {img.dtype}")
    return items


def _normalise(resized: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """(N,S,S,3) uint8 -> (N,3,S,S) float32: /255, minus mean, over std."""
    x = resized.astype(np.float32) * np.float32(1 / 255)
    x -= np.asarray(prep.mean, np.float32)
    x /= np.asarray(prep.std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def preprocess(crops: Sequence[np.ndarray], prep: Preprocessing) -> np.ndarray:
    """emotiefflib ``EmotiEffLibRecognizerOnnx._preprocess`` for a batch: cv2.resize (bilinear), /255, normalise."""
    s = prep.size
    resized = np.empty((len(crops), s, s, 3), np.uint8)
    for i, img in enumerate(crops):
        resized[i] = img if img.shape[:2] == (s, s) else cv2.resize(np.ascontiguousarray(img), (s, s))
    return _normalise(resized, prep)


def preprocess_pil(crops: Sequence[np.ndarray], prep: Preprocessing) -> np.ndarray:
    """emotiefflib ``EmotiEffLibRecognizerTorch._preprocess``: torchvision ``Resize`` on a PIL image is
    ``PIL.Image.resize(..., BILINEAR)``, then ``ToTensor`` and ``Normalize``."""
    from PIL import Image

    s = prep.size
    resized = np.empty((len(crops), s, s, 3), np.uint8)
    for i, img in enumerate(crops):
        resized[i] = np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((s, s), Image.BILINEAR))
    return _normalise(resized, prep)


def split_outputs(name: str, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(logits, valence/arousal or None): multi-task models end with 2 valence/arousal outputs."""
    scores = np.asarray(scores, np.float32)
    if is_mtl(name):
        return np.ascontiguousarray(scores[:, :-N_VA]), np.ascontiguousarray(scores[:, -N_VA:])
    return scores, None


# ---------------------------------------------------------------- the ONNX graph
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


def ort_providers(device: str) -> list[str]:
    """onnxruntime providers for ``device``: auto = CUDA when this onnxruntime has it, else CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "auto":
        device = "cuda" if CUDA_PROVIDER in available else "cpu"
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if is_cuda(device):
        if CUDA_PROVIDER not in available:
            raise FaceModelError(f"device={device!r} but this onnxruntime has no {CUDA_PROVIDER} "
                                 f"(available: {available}); install onnxruntime-gpu or use device='cpu'")
        return [CUDA_PROVIDER, "CPUExecutionProvider"]
    raise FaceModelError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda'")


# ---------------------------------------------------------------- models
@dataclass
class _Base:
    name: str
    weights_path: Path
    weights_sha256: str
    classes: tuple[str, ...]
    embedding_dim: int
    prep: Preprocessing
    batch_size: int
    device: str
    standin: bool = False  # set by affectflow.models.faces from the verified hash

    @property
    def input_size(self) -> int:
        return self.prep.size

    @property
    def has_valence_arousal(self) -> bool:
        return is_mtl(self.name)

    def _empty(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        va = np.zeros((0, N_VA), np.float32) if is_mtl(self.name) else None
        return np.zeros((0, self.embedding_dim), np.float32), np.zeros((0, len(self.classes)), np.float32), va


@dataclass
class OnnxEmotiEffLib(_Base):
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


@dataclass
class TorchEmotiEffLib(_Base):
    """An EmotiEffLib model as a torch module; a hook on the classifier captures the embedding.

    Engine "torch" (built from the ONNX file) preprocesses on the device as the
    onnxruntime engine does on the host (bilinear, cv2's rounding); engine
    "timm" (the pickled .pt) on the host with PIL, as EmotiEffLib's torch
    recogniser does.
    """

    module: Any = None
    classifier_module: Any = None
    threads: int | None = None
    runtime: TorchRuntime | None = None
    engine: str = "torch"
    staging: HostStaging = field(default_factory=HostStaging)

    def _inputs(self, crops: np.ndarray | list[np.ndarray]) -> Any:
        assert self.runtime is not None
        if self.engine == "timm":
            return self.runtime.tensor(preprocess_pil(list(crops), self.prep))
        return self.runtime.images(crops, self.prep.size, self.prep.mean, self.prep.std, self.staging)

    def run(self, crops: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        assert self.runtime is not None
        return on_device(self.runtime.device, self._run, crops)

    def _run(self, crops: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        import torch

        assert self.runtime is not None
        items = as_crop_list(crops)
        if not items:
            return self._empty()
        if isinstance(crops, np.ndarray) and crops.ndim == 4:
            items = crops  # one array of equal-sized crops: batches are slices of it, copied once to the device
        captured: list[Any] = []
        handle = self.classifier_module.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        outs, feats = [], []
        try:
            with torch_threads(self.threads), torch.inference_mode():
                for start in range(0, len(items), self.batch_size):
                    x = self._inputs(items[start:start + self.batch_size])
                    n = len(x)
                    captured.clear()
                    scores = self.module(self.runtime.padded(x, self.batch_size))[:n]
                    outs.append(scores.float().cpu().numpy())
                    feats.append(captured[-1][:n].float().reshape(n, -1).cpu().numpy())
        finally:
            handle.remove()
        logits, va = split_outputs(self.name, np.concatenate(outs))
        return np.concatenate(feats).astype(np.float32), logits, va


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` for the block (process-wide; restored afterwards)."""
    if not n:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_classes(spec: ModelSpec, n_out: int, dim: int) -> None:
    want = len(spec.classes) + (N_VA if is_mtl(spec.name) else 0)
    if n_out != want:
        raise FaceModelError(f"{spec.name}: the classifier has {n_out} outputs, expected {want} "
                             f"({len(spec.classes)} classes{' + valence, arousal' if is_mtl(spec.name) else ''})")
    if spec.embedding_dim is not None and dim != spec.embedding_dim:
        raise FaceModelError(f"{spec.name}: embedding has {dim} dimensions, the registry says {spec.embedding_dim}")


def _check_prep(spec: ModelSpec, prep: Preprocessing) -> None:
    if spec.input_size is not None and spec.input_size != prep.size:
        raise FaceModelError(f"{spec.name}: registry input size {spec.input_size} != emotiefflib's {prep.size}")


def as_float16(graph: bytes) -> bytes:
    """The graph with float16 weights and arithmetic, float32 inputs and outputs (casts at the edges).

    onnxruntime does not lower precision by itself; this is its own converter
    (``onnxruntime.transformers.float16``), applied after the embedding output
    is added so that it too comes back as float32.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(onnx.load_model_from_string(graph), keep_io_types=True).SerializeToString()


def _verified_graph(spec: ModelSpec, path: Path, wf: weights.WeightFile) -> tuple[Any, Classifier, str, Preprocessing]:
    """The parsed ONNX graph of the verified file ``path`` (the bytes parsed are the bytes just hashed), its
    classifier Gemm checked against ``spec``, the file's sha256 and the model's preprocessing: what both the
    onnx and the torch engine start from. Errors name the file."""
    import onnx

    data, sha = read_verified(path, wf)
    prep = preprocessing(spec.name)
    _check_prep(spec, prep)
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # a DecodeError from protobuf
        raise FaceModelError(f"{path}: not a readable ONNX model: {e}") from e
    try:
        clf = classifier_of(model)
        _check_classes(spec, clf.weight.shape[0], clf.weight.shape[1])
    except FaceModelError as e:
        raise FaceModelError(f"{path}: {e}") from None
    return model, clf, sha, prep


def load_onnx(spec: ModelSpec, path: Path, wf: weights.WeightFile, *, device: str, batch_size: int,
              threads: int | None, precision: str = "fp32") -> OnnxEmotiEffLib:
    """An onnxruntime session on the verified file ``path`` (see the module docstring).

    ``precision="fp16"`` runs a float16 copy of the graph (:func:`as_float16`): for CUDA; on a CPU it is slower.
    ``precision="int8"`` runs a dynamically quantised copy (:func:`affectflow.models.quantise.quantise_int8`).
    """
    try:
        import onnx  # noqa: F401 - here for the error below; _verified_graph parses
        import onnxruntime as ort
    except ImportError as e:
        raise FaceModelError(f"engine='onnx' needs the onnx and onnxruntime packages: {e}") from e
    model, clf, sha, prep = _verified_graph(spec, path, wf)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = int(threads)
    providers = ort_providers(device)
    graph = with_embedding_output(model, clf)
    if precision == INT8:
        from affectflow.models.quantise import quantise_int8

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


def load_torch_onnx(spec: ModelSpec, path: Path, wf: weights.WeightFile, *, device: str, batch_size: int,
                    threads: int | None, precision: str = "fp32",
                    channels_last: bool | None = None) -> TorchEmotiEffLib:
    """The verified ``<name>.onnx`` as a plain-torch module (engine "torch"): the graph's weights are loaded
    into :mod:`affectflow.models.architectures`' rebuild of the network, checked layer by layer.

    ``precision``/``channels_last``: see :mod:`affectflow.models.torch_runtime`.
    """
    import torch

    from affectflow.models import architectures
    from affectflow.models.onnx_weights import OnnxWeightsError, load_onnx_weights

    runtime = torch_runtime(device, precision, channels_last)
    graph, clf, sha, prep = _verified_graph(spec, path, wf)
    arch = architectures.EMOTIEFFLIB_ARCHITECTURES[spec.name]
    module = architectures.build(arch, int(clf.weight.shape[0]))
    try:
        module = load_onnx_weights(module, graph, torch.zeros(1, 3, prep.size, prep.size), what=str(path))
    except OnnxWeightsError as e:
        raise FaceModelError(f"{e} (expected the {arch} network of {spec.name})") from None
    module = runtime.prepare(module)
    return TorchEmotiEffLib(
        name=spec.name, weights_path=path, weights_sha256=sha, classes=spec.classes,
        embedding_dim=int(clf.weight.shape[1]), prep=prep, batch_size=batch_size, device=runtime.device,
        module=module, classifier_module=_torch_classifier(spec.name, module), threads=threads, runtime=runtime,
    )


def require_torch_runtime(name: str) -> None:
    """What unpickling ``<name>.pt`` needs, or a FaceModelError saying what is missing and what to do instead."""
    import torch

    if "mbf_" in name:
        # The pickle refers to module `mobilefacenet`; emotiefflib puts its backbones dir on sys.path for it.
        spec = importlib.util.find_spec("emotiefflib")
        if spec is None or not spec.submodule_search_locations:
            raise FaceModelError(
                f"engine 'timm' for {name} unpickles EmotiEffLib's MobileFaceNet, whose class lives in "
                f"emotiefflib/backbones/mobilefacenet.py: install it (pip install --no-deps emotiefflib==1.1.1), "
                f"or use engine 'torch' or 'onnx', which read the ONNX file and need no emotiefflib")
        backbones = str(Path(next(iter(spec.submodule_search_locations))) / "backbones")
        if backbones not in sys.path:
            sys.path.append(backbones)
        return
    try:
        importlib.import_module("torchvision")
        importlib.import_module("timm")
    except Exception as e:  # ImportError, or a torchvision built for another torch failing at import
        raise FaceModelError(
            f"engine 'timm' for {name} unpickles a timm model ({name}.pt), which needs timm (emotiefflib uses "
            f"timm 0.9.*) and a torchvision built for this torch ({torch.__version__}); importing them failed: "
            f"{type(e).__name__}: {e}. Use engine 'torch' or 'onnx', which read the ONNX file and need neither"
        ) from e


def _torch_classifier(name: str, model: Any) -> Any:
    """The classifier Linear, where emotiefflib's EmotiEffLibRecognizerTorch finds it."""
    import torch

    if name == "mbf_va_mtl":
        return model.fc
    if name == "mobilevit_va_mtl":
        return model.head.fc
    if isinstance(model.classifier, torch.nn.Sequential):
        return model.classifier[0]
    return model.classifier


def load_torch(spec: ModelSpec, path: Path, wf: weights.WeightFile, *, device: str, batch_size: int,
               threads: int | None, precision: str = "fp32", channels_last: bool | None = None) -> TorchEmotiEffLib:
    """Unpickle the verified ``<name>.pt`` (``weights_only=False``: only ever after the hash check).

    ``precision``/``channels_last``: see :mod:`affectflow.models.torch_runtime`.
    """
    import torch

    require_torch_runtime(spec.name)  # affectflow.models.faces checks this first too, before any file is looked at
    data, sha = read_verified(path, wf)  # the bytes unpickled below are the bytes just hashed
    runtime = torch_runtime(device, precision, channels_last)
    device = runtime.device
    prep = preprocessing(spec.name)
    _check_prep(spec, prep)
    model = torch.load(io.BytesIO(data), map_location=device, weights_only=False)
    clf = _torch_classifier(spec.name, model)
    weight = clf.weight.detach()
    _check_classes(spec, int(weight.shape[0]), int(weight.shape[1]))
    model = runtime.prepare(model)
    return TorchEmotiEffLib(
        name=spec.name, weights_path=path, weights_sha256=sha, classes=spec.classes,
        embedding_dim=int(weight.shape[1]), prep=prep, batch_size=batch_size,
        device=device, module=model, classifier_module=clf, threads=threads, runtime=runtime, engine="timm",
    )
