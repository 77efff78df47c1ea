"""A face record's rows: both layouts (``people: target`` and ``all``) fill a face's cells the same way."""

from __future__ import annotations

import numpy as np
import pytest

from affectflow.faces.crops import crop_square
from affectflow.faces.detection import Detection
from affectflow.faces.rows import PeopleRows, RowSettings, TargetRows, face_rows, row_bytes, row_spec
from affectflow.faces.shard import ROWS_AHEAD_BYTES, rows_ahead
from affectflow.faces.stream import PREFETCH_DEPTH
from affectflow.faces.tracks import TargetTracker
from affectflow.faces.video import FrameBatch
from affectflow.stages.faces import FacesOptions


class Scripted:
    """A detector that finds the faces it is told to, frame after frame: 6 keypoints each, the rows keep 5."""

    name, weights_sha256, n_landmarks = "scripted", "", 5

    def __init__(self, per_frame: list[list[Detection]]) -> None:
        self.per_frame = list(per_frame)

    def detect(self, frames_rgb: list[np.ndarray]) -> list[list[Detection]]:
        out, self.per_frame = self.per_frame[:len(frames_rgb)], self.per_frame[len(frames_rgb):]
        return out


def face(x0: float, score: float = 0.9) -> Detection:
    box = np.array([x0, 20, x0 + 40, 70], np.float32)
    lm = np.array([[x0 + 10 + k, 40 + k] for k in range(6)], np.float32)
    return Detection(bbox=box, score=score, landmarks=lm)


def frames(n: int) -> FrameBatch:
    rng = np.random.default_rng(0)
    pics = [rng.integers(0, 255, (96, 160, 3), dtype=np.uint8) for _ in range(n)]
    return FrameBatch(indices=list(range(0, 2 * n, 2)), timestamps=[0.08 * i for i in range(n)], frames=pics)


def all_rows(rows: TargetRows | PeopleRows, batch: FrameBatch) -> dict[str, np.ndarray]:
    parts = [rows.batch(batch), rows.finish()]
    return {k: np.concatenate([p[k] for p in parts if p is not None]) for k in parts[0]}


def test_settings_defaults_are_the_configs() -> None:
    assert FacesOptions().row_settings() == RowSettings()
    opts = FacesOptions(frame_stride=3, batch_size=8, crop_size=112, margin=0.1, align=True, people="all")
    assert opts.row_settings() == RowSettings(3, 8, 112, 0.1, True, "all")
    with pytest.raises(ValueError, match="people must be one of 'target', 'all', got 'some'"):
        RowSettings(people="some")


@pytest.mark.parametrize("align", [False, True])
def test_both_layouts_fill_a_face_alike(align: bool) -> None:
    """One person in view: ``all`` gives ``target``'s rows, plus the person; unusable boxes are no faces."""
    broken = Detection(bbox=np.array([np.nan, 0, 10, 10], np.float32), score=0.8, landmarks=np.zeros((6, 2)))
    flat = Detection(bbox=np.array([5, 5, 5, 30], np.float32), score=0.8, landmarks=np.zeros((6, 2)))
    script = [[face(10 + 3 * i), broken, flat] if i != 4 else [] for i in range(7)]
    settings = RowSettings(crop_size=32, margin=0.1, align=align)
    batch = frames(7)
    target = face_rows(Scripted(script), settings, TargetTracker())
    every = face_rows(Scripted(script), RowSettings(crop_size=32, margin=0.1, align=align, people="all"),
                      TargetTracker())
    assert isinstance(target, TargetRows) and isinstance(every, PeopleRows)
    a, b = all_rows(target, batch), all_rows(every, batch)
    assert b.pop("person").tolist() == [0, 0, 0, 0, -1, 0, 0]
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert a["has_face"].tolist() == [True] * 4 + [False] + [True] * 2
    assert a["n_faces"].tolist() == [1] * 4 + [0] + [1] * 2
    assert a["frame_index"].tolist() == list(range(0, 14, 2))
    d = face(10 + 3 * 2)
    assert a["score"][2] == np.float32(0.9) and np.array_equal(a["bbox"][2], d.bbox)
    np.testing.assert_array_equal(a["landmarks"][2], d.landmarks[:5])  # the detector's first n_landmarks
    np.testing.assert_array_equal(a["crops"][2], crop_square(batch.frames[2], d.bbox, 32, 0.1, d.landmarks[:5],
                                                             align))
    assert np.isnan(a["bbox"][4]).all() and not a["crops"][4].any()


def test_rows_ahead_holds_the_bytes_it_may() -> None:
    row = row_bytes(row_spec(5, 224))
    assert row == 4 + 8 + 1 + 16 + 4 + 40 + 224 * 224 * 3 + 2
    assert rows_ahead(RowSettings()) == ROWS_AHEAD_BYTES // (row * 32) == 55
    assert rows_ahead(RowSettings(batch_size=10_000)) == PREFETCH_DEPTH


def test_box_crops_reach_the_rows() -> None:
    """``faces.crop_shape: box`` stores EmotiEffLib's crops of the boxes the detector found."""
    from affectflow.faces.crops import crop_box

    opts = FacesOptions(crop_shape="box", margin=0.0, crop_size=32)
    assert opts.row_settings().crop_shape == "box"
    script = [[face(10 + 3 * i)] for i in range(3)]
    batch = frames(3)
    a = all_rows(face_rows(Scripted(script), opts.row_settings(), TargetTracker()), batch)
    for i in range(3):
        np.testing.assert_array_equal(a["crops"][i], crop_box(batch.frames[i], face(10 + 3 * i).bbox, 32))
