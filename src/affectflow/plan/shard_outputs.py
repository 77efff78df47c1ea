"""The per-shard rules' output files, by the patterns of ``workflow/rules/*.smk``.

Why one place: what reads a run's shard files without Snakemake (``affectflow reruns CONFIG`` comparing
their recorded keys, the benchmark that times each job) must name the same paths the rules write, and
would otherwise each spell them again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ShardOutput:
    """One per-shard job's output: its rule, the model it runs ('' for a rule of one job a shard; for
    text_features the text model, with the ASR model whose transcripts it embeds in ``asr``) and its path."""

    stage: str
    model: str
    path: Path
    asr: str = ""

    @property
    def label(self) -> str:
        """The job among its rule's jobs of the shard: the model, ``<asr>/<text model>`` for text_features."""
        return f"{self.asr}/{self.model}" if self.asr else self.model


def sheets_dir(faces_shard: str | Path) -> Path:
    """The contact_sheets job's folder of the faces shard ``faces/<detector>/<shard>.h5``."""
    shard = Path(faces_shard)
    return shard.parent / "sheets" / shard.stem


def shard_outputs(out: Path, config: Mapping[str, Any], shard: str) -> list[ShardOutput]:
    """Every per-shard job's output of ``shard`` under ``out`` (a run's results folder), in the workflow's order,
    for the config's detector, models and contact sheets."""
    feats = config.get("features") or {}
    faces = config.get("faces") or {}
    detector = faces["detector"]
    faces_shard = out / "faces" / detector / f"{shard}.h5"
    outs = [ShardOutput("media", "", out / "media" / f"{shard}.h5"), ShardOutput("faces", "", faces_shard)]
    if faces.get("contact_sheets", True):
        outs.append(ShardOutput("contact_sheets", "", sheets_dir(faces_shard)))
    for stage, kind, folder in (("face_features", "face", "features/face"),
                                ("audio_features", "audio", "features/audio"), ("transcripts", "asr", "transcripts")):
        outs += [ShardOutput(stage, model, out / folder / model / f"{shard}.h5") for model in feats.get(kind) or []]
    outs += [ShardOutput("text_features", model, out / "features" / "text" / asr / model / f"{shard}.h5", asr)
             for asr in feats.get("asr") or [] for model in feats.get("text") or []]
    outs.append(ShardOutput("frame_predictions", "", out / "frame_predictions" / f"{shard}.parquet"))
    return outs
