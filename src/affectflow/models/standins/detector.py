"""A random-weight, architecture-identical stand-in for uniface's RetinaFace MobileNet-0.25 ONNX file.

uniface's ``retinaface_mv1_0.25.onnx`` (registry ``retinaface_mnet025``) cannot be downloaded in tests
or the offline demo. :func:`build_retinaface_mnet` builds the same network
(:mod:`affectflow.models.networks.retinaface_mnet`) with seeded random weights, and
:func:`export_retinaface_onnx` exports it the way yakhyo/retinaface-pytorch ``scripts/onnx_export.py
--dynamic`` exported uniface's file,
so the detector's real loading and decoding code runs on it. A stand-in finds no real faces: its scores
are what random weights give (some anchors score high on any picture). The seeding, BatchNorm calibration
and cache layout are those of the face stand-ins (:mod:`affectflow.models.standins.face`).

Details: docs/models.md, section "Face detectors".
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from affectflow.core.files import atomic_write_bytes
from affectflow.models.networks import retinaface_mnet as rm
from affectflow.models.standins.cache import default_cache_dir
from affectflow.models.standins.calibration import calibrate_batchnorm, smooth_images
from affectflow.models.standins.random_weights import model_seed, randomise
from affectflow.models.standins.registry import register_standin
from affectflow.models.standins.seeding import seeded_one_thread

log = logging.getLogger(__name__)

DEFAULT_SEED = 0
NAME = "retinaface_mnet025"
FILE_NAME = "retinaface_mv1_0.25.onnx"
HEAD_PRIOR_LOGIT = 4.59511985  # log(0.99 / 0.01)
EXPORT_SIZE = 640  # scripts/onnx_export.py traces a 1 x 3 x 640 x 640 input
# Calibration pictures: smooth random images in the detector's input normalisation (BGR 0..255 minus
# MEAN_BGR, i.e. mean MEAN_BGR / 255 and std 1 / 255 on [0, 1] pixels), as big as a small video frame.
CALIBRATION_SIZE = 256
CALIBRATION_MEAN = tuple(m / 255.0 for m in rm.MEAN_BGR)
CALIBRATION_STD = (1 / 255.0, 1 / 255.0, 1 / 255.0)

# sha256 of the stand-in built with seed 0 by the reference toolchain (torch 2.13.0+cpu, TorchScript
# ONNX exporter, x86-64), one per machine seen so far (the BatchNorm calibration's float64 kernels differ
# between CPUs: see affectflow.models.standins.face.KNOWN_STANDIN_SHA256); other torch versions write
# other bytes. Whether a loaded model is a stand-in is never looked up here.
KNOWN_STANDIN_SHA256: dict[str, str] = {
    "d16ec75986ede1e26f88e7a226029f7d5c93eb1d1ba2a83f17cb9436becc24cc": NAME,
    "af05672b1eba5930d1c76aef9b99701faa732770a3f02d997d143a1507a85943": NAME,
}


def build_retinaface_mnet(seed: int = DEFAULT_SEED) -> Any:
    """The random-weight :class:`~affectflow.models.networks.retinaface_mnet.RetinaFace` (eval mode, float32).

    Convolutions get timm's ``N(0, sqrt(2 / fan_out))``, BatchNorm a random scale and shift, and the
    BatchNorm running statistics are calibrated on smooth random pictures, so activations neither vanish
    nor explode and the three outputs vary with the input (a comparison of two engines means something).
    """
    with seeded_one_thread(model_seed(NAME, seed)):
        model = rm.RetinaFace()
        randomise(model)
        calibrate_batchnorm(model, smooth_images(CALIBRATION_SIZE, CALIBRATION_MEAN, CALIBRATION_STD))
        _randomise_heads(model)
    return model.eval().requires_grad_(False)


def _randomise_heads(model: Any) -> None:
    """The 1x1 head convs as torch initialises them (``U(+-1/sqrt(fan_in))``: outputs O(1), not timm's O(10)),
    and the face logit biased down by log(99), RetinaNet's prior-probability initialisation: as in a trained
    detector, most anchors score low and a default threshold keeps few of them."""
    import math

    import torch

    with torch.no_grad():
        for head in (model.class_head.class_head, model.bbox_head.bbox_head, model.landmark_head.landmark_head):
            for conv in head:
                r = 1.0 / math.sqrt(conv.in_channels)
                conv.weight.uniform_(-r, r)
                conv.bias.uniform_(-r, r)
        for conv in model.class_head.class_head:  # channels (anchor, [background, face])
            conv.bias[1::2] -= HEAD_PRIOR_LOGIT


def export_retinaface_onnx(model: Any) -> bytes:
    """``model`` as ONNX bytes, exported as ``scripts/onnx_export.py --dynamic`` does (opset 16, eval mode,
    constant folding, so every BatchNorm is folded into its convolution)."""
    import torch

    dummy = torch.zeros(1, 3, EXPORT_SIZE, EXPORT_SIZE)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings, deprecation notes
        torch.onnx.export(
            model, (dummy,), buf, dynamo=False, opset_version=rm.OPSET, do_constant_folding=True,
            export_params=True, input_names=[rm.INPUT_NAME], output_names=list(rm.OUTPUT_NAMES),
            dynamic_axes=rm.DYNAMIC_AXES,
        )
    return buf.getvalue()


def build_retinaface_standin(out_path: str | os.PathLike[str], seed: int = DEFAULT_SEED) -> Path:
    """Write the stand-in ONNX file to ``out_path`` atomically."""
    model = build_retinaface_mnet(seed)
    with seeded_one_thread(seed):
        data = export_retinaface_onnx(model)
    return atomic_write_bytes(out_path, data)


def retinaface_standin(cache_dir: str | os.PathLike[str] | None = None, seed: int = DEFAULT_SEED) -> Path:
    """The stand-in file, built once and cached beside the face stand-ins (keyed by seed and torch version)."""
    import torch

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = root / f"torch-{torch.__version__}" / f"seed{seed}" / FILE_NAME
    if path.is_file():
        return path
    log.info("building detector stand-in %s at %s", NAME, path)
    return build_retinaface_standin(path, seed)


@register_standin(NAME)
def _build_registered(name: str, out_path: Path) -> Path:
    """The builder :mod:`affectflow.models.standins.build` calls for ``retinaface_mnet025`` (seed 0)."""
    return build_retinaface_standin(out_path)
