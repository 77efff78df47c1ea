"""The learn options as training reads them: typed, with ``auto`` resolved for the task and its modalities.

The stage's options class checks what a user wrote; this is what the training code needs. Its JSON form
(:meth:`LearnSettings.to_json`) is a file format: a head's sidecar keeps it as ``learn_config`` and the
predictions' provenance as ``learn``, so a head applied later (``affectflow.predict``) rebuilds its input
rows exactly as training did.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from affectflow.core.vocabulary import is_video_task


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters shared by all heads.

    ``patience``: stop after this many epochs without a better validation
    metric (0 = never stop early); ignored when no validation split is given.
    ``device``: ``"auto"`` (the CPU, where training is bit-reproducible, whatever
    the machine has) or ``"cuda"``/``"cpu"`` (:func:`~affectflow.learn.heads.training_device`).
    """

    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 256
    weight_decay: float = 0.0
    patience: int = 5
    seed: int = 0
    device: str = "auto"
    hidden: int = 128
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.patience < 0 or self.weight_decay < 0:
            raise ValueError(f"invalid TrainConfig {self}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig keys {unknown}")
        return cls(**d)


@dataclass(frozen=True)
class RowOptions:
    """The learn options that decide a video's head rows; a head's sidecar keeps them (in its ``learn_config``),
    so applying the head to new videos builds the rows its training saw."""

    face_input: str  # embeddings, logits or both
    missing_face: str  # drop, carry_last or other_modalities (resolved, never auto)
    text_fill: str  # zeros or nearest (resolved, never auto)
    stat_parts: tuple[str, ...]  # the STAT descriptor's parts (video tasks)
    audio_stat: str = "frames"  # frames or native (video tasks; heads saved before it are frames)

    @classmethod
    def from_sidecar(cls, learn_config: Mapping[str, Any]) -> RowOptions:
        """The row options of a saved head's ``learn_config`` (its other options are training's only)."""
        return cls(face_input=str(learn_config["face_input"]), missing_face=str(learn_config["missing_face"]),
                   text_fill=str(learn_config["text_fill"]), stat_parts=tuple(learn_config["stat_parts"]),
                   audio_stat=str(learn_config.get("audio_stat", "frames")))


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
    audio_stat: str = "frames"

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
                          stat_parts=self.stat_parts, audio_stat=self.audio_stat)

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
            # only when set: the files written before it keep their form
            **({"audio_stat": self.audio_stat} if self.audio_stat != "frames" else {}),
        }
