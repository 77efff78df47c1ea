"""Random-weight, architecture-identical stand-ins for EmotiEffLib's face models, as ONNX files.

EmotiEffLib's ONNX files cannot be downloaded in tests or the offline demo. The functions here
build the same networks in plain torch, fill them with seeded random weights and export them the
way EmotiEffLib exported its own, so :func:`affectflow.models.faces.load_face_model` runs its real
code path on them. The DDAMFN family (``ddamfn``, ``mt_ddamfn``) is written as TorchScript / a
state-dict checkpoint instead. :func:`face_standin` returns the path of the cached file; the same
seed, torch version and CPU give byte-identical files. Nothing imitates a trained model's output,
and whether a loaded model is a stand-in comes from its manifest, never from its hash.

Details: docs/models.md, section "Face stand-ins".
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from affectflow.core.files import atomic_write_bytes
from affectflow.models.architectures import EMOTIEFFLIB_ARCHITECTURES

log = logging.getLogger(__name__)

DEFAULT_SEED = 0
OPSET = 11  # EmotiEffLib convert_pt_to_onnx.py
INPUT_NAME = "input"
OUTPUT_NAME = "output"
BATCH_AXIS = "batch_size"
ENV_CACHE = "AFFECTFLOW_STANDIN_CACHE"
# Bump when the builder writes other bytes for the same seed and torch: the cache is keyed by it, so a
# cached file of an earlier builder is never served. 2: EfficientNet calibrated with white noise too.
BUILD_VERSION = 2


@dataclass(frozen=True)
class FaceStandin:
    """How one stand-in is built: architecture, input side, outputs, normalisation of the calibration images."""

    arch: str  # "efficientnet_b0", "efficientnet_b2", "mobilefacenet", "mobilevitv2_150", "ddamnet"
    input_size: int
    num_outputs: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    fmt: str = "onnx"  # the upstream file format: "onnx", "torchscript" or "state_dict"
    # white-noise pictures added to the BatchNorm calibration set (:func:`_calibration_set`); see there why
    white_calibration: int = 0

    @property
    def suffix(self) -> str:
        return {"onnx": ".onnx", "torchscript": ".script", "state_dict": ".pth"}[self.fmt]


_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))

_ARCH = EMOTIEFFLIB_ARCHITECTURES
FACE_STANDINS: dict[str, FaceStandin] = {
    "enet_b0_8_best_vgaf": FaceStandin(_ARCH["enet_b0_8_best_vgaf"], 224, 8, *_IMAGENET, white_calibration=1),
    "enet_b0_8_best_afew": FaceStandin(_ARCH["enet_b0_8_best_afew"], 224, 8, *_IMAGENET, white_calibration=1),
    "enet_b0_8_va_mtl": FaceStandin(_ARCH["enet_b0_8_va_mtl"], 224, 10, *_IMAGENET, white_calibration=1),
    "enet_b2_8": FaceStandin(_ARCH["enet_b2_8"], 260, 8, *_IMAGENET, white_calibration=1),
    "mbf_va_mtl": FaceStandin(_ARCH["mbf_va_mtl"], 112, 10, *_HALF),
    "mobilevit_va_mtl": FaceStandin(_ARCH["mobilevit_va_mtl"], 224, 10, *_IMAGENET),
    # DDAMFN++ as uniface exports it (TorchScript); MT-DDAMFN as DDAMFN's training scripts save checkpoints
    "ddamfn": FaceStandin("ddamnet", 112, 8, *_IMAGENET, fmt="torchscript"),
    "mt_ddamfn": FaceStandin("ddamnet", 112, 10, *_IMAGENET, fmt="state_dict"),
}

# sha256 -> model name of stand-ins built with seed 0 by the reference toolchain
# (torch 2.13.0+cpu, TorchScript ONNX exporter, x86-64): a build is reproducible
# on one machine, but the ONNX stand-ins' bytes differ between x86-64 machines
# (their BatchNorm calibration runs float64 kernels that the CPU chooses), so each
# machine seen so far has its entries: the first set on an earlier CI machine, the
# second (EfficientNets of BUILD_VERSION 2 too) on an AVX-512 one. Other torch
# versions write other bytes. Whether a loaded model is a stand-in is never looked
# up here: its manifest says so.
KNOWN_STANDIN_SHA256: dict[str, str] = {
    "ccba08d362bf47e7113d9758e4d94565e65ef7b46028cd1c354817287e71e739": "enet_b0_8_best_vgaf",
    "f7768484390ba2f55e581c448972d14bba6a33fc8375f4bff098fc5de40547ea": "enet_b0_8_best_afew",
    "72592637100d96b56f097fed1473eb27c6a38d8733fa265522ad3ccc867e27bf": "enet_b0_8_va_mtl",
    "f8b31d74923a5dcc8f2cce9dc224a90f7537292f6b25de802a6b93912b8fa7f0": "enet_b2_8",
    "7937ccf9fcb5a5003e3243a11fa7afce6275ca58420f8e21a46617a71cc9b6ba": "mbf_va_mtl",
    "6f3a516b7359e3628f201380b9c46d451f6380b2a902788cd8b57034047b8bcb": "mbf_va_mtl",
    "9e46c538a1c69971eb2d5e323647c1e41415a3c6c99c9efb0d11e58e3193e4f8": "mobilevit_va_mtl",
    "d7d5d714cd9dd63a35b7adbf5594cc6300725097c330e8c673f566aa9d01b2d0": "mobilevit_va_mtl",
    "d9ca71249baf9931edb09ea6676d22dd5a39cbdf2d9169a7550eb71bffb876ec": "ddamfn",
    "e913b4ce38131971e2b664fb17035bc64e4fcf13b747630ede5dc9b83cea172e": "mt_ddamfn",
}


# ----------------------------------------------------------------------------- building
@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """A private seeded torch RNG, and one intra-op thread (several times faster for these small float64 ops)."""
    import torch

    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def _build_module(spec: FaceStandin) -> Any:
    if spec.arch == "ddamnet":
        from affectflow.models.ddamfn import DDAMNet

        return DDAMNet(num_class=spec.num_outputs)
    from affectflow.models import architectures

    return architectures.build(spec.arch, spec.num_outputs)


def _randomise(model: Any) -> None:
    """timm's ``_init_weight_goog`` for convs, torch's ``U(+-1/sqrt(fan_in))`` for linears, random BN affine, PReLU."""
    import math

    import torch
    from torch import nn

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                m.weight.normal_(0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    m.bias.normal_(0, 0.1)
            elif isinstance(m, nn.Linear):
                r = 1.0 / math.sqrt(m.weight.shape[1])
                m.weight.uniform_(-r, r)
                if m.bias is not None:
                    m.bias.uniform_(-r, r)
            elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
            elif isinstance(m, nn.PReLU):
                m.weight.uniform_(0.15, 0.35)


def _damp_residual_branches(model: Any) -> None:
    """Residual branches start small (their last BatchNorm's scale in [0.05, 0.15]), as trained deep residual
    networks have them. DDAMNet stacks 31 residual blocks: at full scale, random branches make the network
    chaotic, so float rounding (which differs with batch size) grows to the size of the outputs."""
    import torch

    with torch.no_grad():
        for m in model.modules():
            if getattr(m, "residual", False) and hasattr(m, "project"):
                m.project.bn.weight.uniform_(0.05, 0.15)
                m.project.bn.bias.normal_(0, 0.02)


def _randomise_groupnorm(model: Any) -> None:
    """Random GroupNorm scale/shift (as for BatchNorm): trained ones are all different, and the ONNX exporter
    stores identical tensors once, so untouched ones (all 1, all 0) would give a file with fewer weights."""
    import torch
    from torch import nn

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.GroupNorm) and m.affine:
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)


def _calibration_images(spec: FaceStandin, n: int = 4) -> Any:
    """Seeded random RGB images with a natural-image-like 1/f spectrum (octaves of upsampled noise),
    in [0, 1], normalised like the model's input; float64."""
    import torch
    import torch.nn.functional as F

    s = spec.input_size
    img = torch.zeros(n, 3, s, s, dtype=torch.float64)
    side, amp = 4, 1.0
    while side < 2 * s:
        octave = torch.rand(n, 3, min(side, s), min(side, s), dtype=torch.float64) - 0.5
        img += amp * F.interpolate(octave, size=(s, s), mode="bilinear", align_corners=False)
        side, amp = side * 2, amp / 2
    lo = img.amin(dim=(1, 2, 3), keepdim=True)
    hi = img.amax(dim=(1, 2, 3), keepdim=True)
    img = (img - lo) / (hi - lo)
    mean = torch.tensor(spec.mean, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float64).view(1, 3, 1, 1)
    return (img - mean) / std


def _white_images(spec: FaceStandin, n: int) -> Any:
    """Seeded uniform random RGB pixels in [0, 1] (white noise, the most high-frequency content a crop can
    have), normalised like the model's input; float64."""
    import torch

    img = torch.rand(n, 3, spec.input_size, spec.input_size, dtype=torch.float64)
    mean = torch.tensor(spec.mean, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float64).view(1, 3, 1, 1)
    return (img - mean) / std


def _calibration_set(spec: FaceStandin) -> Any:
    """What a stand-in's BatchNorm statistics are calibrated on: 4 smooth pictures, plus
    ``spec.white_calibration`` white-noise ones.

    Why white noise for EfficientNet: calibrated on smooth pictures only, every
    BatchNorm normalises by the small variance that smooth inputs leave in some of
    its channels (a random filter's response to them); a crop with more fine detail
    (sharp edges, JPEG texture, pixel noise) leaves a larger one, in every layer,
    and the excess compounds: the B0 stand-in's activations reached 1e5 on
    white-noise crops and 1e3 on real face crops, against O(1) on its calibration
    pictures. Its squeeze-excitation gates (sigmoids of those activations) then
    switch on float rounding: scaling the input by 1 + 1e-7 moved its float64
    outputs by 2-5%, and float32 onnxruntime and torch, each a faithful run of the
    same graph, were 7-20% apart on white-noise crops. With one white picture in the
    set, smooth pictures, real crops and white noise all stay near the calibrated
    scale, and the engines agree to about 1e-5 on each (tests/unit/models/
    test_torch_engine.py). MobileFaceNet (PReLU, no gates) and MobileViT (per-image
    GroupNorm) do not depend on the scale that way and keep the smooth set.
    """
    import torch

    smooth = _calibration_images(spec)
    if not spec.white_calibration:
        return smooth
    return torch.cat([smooth, _white_images(spec, spec.white_calibration)])


def _grouped_conv2d_f64(x: Any, weight: Any, bias: Any, stride: Any, padding: Any, groups: int) -> Any:
    """A grouped convolution as a sum of shifted products (float64 grouped convs are very slow in ATen)."""
    import torch
    import torch.nn.functional as F

    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    x = F.pad(x, (pw, pw, ph, ph))
    n, c, h, w = x.shape
    o, gi, kh, kw = weight.shape
    go = o // groups
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    xg = x.view(n, groups, gi, h, w)
    wg = weight.view(groups, go, gi, kh, kw)
    y = torch.zeros(n, groups, go, ho, wo, dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            xs = xg[..., i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
            if gi == 1 and go == 1:
                y += wg[:, 0, 0, i, j].view(1, groups, 1, 1, 1) * xs
            else:
                y += torch.einsum("goc,ngchw->ngohw", wg[..., i, j], xs)
    y = y.view(n, o, ho, wo)
    return y if bias is None else y + bias.view(1, o, 1, 1)


@contextlib.contextmanager
def _fast_float64_grouped_convs() -> Iterator[None]:
    import torch.nn.functional as F

    original = F.conv2d

    def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: ANN001, ANN202
        dil = (dilation, dilation) if isinstance(dilation, int) else tuple(dilation)
        if groups > 1 and x.dtype.is_floating_point and x.element_size() == 8 and dil == (1, 1) \
                and not isinstance(padding, str):
            return _grouped_conv2d_f64(x, weight, bias, stride, padding, groups)
        return original(x, weight, bias, stride, padding, dilation, groups)

    F.conv2d = conv2d
    try:
        yield
    finally:
        F.conv2d = original


def _calibrate_batchnorm(model: Any, x: Any) -> None:
    """Set every BatchNorm's running mean/var to the statistics of its input on ``x`` (one float64 pass).

    A pre-hook sets the statistics just before each BatchNorm runs, so later
    layers see already-calibrated earlier ones. float64 keeps the float32 values
    stored afterwards independent of thread count and summation order. BatchNorm1d
    (one value per image) gets the channel-pooled variance.
    """
    import torch
    from torch import nn

    def hook(mod: nn.Module, args: tuple[Any, ...]) -> None:
        (inp,) = args
        dims = [0] + list(range(2, inp.dim()))
        mod.running_mean.copy_(inp.mean(dims))
        var = inp.var(dims, unbiased=False)
        # BatchNorm1d sees one value per image: a few images give a poor per-channel variance, pool it.
        mod.running_var.copy_(var if inp.dim() > 2 else var.mean().expand_as(var))

    handles = [m.register_forward_pre_hook(hook) for m in model.modules()
               if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
    try:
        model.double().eval()
        with torch.no_grad(), _fast_float64_grouped_convs():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.float()


def _model_seed(name: str, seed: int) -> int:
    """Different models get different weights for the same ``seed`` (B0 VGAF and AFEW share an architecture)."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63)


def build_face_model(name: str, seed: int = DEFAULT_SEED) -> Any:
    """The random-weight torch module of stand-in ``name`` (eval mode, float32)."""
    if name not in FACE_STANDINS:
        raise ValueError(f"no face stand-in {name!r}; known: {sorted(FACE_STANDINS)}")
    spec = FACE_STANDINS[name]
    with _seeded(_model_seed(name, seed)):
        model = _build_module(spec)
        _randomise(model)
        if spec.arch == "ddamnet":
            _damp_residual_branches(model)
        if spec.arch.startswith("mobilevit"):
            _randomise_groupnorm(model)
        _calibrate_batchnorm(model, _calibration_set(spec))
    return model.eval().requires_grad_(False)


def export_onnx(model: Any, input_size: int) -> bytes:
    """``model`` as ONNX bytes, exported as EmotiEffLib's convert_pt_to_onnx.py does."""
    import torch

    dummy = torch.zeros(1, 3, input_size, input_size)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings from the 'same'-padding arithmetic, deprecation notes
        torch.onnx.export(
            model, (dummy,), buf, dynamo=False, opset_version=OPSET, do_constant_folding=True,
            export_params=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: BATCH_AXIS}, OUTPUT_NAME: {0: BATCH_AXIS}},
        )
    return buf.getvalue()


def export_torchscript(model: Any, input_size: int) -> bytes:
    """``model`` traced (``torch.jit.trace``) and saved as a TorchScript archive, without debug records.

    The ``*.debug_pkl`` records hold the Python stack of every traced op, with
    absolute paths of this checkout and its virtual environment, so the same
    network would hash differently in every clone; ``torch.jit.load`` does not
    need them. The archive is rewritten record by record with torch's own
    writer (which keeps its alignment rules) and without them.
    """
    import torch

    dummy = torch.zeros(1, 3, input_size, input_size)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings
        torch.jit.save(torch.jit.trace(model, (dummy,), strict=False), buf)
    reader = torch._C.PyTorchFileReader(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    writer = torch._C.PyTorchFileWriter(out)
    written_by_writer = {"version", ".data/version", ".data/serialization_id", "byteorder"}
    for name in sorted(reader.get_all_records()):
        if name.endswith(".debug_pkl") or name in written_by_writer:
            continue
        data = reader.get_record(name)
        writer.write_record(name, data, len(data))
    writer.write_end_of_file()
    return out.getvalue()


def export_state_dict(model: Any) -> bytes:
    """``model``'s weights as the DDAMFN training scripts save them: ``{"model_state_dict": ...}``."""
    import torch

    buf = io.BytesIO()  # a buffer, not a path: torch.save names the archive's root folder after the file
    torch.save({"iter": 0, "model_state_dict": model.state_dict()}, buf)
    return buf.getvalue()


def build_face_standin(name: str, out_path: str | os.PathLike[str], seed: int = DEFAULT_SEED) -> Path:
    """Write the stand-in file of ``name`` (its upstream format) to ``out_path`` atomically; register its hash."""
    spec = FACE_STANDINS.get(name)
    if spec is None:
        raise ValueError(f"no face stand-in {name!r}; known: {sorted(FACE_STANDINS)}")
    model = build_face_model(name, seed)
    with _seeded(seed):
        if spec.fmt == "torchscript":
            data = export_torchscript(model, spec.input_size)
        elif spec.fmt == "state_dict":
            data = export_state_dict(model)
        else:
            data = export_onnx(model, spec.input_size)
    return atomic_write_bytes(out_path, data)


def default_cache_dir() -> Path:
    """``$AFFECTFLOW_STANDIN_CACHE``, else ``<repo>/.cache/standins/face`` (git-ignored)."""
    env = os.environ.get(ENV_CACHE, "").strip()
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[3] / ".cache" / "standins" / "face"


def face_standin(name: str, cache_dir: str | os.PathLike[str] | None = None, seed: int = DEFAULT_SEED) -> Path:
    """The stand-in file of ``name``, built once and cached (keyed by builder version, seed and torch version)."""
    import torch

    if name not in FACE_STANDINS:
        raise ValueError(f"no face stand-in {name!r}; known: {sorted(FACE_STANDINS)}")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = root / f"torch-{torch.__version__}" / f"seed{seed}-v{BUILD_VERSION}" / f"{name}{FACE_STANDINS[name].suffix}"
    if path.is_file():
        return path
    log.info("building face stand-in %s at %s", name, path)
    return build_face_standin(name, path, seed)
