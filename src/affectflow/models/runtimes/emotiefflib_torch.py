"""EmotiEffLib models in torch: engine ``torch`` (the ONNX file's weights in plain torch) and engine ``timm``
(EmotiEffLib's pickled ``.pt``).

:func:`load_torch_onnx` reads the verified bytes of ``<name>.onnx`` and loads the graph's weights
into the repository's rebuild of the network (:mod:`affectflow.models.networks`, via
:mod:`affectflow.models.catalogue.onnx_weights`; no timm, no torchvision, nothing unpickled), and
pre-processes on the device. :func:`load_torch` unpickles ``<name>.pt`` only from the bytes whose
hash was just checked, and needs timm and torchvision (or emotiefflib for MobileFaceNet). Both give a
:class:`TorchEmotiEffLib`; a hook on the classifier captures the embedding.

Details: docs/models.md, sections "EmotiEffLib models" and "The torch engine".
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affectflow.core.device import on_device
from affectflow.models.catalogue import weights
from affectflow.models.catalogue.registry import ModelSpec
from affectflow.models.catalogue.weights import read_verified
from affectflow.models.runtimes.emotiefflib import (
    EmotiEffLibRunner,
    check_classes,
    check_prep,
    split_outputs,
    verified_graph,
)
from affectflow.models.runtimes.errors import FaceModelError
from affectflow.models.runtimes.preprocessing import as_crop_list, preprocess_pil, preprocessing
from affectflow.models.runtimes.torch_runtime import HostStaging, TorchRuntime, torch_runtime, torch_threads


@dataclass
class TorchEmotiEffLib(EmotiEffLibRunner):
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


def load_torch_onnx(spec: ModelSpec, path: Path, wf: weights.WeightFile, *, device: str, batch_size: int,
                    threads: int | None, precision: str = "fp32",
                    channels_last: bool | None = None) -> TorchEmotiEffLib:
    """The verified ``<name>.onnx`` as a plain-torch module (engine "torch"): the graph's weights are loaded
    into the network :mod:`affectflow.models.networks.architectures` names for it, checked layer by layer.

    ``precision``/``channels_last``: see :mod:`affectflow.models.runtimes.torch_runtime`.
    """
    import torch

    from affectflow.models.catalogue.onnx_weights import OnnxWeightsError, load_onnx_weights
    from affectflow.models.networks.architectures import EMOTIEFFLIB_ARCHITECTURES
    from affectflow.models.networks.build import build_network

    runtime = torch_runtime(device, precision, channels_last)
    graph, clf, sha, prep = verified_graph(spec, path, wf)
    arch = EMOTIEFFLIB_ARCHITECTURES[spec.name]
    module = build_network(arch, int(clf.weight.shape[0]))
    try:
        module = load_onnx_weights(module, graph, torch.zeros(1, 3, prep.size, prep.size), what=str(path))
    except OnnxWeightsError as e:
        raise FaceModelError(f"{e} (expected the {arch} network of {spec.name})") from None
    module = runtime.prepare(module)
    return TorchEmotiEffLib(
        name=spec.name, weights_path=path, weights_sha256=sha, classes=spec.classes,
        embedding_dim=int(clf.weight.shape[1]), prep=prep, batch_size=batch_size, device=runtime.device,
        module=module, classifier_module=torch_classifier(spec.name, module), threads=threads, runtime=runtime,
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


def torch_classifier(name: str, model: Any) -> Any:
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

    ``precision``/``channels_last``: see :mod:`affectflow.models.runtimes.torch_runtime`.
    """
    import torch

    require_torch_runtime(spec.name)  # affectflow.models.faces checks this first too, before any file is looked at
    data, sha = read_verified(path, wf)  # the bytes unpickled below are the bytes just hashed
    runtime = torch_runtime(device, precision, channels_last)
    device = runtime.device
    prep = preprocessing(spec.name)
    check_prep(spec, prep)
    model = torch.load(io.BytesIO(data), map_location=device, weights_only=False)
    clf = torch_classifier(spec.name, model)
    weight = clf.weight.detach()
    check_classes(spec, int(weight.shape[0]), int(weight.shape[1]))
    model = runtime.prepare(model)
    return TorchEmotiEffLib(
        name=spec.name, weights_path=path, weights_sha256=sha, classes=spec.classes,
        embedding_dim=int(weight.shape[1]), prep=prep, batch_size=batch_size,
        device=device, module=model, classifier_module=clf, threads=threads, runtime=runtime, engine="timm",
    )
