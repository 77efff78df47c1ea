"""A registry model's files, verified and located: what a model stage loads its model from.

The audio, transcript and text stages all start the same way: take a registry
name (or a ``ModelSpec``), verify every file the entry lists in the models
directory (:func:`affectflow.models.catalogue.weights.ensure`, which never downloads), and
hand a private folder of links to those files, and nothing else, to ``from_pretrained``, ``WhisperModel``
or ``torch.load``. This module is that step, once, so that the three stages verify
files and hash their weights the same way.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from affectflow.core.files import sha256_file
from affectflow.models.catalogue.registry import ModelSpec, get
from affectflow.models.catalogue.weight_file import WeightFile
from affectflow.models.catalogue.weights import WeightsError, apply_pins, ensure, models_dir, read_verified

#: the weights file of a ``transformers`` checkpoint directory, by preference
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# The weights file of a registry model, by preference (the largest file when none of these).
_WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin", "model.bin")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".script", ".hdf5", ".h5")


@dataclass(frozen=True)
class ResolvedModel:
    """A registry model whose files are all present and verified.

    ``directory``: a private folder holding links to the verified files only, under their in-model relative
    names (what ``from_pretrained`` and ``WhisperModel`` want); ``files``: file
    name in the registry -> verified path; ``weights_sha256``: sha256 of the
    main weights file ("" for models without files, e.g. API embedders).
    """

    spec: Any
    directory: Path | None
    files: dict[str, Path]
    weights_sha256: str
    main: WeightFile | None = None  # the main weights file, as verified (``weights_sha256`` is its hash)

    @property
    def name(self) -> str:
        return str(self.spec.name)

    def read_weights(self) -> bytes:
        """The main weights file's bytes, checked against its record as they are read (:func:`read_verified`):
        for a loader that parses bytes (a pickle, say), so that what it parses is what was verified."""
        if self.main is None:
            raise WeightsError(f"model {self.name} has no weights file")
        return read_verified(self.files[self.main.name], self.main)[0]


def weights_file(model_dir: str | os.PathLike[str]) -> Path:
    """The weights file of a ``transformers`` checkpoint directory (a missing one is a :class:`WeightsError`)."""
    d = Path(model_dir)
    for name in WEIGHT_FILES:
        if (d / name).is_file():
            return d / name
    raise WeightsError(f"{d}: no weights file ({' or '.join(WEIGHT_FILES)}) in the model directory")


def resolve_model(
    model: str | ModelSpec, models_root: str | os.PathLike[str] | None = None, pins: Mapping[str, str] | None = None
) -> ResolvedModel:
    """Verify every file of a registry model (a name, alias or ``ModelSpec``) and locate them.

    Nothing is downloaded (``affectflow.models.catalogue.weights.ensure``): a missing file raises
    ``WeightsError`` naming it, its URL and where to put it; a file without a
    hash on record must be pinned (``pins``: config ``model_pins``).
    """
    spec = get(model) if isinstance(model, str) else model
    root = models_dir(models_root)
    files = apply_pins(spec.files, pins)
    paths = {wf.name: ensure(wf, root, model=spec.name) for wf in files}
    if not files:
        return ResolvedModel(spec=spec, directory=None, files={}, weights_sha256="")
    directory = _linked_directory([(wf.name, paths[wf.name]) for wf in files])
    main = _main_weights([wf.name for wf in files], paths)
    wf_main = next(wf for wf in files if wf.name == main)
    sha = wf_main.sha256 or sha256_file(paths[main])
    return ResolvedModel(spec=spec, directory=directory, files=paths, weights_sha256=sha, main=wf_main)


def registry_directory(
    models_root: str | os.PathLike[str], model: str | ModelSpec, pins: Mapping[str, str] | None
) -> tuple[Path, str, str]:
    """(the folder to load from, weights sha256, registry name) of a registry model whose files are verified in
    ``models_root``: the one way a stage's folder model is found. A folder that merely holds a ``config.json``
    is never taken for a checkpoint: its files would be loaded unverified."""
    resolved = resolve_model(model, Path(models_root).expanduser(), pins)
    if resolved.directory is None:
        raise WeightsError(f"model {resolved.name} has no files to load")
    return resolved.directory, resolved.weights_sha256, resolved.name


def _main_weights(names: list[str], paths: Mapping[str, Path]) -> str:
    base = {n: n.rsplit("/", 1)[-1] for n in names}
    for want in _WEIGHT_NAMES:
        for n in names:
            if base[n] == want:
                return n
    weights = [n for n in names if base[n].endswith(_WEIGHT_SUFFIXES)] or names
    return max(weights, key=lambda n: paths[n].stat().st_size)


def _linked_directory(items: list[tuple[str, Path]]) -> Path:
    """A private temporary folder holding links to the verified files only, each at its name relative to the
    names' common prefix; removed when the process ends.

    Why never the folder the files sit in: loaders read more than they are given. ``from_pretrained`` takes a
    ``model.safetensors`` over the verified ``pytorch_model.bin``, and tokenizer or sentence-transformers files
    change what a model computes; in a shared models folder such a file, unlisted and so unverified, would be
    loaded in the verified file's name.
    """
    parts = [PurePosixPath(n).parts for n, _ in items]
    prefix = 0
    while all(len(p) > prefix + 1 for p in parts) and len({p[prefix] for p in parts}) == 1:
        prefix += 1
    tmp = Path(tempfile.mkdtemp(prefix="affectflow-model-"))  # mode 0700
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    for p, (_, path) in zip(parts, items, strict=True):
        rel = PurePosixPath(*p[prefix:])
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).symlink_to(path.resolve())
    return tmp
