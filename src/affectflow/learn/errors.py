"""Errors of the learn stage."""

from __future__ import annotations

from affectflow.core.errors import AffectflowError


class LearnError(AffectflowError, ValueError):
    """The learn stage cannot run on these inputs; the message says which task, split or file."""
