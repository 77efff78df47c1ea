"""The per-frame table: column names and order, empty model columns without a face, task columns."""

import numpy as np

from affectflow.core.vocabulary import EMI_EMOTIONS, EXPR_CLASSES
from affectflow.io.store import VideoRecord
from affectflow.predict.apply import TaskPrediction
from affectflow.predict.frames import FaceModelColumns, table_columns, video_frame_table
from affectflow.predict.table import face_model_columns

N = 10
FACE = np.array([1, 1, 0, 0, 1, 1, 1, 0, 1, 1], dtype=bool)


def _faces(stride: int = 1) -> VideoRecord:
    idx = np.arange(0, N, stride)
    return VideoRecord("v", {"frame_index": idx, "timestamps": idx / 25.0, "has_face": FACE[idx]}, {})


def _features(n_classes: int, va: bool, seed: int = 0) -> VideoRecord:
    rng = np.random.default_rng(seed)
    idx = np.flatnonzero(FACE)
    arrays = {"frame_index": idx, "logits": rng.normal(size=(idx.size, n_classes)).astype(np.float32),
              "embeddings": rng.normal(size=(idx.size, 4)).astype(np.float32)}
    if va:
        arrays["valence_arousal"] = rng.uniform(-1, 1, size=(idx.size, 2)).astype(np.float32)
    return VideoRecord("v", arrays, {})


def test_registry_models_give_their_class_names_and_valence_arousal():
    cols = face_model_columns(["fer_minixception", "enet_b0_8_va_mtl"])
    assert cols[0].columns()[:2] == ["fer_minixception:angry", "fer_minixception:disgust"]
    assert len(cols[0].columns()) == 7
    assert cols[1].columns()[-2:] == ["enet_b0_8_va_mtl:valence", "enet_b0_8_va_mtl:arousal"]
    assert len(cols[1].columns()) == 10


def test_model_columns_are_probabilities_on_face_frames_and_empty_elsewhere():
    fer = FaceModelColumns("fer", ("a", "b", "c"), False)
    mt = FaceModelColumns("mt", tuple("abcdefgh"), True)
    t = video_frame_table("v", _faces(), [fer, mt], {"fer": _features(3, False), "mt": _features(8, True, 1)},
                          [], {})
    assert list(t.columns) == ["video_id", "frame", "timestamp", "face", "fer:a", "fer:b", "fer:c",
                               *[f"mt:{c}" for c in "abcdefgh"], "mt:valence", "mt:arousal"]
    assert t["face"].tolist() == FACE.astype(int).tolist()
    probs = t[["fer:a", "fer:b", "fer:c"]].to_numpy()
    assert np.isnan(probs[~FACE]).all()
    np.testing.assert_allclose(probs[FACE].sum(axis=1), 1.0, rtol=1e-5)
    va = _features(8, True, 1).arrays["valence_arousal"]
    np.testing.assert_allclose(t.loc[FACE, "mt:valence"].to_numpy(), va[:, 0])
    assert np.isnan(t.loc[~FACE, "mt:arousal"]).all()


def test_frame_stride_keeps_only_analysed_frames_and_a_missing_record_is_empty():
    fer = FaceModelColumns("fer", ("a", "b"), False)
    t = video_frame_table("v", _faces(stride=2), [fer], {"fer": _features(2, False)}, [], {})
    assert t["frame"].tolist() == [0, 2, 4, 6, 8]
    probs = t[["fer:a", "fer:b"]].to_numpy()
    assert np.isnan(probs[[1]]).all() and not np.isnan(probs[[0, 2, 3, 4]]).any()
    empty = video_frame_table("v", _faces(), [fer], {"fer": None}, [], {})
    assert empty[["fer:a", "fer:b"]].isna().all().all()


def test_a_video_without_any_face_has_empty_model_columns():
    """A face-free video's features record has zero rows (as the face features stage writes it): every frame's
    model columns are empty, not an error."""
    fer = FaceModelColumns("fer", ("a", "b"), False)
    none = VideoRecord("v", {"frame_index": np.zeros(0, np.int32), "logits": np.zeros((0, 2), np.float32),
                             "embeddings": np.zeros((0, 4), np.float32)}, {})
    faces = VideoRecord("v", {"frame_index": np.arange(N), "timestamps": np.arange(N) / 25.0,
                              "has_face": np.zeros(N, bool)}, {})
    t = video_frame_table("v", faces, [fer], {"fer": none}, [], {})
    assert len(t) == N and t["face"].sum() == 0 and t[["fer:a", "fer:b"]].isna().all().all()


def test_task_columns():
    predicted = np.ones(N, dtype=bool)
    predicted[:2] = False
    post = np.full((N, 8), 0.05, np.float32)
    post[:, 4] = 0.65
    post[~predicted] = np.nan
    preds = {
        "expr": TaskPrediction("expr", post, np.full(N, 4), predicted),
        "emi": TaskPrediction("emi", np.linspace(0.1, 0.6, 6, dtype=np.float32), np.zeros(6), np.ones(N, bool)),
        "ah_video": TaskPrediction("ah_video", np.array([0.8], np.float32), np.array([1]), np.ones(N, bool)),
    }
    tasks = ["ah_video", "ah", "emi", "expr"]  # any order in, vocabulary order out
    t = video_frame_table("v", _faces(), [], {}, tasks, preds)
    assert list(t.columns) == table_columns([], tasks)
    assert list(t.columns)[4:] == ([f"expr:{c}" for c in EXPR_CLASSES] + ["expr:label"]
                                   + [f"emi:{e}" for e in EMI_EMOTIONS]
                                   + ["ah:probability", "ah:label", "ah_video:probability", "ah_video:label"])
    assert t["expr:label"].isna().tolist() == [True, True] + [False] * (N - 2)
    assert t["expr:label"].iloc[2:].tolist() == [EXPR_CLASSES[4]] * (N - 2)
    assert t.loc[:1, "expr:Happiness"].isna().all() and (t.loc[2:, "expr:Happiness"] > 0.6).all()
    np.testing.assert_allclose(t[f"emi:{EMI_EMOTIONS[5]}"], 0.6, rtol=1e-6)
    assert t["ah_video:label"].tolist() == [1] * N
    assert t["ah:probability"].isna().all() and t["ah:label"].isna().all()  # asked for, not predicted: empty
