"""Errors of the fuse stage."""

from __future__ import annotations

from affectflow.core.errors import AffectflowError


class FuseError(AffectflowError, ValueError):
    """The fuse stage cannot run on these inputs; the message says which task, split or file."""
