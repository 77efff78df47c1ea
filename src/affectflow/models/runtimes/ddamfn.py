"""DDAMFN and MT-DDAMFN files loaded and run: (512-d embeddings, logits, valence/arousal or None) per crop.

:func:`load` reads either a TorchScript archive (``.script``) or a state-dict checkpoint (``.pth``),
neither of which runs pickled code, from the very bytes whose hash was checked, without
torchvision. :class:`DdamfnRunner` ``run(crops)`` returns float32 outputs, classes in AffectNet's
own order; it runs the sub-modules itself to get the embedding (the network is
:mod:`affectflow.models.networks.ddamfn`), and a file whose forward differs from DDAMNet's is
refused at load time rather than giving wrong embeddings.

Details: docs/models.md, section "DDAMFN".
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from affectflow.core.device import on_device
from affectflow.models.catalogue import weights
from affectflow.models.catalogue.registry import IMAGENET, ModelSpec
from affectflow.models.networks.ddamfn import EMBEDDING_DIM, INPUT_SIZE, DDAMNet
from affectflow.models.runtimes.emotiefflib import N_VA
from affectflow.models.runtimes.errors import FaceModelError
from affectflow.models.runtimes.preprocessing import Preprocessing, as_crop_list, preprocess_pil
from affectflow.models.runtimes.torch_runtime import TorchRuntime, torch_runtime, torch_threads

PREPROCESSING = Preprocessing(INPUT_SIZE, *IMAGENET)


@dataclass
class DdamfnRunner:
    """A loaded DDAMNet (TorchScript or state dict); ``run`` gives (embeddings, logits, valence/arousal)."""

    name: str
    weights_path: Path
    weights_sha256: str
    classes: tuple[str, ...]
    module: Any
    batch_size: int
    runtime: TorchRuntime
    threads: int | None = None
    has_valence_arousal: bool = False
    standin: bool = False
    embedding_dim: int = EMBEDDING_DIM
    input_size: int = INPUT_SIZE
    engine: str = field(default="torch", init=False)

    @property
    def device(self) -> str:
        return self.runtime.device

    def _embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """DDAMNet.forward up to ``fc``, keeping ``fc``'s input (the embedding)."""
        m = self.module
        feats = m.features(x)
        y = None
        for i in range(_num_heads(m)):
            h = getattr(m, f"cat_head{i}")(feats)
            y = h if y is None else torch.max(y, h)
        emb = m.flatten(m.Linear(feats * y))
        return emb, m.fc(emb)

    def run(self, crops: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return on_device(self.runtime.device, self._run, crops)

    def _run(self, crops: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        items = as_crop_list(crops)
        n_cls = len(self.classes)
        if not items:
            va = np.zeros((0, N_VA), np.float32) if self.has_valence_arousal else None
            return np.zeros((0, self.embedding_dim), np.float32), np.zeros((0, n_cls), np.float32), va
        feats, outs = [], []
        with torch_threads(self.threads), torch.inference_mode():
            for start in range(0, len(items), self.batch_size):
                x = self.runtime.tensor(preprocess_pil(items[start:start + self.batch_size], PREPROCESSING))
                n = len(x)
                emb, out = self._embed(self.runtime.padded(x, self.batch_size))
                feats.append(emb[:n].float().cpu().numpy())
                outs.append(out[:n].float().cpu().numpy())
        scores = np.concatenate(outs)
        va = np.ascontiguousarray(scores[:, n_cls:n_cls + N_VA]) if self.has_valence_arousal else None
        return np.ascontiguousarray(np.concatenate(feats), np.float32), np.ascontiguousarray(scores[:, :n_cls]), va


def _num_heads(module: Any) -> int:
    n = 0
    while hasattr(module, f"cat_head{n}"):
        n += 1
    return n


def _state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The network's weights from a checkpoint: the DDAMFN training scripts' dict, or a bare state dict."""
    if isinstance(obj, dict) and isinstance(obj.get("model_state_dict"), dict):
        obj = obj["model_state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise FaceModelError(f"{path}: not a DDAMNet state dict (expected tensors, or a checkpoint with "
                             f"'model_state_dict')")
    return {k.removeprefix("module."): v for k, v in obj.items()}  # DataParallel checkpoints


def _from_state_dict(data: bytes, path: Path) -> nn.Module:
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        raise FaceModelError(f"{path}: not a readable torch checkpoint (weights only): {e}") from e
    state = _state_dict(obj, path)
    fc = state.get("fc.weight")
    if fc is None:
        raise FaceModelError(f"{path}: no 'fc.weight' in the checkpoint: not a DDAMNet")
    model = DDAMNet(num_class=int(fc.shape[0]))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise FaceModelError(f"{path}: the checkpoint does not fit DDAMNet: {e}") from None
    return model


def _from_torchscript(data: bytes, path: Path, device: str) -> Any:
    try:
        return torch.jit.load(io.BytesIO(data), map_location=device)
    except Exception as e:
        raise FaceModelError(f"{path}: not a readable TorchScript archive: {e}") from e


def load(spec: ModelSpec, path: Path, wf: weights.WeightFile, *, device: str, batch_size: int,
         threads: int | None, precision: str = "fp32", channels_last: bool | None = None) -> DdamfnRunner:
    """Load the verified ``path`` (``.script``: TorchScript; otherwise a state-dict checkpoint); see the module doc.

    ``precision``/``channels_last``: see :mod:`affectflow.models.runtimes.torch_runtime`;
    the check against ``forward`` runs in float32 before they are applied.
    """
    data, sha = weights.read_verified(path, wf)
    runtime = torch_runtime(device, precision, channels_last)
    if path.suffix in (".script", ".jit", ".ts"):
        module = _from_torchscript(data, path, runtime.device)
    else:
        module = _from_state_dict(data, path).to(runtime.device)
    module.eval()
    net = _ddamnet_in(module)
    if net is None:
        missing = [a for a in _PARTS if not hasattr(module, a)]
        raise FaceModelError(f"{path}: the model has no {', '.join(missing)} sub-module(s): not a DDAMNet, so its "
                             "embedding cannot be read")
    va = "valence_arousal" in spec.outputs
    runner = DdamfnRunner(name=spec.name, weights_path=path, weights_sha256=sha, classes=spec.classes,
                          module=net, batch_size=batch_size, runtime=TorchRuntime(runtime.device),
                          threads=threads, has_valence_arousal=va)
    _check_against_forward(runner, spec, path, module)
    runner.runtime = runtime
    runner.module = runtime.prepare(net)
    return runner


_PARTS = ("features", "cat_head0", "Linear", "flatten", "fc")


def _ddamnet_in(module: Any) -> Any:
    """The DDAMNet in ``module``: itself or a direct child (an export may wrap it, e.g. to return the logits only)."""
    for m in (module, *module.children()):
        if all(hasattr(m, a) for a in _PARTS):
            return m
    return None


def _check_against_forward(runner: DdamfnRunner, spec: ModelSpec, path: Path, module: Any) -> None:
    """Refuse a file whose outputs or forward (``module``'s, the file's top level) differ from DDAMNet's."""
    want = len(spec.classes) + (N_VA if runner.has_valence_arousal else 0)
    x = torch.linspace(-2, 2, 2 * 3 * INPUT_SIZE * INPUT_SIZE).reshape(2, 3, INPUT_SIZE, INPUT_SIZE)
    with torch_threads(runner.threads), torch.inference_mode():
        x = runner.runtime.tensor(x.numpy())
        emb, out = runner._embed(x)
        ref = module(x)
    ref = ref[0] if isinstance(ref, tuple | list) else ref
    if tuple(out.shape) != (2, want) or tuple(emb.shape) != (2, spec.embedding_dim or EMBEDDING_DIM):
        raise FaceModelError(f"{path}: {spec.name} gives {tuple(out.shape[1:])} outputs and a "
                             f"{tuple(emb.shape[1:])} embedding; expected ({want},) and ({spec.embedding_dim},)")
    if not torch.allclose(out.float(), ref.float(), rtol=1e-4, atol=1e-4 * float(ref.abs().max()) + 1e-6):
        raise FaceModelError(f"{path}: the model's forward() does not compute DDAMNet's logits from its "
                             "sub-modules; refusing to read embeddings from it")
