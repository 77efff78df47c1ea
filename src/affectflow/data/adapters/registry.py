"""The adapter registry: each adapter module registers the config ``adapter`` name it serves.

In the style of lhotse's recipe registry: a new dataset layout is one new
module with one ``@register_adapter("name", check=...)`` line, and nothing
else (``build_units``, the error for an unknown name) needs editing.
Registration order is the order names are listed in (``ADAPTERS``, errors):
the package ``__init__`` imports the adapter modules in the schema's order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from affectflow.data.adapters.entry import DatasetEntry
from affectflow.data.adapters.errors import LabelError
from affectflow.data.units import SkippedFile, Unit


@dataclass(frozen=True)
class FoundUnits:
    """What an adapter found: its units (any order), and the files it left out with the reason (only the
    ``folder`` adapter lists them: for the others, other files are simply not their units)."""

    units: list[Unit]
    skipped: list[SkippedFile] = field(default_factory=list)


#: reads one entry's dataset: (entry, n_shards, base directory of relative paths) -> units
BuildUnits = Callable[[DatasetEntry, int, Path], FoundUnits]
#: rejects an entry the adapter cannot read (a missing folder key, a key it does not take), before any file is read
CheckEntry = Callable[[DatasetEntry], None]


@dataclass(frozen=True)
class Adapter:
    """One registered dataset layout."""

    name: str  # the config's ``adapter`` value
    check: CheckEntry
    build: BuildUnits


_REGISTRY: dict[str, Adapter] = {}


def register_adapter(name: str, *, check: CheckEntry) -> Callable[[BuildUnits], BuildUnits]:
    """Decorator: register ``build`` as the adapter for the config's ``adapter: <name>``; a name taken twice is
    a programming error, raised at import."""

    def register(build: BuildUnits) -> BuildUnits:
        if name in _REGISTRY:
            raise ValueError(f"dataset adapter {name!r} registered twice ({_REGISTRY[name].build.__module__} and "
                             f"{build.__module__})")
        _REGISTRY[name] = Adapter(name, check, build)
        return build

    return register


def adapter_names() -> tuple[str, ...]:
    """The registered adapter names, in registration order."""
    return tuple(_REGISTRY)


def get_adapter(name: object, where: str) -> Adapter:
    """The adapter registered as ``name``; any other value (a typo, a missing key) is an error listing them."""
    adapter = _REGISTRY.get(name) if isinstance(name, str) else None
    if adapter is None:
        raise LabelError(f"{where}: unknown adapter {name!r}, expected one of {adapter_names()}")
    return adapter
