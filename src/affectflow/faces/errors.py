"""Errors of the faces stage."""

from __future__ import annotations

from affectflow.core.errors import AffectflowError
from affectflow.media.decode import MediaError


class FaceStageError(AffectflowError, RuntimeError):
    """The faces stage cannot run as configured (bad config, missing or wrong weights)."""


class VideoError(FaceStageError, MediaError):
    """One video cannot be decoded; the message names the file.

    It is also a :class:`affectflow.media.decode.MediaError`, so code that handles bad
    videos of any stage catches it the same way.
    """
