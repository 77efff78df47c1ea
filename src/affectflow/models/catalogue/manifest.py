"""A model manifest: which verified weight files a run uses (name -> sha256), and whether they are a stand-in.

The ``fetch_model`` stage writes one per model (:mod:`affectflow.stages.fetch_model`);
feature stages read it, pin those hashes when they load the model, and take
"stand-in or not" from it alone. Stand-ins live under ``<models_dir>/standins``,
apart from real weights.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from affectflow.core.files import atomic_write_text
from affectflow.models.catalogue import weights

STANDINS_SUBDIR = "standins"


@dataclass(frozen=True)
class PreparedModel:
    """A model's verified files (name -> sha256) and whether they are a stand-in."""

    name: str
    root: str
    files: dict[str, str] = field(default_factory=dict)
    standin: bool = False
    rerun_key: str = ""
    #: the manifest file a job read this from (:meth:`for_job`), for its errors; never saved
    manifest: str = field(default="", compare=False)

    @property
    def pins(self) -> dict[str, str]:
        return dict(self.files)

    def at(self, models_dir: str | os.PathLike[str] | None) -> PreparedModel:
        """The same verified files, looked up in ``models_dir`` (``$AFFECTFLOW_MODELS_DIR`` wins): a job finds
        the weights where the config says they live now, and checks them against the manifest's hashes."""
        root = weights.models_dir(None if models_dir is None else str(models_dir))
        return replace(self, root=str(root / STANDINS_SUBDIR if self.standin else root))

    def save(self, path: str | os.PathLike[str]) -> None:
        saved = {k: v for k, v in asdict(self).items() if k != "manifest"}
        atomic_write_text(path, json.dumps(saved, indent=2, sort_keys=True) + "\n")

    @contextmanager
    def explained(self) -> Iterator[None]:
        """A job's weights error, with what the manifest has to do with it.

        A job checks the files against its manifest, not the registry: the advice of the error alone (fetch
        the file again) could not mend a stand-in, which no download gives, nor a manifest that had changed.
        """
        try:
            yield
        except weights.WeightsError as e:
            if not self.manifest or type(e) is not weights.WeightsError:  # no manifest, or a runtime's own error
                raise
            where = self.manifest
            if self.standin:
                note = (f"{self.name} is a random-weight stand-in that its fetch_model job built and {where} pins: "
                        f"delete {where} and rerun, and the stand-in is built again, byte for byte")
            else:
                note = (f"this job checks {self.name}'s files against {where}, written by its fetch_model job: "
                        f"when `affectflow models verify {self.name}` passes, the manifest is what changed, so "
                        "delete it and rerun")
            raise weights.WeightsError(f"{e} ({note})") from None

    @classmethod
    def for_job(cls, manifest: str | os.PathLike[str] | Sequence[str],
                models_dir: str | os.PathLike[str] | None) -> PreparedModel:
        """The manifest a job takes from a ``fetch_model`` job, its files looked up in the job's ``models_dir``
        (:meth:`at`). ``manifest``: the input's path, or the one-item list a rule's list input gives."""
        if not isinstance(manifest, str | os.PathLike):
            if len(manifest) != 1:
                raise ValueError(f"a job takes one model manifest from fetch_model, got {list(manifest)}")
            manifest = manifest[0]
        return replace(cls.load(manifest).at(models_dir), manifest=str(manifest))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PreparedModel:
        data = json.loads(Path(path).read_text())
        return cls(name=data["name"], root=data["root"], files=dict(data["files"]), standin=bool(data["standin"]),
                   rerun_key=str(data.get("rerun_key", "")))
