"""Embedding a faces shard's crops with a face model, chunk by chunk across videos, into a features shard.

The face_features stage's work: memory stays bounded by a few chunks whatever
the videos' lengths, and reading, the model and writing overlap.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from itertools import groupby

import numpy as np
from tqdm import tqdm

from affectflow.faces.video import prefetch
from affectflow.io.store import ShardReader, ShardWriter
from affectflow.models.faces import FaceModel, FaceOutputs

#: the names of a job's two background threads (:func:`embed_shard`): HDF5 reads, and the model
READER_THREAD, MODEL_THREAD = "face-reader", "face-model"
# crops read from the faces shard per step (at least; a GPU batch if larger): ~10 MB of 224 px crops.
# With the reader and the model each a chunk ahead, about six chunks are alive at once, whatever the video's length.
CHUNK = 64
#: arrays stored without lzf: a network's float32 embeddings do not compress (lzf left them at 100.3% of their
#: size), and compressing them took host time on the thread that also feeds the GPU
UNCOMPRESSED = ("embeddings",)


def embed_shard(model: FaceModel, faces: ShardReader, present: Mapping[str, np.ndarray],
                 n_analysed: Mapping[str, int], writer: ShardWriter, bar: tqdm) -> Iterator[str]:
    """Embed every video's face crops (``present``: the rows with a face, per video, in the shard's order) into
    ``writer`` a chunk at a time, yielding each video's id once it is written.

    Three threads, each a chunk ahead of the next, over the whole shard: HDF5
    reads the next chunk while the model runs on this one, and this thread
    writes the previous chunk's results meanwhile. Chunks run across videos
    (:func:`_crop_chunks`): with a pipeline per video, each video's first read
    and last write ran alone, and every video ended in a batch of its own size,
    each size one more for cuDNN to plan on a GPU (seconds each).
    """
    step = -(-CHUNK // model.batch_size) * model.batch_size  # whole batches: only the job's last one is short
    chunks = prefetch(_crop_chunks(faces, present, step), depth=1, name=READER_THREAD)
    results = prefetch(_predicted(model, chunks), depth=1, name=MODEL_THREAD)
    try:
        for i, (vid, pieces) in enumerate(groupby(_per_video(model.name, results), key=lambda p: p[0])):
            bar.set_postfix(video=f"{i + 1}/{len(present)}", refresh=False)
            per_person = "person" in faces.array_names(vid)
            rec = faces.read(vid, names=("frame_index", "timestamps", "person") if per_person
                             else ("frame_index", "timestamps"))
            done = 0
            with writer.video(vid, uncompressed=UNCOMPRESSED) as out:
                for _, res in pieces:
                    n = len(res)
                    rows = present[vid][done:done + n]
                    done += n
                    arrays = {
                        "frame_index": rec.arrays["frame_index"][rows],
                        "timestamps": rec.arrays["timestamps"][rows],
                        "embeddings": res.embeddings.astype(np.float32),
                        "logits": res.logits.astype(np.float32),
                    }
                    if "person" in rec.arrays:
                        arrays["person"] = rec.arrays["person"][rows]
                    if res.valence_arousal is not None:
                        arrays["valence_arousal"] = res.valence_arousal.astype(np.float32)
                    out.append(arrays)
                    bar.update(n)
                if done != len(present[vid]):
                    raise RuntimeError(f"{vid}: {done} of {len(present[vid])} face crops embedded")
                out.attrs = {"classes": list(model.classes), "n_frames_analysed": n_analysed[vid]}
            yield vid
    finally:
        results.close()  # stops the model's and the reader's threads at once on an error


def analysed_frames(faces: ShardReader, vid: str, has_face: np.ndarray) -> int:
    """The video's analysed frames: its rows, or with a row per person (``person``) its distinct frames."""
    if "person" not in faces.array_names(vid):
        return len(has_face)
    return int(np.unique(faces.read(vid, names=("frame_index",)).arrays["frame_index"]).size)


#: which videos' crops a chunk holds, in order: (video id, number of rows); a video without faces has 0
Parts = list[tuple[str, int]]


def _crop_chunks(faces: ShardReader, present: Mapping[str, np.ndarray], step: int
                 ) -> Iterator[tuple[Parts, np.ndarray]]:
    """The shard's face crops ``step`` at a time across videos (only the last chunk is shorter), each with the
    videos whose rows it holds. A video without faces is listed with 0 rows, so that it is still written."""
    parts: Parts = []
    blocks: list[np.ndarray] = []
    n = 0
    for vid, rows in present.items():
        if not rows.size:
            parts.append((vid, 0))
            blocks.extend(faces.iter_rows(vid, "crops", rows))  # one block of 0 rows: the crops' dtype and shape
            continue
        while rows.size:  # what fills the chunk, then the next
            head, rows = rows[:step - n], rows[step - n:]
            blocks.extend(faces.iter_rows(vid, "crops", head, batch=step))  # one read of one block
            parts.append((vid, head.size))
            n += head.size
            if n == step:
                yield parts, _joined(blocks)
                parts, blocks, n = [], [], 0
    if parts:
        yield parts, _joined(blocks)


def _joined(blocks: list[np.ndarray]) -> np.ndarray:
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def _predicted(model: FaceModel, chunks: Generator[tuple[Parts, np.ndarray], None, None]
               ) -> Iterator[tuple[Parts, int, FaceOutputs]]:
    """Each chunk's videos, size and the model's results on it; stopping stops the chunks' reader too."""
    try:
        for parts, crops in chunks:
            yield parts, len(crops), model.predict(crops)
    finally:
        chunks.close()


def _per_video(name: str, results: Iterator[tuple[Parts, int, FaceOutputs]]) -> Iterator[tuple[str, FaceOutputs]]:
    """Each chunk's results cut into its videos' shares, in order."""
    for parts, n, res in results:
        if len(res) != n:
            raise RuntimeError(f"{name}: {len(res)} results for {n} crops")
        start = 0
        for vid, k in parts:
            yield vid, res.rows(start, start + k)
            start += k
