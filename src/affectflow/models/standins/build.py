"""Build a registry model's random-weight stand-in: the one lookup in
:data:`~affectflow.models.standins.registry.STANDIN_BUILDERS`.

The import of every module that registers a builder is here, so a lookup never
misses a stand-in because nobody happened to import its module first. The
``fetch_model`` stage calls :func:`build_standin` with the stand-ins folder
(``<models_dir>/standins``) and then hashes the files at the registry's names.
"""

from __future__ import annotations

from pathlib import Path

from affectflow.core.files import atomic_files_in
from affectflow.models.catalogue.registry import get

# imported for their @register_standin side effect: every builder is in STANDIN_BUILDERS before a lookup
from affectflow.models.standins import detector, face, speech  # noqa: F401
from affectflow.models.standins.registry import FOLDER, STANDIN_BUILDERS


def standin_names() -> list[str]:
    """Every registry model a stand-in can be built for, sorted."""
    return sorted(STANDIN_BUILDERS)


def build_standin(name: str, root: str | Path) -> Path:
    """Build the stand-in of registry model ``name`` (or alias) under ``root``, at the registry's file names.

    A one-file model's stand-in is written at ``root / <its file name>`` (atomically, by its builder); a
    checkpoint folder is built beside its place and each file moved in with an atomic rename, so a job that
    has a file of an earlier build open keeps reading intact bytes. Returns the file or the folder.
    A model without a registered builder is a ValueError naming those that have one.
    """
    spec = get(name)
    entry = STANDIN_BUILDERS.get(spec.name)
    if entry is None:
        raise ValueError(f"model {spec.name!r}: no stand-in can be built for it (stand-ins exist for: "
                         f"{', '.join(standin_names())})")
    root = Path(root)
    if entry.layout == FOLDER:
        dest = root / Path(spec.files[0].name).parent
        with atomic_files_in(dest) as tmp:
            entry.build(spec.name, tmp)
        return dest
    (wf,) = spec.files
    entry.build(spec.name, root / wf.name)
    return root / wf.name
