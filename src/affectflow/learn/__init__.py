"""Learning stage: feature alignment, video descriptors, MLP heads and the AH video filter.

Submodules (import them directly; ``heads`` pulls in torch, the others do not):

* :mod:`affectflow.learn.align` -- audio/text features onto face frames, missing-face policies;
* :mod:`affectflow.learn.stats` -- video-level STAT descriptors (mean, std, min, max);
* :mod:`affectflow.learn.heads` -- MLP heads and their seeded, deterministic trainers;
* :mod:`affectflow.learn.video_classifier` -- AH video-level logistic regression filter.

Fusion, metrics, sweeps and submission files live in ``affectflow.fuse.postprocess``,
``affectflow.evaluate.metrics``, ``affectflow.fuse.sweeps`` and ``affectflow.submit.formats``.
"""

from affectflow.learn.align import (
    AlignedFeatures,
    TextSegments,
    TimedVectors,
    align_video,
    face_rows_to_frames,
    interpolate_to_frames,
    segments_to_frames,
)
from affectflow.learn.stats import stat_descriptor, stat_descriptors

__all__ = [
    "AlignedFeatures",
    "TextSegments",
    "TimedVectors",
    "align_video",
    "face_rows_to_frames",
    "interpolate_to_frames",
    "segments_to_frames",
    "stat_descriptor",
    "stat_descriptors",
]
