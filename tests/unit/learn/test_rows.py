"""One video's head rows (:mod:`affectflow.learn.rows`): what a video task's head is told about a video
without any face frame."""

from __future__ import annotations

import logging

import pytest

from affectflow.core.vocabulary import feature_stage
from affectflow.data.units import UnitsTable
from affectflow.io.shards import ShardSet, media_frames
from affectflow.learn.rows import RowOptions, build_video_rows
from affectflow.learn.stats import STAT_PARTS
from affectflow.testing.stage_fixtures import FACE_DIM, A, F, T, make_world

FACELESS, WITH_FACE = "train_01", "train_00"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = make_world(tmp_path_factory.mktemp("rows"), no_face=(FACELESS,))
    units = {u.video_id: u for u in UnitsTable.read_tsv(w.units_tsv)}
    media = ShardSet(w.media, "media")
    sources = {lb: ShardSet(w.features[lb], feature_stage(lb), lb) for lb in (F, A, T)}
    yield units, media, sources
    media.close()
    for s in sources.values():
        s.close()


def _rows(world, task: str, vid: str, labels: tuple[str, ...], missing_face: str = "other_modalities",
          audio_stat: str = "frames"):
    units, media, sources = world
    srcs = {lb: sources[lb] for lb in labels}
    recs = {lb: src.read(vid) for lb, src in srcs.items()}
    opts = RowOptions("embeddings", missing_face, "nearest", STAT_PARTS, audio_stat)
    kinds = {lb: lb.split("/", 1)[0] for lb in labels}
    return build_video_rows(task, units[vid], media_frames(media, vid), recs, srcs, kinds, opts)


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("task", ["emi", "ah_video"])
def test_a_faceless_video_is_named_once_per_head_with_its_task_and_what_it_means(world, caplog, task):
    caplog.set_level(logging.WARNING)
    v = _rows(world, task, FACELESS, (F, T))
    assert v is not None and not v.face_present.any()
    start, stop = v.columns[F]
    assert stop - start == len(STAT_PARTS) * FACE_DIM and not v.x[0, start:stop].any()  # the face part: zeros
    assert v.x[0, stop:].any()  # the text part is the video's
    (msg,) = _warnings(caplog)
    assert msg.startswith(f"{task}: video {FACELESS!r} has no frame with a face")
    assert f"video-level face features ({F}) are zeros" in msg
    assert f"the {task} head on {F} + {T} can only use {T} for this video" in msg
    assert "STAT" not in msg and "descriptor" not in msg

    caplog.clear()
    _rows(world, task, FACELESS, (F,), missing_face="carry_last")
    (msg,) = _warnings(caplog)
    assert msg.startswith(f"{task}: video {FACELESS!r}") and f"the {task} head on {F} alone" in msg
    assert "same prediction" in msg


def test_no_warning_for_a_video_with_faces_a_frame_task_or_a_dropped_video(world, caplog):
    caplog.set_level(logging.WARNING)
    assert _rows(world, "emi", WITH_FACE, (F, T)) is not None
    assert _rows(world, "expr", FACELESS, (F, T)) is not None  # frame tasks: missing_face per frame
    assert _rows(world, "emi", FACELESS, (F, T), missing_face="drop") is None  # its exclusion is logged by the caller
    assert not [m for m in _warnings(caplog) if "face" in m]


def test_native_audio_stat_is_over_the_encoders_own_vectors(world) -> None:
    """``audio_stat: native``: EMI's audio STAT over the 50 Hz vectors (the paper's mean of the encoder output),
    not over their interpolation at the video's frames; the face and text columns stay as they were."""
    import numpy as np

    from affectflow.learn.stats import stat_descriptor

    _, _, sources = world
    frames = _rows(world, "emi", WITH_FACE, (F, A, T))
    native = _rows(world, "emi", WITH_FACE, (F, A, T), audio_stat="native")
    a0, a1 = native.columns[A]
    own = sources[A].matrix(sources[A].read(WITH_FACE), "embeddings")
    np.testing.assert_allclose(native.x[0, a0:a1], stat_descriptor(own, STAT_PARTS), rtol=1e-6)
    assert not np.allclose(frames.x[0, a0:a1], native.x[0, a0:a1], rtol=1e-3)
    rest = np.r_[0:a0, a1:native.x.shape[1]]
    np.testing.assert_array_equal(frames.x[0, rest], native.x[0, rest])
    assert _rows(world, "emi", WITH_FACE, (A,), audio_stat="native").x.shape == (1, a1 - a0)
