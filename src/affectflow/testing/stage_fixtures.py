"""A small synthetic dataset in the exact on-disk formats the learn/fuse/submit stages read.

Every video has a hidden per-frame expression class (segments of 8-25
frames), an AH span (in about half of the videos) and a video-level latent
vector that sets its six EMI intensities. The feature shards carry that
signal with noise: face embeddings (class + AH + latent, on ~90 % of frames),
pre-trained FER2013-class logits (confident and right on about half of the
face frames whose class FER2013 has), audio vectors at 50 Hz (a weaker copy of
the class), text segments (the sign of a direction says whether the video has
AH). Labels are written in the challenge formats (Aff-Wild2 txt, BAH txt,
Hume-Vidmimic2 csv) and the units table with UnitsTable.write_tsv.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from affectflow.data.units import Unit, UnitsTable
from affectflow.fuse.postprocess import FER2013_CLASSES, FER2013_TO_AFFWILD2
from affectflow.io.store import Provenance, ShardWriter, VideoRecord
from affectflow.testing.dataset_fixtures import write_ah, write_emi_csv, write_expr

FPS = 25.0
FACE_DIM, AUDIO_DIM, TEXT_DIM, LATENT = 12, 6, 5, 4
AUDIO_RATE = 50.0
#: Aff-Wild2 class -> FER2013 logit index (Other has none)
AFF_TO_FER = {a: f for f, a in enumerate(FER2013_TO_AFFWILD2)}
#: the feature labels of the world's three modalities
F, A, T = "face/synth_face", "audio/synth_audio", "text/synth_asr/synth_text"
#: a learn config small enough for these tests
CFG = {"train": {"epochs": 15, "hidden": 32, "lr": 0.01, "batch_size": 128, "patience": 5, "device": "cpu"}}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """Autouse in a test module that imports it. Tiny matrices: one thread is fastest and immune to other
    processes' load (module scope, so it is set before the module's other fixtures train anything)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@dataclass
class World:
    root: Path
    units_tsv: Path
    media: list[Path]
    features: dict[str, list[Path]]
    pretrained: list[Path]
    n_frames: dict[str, int] = field(default_factory=dict)
    split: dict[str, str] = field(default_factory=dict)
    expr: dict[str, np.ndarray] = field(default_factory=dict)
    ah: dict[str, np.ndarray] = field(default_factory=dict)
    emi: dict[str, np.ndarray] = field(default_factory=dict)

    def videos(self, split: str) -> list[str]:
        return sorted(v for v, s in self.split.items() if s == split)


@dataclass(frozen=True)
class _Structure:
    """The planted directions every video shares (a fixed seed: the same world structure for every test)."""

    face_means: np.ndarray
    audio_means: np.ndarray
    ah_face: np.ndarray
    ah_audio: np.ndarray
    latent_face: np.ndarray
    latent_audio: np.ndarray
    text_dir: np.ndarray
    emi_w: np.ndarray

    @classmethod
    def from_seed(cls, seed: int = 1234) -> _Structure:
        g = np.random.default_rng(seed)
        return cls(g.normal(0, 1.6, size=(8, FACE_DIM)), g.normal(0, 1.0, size=(8, AUDIO_DIM)),
                   g.normal(0, 1.2, size=FACE_DIM), g.normal(0, 1.2, size=AUDIO_DIM),
                   g.normal(0, 1.0, size=(LATENT, FACE_DIM)), g.normal(0, 1.0, size=(LATENT, AUDIO_DIM)),
                   g.normal(0, 1.0, size=TEXT_DIM), g.normal(0, 1.2, size=(LATENT, 6)))


def _labels(rng: np.random.Generator, vid: str, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hidden per-frame class in segments, EXPR labels (a few invalid), AH spans and the EMI latent."""
    cls = np.empty(n, dtype=np.int64)
    pos = 0
    while pos < n:
        length = int(rng.integers(8, 26))
        cls[pos:pos + length] = rng.integers(0, 8)
        pos += length
    expr = cls.copy()
    expr[rng.random(n) < 0.04] = -1
    ah = np.zeros(n, dtype=np.int64)
    if rng.random() < 0.5 or vid in ("train_00", "val_00"):
        a = int(rng.integers(0, n // 2))
        ah[a:a + int(n * rng.uniform(0.3, 0.5))] = 1
    if vid in ("train_02", "val_02"):
        ah[:] = 0
    return cls, expr, ah, rng.normal(size=LATENT)


def _face_record(rng: np.random.Generator, vid: str, st: _Structure, cls: np.ndarray, ah: np.ndarray,
                 z: np.ndarray, times: np.ndarray, no_face: bool) -> VideoRecord:
    present = rng.random(times.shape[0]) > 0.1
    if no_face:
        present[:] = False
    fi = np.flatnonzero(present).astype(np.int64)
    emb = st.face_means[cls[fi]] + np.outer(ah[fi], st.ah_face) + z @ st.latent_face
    emb = emb + rng.normal(0, 1.0, (fi.size, FACE_DIM))
    logits = rng.normal(0, 0.5, (fi.size, len(FER2013_CLASSES)))
    for r, c in enumerate(cls[fi]):
        if c in AFF_TO_FER and rng.random() < 0.5:
            logits[r, AFF_TO_FER[c]] += 6.0
    return VideoRecord(vid, {"frame_index": fi, "timestamps": times[fi], "embeddings": emb.astype(np.float32),
                             "logits": logits.astype(np.float32)}, {"classes": list(FER2013_CLASSES)})


def _audio_record(rng: np.random.Generator, vid: str, st: _Structure, cls: np.ndarray, ah: np.ndarray,
                  z: np.ndarray, n: int) -> VideoRecord:
    at = (np.arange(int(n / FPS * AUDIO_RATE)) + 0.5) / AUDIO_RATE
    af = np.minimum((at * FPS).astype(int), n - 1)
    aemb = 0.8 * st.audio_means[cls[af]] + np.outer(ah[af], st.ah_audio) + z @ st.latent_audio + rng.normal(
        0, 1.0, (at.size, AUDIO_DIM))
    return VideoRecord(vid, {"timestamps": at, "embeddings": aemb.astype(np.float32)})


def _text_record(rng: np.random.Generator, vid: str, st: _Structure, ah: np.ndarray, n: int,
                 no_speech: bool) -> VideoRecord:
    dur = n / FPS
    if no_speech:
        return VideoRecord(vid, {"seg_start": np.zeros(0), "seg_end": np.zeros(0),
                                 "embeddings": np.zeros(0, np.float32)})
    sign = 1.0 if ah.any() else -1.0
    temb = sign * st.text_dir + rng.normal(0, 0.5, (2, TEXT_DIM))
    return VideoRecord(vid, {"seg_start": np.array([0.1, 0.5]) * dur, "seg_end": np.array([0.4, 0.9]) * dur,
                             "embeddings": temb.astype(np.float32)})


def _write_split_labels(labels: Path, units: list[dict], emi_rows: dict[str, list], bah_rows: dict[str, list]) -> None:
    """The per-split label files (EMI csv, BAH video-level split file), named in every unit of that split."""
    for split, name in (("train", "train_split.csv"), ("val", "valid_split.csv")):
        if emi_rows[split]:
            csv = write_emi_csv(labels / "EMI" / name, emi_rows[split])
            for u in units:
                if u["split"] == split:
                    u["emi_labels"] = str(csv)
    for split, rows in bah_rows.items():
        if rows:
            split_file = labels / "AH_video" / "split" / f"{split}.txt"
            split_file.parent.mkdir(parents=True, exist_ok=True)
            split_file.write_text("".join(f"{r}\n" for r in rows), encoding="utf-8")
            for u in units:
                if u["split"] == split:
                    u["ah_video_labels"] = str(split_file)


def _write_shards(root: Path, recs: dict[str, list[list[VideoRecord]]], drop: dict[str, list[str]]) -> None:
    stages = {"media": ("media", ""), "face": ("face_features", "synth_face"),
              "audio": ("audio_features", "synth_audio"), "text": ("text_features", "synth_text")}
    for kind, (stage, model) in stages.items():
        config = {"classes": list(FER2013_CLASSES)} if kind == "face" else {}
        for shard in (0, 1):
            path = root / kind / f"s{shard:04d}.h5"
            with ShardWriter(path, Provenance(stage=stage, model=model, config=config)) as wr:
                skipped = []
                for rec in recs[kind][shard]:
                    if rec.video_id in drop.get(kind, []):
                        skipped.append((rec.video_id, "synthetic skip for the test"))
                        continue
                    wr.add(rec)
                wr.set_skipped(skipped)


def make_world(
    root: Path,
    n_train: int = 6,
    n_val: int = 4,
    n_test: int = 2,
    frames: tuple[int, int] = (70, 110),
    seed: int = 0,
    drop: dict[str, list[str]] | None = None,
    no_face: tuple[str, ...] = ("train_01",),
    no_speech: tuple[str, ...] = ("val_01",),
    labelled_splits: tuple[str, ...] = ("train", "val"),
) -> World:
    """Write the world under ``root``; ``drop`` maps a modality kind to videos its stage 'skipped'."""
    rng = np.random.default_rng(seed)
    st = _Structure.from_seed()
    ids = [f"train_{i:02d}" for i in range(n_train)] + [f"val_{i:02d}" for i in range(n_val)] + [
        f"test_{i:02d}" for i in range(n_test)]
    w = World(root, root / "units.tsv", [root / "media/s0000.h5", root / "media/s0001.h5"], {
        "face/synth_face": [root / "face/s0000.h5", root / "face/s0001.h5"],
        "audio/synth_audio": [root / "audio/s0000.h5", root / "audio/s0001.h5"],
        "text/synth_asr/synth_text": [root / "text/s0000.h5", root / "text/s0001.h5"],
    }, [root / "face/s0000.h5", root / "face/s0001.h5"])
    labels = root / "labels"
    recs: dict[str, list[list[VideoRecord]]] = {k: [[], []] for k in ("media", "face", "audio", "text")}
    units, emi_rows = [], {"train": [], "val": []}
    bah_video_rows: dict[str, list[str]] = {"train": [], "val": []}  # BAH video level: <path>,<0|1>,<text>
    for i, vid in enumerate(ids):
        split, shard = vid.split("_")[0], i % 2
        n = int(rng.integers(*frames))
        times = np.arange(n) / FPS
        cls, expr, ah, z = _labels(rng, vid, n)
        emi = 1 / (1 + np.exp(-(z @ st.emi_w)))
        w.n_frames[vid], w.split[vid] = n, split
        w.expr[vid], w.ah[vid], w.emi[vid] = expr, ah, emi.astype(np.float32)
        recs["media"][shard].append(VideoRecord(vid, {"timestamps": times, "audio": np.zeros(160, np.float32)},
                                                {"n_frames": n, "duration": n / FPS}))
        recs["face"][shard].append(_face_record(rng, vid, st, cls, ah, z, times, vid in no_face))
        recs["audio"][shard].append(_audio_record(rng, vid, st, cls, ah, z, n))
        recs["text"][shard].append(_text_record(rng, vid, st, ah, n, vid in no_speech))
        unit = dict(video_id=vid, path=f"videos/{vid}.mp4", split=split, shard=f"s{shard:04d}")
        if split in labelled_splits and split != "test":
            d = "Train_Set" if split == "train" else "Validation_Set"
            unit["expr_labels"] = str(write_expr(labels / "EXPR", d, vid, expr.tolist()))
            unit["ah_labels"] = str(write_ah(labels / "AH", d, vid, ah.tolist()))
            emi_rows[split].append([vid, *(f"{x:.5f}" for x in emi)])
            bah_video_rows[split].append(f"{vid}.mp4,{int(ah.any())},")
        units.append(unit)
    _write_split_labels(labels, units, emi_rows, bah_video_rows)
    UnitsTable([Unit(**u) for u in units]).write_tsv(w.units_tsv)
    _write_shards(root, recs, drop or {})
    return w
