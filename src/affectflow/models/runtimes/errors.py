"""The error of a face model that cannot be loaded or run as asked.

Its own module because every loader (EmotiEffLib, DDAMFN, FER) and the
face-model interface raise it, and none of them should have to import another
to name it.
"""

from __future__ import annotations

from affectflow.core.errors import AffectflowError


class FaceModelError(AffectflowError, RuntimeError):
    """A face model cannot be loaded or run as asked (wrong engine, missing runtime, unexpected graph)."""
