"""Stand-in builders by registry model name, filled by ``@register_standin`` beside each builder.

Why a registry: which models can have a random-weight stand-in, and how each is
written, is known where the builder is written (the face, detector and speech
modules), not in the stage that asks for one. A builder is added by decorating
it and importing its module in :mod:`affectflow.models.standins.build`, the
one place that looks a name up. This module holds only the table, so the
builders import it without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

#: the stand-in is one file, written at the model's one registry file name under the stand-ins folder
FILE = "file"
#: the stand-in is a checkpoint folder holding the model's registry files, built beside it and moved in
FOLDER = "folder"
LAYOUTS = (FILE, FOLDER)

#: a builder: (registry name, target path: the file, or the folder, to write) -> what it wrote
Builder = Callable[[str, Path], object]
B = TypeVar("B", bound=Builder)


@dataclass(frozen=True)
class StandinBuilder:
    """How the stand-in of one registry model is made: the builder and the layout it writes."""

    build: Builder
    layout: str


#: registry model name -> its builder; filled when the builder modules are imported
STANDIN_BUILDERS: dict[str, StandinBuilder] = {}


def register_standin(*names: str, layout: str = FILE) -> Callable[[B], B]:
    """Decorator: ``builder(name, target)`` makes the stand-in of each registry model in ``names``.

    ``layout`` says what ``target`` is: the model's one file (:data:`FILE`) or
    the folder of its files (:data:`FOLDER`). A name registered twice is an
    error: two builders for one model would write different bytes depending on
    import order.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown stand-in layout {layout!r}: use one of {LAYOUTS}")
    if not names:
        raise ValueError("register_standin needs at least one registry model name")

    def register(builder: B) -> B:
        for name in names:
            known = STANDIN_BUILDERS.get(name)
            if known is not None and known.build is not builder:
                raise ValueError(f"stand-in {name!r} is registered twice: {known.build.__module__} and "
                                 f"{builder.__module__}")
            STANDIN_BUILDERS[name] = StandinBuilder(builder, layout)
        return builder

    return register
