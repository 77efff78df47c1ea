"""The learn options as training reads them: typed, with ``auto`` resolved for the task and its modalities.

The stage's options class checks what a user wrote; this is what the training code needs. Its JSON form
(:meth:`LearnSettings.to_json`) is a file format: a head's sidecar keeps it as ``learn_config`` and the
predictions' provenance as ``learn``, so a head applied later (``affectflow.predict``) rebuilds its input
rows exactly as training did.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, replace
from typing import Any

from affectflow.core.vocabulary import is_video_task
from affectflow.learn.heads import TrainConfig
from affectflow.learn.rows import RowOptions


@dataclass(frozen=True)
class LearnSettings:
    """One learn run's options (docs/learning.md, "learn", Options); ``auto`` values until :meth:`resolved`."""

    missing_face: str
    text_fill: str
    face_input: str
    train: TrainConfig
    class_weighted: bool
    emi_weights: str | tuple[float, ...]
    ah_video_classifier: bool
    ah_video_C: float
    standardize: bool
    stat_parts: tuple[str, ...]
    on_label_mismatch: str

    def resolved(self, task: str, kinds: Collection[str]) -> LearnSettings:
        """``auto`` made concrete: a face-only feature set carries the last face over a gap (nothing else can
        stand in for it), others let the other modalities speak; text outside speech is the nearest segment
        for the video tasks (their descriptor summarises the whole video), zeros for the frame tasks."""
        missing_face, text_fill = self.missing_face, self.text_fill
        if missing_face == "auto":
            missing_face = "carry_last" if set(kinds) == {"face"} else "other_modalities"
        if text_fill == "auto":
            text_fill = "nearest" if is_video_task(task) else "zeros"
        return replace(self, missing_face=missing_face, text_fill=text_fill)

    @property
    def rows(self) -> RowOptions:
        """The options that decide a video's head rows (the part prediction needs too)."""
        return RowOptions(face_input=self.face_input, missing_face=self.missing_face, text_fill=self.text_fill,
                          stat_parts=self.stat_parts)

    def to_json(self) -> dict[str, Any]:
        """The sidecar's ``learn_config`` and the provenance's ``learn``: every option, sequences as lists."""
        return {
            "missing_face": self.missing_face,
            "text_fill": self.text_fill,
            "face_input": self.face_input,
            "train": asdict(self.train),
            "class_weighted": self.class_weighted,
            "emi_weights": self.emi_weights if isinstance(self.emi_weights, str) else list(self.emi_weights),
            "ah_video_classifier": self.ah_video_classifier,
            "ah_video_C": self.ah_video_C,
            "standardize": self.standardize,
            "stat_parts": list(self.stat_parts),
            "on_label_mismatch": self.on_label_mismatch,
        }
