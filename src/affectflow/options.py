"""Stage options from config mappings: one check that names unknown keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def options_from_mapping(cls: type[T], cfg: Mapping[str, Any] | None, what: str) -> T:
    """Build the options dataclass ``cls``; a misspelt key is an error naming it and the known ones."""
    cfg = dict(cfg or {})
    known = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f"unknown {what} option(s) {unknown}; known: {sorted(known)}")
    return cls(**cfg)
