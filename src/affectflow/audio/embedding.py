"""One recording to the ``audio_features`` stage's vectors: frame features, then pooling.

``pooling``: ``"frame"`` (one vector per 20 ms frame), ``"window"`` (mean over
windows of ``window_s`` every ``hop_s`` seconds, :mod:`affectflow.audio.windows`)
or ``"utterance"`` (one mean vector per recording). The settings come from the
stage's options class (:class:`affectflow.stages.audio_features.AudioFeaturesOptions`),
which this package may not import: :class:`AudioEmbedding` names what is read.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from affectflow.audio.speech_encoder import SpeechEncoder
from affectflow.audio.windows import pool_windows
from affectflow.core.vocabulary import SAMPLE_RATE
from affectflow.io.store import VideoRecord

POOLINGS = ("frame", "window", "utterance")


class AudioEmbedding(Protocol):
    """The settings :func:`embed_audio` reads (the fields of ``AudioFeaturesOptions`` of the same names)."""

    layer: int | str
    pooling: str
    window_s: float
    hop_s: float
    chunk_s: float
    overlap_s: float
    normalize: bool | None
    batch_size: int


def embed_audio(
    audio: np.ndarray, encoder: SpeechEncoder, cfg: AudioEmbedding, duration: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps, embeddings) of one recording under ``cfg``."""
    times, feats = encoder.frame_features(
        audio, layer=cfg.layer, chunk_s=cfg.chunk_s, overlap_s=cfg.overlap_s,
        batch_size=cfg.batch_size, normalize=cfg.normalize,
    )
    if duration is None:
        duration = len(audio) / SAMPLE_RATE
    if cfg.pooling == "frame":
        return times, feats
    if cfg.pooling == "window":
        return pool_windows(times, feats, duration, cfg.window_s, cfg.hop_s)
    if len(times) == 0:
        return np.zeros(0, dtype=np.float64), feats
    return np.array([duration / 2.0]), feats.mean(axis=0, keepdims=True).astype(np.float32)


def audio_record(video_id: str, audio: np.ndarray, encoder: SpeechEncoder, cfg: AudioEmbedding) -> VideoRecord:
    """One video's record of the audio features shard: ``timestamps`` (N,), ``embeddings`` (N, D) and
    attributes ``audio_duration``, ``n_vectors``, ``dim``, ``device``."""
    duration = len(audio) / SAMPLE_RATE
    times, emb = embed_audio(audio, encoder, cfg, duration=duration)
    return VideoRecord(
        video_id=video_id,
        arrays={"timestamps": times.astype(np.float64), "embeddings": emb.astype(np.float32)},
        attrs={"audio_duration": float(duration), "n_vectors": int(len(times)),
               "dim": int(emb.shape[1]), "device": encoder.device},
    )
