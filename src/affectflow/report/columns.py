"""The columns of the per-frame predictions table, read back by name.

The predictions table's contract is its column names (``video_id, frame,
timestamp, face``, then ``<model>:<class>`` per face model, then
``<task>:<...>`` per predicted task); this module is the one place the report
parses them, so the timeline and the page agree on what a column is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from affectflow.core.vocabulary import TASKS
from affectflow.predict.frames import BASE_COLUMNS  # the columns every predictions table starts with

#: per-model columns that are no class probability
_REGRESSION = ("valence", "arousal")


@dataclass(frozen=True)
class PredictionColumns:
    """The face models (with their class columns, in table order) and the tasks of a predictions table."""

    models: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tasks: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def model_classes(self, model: str) -> tuple[str, ...]:
        """The class names of ``model`` (its ``<model>:<class>`` columns without valence/arousal)."""
        return tuple(c for c in self.models.get(model, ()) if c not in _REGRESSION)

    def first_model_with_classes(self) -> str | None:
        return next((m for m in self.models if self.model_classes(m)), None)


def parse_columns(columns: Sequence[str]) -> PredictionColumns:
    """Split the table's columns into face-model and task columns (base columns must all be there)."""
    missing = [c for c in BASE_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"predictions table lacks column(s) {missing}")
    models: dict[str, list[str]] = {}
    tasks: dict[str, list[str]] = {}
    for col in columns:
        if col in BASE_COLUMNS or ":" not in col:
            continue
        owner, _, part = col.partition(":")
        (tasks if owner in TASKS else models).setdefault(owner, []).append(part)
    return PredictionColumns({m: tuple(v) for m, v in models.items()},
                             {t: tuple(tasks[t]) for t in TASKS if t in tasks})
