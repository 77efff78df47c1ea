"""How the faces shard stores crops (``faces.crop_compression``)."""

from __future__ import annotations

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
