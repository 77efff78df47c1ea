"""A recording's transcript, as the ``transcripts`` stage writes it and the ``text_features`` stage reads it.

One module holds both sides of the record, so its array names stay the same for
writer and reader: ``seg_start``, ``seg_end`` (s), ``seg_text``; ``word_start``,
``word_end``, ``word_text``, ``word_prob``, ``word_seg`` (index of the word's
segment); attributes ``language``, ``language_probability``, ``n_segments``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from affectflow.io.store import ShardReader, VideoRecord


@dataclass
class Transcript:
    """One recording's transcript: segments, words (if asked for) and language."""

    seg_start: list[float] = field(default_factory=list)
    seg_end: list[float] = field(default_factory=list)
    seg_text: list[str] = field(default_factory=list)
    word_start: list[float] = field(default_factory=list)
    word_end: list[float] = field(default_factory=list)
    word_text: list[str] = field(default_factory=list)
    word_prob: list[float] = field(default_factory=list)
    word_seg: list[int] = field(default_factory=list)
    language: str = ""
    language_probability: float = float("nan")

    @property
    def text(self) -> str:
        return " ".join(t for t in self.seg_text if t)

    def add_segment(
        self, start: float, end: float, text: str, words: Sequence[tuple[float, float, str, float]]
    ) -> None:
        """Append a segment and its words (start, end, text, probability), each word pointing at it."""
        idx = len(self.seg_text)
        self.seg_start.append(float(start))
        self.seg_end.append(float(end))
        self.seg_text.append(text.strip())
        for ws, we, wt, wp in words:
            self.word_start.append(float(ws))
            self.word_end.append(float(we))
            self.word_text.append(wt.strip())
            self.word_prob.append(float(wp))
            self.word_seg.append(idx)

    def to_record(self, video_id: str, attrs: Mapping[str, Any] | None = None) -> VideoRecord:
        """The transcripts shard's record of this video (``attrs``: more attributes, e.g. ``note``)."""
        return VideoRecord(
            video_id=video_id,
            arrays={
                "seg_start": np.asarray(self.seg_start, dtype=np.float64),
                "seg_end": np.asarray(self.seg_end, dtype=np.float64),
                "seg_text": np.asarray(self.seg_text, dtype=object),
                "word_start": np.asarray(self.word_start, dtype=np.float64),
                "word_end": np.asarray(self.word_end, dtype=np.float64),
                "word_text": np.asarray(self.word_text, dtype=object),
                "word_prob": np.asarray(self.word_prob, dtype=np.float32),
                "word_seg": np.asarray(self.word_seg, dtype=np.int32),
            },
            attrs={"language": self.language, "language_probability": float(self.language_probability),
                   "n_segments": len(self.seg_text), **dict(attrs or {})},
        )


@dataclass(frozen=True)
class VideoSegments:
    """One video of a transcripts shard: its segments' starts and ends (s) and texts."""

    video_id: str
    starts: np.ndarray
    ends: np.ndarray
    texts: list[str]


@dataclass(frozen=True)
class TranscriptShard:
    """What the text features stage reads of a transcripts shard: the ASR model, every video's
    segments (in shard order) and the videos skipped upstream, with their reasons."""

    asr_model: str
    videos: list[VideoSegments]
    skipped: list[tuple[str, str]]

    def texts(self) -> list[str]:
        """Every segment text of the shard, video after video (the order embeddings are split back in)."""
        return [t for v in self.videos for t in v.texts]

    def whole(self) -> TranscriptShard:
        """Each video's transcript as one segment, from its first segment's start to its latest end.

        The text is Whisper's text of the whole file (``result["text"]``): every segment's text after a space.
        The paper's EMI text features embed that once per video (a RoBERTa tokenizer tells the leading space
        apart, so it is kept). A video without speech keeps no segment.
        """
        videos = [v if not v.texts else VideoSegments(
            v.video_id, v.starts[:1], v.ends.max(keepdims=True), ["".join(" " + t for t in v.texts if t)])
            for v in self.videos]
        return replace(self, videos=videos)


def read_transcripts(path: str | os.PathLike[str]) -> TranscriptShard:
    """The segments of every video of a transcripts shard (a video without speech has none)."""
    videos: list[VideoSegments] = []
    with ShardReader(path, stage="transcripts") as reader:
        asr_model = reader.provenance.model
        skipped = list(reader.skipped())
        for rec in reader:
            texts = [str(t) for t in rec.arrays.get("seg_text", np.zeros(0, dtype=object))]
            videos.append(VideoSegments(
                rec.video_id, np.asarray(rec.arrays.get("seg_start", np.zeros(0)), dtype=np.float64),
                np.asarray(rec.arrays.get("seg_end", np.zeros(0)), dtype=np.float64), texts))
    return TranscriptShard(asr_model, videos, skipped)
