"""A transcripts shard's segments to embeddings, and back to one record per video.

All segments of a shard are embedded together (fewer API calls, fuller
batches), then split back per video in shard order. A video without speech has
zero segments: an empty (0, D) ``embeddings`` array, not an error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from affectflow.core.progress import progress_bar
from affectflow.io.store import VideoRecord
from affectflow.models.resolve import ResolvedModel
from affectflow.text.encoders import GoEmotionsEncoder, SentenceEncoder
from affectflow.text.loading import Encoder
from affectflow.text.transcript import VideoSegments

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardEmbeddings:
    """The encoder's outputs for every segment of a shard, in shard order (``embeddings``, and
    ``logits`` for GoEmotions; empty when the shard has no segment), with the vector width and
    the logits' class names (empty when the encoder has none)."""

    outputs: Mapping[str, np.ndarray]
    dim: int
    classes: list[str]

    def records(self, videos: Sequence[VideoSegments]) -> Iterator[VideoRecord]:
        """One record per video: ``seg_start``, ``seg_end``, ``embeddings`` (and ``logits``); ``n_segments``."""
        pos = 0
        for video in videos:
            n = len(video.texts)
            arrays = {"seg_start": video.starts, "seg_end": video.ends}
            arrays["embeddings"] = (self.outputs["embeddings"][pos : pos + n] if n
                                    else np.zeros((0, self.dim), np.float32))
            if self.classes:
                arrays["logits"] = (self.outputs["logits"][pos : pos + n] if n
                                    else np.zeros((0, len(self.classes)), np.float32))
            pos += n
            yield VideoRecord(video_id=video.video_id, arrays=arrays, attrs={"n_segments": n})


def embed_segments(encoder: Encoder, texts: list[str], batch_size: int, *, desc: str,
                   progress: bool | None) -> ShardEmbeddings:
    """The encoder's outputs for ``texts``, in order.

    Texts go to the encoder ``8 * batch_size`` at a time (the encoder batches
    them again by ``batch_size``), so the progress bar moves and memory stays
    bounded. The width is read after embedding: an API encoder without a
    configured ``dim`` learns it from the first answer.
    """
    outputs: dict[str, np.ndarray] = {}
    if texts:
        parts: list[dict[str, np.ndarray]] = []
        step = max(batch_size, 1) * 8
        for i in progress_bar(range(0, len(texts), step), desc=desc, unit="batch", log=log, show=progress):
            parts.append(encoder.embed(texts[i : i + step]))
        outputs = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    dim = int(getattr(encoder, "dim", None) or 0)
    classes = list(getattr(encoder, "classes", []) or [])
    return ShardEmbeddings(outputs, dim, classes)


def encoder_provenance(encoder: Encoder, resolved: ResolvedModel, asr_model: str,
                       embedded: ShardEmbeddings) -> dict[str, Any]:
    """What the encoder resolved at run time (kind, prefix, pooling, API model...), for the output's provenance."""
    prov_cfg = {"kind_used": encoder.kind, "registry_name": resolved.name, "asr": asr_model,
                "dim": embedded.dim}
    if isinstance(encoder, SentenceEncoder | GoEmotionsEncoder):
        prov_cfg.update(prefix=encoder.prefix, pooling=encoder.pooling, max_length=encoder.max_length)
        if isinstance(encoder, SentenceEncoder):
            prov_cfg["normalize"] = encoder.normalize
    else:
        prov_cfg.update(api_model=encoder.api_model, base_url=encoder.base_url)
    if embedded.classes:
        prov_cfg["classes"] = embedded.classes
    return prov_cfg
