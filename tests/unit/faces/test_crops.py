"""How the faces shard stores crops (``faces.crop_compression``)."""

from __future__ import annotations

import pytest

from affectflow.faces.crops import crop_storage


def test_crop_storage_auto_stores_raw_crops_only_for_face_models_on_a_gpu(monkeypatch):
    import torch

    assert crop_storage("lzf", {"gpu": True}) == "lzf" and crop_storage("none", {"device": "cpu"}) == "none"
    assert crop_storage("auto", {"gpu": True, "device": "auto"}) == "none"  # the cluster gives features a GPU
    assert crop_storage("auto", {"gpu": False, "device": "cuda"}) == "none"
    assert crop_storage("auto", {"gpu": False, "device": "cuda:1"}) == "none"
    assert crop_storage("auto", {"gpu": False, "device": "cpu"}) == "lzf"
    assert crop_storage("auto", {"gpu": True, "device": "cpu"}) == "lzf"  # the models stay on the CPU
    for seen, stored in ((True, "none"), (False, "lzf")):  # device auto: what torch sees on this machine
        monkeypatch.setattr(torch.cuda, "is_available", lambda seen=seen: seen)
        assert crop_storage("auto", {"gpu": False, "device": "auto"}) == stored
        assert crop_storage("auto", None) == stored


def emotiefflib_crop(frame, bbox, size):
    """EmotiEffLib's own code (tests/test_facial_analysis.py, then its recognisers' ``_preprocess``): the box
    as ints, the frame sliced, one ``cv2.resize`` to the model's input."""
    import cv2

    box = bbox.astype(int)
    x1, y1, x2, y2 = box[0:4]
    return cv2.resize(frame[y1:y2, x1:x2, :], (size, size))


def test_a_box_crop_is_emotiefflibs_own() -> None:
    import numpy as np

    from affectflow.faces.crops import crop_box, crop_square

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (360, 640, 3), np.uint8)
    for bbox in ([100.7, 50.2, 220.9, 210.5], [300.0, 20.5, 341.3, 60.0], [10.2, 100.9, 400.6, 300.1]):
        box = np.array(bbox, np.float32)
        np.testing.assert_array_equal(crop_box(frame, box, 224), emotiefflib_crop(frame, box, 224))
        assert not np.array_equal(crop_box(frame, box, 224), crop_square(frame, box, 224, 0.0))
    wide = np.array([200, 100, 400, 150], np.float32)  # stretched to fill the crop, where a square shows around it
    face = np.zeros_like(frame)
    face[100:150, 200:400] = 255
    assert crop_box(face, wide, 64).min() == 255 and crop_square(face, wide, 64, 0.0).min() == 0


def test_a_box_crop_grows_by_the_margin_and_stays_in_the_frame() -> None:
    import numpy as np

    from affectflow.faces.crops import crop_box

    frame = np.zeros((100, 200, 3), np.uint8)
    frame[40:60, 90:130] = 200  # the face, 40 x 20
    inner = crop_box(frame, np.array([90, 40, 130, 60], np.float32), 32)
    grown = crop_box(frame, np.array([90, 40, 130, 60], np.float32), 32, margin=0.25)  # 10 and 5 px a side
    assert inner.min() == 200 and grown[0, 0].tolist() == [0, 0, 0] and grown[16, 16].tolist() == [200] * 3
    assert np.array_equal(grown, crop_box(frame[30:70, 80:140].copy(), np.array([10, 10, 50, 30]), 32, 0.25))
    edge = crop_box(frame, np.array([-20.5, -10, 30, 20], np.float32), 16)  # clipped, not wrapped by numpy
    np.testing.assert_array_equal(edge, crop_box(frame, np.array([0, 0, 30, 20], np.float32), 16))
    assert not crop_box(frame, np.array([-50, -50, -10, -10], np.float32), 8).any()  # off the frame: black
    with pytest.raises(ValueError, match="not a valid face box"):
        crop_box(frame, np.array([10, 10, 10, 20], np.float32), 8)


@pytest.mark.parametrize(("settings", "message"), [
    ({"crop_shape": "round"}, "crop_shape must be one of 'square', 'box'"),
    ({"crop_shape": "box", "align": True}, "crop_shape 'box' cuts the detector's upright box as it is"),
    ({"crop_shape": "box", "crop_on": "detector", "detector_engine": "torch"}, "not with align true, crop_shape box"),
])
def test_box_crops_refuse_what_cannot_go_with_them(settings, message) -> None:
    from affectflow.core.options import OptionsError
    from affectflow.stages.faces import FacesOptions

    with pytest.raises(OptionsError, match=message):
        FacesOptions.from_mapping(settings)


def test_box_crops_are_keyed_only_where_the_stage_cuts_crops() -> None:
    from affectflow.stages.faces import FacesOptions

    base = FacesOptions().output_options()
    assert FacesOptions(crop_shape="box").output_options() != base
    assert FacesOptions(crop_shape="square").output_options() == base  # added: shards made before keep their key
    organiser = {"detector": "organiser", "organiser_crops_dir": "/crops"}
    assert (FacesOptions(**organiser, crop_shape="box").output_options()
            == FacesOptions(**organiser).output_options())
