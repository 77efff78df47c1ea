"""The one base class of every error affectflow raises on purpose.

Each module's error (``LearnError``, ``MediaError``, ...) derives from
:class:`AffectflowError` and, where callers already relied on it, from
``ValueError`` or ``RuntimeError`` too. The CLI and the workflow scripts catch
this base alone and print its message, which names the file and the problem;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class AffectflowError(Exception):
    """A problem with the input, the configuration or the environment that the message explains."""
