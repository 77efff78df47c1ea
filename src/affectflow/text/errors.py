"""The errors of the text package: the speech recogniser's and the text encoders'."""

from __future__ import annotations

from affectflow.core.errors import AffectflowError


class ASRError(AffectflowError, RuntimeError):
    """The speech recogniser cannot run (missing package, unusable model files, bad configuration)."""


class TextFeatureError(AffectflowError, RuntimeError):
    """A text encoder cannot run or an embedding API refused the request."""
