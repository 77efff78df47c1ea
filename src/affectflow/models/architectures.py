"""The plain-torch rebuilds of EmotiEffLib's networks, by architecture name.

One table serves both the random-weight stand-ins (built and exported from
these modules) and the torch engine (which loads the real ONNX files' weights
into them), so a stand-in and the runtime can never disagree about which
network a model is.
"""

from __future__ import annotations

from typing import Any

# EmotiEffLib model -> architecture (see the modules named in build())
EMOTIEFFLIB_ARCHITECTURES: dict[str, str] = {
    "enet_b0_8_best_vgaf": "efficientnet_b0",
    "enet_b0_8_best_afew": "efficientnet_b0",
    "enet_b0_8_va_mtl": "efficientnet_b0",
    "enet_b2_8": "efficientnet_b2",
    "mbf_va_mtl": "mobilefacenet",
    "mobilevit_va_mtl": "mobilevitv2_150",
}


def build(arch: str, num_outputs: int) -> Any:
    """A fresh float32 module of ``arch`` with ``num_outputs`` classifier outputs."""
    if arch.startswith("efficientnet_"):
        from affectflow.models import efficientnet

        return efficientnet.EfficientNet(arch.split("_", 1)[1], num_classes=num_outputs)
    if arch == "mobilefacenet":
        from affectflow.models import mobilefacenet

        return mobilefacenet.mbf_va_mtl(num_outputs)
    if arch == "mobilevitv2_150":
        from affectflow.models.mobilevit import mobilevit_va_mtl

        return mobilevit_va_mtl(num_outputs)
    raise ValueError(f"unknown architecture {arch!r}")
