"""What a job asks the scheduler for where that depends on its try or its input.

Why: the profiles retry a failed job once (``retries: 1``). A job killed at its time or memory limit would
be retried with the limit that killed it and fail again, so the rules' ``runtime`` and ``mem_mb`` grow with
each attempt. learn's memory grows with its input: it stacks every frame row of the task's splits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: each per-shard and training rule's time limit on its first try, in minutes (the rules' ``runtime``; the
#: Slurm profiles give the GPU stages shorter ones, docs/cluster.md): ``affectflow plan`` warns of a stage whose
#: longest job would not fit
RUNTIME_MIN = {"media": 60, "faces": 120, "contact_sheets": 10, "face_features": 120, "audio_features": 240,
               "transcripts": 240, "text_features": 120, "frame_predictions": 60, "learn": 240, "fuse": 120}

#: the GPU stages' time limits in profiles/slurm-gpu (its ``set-resources``, shorter than the rules': a GPU runs
#: them faster), in minutes; a test keeps them equal to the profile's
SLURM_GPU_RUNTIME_MIN = {"faces": 120, "face_features": 60, "audio_features": 120, "transcripts": 180,
                         "text_features": 60}


def time_limits(gpu: bool) -> dict[str, int]:
    """Each stage's time limit in minutes where its jobs run: the rules', the GPU profile's on a GPU node."""
    return {**RUNTIME_MIN, **(SLURM_GPU_RUNTIME_MIN if gpu else {})}


#: learn's memory below any input size: Python, torch and the per-video arrays of a small task
LEARN_FLOOR_MB = 8000
#: learn's memory per MB of its feature shards: the stacked rows (about the face feature shards' size,
#: frame-aligned audio and text on top) beside the per-video arrays they are stacked from
LEARN_PER_INPUT_MB = 1.5


def per_attempt(amount: int) -> Callable[[Any, int], int]:
    """A rule resource of ``amount`` on the first try, twice that on the second, and so on."""

    def resource(wildcards: Any, attempt: int) -> int:
        return int(amount) * int(attempt)

    return resource


def learn_mem_mb(input_mb: float, attempt: int) -> int:
    """learn's ``mem_mb`` for ``input_mb`` of feature shards, on try ``attempt``."""
    return int(max(LEARN_FLOOR_MB, LEARN_PER_INPUT_MB * float(input_mb))) * int(attempt)
