"""What names a weight file (:class:`WeightFile`: path in the models directory, source, expected hash), the error
every weight-file problem raises, and the user's pins.

Apart from :mod:`affectflow.models.catalogue.weights` so that the downloader
(:mod:`affectflow.models.catalogue.download`) can name files and raise the same
error without importing what it serves.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from affectflow.core.errors import AffectflowError

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX40 = re.compile(r"[0-9a-f]{40}")


class WeightsError(AffectflowError, RuntimeError):
    """A weight file is missing, unverifiable, or does not have the expected hash."""


@dataclass(frozen=True)
class WeightFile:
    """One weight file.

    ``name`` is the path relative to the models directory (e.g.
    ``"emotiefflib/enet_b0_8_best_vgaf.onnx"``); ``url`` where it comes from;
    ``sha256`` its expected hash (``""`` when no trusted source states it);
    ``size`` its size in bytes when known; ``git_sha1`` the git blob id of the
    file in its upstream repository, when that is the only hash on record.
    """

    name: str
    url: str
    sha256: str
    size: int | None = None
    git_sha1: str = ""

    def __post_init__(self) -> None:
        p = PurePosixPath(self.name)
        if not self.name or p.is_absolute() or ".." in p.parts or "\\" in self.name:
            raise ValueError(f"weight file name must be a relative path inside the models dir: {self.name!r}")
        object.__setattr__(self, "sha256", self.sha256.strip().lower())
        object.__setattr__(self, "git_sha1", self.git_sha1.strip().lower())
        if self.sha256 and not _HEX64.fullmatch(self.sha256):
            raise ValueError(f"{self.name}: sha256 must be 64 hex digits, got {self.sha256!r}")
        if self.git_sha1 and not _HEX40.fullmatch(self.git_sha1):
            raise ValueError(f"{self.name}: git_sha1 must be 40 hex digits, got {self.git_sha1!r}")

    @property
    def pinned(self) -> bool:
        """Whether a hash is on record, so the file can be verified at all."""
        return bool(self.sha256 or self.git_sha1)


def pin(wf: WeightFile, sha256: str) -> WeightFile:
    """``wf`` with a user-pinned sha256 (replaces any recorded hash)."""
    return dataclasses.replace(wf, sha256=sha256, git_sha1="")


def apply_pins(files: Iterable[WeightFile], pins: Mapping[str, str] | None) -> tuple[WeightFile, ...]:
    """Apply config ``model_pins`` ({file name: sha256}) to ``files``."""
    pins = dict(pins or {})
    return tuple(pin(wf, pins[wf.name]) if wf.name in pins else wf for wf in files)

