"""Half precision and channels-last for face models: the same code path a GPU job takes, checked on the CPU.

float16 changes results by rounding only; channels-last not at all (beyond
float summation order). Both are checked against float32 on real face crops.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from affectflow.models import standins_face
from affectflow.models.faces import FaceModel, load_face_model
from affectflow.models.registry import get
from affectflow.models.torch_runtime import torch_runtime
from affectflow.testing.faces import crops

MBF, DDAMFN = "mbf_va_mtl", "ddamfn"


def _install(name: str, root: Path) -> dict[str, str]:
    """The stand-in of ``name`` at its registry path under ``root``; the pins that accept it."""
    (wf,) = get(name).files
    src = standins_face.face_standin(name)
    dest = root / wf.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return {wf.name: hashlib.sha256(dest.read_bytes()).hexdigest()}


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _close(fp32: FaceModel, other: FaceModel, items: list[np.ndarray], rel: float) -> None:
    a, b = fp32.predict(items), other.predict(items)
    assert b.embeddings.dtype == np.float32 and b.logits.dtype == np.float32
    assert np.all(_cosine(a.embeddings, b.embeddings) > 1 - rel)
    scale = np.abs(a.logits).max()
    np.testing.assert_allclose(b.logits, a.logits, atol=rel * scale)
    assert not np.array_equal(a.embeddings, b.embeddings) or rel == 0  # really another computation


def test_onnx_fp16_runs_a_float16_graph(tmp_path: Path, face: np.ndarray) -> None:  # noqa: F811
    """On the MobileFaceNet stand-in: EfficientNet-B0's random weights amplify float16 rounding on real faces
    (cosine 0.95 to float32), which says nothing about the trained network."""
    import onnx

    pins = _install(MBF, tmp_path)
    fp32 = load_face_model(MBF, tmp_path, pins=pins, device="cpu", threads=1)
    fp16 = load_face_model(MBF, tmp_path, pins=pins, device="cpu", threads=1, precision="fp16")
    _close(fp32, fp16, crops(face), rel=1e-2)
    # the session really holds float16 weights: rebuild its graph the way load_onnx does and look
    from affectflow.models import emotiefflib as eel

    model = onnx.load(str(fp16.weights_path))
    graph = onnx.load_model_from_string(eel.as_float16(eel.with_embedding_output(model, eel.classifier_of(model))))
    types = {t.data_type for t in graph.graph.initializer if len(t.dims) > 1}
    assert types == {onnx.TensorProto.FLOAT16}
    assert [o.type.tensor_type.elem_type for o in graph.graph.output] == [onnx.TensorProto.FLOAT] * 2


@pytest.mark.parametrize(("precision", "channels_last", "rel"), [("fp32", True, 1e-5), ("fp16", True, 1e-2),
                                                                 ("fp16", False, 1e-2)])
def test_torch_precision_and_layout(precision: str, channels_last: bool, rel: float, tmp_path: Path,
                                    face: np.ndarray) -> None:  # noqa: F811
    import torch

    pins = _install(DDAMFN, tmp_path)
    fp32 = load_face_model(DDAMFN, tmp_path, pins=pins, device="cpu", threads=1)
    other = load_face_model(DDAMFN, tmp_path, pins=pins, device="cpu", threads=1, precision=precision,
                            channels_last=channels_last)
    runtime = other.runner.runtime
    assert (runtime.precision, runtime.channels_last) == (precision, channels_last)
    assert other.runner.module.fc.weight.dtype == (torch.float16 if precision == "fp16" else torch.float32)
    x = runtime.tensor(np.zeros((2, 3, 112, 112), np.float32))
    assert x.is_contiguous(memory_format=torch.channels_last) == channels_last
    _close(fp32, other, crops(face), rel=rel)


def test_bad_precision_and_missing_gpu(tmp_path: Path) -> None:
    import torch

    with pytest.raises(ValueError, match="precision"):
        load_face_model(MBF, tmp_path, precision="int4")
    with pytest.raises(ValueError, match="precision"):
        torch_runtime("cpu", "bf16")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            torch_runtime("cuda", "fp16")
    assert torch_runtime("auto").channels_last == torch.cuda.is_available()


def test_precision_reaches_the_face_features_stage(tmp_path: Path, face: np.ndarray) -> None:  # noqa: F811
    """config features.precision -> the stage -> the model, and into the HDF5 provenance."""
    import cv2

    from affectflow.io.store import Provenance, ShardReader, ShardWriter, VideoRecord
    from affectflow.models.manifest import PreparedModel
    from affectflow.stages.face_features import run_face_features

    pins = _install(DDAMFN, tmp_path / "models")
    PreparedModel(DDAMFN, str(tmp_path / "models"), pins, standin=True).save(tmp_path / "m.json")
    crop = cv2.resize(face, (224, 224))
    with ShardWriter(tmp_path / "faces.h5", Provenance(stage="faces")) as w:
        w.add(VideoRecord("v", {"crops": crop[None], "has_face": np.ones(1, bool), "frame_index": np.zeros(1, int),
                                "timestamps": np.zeros(1)}))
    outs = {}
    for precision in ("fp32", "fp16"):
        out = tmp_path / f"{precision}.h5"
        run_face_features(tmp_path / "faces.h5", out, tmp_path / "m.json",
                          {"device": "cpu", "batch_size": 4, "precision": precision}, threads=1)
        with ShardReader(out, stage="face_features") as r:
            assert json.loads(r.provenance.to_attrs()["config"])["precision"] == precision
            outs[precision] = r.read("v").arrays["embeddings"]
    assert _cosine(outs["fp32"], outs["fp16"])[0] > 0.99 and not np.array_equal(outs["fp32"], outs["fp16"])
