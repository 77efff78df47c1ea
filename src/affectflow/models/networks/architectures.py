"""Which network each EmotiEffLib model is, by architecture name (a key of
:data:`affectflow.models.networks.registry.NETWORKS`).

One table serves both the random-weight stand-ins (built and exported from
these networks) and the torch engine (which loads the real ONNX files' weights
into them), so a stand-in and the runtime can never disagree about which
network a model is. It imports no torch, so the stand-in tables can read it
cheaply.
"""

from __future__ import annotations

# EmotiEffLib model -> architecture (built by affectflow.models.networks.build.build_network)
EMOTIEFFLIB_ARCHITECTURES: dict[str, str] = {
    "enet_b0_8_best_vgaf": "efficientnet_b0",
    "enet_b0_8_best_afew": "efficientnet_b0",
    "enet_b0_8_va_mtl": "efficientnet_b0",
    "enet_b2_8": "efficientnet_b2",
    "mbf_va_mtl": "mobilefacenet",
    "mobilevit_va_mtl": "mobilevitv2_150",
}
