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

from affectflow.models.catalogue.registry import get
from affectflow.models.faces import FaceModel, load_face_model
from affectflow.models.runtimes.torch_runtime import torch_runtime
from affectflow.models.standins import face as standins_face
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
    from affectflow.models.runtimes.onnx_graph import as_float16, classifier_of, with_embedding_output

    model = onnx.load(str(fp16.weights_path))
    graph = onnx.load_model_from_string(as_float16(with_embedding_output(model, classifier_of(model))))
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
    from affectflow.models.catalogue.manifest import PreparedModel
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


@pytest.mark.parametrize(("name", "engine"), [(MBF, "torch"), (DDAMFN, "torch"), (MBF, "onnx")])
def test_face_models_run_on_the_device_thread(name: str, engine: str, tmp_path: Path, face: np.ndarray,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """On CUDA every call of a face model runs on the device's one thread, whichever thread calls
    (affectflow.core.device.DeviceThread says why). The CPU skips that thread; made to take it here (torch:
    any device does; onnxruntime: a model that says it runs on the CUDA provider), the same code path runs,
    and its results are the same."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from affectflow.core import device

    pins = _install(name, tmp_path)
    model = load_face_model(name, tmp_path, pins=pins, engine=engine, device="cpu", threads=1, batch_size=4)
    items = crops(face)
    inline = model.predict(items)
    if engine == "onnx":
        monkeypatch.setattr(model.runner, "device", device.CUDA_PROVIDER)  # its session still runs on the CPU
    thread = device.device_thread("cuda" if engine == "onnx" else "cpu").name + "_0"
    ran_on: list[str] = []
    run = model.runner._run  # the whole call: upload, forward, read-back (DDAMFN's module is TorchScript: no hooks)

    def recorded(*args):
        ran_on.append(threading.current_thread().name)
        return run(*args)

    monkeypatch.setattr(model.runner, "_run", recorded)
    if engine == "torch":
        monkeypatch.setattr(device, "uses_device_thread", lambda _device: True)
    with ThreadPoolExecutor(2) as pool:  # two short-lived callers, as the face features stage's model threads
        outs = list(pool.map(lambda _: model.predict(items), range(2)))
    assert len(ran_on) == 2 and set(ran_on) == {thread}
    for out in outs:
        np.testing.assert_array_equal(out.embeddings, inline.embeddings)
        np.testing.assert_array_equal(out.logits, inline.logits)


def test_bucket_rows_gives_few_shapes() -> None:
    from affectflow.models.runtimes.torch_runtime import MIN_BUCKET, bucket_rows

    assert [bucket_rows(n, 256) for n in (1, 7, 8, 9, 100, 128, 129, 255, 256)] == [8, 8, 8, 16, 128, 128, 256,
                                                                                    256, 256]
    assert {bucket_rows(n, 256) for n in range(1, 257)} == {8, 16, 32, 64, 128, 256}  # a job's shapes at most
    assert bucket_rows(60, 100) == 64 and bucket_rows(70, 100) == 100 and bucket_rows(100, 100) == 100
    assert bucket_rows(3, 4) == 4 and bucket_rows(5, 5) == 5 and bucket_rows(300, 256) == 300  # never fewer rows
    assert all(n <= bucket_rows(n, cap) <= max(n, min(cap, 2 * max(n, MIN_BUCKET)))
               for cap in (5, 32, 100, 256) for n in range(1, cap + 1))


def test_pad_rows_keeps_rows_and_layout() -> None:
    import torch

    from affectflow.models.runtimes.torch_runtime import pad_rows

    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5).contiguous(
        memory_format=torch.channels_last)
    y = pad_rows(x, 8)
    assert y.shape == (8, 3, 4, 5) and y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(y[:2], x) and not y[2:].any()
    assert pad_rows(x, 2) is x and pad_rows(x.contiguous(), 3).is_contiguous()


@pytest.mark.parametrize("name", [MBF, DDAMFN])
def test_padded_batches_give_the_same_results(name: str, tmp_path: Path, face: np.ndarray,
                                                monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """On CUDA a batch is padded to the full batch size before the network sees it, and its results cut back;
    made to pad on the CPU, the network sees one shape and the crops' results are those of the unpadded run."""
    import dataclasses

    pins = _install(name, tmp_path)
    model = load_face_model(name, tmp_path, pins=pins, engine="torch", device="cpu", threads=1, batch_size=16)
    items = (crops(face) * 4)[:21]  # a full batch of 16, then 5 rows: padded to 16
    plain = model.predict(items)
    assert not model.runner.runtime.pad_batches  # the CPU does not pad
    monkeypatch.setattr(model.runner, "runtime", dataclasses.replace(model.runner.runtime, pad_batches=True))
    seen: list[int] = []
    embed = getattr(model.runner, "_embed", None)
    if embed is not None:  # DDAMFN (TorchScript: no hooks)
        monkeypatch.setattr(model.runner, "_embed", lambda x: (seen.append(len(x)), embed(x))[1])
    else:
        model.runner.module.register_forward_pre_hook(lambda _m, args: seen.append(len(args[0])))
    padded = model.predict(items)
    assert seen == [16, 16]
    assert padded.embeddings.shape == plain.embeddings.shape and padded.logits.shape == plain.logits.shape
    # the CPU's kernels block a batch of 16 rows differently from one of 5: float32 rounding (4e-5 at most
    # here, on values up to 20)
    np.testing.assert_allclose(padded.embeddings, plain.embeddings, rtol=1e-4, atol=5e-4)
    np.testing.assert_allclose(padded.logits, plain.logits, rtol=1e-4, atol=5e-4)
