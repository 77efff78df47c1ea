"""DDAMFN (DDAMNet: MixedFeatureNet + dual-direction attention) in plain torch, and its runner.

The paper uses DDAMFN (Zhang et al., 2023) and a multi-task version, MT-DDAMFN (8 expression
logits, then valence and arousal). :func:`load` reads either a TorchScript archive (``.script``) or
a state-dict checkpoint (``.pth``), neither of which runs pickled code, from the very bytes whose
hash was checked, without torchvision. :class:`DdamfnRunner` ``run(crops)`` returns (512-d
embeddings, logits, valence/arousal or None), float32, classes in AffectNet's own order; it runs
the sub-modules itself to get the embedding, and a file whose forward differs from DDAMNet's is
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
from affectflow.models import weights
from affectflow.models.emotiefflib import (
    N_VA,
    FaceModelError,
    Preprocessing,
    as_crop_list,
    preprocess_pil,
    read_verified,
    torch_threads,
)
from affectflow.models.registry import IMAGENET, ModelSpec
from affectflow.models.torch_runtime import TorchRuntime, torch_runtime

INPUT_SIZE = 112
EMBEDDING_DIM = 512
NUM_HEADS = 2
PREPROCESSING = Preprocessing(INPUT_SIZE, *IMAGENET)


# ---------------------------------------------------------------- MixedFeatureNet (upstream module names)
class ConvBlock(nn.Module):
    def __init__(self, in_c: int, out_c: int, kernel=(1, 1), stride=(1, 1), padding=(0, 0), groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c)
        self.prelu = nn.PReLU(out_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn(self.conv(x)))


class LinearBlock(nn.Module):
    def __init__(self, in_c: int, out_c: int, kernel=(1, 1), stride=(1, 1), padding=(0, 0), groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), -1)


class HSwish(nn.Module):
    """x * relu6(x + 3) / 6 (upstream ``h_swish``; parameter-free)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (nn.functional.relu6(x + 3) / 6)


class _CoordAttention(nn.Module):
    """Coordinate attention's shared part: per-row and per-column gates from the two directional summaries.

    Subclasses call :meth:`_add_gate_layers` where upstream creates those
    layers, so parameters keep upstream's order in the state dict.
    """

    def _add_gate_layers(self, inp: int, oup: int, groups: int) -> None:
        mip = max(8, inp // groups)
        self.conv1 = nn.Conv2d(inp, mip, 1)
        self.bn1 = nn.BatchNorm2d(mip)
        self.conv2 = nn.Conv2d(mip, oup, 1)
        self.conv3 = nn.Conv2d(mip, oup, 1)
        self.relu = HSwish()

    def gates(self, x_h: torch.Tensor, x_w: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(row gate, column gate), each broadcast to (N, C, h, w); ``x_w`` comes transposed (N, C, w, 1)."""
        y = self.relu(self.bn1(self.conv1(torch.cat([x_h, x_w], dim=2))))
        x_h, x_w = torch.split(y, [h, w], dim=2)
        a_h = self.conv2(x_h).sigmoid().expand(-1, -1, h, w)
        a_w = self.conv3(x_w.permute(0, 1, 3, 2)).sigmoid().expand(-1, -1, h, w)
        return a_h, a_w


class PooledCoordAtt(_CoordAttention):
    """MixedFeatureNet's coordinate attention (average pooling along each axis)."""

    def __init__(self, inp: int, oup: int, groups: int = 32):
        super().__init__()
        self.pool_h = nn.AdaptiveAvgPool2d((None, 1))
        self.pool_w = nn.AdaptiveAvgPool2d((1, None))
        self._add_gate_layers(inp, oup, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        a_h, a_w = self.gates(self.pool_h(x), self.pool_w(x).permute(0, 1, 3, 2), h, w)
        return x * a_w * a_h


class MDConv(nn.Module):
    """Mixed depth-wise convolution. Upstream defines ``bn`` and ``prelu`` but never applies them: kept, unused."""

    def __init__(self, channels: int, kernel_sizes: Sequence[int], splits: Sequence[int], stride):
        super().__init__()
        self.splits = list(splits)
        self.mixed_depthwise_conv = nn.ModuleList(
            nn.Conv2d(c, c, k, stride=stride, padding=k // 2, groups=c, bias=False)
            for k, c in zip(kernel_sizes, splits, strict=True))
        self.bn = nn.BatchNorm2d(channels)
        self.prelu = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.splits) == 1:
            return self.mixed_depthwise_conv[0](x)
        parts = torch.split(x, self.splits, dim=1)
        return torch.cat([conv(t) for conv, t in zip(self.mixed_depthwise_conv, parts, strict=True)], dim=1)


class DepthWise(nn.Module):
    def __init__(self, c: int, groups: int, residual: bool = True):
        super().__init__()
        self.conv = ConvBlock(c, groups)
        self.conv_dw = ConvBlock(groups, groups, (3, 3), (1, 1), (1, 1), groups=groups)
        self.project = LinearBlock(groups, c)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.conv_dw(self.conv(x)))
        return x + y if self.residual else y


class MixDepthWise(nn.Module):
    def __init__(self, in_c: int, out_c: int, stride, groups: int, kernel_sizes: Sequence[int],
                 splits: Sequence[int], residual: bool = False):
        super().__init__()
        self.conv = ConvBlock(in_c, groups)
        self.conv_dw = MDConv(groups, kernel_sizes, splits, stride)
        self.CA = PooledCoordAtt(groups, groups)
        self.project = LinearBlock(groups, out_c)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.CA(self.conv_dw(self.conv(x))))
        return x + y if self.residual else y


class MixResidual(nn.Module):
    def __init__(self, c: int, num_block: int, groups: int, kernel_sizes: Sequence[int], splits: Sequence[int]):
        super().__init__()
        self.model = nn.Sequential(*(MixDepthWise(c, c, (1, 1), groups, kernel_sizes, splits, residual=True)
                                     for _ in range(num_block)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MixedFeatureNet(nn.Module):
    """The backbone up to ``conv_6_sep`` (512x7x7 for a 112 px input): the part DDAMNet keeps."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvBlock(3, 64, (3, 3), (2, 2), (1, 1))
        self.conv2_dw = ConvBlock(64, 64, (3, 3), (1, 1), (1, 1), groups=64)
        self.conv_23 = MixDepthWise(64, 64, (2, 2), 128, [3, 5, 7], [64, 32, 32])
        self.conv_3 = MixResidual(64, 9, 128, [3, 5], [96, 32])
        self.conv_34 = MixDepthWise(64, 128, (2, 2), 256, [3, 5, 7], [128, 64, 64])
        self.conv_4 = MixResidual(128, 16, 256, [3, 5], [192, 64])
        self.conv_45 = MixDepthWise(128, 256, (2, 2), 1024, [3, 5, 7, 9], [256, 256, 256, 256])
        self.conv_5 = MixResidual(256, 6, 512, [3, 5, 7], [172, 170, 170])
        self.conv_6_sep = ConvBlock(256, 512)

    def stages(self) -> list[nn.Module]:
        return [self.conv1, self.conv2_dw, self.conv_23, self.conv_3, self.conv_34, self.conv_4, self.conv_45,
                self.conv_5, self.conv_6_sep]


# ---------------------------------------------------------------- DDAMNet
class LinearCoordAtt(_CoordAttention):
    """DDAM's attention head: coordinate attention with 1x7 / 7x1 depth-wise convolutions instead of pooling.
    Upstream also defines ``Linear`` (7x7) here and never uses it: kept, unused."""

    def __init__(self, inp: int = EMBEDDING_DIM, oup: int = EMBEDDING_DIM, groups: int = 32):
        super().__init__()
        self.Linear_h = LinearBlock(inp, inp, (1, 7), groups=inp)
        self.Linear_w = LinearBlock(inp, inp, (7, 1), groups=inp)
        self._add_gate_layers(inp, oup, groups)
        self.Linear = LinearBlock(oup, oup, (7, 7), groups=oup)
        self.flatten = Flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        a_h, a_w = self.gates(self.Linear_h(x), self.Linear_w(x).permute(0, 1, 3, 2), h, w)
        return a_w * a_h


class CoordAttHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.CoordAtt = LinearCoordAtt()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.CoordAtt(x)


class DDAMNet(nn.Module):
    """DDAMFN(++)'s network; ``num_class`` 8 (AffectNet-8) or 10 (MT-DDAMFN: 8 logits, valence, arousal).

    ``forward`` returns what upstream's does: (logits, feature map, [head attention maps]).
    Upstream defines ``bn`` (BatchNorm1d over the logits) and never applies it: kept, unused.
    """

    def __init__(self, num_class: int = 8, num_head: int = NUM_HEADS) -> None:
        super().__init__()
        self.features = nn.Sequential(*MixedFeatureNet().stages())
        self.num_head = num_head
        for i in range(num_head):
            setattr(self, f"cat_head{i}", CoordAttHead())
        self.Linear = LinearBlock(EMBEDDING_DIM, EMBEDDING_DIM, (7, 7), groups=EMBEDDING_DIM)
        self.flatten = Flatten()
        self.fc = nn.Linear(EMBEDDING_DIM, num_class)
        self.bn = nn.BatchNorm1d(num_class)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        feats = self.features(x)
        heads = [getattr(self, f"cat_head{i}")(feats) for i in range(self.num_head)]
        y = heads[0]
        for h in heads[1:]:
            y = torch.max(y, h)
        out = self.fc(self.flatten(self.Linear(feats * y)))
        return out, feats, heads


# ---------------------------------------------------------------- runner
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

    ``precision``/``channels_last``: see :mod:`affectflow.models.torch_runtime`;
    the check against ``forward`` runs in float32 before they are applied.
    """
    data, sha = read_verified(path, wf)
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
