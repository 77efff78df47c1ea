"""Build a network by architecture name: the one lookup in :data:`~affectflow.models.networks.registry.NETWORKS`.

The import of every module that registers a network is here, so a lookup never
misses a network because nobody happened to import its module first. To add a
network: decorate its builder with ``@register_network("<name>")`` and import
its module below.
"""

from __future__ import annotations

from typing import Any

# imported for their @register_network side effect: every architecture is in NETWORKS before a lookup
from affectflow.models.networks import ddamfn, efficientnet, mobilefacenet, mobilevit  # noqa: F401
from affectflow.models.networks.registry import NETWORKS


def network_names() -> list[str]:
    """Every registered architecture name, sorted."""
    return sorted(NETWORKS)


def build_network(arch: str, num_outputs: int) -> Any:
    """A fresh float32 module of architecture ``arch`` with ``num_outputs`` classifier outputs."""
    try:
        builder = NETWORKS[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(network_names())}") from None
    return builder(num_outputs)
