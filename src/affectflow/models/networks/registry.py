"""Network builders by architecture name, filled by ``@register_network`` beside each network.

Why a registry rather than a chain of ``if`` s in one dispatcher: a network is
added by writing its module (and listing it in
:mod:`affectflow.models.networks.build`), not by editing a function that knows
every family; the stand-ins and the torch engine then find it by the same name.
This module holds only the table: it imports no network, so the networks can
import it without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

#: a builder: the number of classifier outputs -> a fresh float32 ``nn.Module``
NetworkBuilder = Callable[[int], Any]
B = TypeVar("B", bound=NetworkBuilder)

#: architecture name -> builder; filled when the network modules are imported
NETWORKS: dict[str, NetworkBuilder] = {}


def register_network(name: str) -> Callable[[B], B]:
    """Decorator: register ``builder(num_outputs)`` under ``name`` (timm's ``register_model`` style).

    A name registered twice is an error: two networks answering to one
    architecture name would make a weight file load into whichever module was
    imported last.
    """

    def register(builder: B) -> B:
        if name in NETWORKS and NETWORKS[name] is not builder:
            raise ValueError(f"network {name!r} is registered twice: {NETWORKS[name].__module__} and "
                             f"{builder.__module__}")
        NETWORKS[name] = builder
        return builder

    return register
