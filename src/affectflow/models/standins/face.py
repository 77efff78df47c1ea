"""Random-weight, architecture-identical stand-ins for EmotiEffLib's and DDAMFN's face models.

EmotiEffLib's ONNX files cannot be downloaded in tests or the offline demo. :func:`build_face_model`
builds the same networks (:mod:`affectflow.models.networks`) with seeded random weights
(:mod:`.random_weights`) and calibrated BatchNorm statistics (:mod:`.calibration`), and
:func:`build_face_standin` writes them the way upstream wrote its own (:mod:`.export`): ONNX for
EmotiEffLib, TorchScript / a state-dict checkpoint for the DDAMFN family, so
:func:`affectflow.models.faces.load_face_model` runs its real code path on them.
:func:`face_standin` returns the path of the cached file; the same seed, torch version and CPU give
byte-identical files. Nothing imitates a trained model's output, and whether a loaded model is a
stand-in comes from its manifest, never from its hash.

Details: docs/models.md, section "Face stand-ins".
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from affectflow.core.files import atomic_write_bytes
from affectflow.models.networks.architectures import EMOTIEFFLIB_ARCHITECTURES
from affectflow.models.standins.cache import default_cache_dir
from affectflow.models.standins.calibration import calibrate_batchnorm, smooth_images, white_noise_images
from affectflow.models.standins.export import export_onnx, export_state_dict, export_torchscript
from affectflow.models.standins.random_weights import (
    damp_residual_branches,
    model_seed,
    randomise,
    randomise_groupnorm,
)
from affectflow.models.standins.registry import register_standin
from affectflow.models.standins.seeding import seeded_one_thread

log = logging.getLogger(__name__)

DEFAULT_SEED = 0
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
    # white-noise pictures added to the BatchNorm calibration set (:func:`calibration_set`); see there why
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
# versions write other bytes. On a machine not seen before, the tests check instead
# that a second build writes the same bytes. Whether a loaded model is a stand-in
# is never looked up here: its manifest says so.
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


# The TorchScript stand-in (ddamfn) archives each class under its module's name. That name is fixed here, as
# it was when the hashes above were recorded (DDAMNet was then defined in affectflow.models.ddamfn), so that
# moving the network's source file changes no stand-in's bytes.
TORCHSCRIPT_ARCHIVE_MODULE = "affectflow.models.ddamfn"

#: what an architecture needs on top of :func:`randomise` before its BatchNorms are calibrated
_EXTRA_INIT: dict[str, Callable[[Any], None]] = {
    "ddamnet": damp_residual_branches,
    "mobilevitv2_150": randomise_groupnorm,
}

#: the stand-in's bytes in its upstream file format, by :attr:`FaceStandin.fmt`
_EXPORTERS: dict[str, Callable[[Any, FaceStandin], bytes]] = {
    "onnx": lambda model, spec: export_onnx(model, spec.input_size),
    "torchscript": lambda model, spec: export_torchscript(model, spec.input_size,
                                                          archive_module=TORCHSCRIPT_ARCHIVE_MODULE),
    "state_dict": lambda model, spec: export_state_dict(model),
}


def calibration_set(spec: FaceStandin) -> Any:
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

    smooth = smooth_images(spec.input_size, spec.mean, spec.std)
    if not spec.white_calibration:
        return smooth
    return torch.cat([smooth, white_noise_images(spec.input_size, spec.mean, spec.std, spec.white_calibration)])


def build_face_model(name: str, seed: int = DEFAULT_SEED) -> Any:
    """The random-weight torch module of stand-in ``name`` (eval mode, float32)."""
    from affectflow.models.networks.build import build_network  # torch: imported when a stand-in is built

    if name not in FACE_STANDINS:
        raise ValueError(f"no face stand-in {name!r}; known: {sorted(FACE_STANDINS)}")
    spec = FACE_STANDINS[name]

    with seeded_one_thread(model_seed(name, seed)):
        model = build_network(spec.arch, spec.num_outputs)
        randomise(model)
        extra = _EXTRA_INIT.get(spec.arch)
        if extra is not None:
            extra(model)
        calibrate_batchnorm(model, calibration_set(spec))
    return model.eval().requires_grad_(False)


@register_standin(*FACE_STANDINS)
def build_face_standin(name: str, out_path: str | os.PathLike[str], seed: int = DEFAULT_SEED) -> Path:
    """Write the stand-in file of ``name`` (its upstream format) to ``out_path`` atomically."""
    spec = FACE_STANDINS.get(name)
    if spec is None:
        raise ValueError(f"no face stand-in {name!r}; known: {sorted(FACE_STANDINS)}")
    model = build_face_model(name, seed)
    with seeded_one_thread(seed):
        data = _EXPORTERS[spec.fmt](model, spec)
    return atomic_write_bytes(out_path, data)


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
