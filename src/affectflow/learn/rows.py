"""One video's features as the rows a head reads: what training and applying a trained head share.

Learning (``affectflow.learn.pipeline``) and prediction on new videos (``affectflow.predict``) must build
exactly the same matrix from the same shards, so the alignment of modalities onto frames, the STAT
descriptor of the video tasks, the z-scoring and the per-frame posteriors live here once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from affectflow.core.vocabulary import is_video_task
from affectflow.data.units import Unit
from affectflow.evaluate.metrics import N_EXPR
from affectflow.io.shards import ShardSet, fill_nearest
from affectflow.io.store import VideoRecord
from affectflow.learn.align import (
    AlignedFeatures,
    AlignmentError,
    TextSegments,
    TimedVectors,
    align_video,
    face_rows_to_frames,
)
from affectflow.learn.heads import TrainedHead
from affectflow.learn.settings import RowOptions
from affectflow.learn.stats import stat_descriptor

log = logging.getLogger("affectflow.learn")


@dataclass
class VideoRows:
    """One video after reading its shards: the head's input rows and what is needed to put them back on frames."""

    unit: Unit
    frame_times: np.ndarray
    x: np.ndarray  # frame rows (frame tasks) or (1, D) descriptor (video tasks)
    aligned: AlignedFeatures | None  # frame tasks
    face_present: np.ndarray  # (n_frames,)
    video_vec: np.ndarray | None  # AH video-classifier input
    columns: dict[str, list[int]] = field(default_factory=dict)  # modality -> [start, stop) of x
    y: np.ndarray | None = None  # labels (all frames / 6 intensities / the video's 0 or 1); None for test

    @property
    def n_frames(self) -> int:
        return int(self.frame_times.shape[0])


def face_block(srcs: list[tuple[str, ShardSet]], recs: dict[str, VideoRecord], n: int, face_input: str,
               columns: dict[str, tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """All face modalities side by side over all frames (NaN where a face is absent), and the presence mask."""
    blocks, present = [], np.ones(n, dtype=bool)
    start = 0
    for label, src in srcs:
        rec = recs[label]
        names = ("embeddings", "logits") if face_input == "both" else (face_input,)
        vals = np.concatenate([src.matrix(rec, nm) for nm in names], axis=1)
        idx = np.asarray(rec.arrays.get("frame_index", np.zeros(0)), dtype=np.int64).ravel()
        try:
            full, pres = face_rows_to_frames(idx, vals, n)
        except ValueError as e:
            raise AlignmentError(f"{label}, video {rec.video_id!r}: {e} (the media shard has {n} frames)") from None
        blocks.append(full)
        present &= pres
        columns[label] = (start, start + full.shape[1])
        start += full.shape[1]
    face = np.concatenate(blocks, axis=1) if blocks else np.zeros((n, 0), np.float32)
    face[~present] = np.nan
    return face, present


def timed_streams(srcs: list[tuple[str, str, ShardSet]], recs: dict[str, VideoRecord]) -> dict[str, Any]:
    """Audio vectors and text segments with their times, ready for :func:`~affectflow.learn.align.align_video`."""
    out: dict[str, Any] = {}
    for label, kind, src in srcs:
        rec = recs[label]
        if kind == "audio":
            t = np.asarray(rec.arrays.get("timestamps", np.zeros(0)), dtype=np.float64).ravel()
            out[label] = TimedVectors(t, src.matrix(rec, "embeddings"))
        else:
            s = np.asarray(rec.arrays.get("seg_start", np.zeros(0)), dtype=np.float64).ravel()
            e = np.asarray(rec.arrays.get("seg_end", np.zeros(0)), dtype=np.float64).ravel()
            out[label] = TextSegments(s, e, src.matrix(rec, "embeddings"))
    return out


def text_mean(streams: Mapping[str, Any]) -> np.ndarray | None:
    """Mean text segment embedding of the video (zeros without speech); None without a text modality."""
    parts = []
    for s in streams.values():
        if isinstance(s, TextSegments):
            emb = np.asarray(s.embeddings, dtype=np.float64)
            parts.append(emb.mean(axis=0) if emb.shape[0] else np.zeros(emb.shape[1]))
    return np.concatenate(parts) if parts else None


def _warn_no_face(task: str, video_id: str, face: str, others: list[str]) -> None:
    """A video task's head meets a video without any face frame: its face features are zeros.

    Said once per call, i.e. once per video for each head that reads a face (a bundle's EMI and AH-video
    both have one, so such a video is named once for each task).
    """
    if others:
        effect = f"the {task} head on {face} + {' + '.join(others)} can only use {' + '.join(others)} for this video"
    else:
        effect = (f"the {task} head on {face} alone has nothing of this video to go on (it gives every video "
                  f"without a face the same prediction)")
    log.warning("%s: video %r has no frame with a face, so its video-level face features (%s) are zeros: %s",
                task, video_id, face, effect)


def build_video_rows(task: str, u: Unit, times: np.ndarray, recs: dict[str, VideoRecord],
                     sources: dict[str, ShardSet], kinds: dict[str, str], opts: RowOptions) -> VideoRows | None:
    """The head's input for one video (frame rows, or the STAT descriptor of a video task); None when
    ``missing_face=drop`` leaves nothing."""
    n = times.shape[0]
    face_srcs = [(lb, sources[lb]) for lb in sources if kinds[lb] == "face"]
    other = [(lb, kinds[lb], sources[lb]) for lb in sources if kinds[lb] != "face"]
    face_cols: dict[str, tuple[int, int]] = {}
    face, present = (None, np.zeros(n, dtype=bool))
    if face_srcs:
        face, present = face_block(face_srcs, recs, n, opts.face_input, face_cols)
    streams = timed_streams(other, recs)
    mean_text = text_mean(streams)

    if is_video_task(task):
        parts: list[tuple[str, np.ndarray]] = []
        if face is not None:
            rows = face[present]
            name = face_srcs[0][0] if len(face_srcs) == 1 else "+".join(lb for lb, _ in face_srcs)
            if rows.shape[0]:
                desc = stat_descriptor(rows, opts.stat_parts)
            elif opts.missing_face == "drop":
                return None
            else:
                _warn_no_face(task, u.video_id, name, [lb for lb, _, _ in other])
                desc = np.zeros(len(opts.stat_parts) * face.shape[1], np.float32)
            parts.append((name, desc))
        if streams:
            al = align_video(times, None, None, streams, text_fill=opts.text_fill, empty_stream="zeros")
            for label, stream in streams.items():
                vectors = al.modality(label)
                if opts.audio_stat == "native" and isinstance(stream, TimedVectors) and len(stream.values):
                    vectors = stream.values  # the encoder's own frames (no audio: the zeros at the frames)
                parts.append((label, stat_descriptor(vectors, opts.stat_parts)))
        x = np.concatenate([d for _, d in parts])[None, :].astype(np.float32)
        cols, start = {}, 0
        for name, d in parts:
            cols[name] = [start, start + int(d.shape[0])]
            start += int(d.shape[0])
        vec = None
        if task == "ah_video":  # the video classifier's input, as for AH: mean text embedding, else the descriptor
            vec = mean_text if mean_text is not None else x[0]
        return VideoRows(u, times, x, None, present, None if vec is None else np.asarray(vec, np.float64), cols)

    face_name = face_srcs[0][0] if len(face_srcs) == 1 else "face"
    al = align_video(times, face, present if face is not None else None, streams, missing_face=opts.missing_face,
                     text_fill=opts.text_fill, face_name=face_name, empty_stream="zeros")
    if face is None:
        present = np.zeros(n, dtype=bool)
    vec = None
    if task == "ah":
        vec = mean_text if mean_text is not None else (
            al.matrix.mean(axis=0) if al.matrix.shape[0] else np.zeros(al.matrix.shape[1]))
    cols = {k: [sl.start, sl.stop] for k, sl in al.columns.items()}
    return VideoRows(u, times, al.matrix, al, present, None if vec is None else np.asarray(vec, np.float64), cols)


_CHUNK = 1 << 16


def zscore_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and std (float64, two passes in row chunks: no full-size temporary); std < 1e-6 -> 1."""
    n = max(x.shape[0], 1)
    mu = np.zeros(x.shape[1])
    for i in range(0, x.shape[0], _CHUNK):
        mu += x[i:i + _CHUNK].sum(axis=0, dtype=np.float64)
    mu /= n
    var = np.zeros(x.shape[1])
    for i in range(0, x.shape[0], _CHUNK):
        var += np.square(x[i:i + _CHUNK] - mu).sum(axis=0)
    sd = np.sqrt(var / n)
    sd[sd < 1e-6] = 1.0
    return mu, sd


def apply_zscore(x: np.ndarray, stats: tuple[np.ndarray, np.ndarray] | None, inplace: bool = False) -> np.ndarray:
    """``(x - mean) / std`` as float32; ``inplace`` reuses ``x`` (a float32 matrix the caller owns)."""
    out = np.array(x, dtype=np.float32, copy=not inplace or x.dtype != np.float32)
    if stats is not None:
        mu, sd = stats[0].astype(np.float32), stats[1].astype(np.float32)
        for i in range(0, out.shape[0], _CHUNK):
            out[i:i + _CHUNK] -= mu
            out[i:i + _CHUNK] /= sd
    return out


def predict_video(task: str, head: TrainedHead, v: VideoRows, stats: tuple[np.ndarray, np.ndarray] | None,
                  prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(posteriors over all frames (or the (6,) EMI vector, the (1,) AH-video P(A/H)), predicted mask)."""
    if is_video_task(task):
        p = np.atleast_1d(head.predict_proba(apply_zscore(v.x, stats))[0]).astype(np.float32)
        return p, np.ones(v.n_frames, dtype=bool)
    al = v.aligned
    assert al is not None
    rows = head.predict_proba(apply_zscore(v.x, stats)) if v.x.shape[0] else None
    predicted = np.zeros(v.n_frames, dtype=bool)
    if rows is None:
        shape = (v.n_frames, N_EXPR) if task == "expr" else (v.n_frames,)
        return np.broadcast_to(prior, shape).astype(np.float32).copy(), predicted
    predicted[al.frame_indices] = True
    if predicted.all():
        return rows.astype(np.float32), predicted
    return fill_nearest(rows, al.frame_indices, v.n_frames).astype(np.float32), predicted
