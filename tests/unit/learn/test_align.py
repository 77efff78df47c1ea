"""Alignment of audio/text to face frames, missing-face policies, STAT descriptors."""

import numpy as np
import pytest
from scipy.interpolate import interp1d

from affectflow.learn.align import (
    FACE_MISSING_COLUMN,
    AlignmentError,
    TextSegments,
    TimedVectors,
    align_video,
    face_rows_to_frames,
    interpolate_to_frames,
    segments_to_frames,
)
from affectflow.learn.stats import EmptyVideoError, stat_descriptor, stat_descriptors, stat_names

FPS = 10.0


def frame_times(n):
    return np.arange(n) / FPS


# ------------------------------------------------------------- interpolation


def test_interpolation_matches_interp1d_inside_and_holds_edges():
    rng = np.random.default_rng(0)
    t_audio = np.arange(0.25, 2.0, 0.5)  # window centres 0.25 .. 1.75
    vals = rng.normal(size=(t_audio.size, 3))
    ft = frame_times(25)  # 0 .. 2.4 s
    got = interpolate_to_frames(TimedVectors(t_audio, vals), ft)
    assert got.shape == (25, 3) and got.dtype == np.float32
    inside = (ft >= t_audio[0]) & (ft <= t_audio[-1])
    ref = interp1d(t_audio, vals, axis=0)(ft[inside])
    np.testing.assert_allclose(got[inside], ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[ft < t_audio[0]], np.broadcast_to(vals[0], got[ft < t_audio[0]].shape), rtol=1e-6)
    np.testing.assert_allclose(got[ft > t_audio[-1]], np.broadcast_to(vals[-1], got[ft > t_audio[-1]].shape), rtol=1e-6)


def test_interpolation_known_values_unsorted_duplicates_nan():
    stream = TimedVectors(
        times=[1.0, 0.0, 1.0, 0.5],
        values=[[2.0], [0.0], [4.0], [np.nan]],  # duplicate t=1 averages to 3; NaN row ignored
    )
    got = interpolate_to_frames(stream, [-1.0, 0.0, 0.5, 1.0, 2.0])
    np.testing.assert_allclose(got[:, 0], [0.0, 0.0, 1.5, 3.0, 3.0])


def test_interpolation_single_and_empty():
    got = interpolate_to_frames(TimedVectors([0.3], [[1.0, 2.0]]), frame_times(4))
    np.testing.assert_array_equal(got, np.tile([1.0, 2.0], (4, 1)))
    with pytest.raises(AlignmentError):
        interpolate_to_frames(TimedVectors(np.zeros(0), np.zeros((0, 2))), frame_times(4))


# ------------------------------------------------------------------- text


def test_segments_zero_and_nearest_fill():
    seg = TextSegments(starts=[0.2, 1.0], ends=[0.4, 1.2], embeddings=[[1.0, 0.0], [0.0, 1.0]])
    ft = frame_times(15)  # 0.0 .. 1.4
    z, covered = segments_to_frames(seg, ft, fill="zeros")
    assert covered.tolist() == [(0.2 - 1e-9 <= t <= 0.4 + 1e-9) or (1.0 - 1e-9 <= t <= 1.2 + 1e-9) for t in ft]
    np.testing.assert_array_equal(z[~covered], 0.0)
    np.testing.assert_array_equal(z[2], [1.0, 0.0])
    np.testing.assert_array_equal(z[11], [0.0, 1.0])
    nn, _ = segments_to_frames(seg, ft, fill="nearest")
    np.testing.assert_array_equal(nn[0], [1.0, 0.0])  # before the first segment
    np.testing.assert_array_equal(nn[6], [1.0, 0.0])  # t=0.6: 0.2 from seg 0, 0.4 from seg 1
    np.testing.assert_array_equal(nn[8], [0.0, 1.0])  # t=0.8: closer to seg 1
    np.testing.assert_array_equal(nn[14], [0.0, 1.0])  # after the last
    np.testing.assert_array_equal(nn[covered], z[covered])


def test_segments_overlap_average_and_no_segments():
    seg = TextSegments([0.0, 0.0], [1.0, 1.0], [[2.0], [4.0]])
    z, _ = segments_to_frames(seg, [0.5])
    assert z[0, 0] == pytest.approx(3.0)
    empty = TextSegments(np.zeros(0), np.zeros(0), np.zeros((0, 5)))
    for fill in ("zeros", "nearest"):
        m, cov = segments_to_frames(empty, frame_times(3), fill=fill)
        assert m.shape == (3, 5) and not m.any() and not cov.any()
    with pytest.raises(AlignmentError):
        TextSegments([1.0], [0.5], [[0.0]])


# -------------------------------------------------------- missing faces


def _video():
    n = 8
    present = np.array([False, True, True, False, False, True, True, False])
    face = np.full((n, 2), np.nan, dtype=np.float32)
    face[present] = np.arange(present.sum() * 2, dtype=np.float32).reshape(-1, 2) + 1
    audio = TimedVectors(frame_times(n), np.arange(n, dtype=np.float32)[:, None] * 10)
    return n, face, present, audio


def test_policy_drop():
    n, face, present, audio = _video()
    a = align_video(frame_times(n), face, present, {"audio": audio}, missing_face="drop")
    assert a.frame_indices.tolist() == [1, 2, 5, 6]
    np.testing.assert_array_equal(a.mask, present)
    assert a.matrix.shape == (4, 3)
    np.testing.assert_array_equal(a.modality("face"), face[present])
    np.testing.assert_allclose(a.modality("audio")[:, 0], [10, 20, 50, 60])
    labels = np.arange(n) * 100
    assert a.select(labels).tolist() == [100, 200, 500, 600]
    back = a.scatter(np.ones(4), fill=-1)
    assert back.tolist() == [-1, 1, 1, -1, -1, 1, 1, -1]


def test_policy_carry_last():
    n, face, present, audio = _video()
    a = align_video(frame_times(n), face, present, {"audio": audio}, missing_face="carry_last")
    f = a.modality("face")
    assert a.matrix.shape == (n, 3) and a.mask.all()
    np.testing.assert_array_equal(f[0], [0, 0])  # before the first face
    np.testing.assert_array_equal(f[3], face[2])
    np.testing.assert_array_equal(f[4], face[2])
    np.testing.assert_array_equal(f[7], face[6])
    np.testing.assert_array_equal(a.face_present, present)


def test_policy_other_modalities_adds_indicator():
    n, face, present, audio = _video()
    a = align_video(frame_times(n), face, None, {"audio": audio}, missing_face="other_modalities")
    assert a.matrix.shape == (n, 4)
    ind = a.modality(FACE_MISSING_COLUMN)[:, 0]
    np.testing.assert_array_equal(ind, (~present).astype(np.float32))
    np.testing.assert_array_equal(a.modality("face")[~present], 0)
    np.testing.assert_allclose(a.modality("audio")[:, 0], np.arange(n) * 10)
    assert not np.isnan(a.matrix).any()


def test_text_stream_and_errors():
    n, face, present, audio = _video()
    seg = TextSegments([0.0], [0.25], [[7.0]])
    a = align_video(frame_times(n), face, present, {"audio": audio, "text": seg}, missing_face="carry_last")
    assert list(a.columns) == ["face", "audio", "text"]
    np.testing.assert_array_equal(a.modality("text")[:, 0], [7, 7, 7, 0, 0, 0, 0, 0])
    with pytest.raises(AlignmentError):
        align_video(frame_times(n), face, present, missing_face="bogus")  # type: ignore[arg-type]
    with pytest.raises(AlignmentError):
        align_video(frame_times(n), face[:3], present)
    silent = TimedVectors(np.zeros(0), np.zeros((0, 4)))
    with pytest.raises(AlignmentError):
        align_video(frame_times(n), face, present, {"audio": silent})
    z = align_video(frame_times(n), face, present, {"audio": silent}, empty_stream="zeros")
    assert z.modality("audio").shape == (4, 4) and not z.modality("audio").any()


def test_face_rows_to_frames():
    full, present = face_rows_to_frames([3, 0], [[1.0, 1.0], [2.0, 2.0]], 5)
    assert present.tolist() == [True, False, False, True, False]
    np.testing.assert_array_equal(full[3], [1, 1])
    assert np.isnan(full[1]).all()
    with pytest.raises(AlignmentError):
        face_rows_to_frames([5], [[1.0]], 5)


# ------------------------------------------------------------------- STAT


def test_stat_descriptor_values_n1_nan_and_empty():
    x = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 6.0]])
    d = stat_descriptor(x)  # NaN row ignored -> rows [1,2], [5,6]
    np.testing.assert_allclose(d, [3, 4, 2, 2, 1, 2, 5, 6])
    np.testing.assert_allclose(stat_descriptor(np.array([[1.0, -1.0]])), [1, -1, 0, 0, 1, -1, 1, -1])
    with pytest.raises(EmptyVideoError):
        stat_descriptor(np.zeros((0, 3)))
    with pytest.raises(EmptyVideoError):
        stat_descriptor(np.full((2, 3), np.nan))
    rng = np.random.default_rng(1)
    vids = [rng.normal(size=(n, 7)) for n in (1, 5, 40)]
    m = stat_descriptors(vids)
    assert m.shape == (3, 28)  # the paper's 28-dim descriptor for 7 logits
    np.testing.assert_allclose(m[2, 7:14], vids[2].std(axis=0), rtol=1e-5)
    assert stat_names(["a", "b"])[:3] == ["mean:a", "mean:b", "std:a"]
    np.testing.assert_allclose(stat_descriptor(x, parts=("mean",)), [3, 4])
