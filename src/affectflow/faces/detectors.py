"""Face detectors behind one small interface.

A detector takes a batch of RGB frames (uint8, H x W x 3, all of one video) and returns, per frame,
every face it found as a :class:`Detection` in pixel coordinates of that frame. Choosing the face to
keep is the caller's business. :class:`MediaPipeDetector` (BlazeFace short range),
:class:`MediaPipeFullRangeDetector` (BlazeFace full range), :class:`RetinaFaceDetector` (ResNet-50
RetinaFace, ONNX) and ``retinaface_mnet025`` (uniface's RetinaFace MobileNet-0.25, batched, on
onnxruntime or in torch from the same ONNX file: :class:`affectflow.faces.retinaface_mnet.
RetinaFaceMnetDetector`) each run only weights whose sha256 was checked; nothing is downloaded here.
:func:`make_detector` builds one by its config name.

Details: docs/models.md, section "Face detectors".
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from affectflow.core.device import DeviceError, on_device, ort_providers, provider_device
from affectflow.faces.detection import Detection, FaceDetector, input_scale, nms
from affectflow.faces.errors import FaceStageError

DETECTORS = ("retinaface_mnet025", "mediapipe_full", "mediapipe", "retinaface", "organiser")

# sha256 of mediapipe 0.10.14's mediapipe/modules/face_detection/face_detection_{short,full}_range*.tflite
# (the values the wheel's RECORD states for them).
MEDIAPIPE_SHORT_RANGE_SHA256 = "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"
MEDIAPIPE_SHORT_RANGE_RELPATH = "modules/face_detection/face_detection_short_range.tflite"
MEDIAPIPE_FULL_RANGE_SHA256 = "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1"
MEDIAPIPE_FULL_RANGE_RELPATH = "modules/face_detection/face_detection_full_range_sparse.tflite"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- MediaPipe
class MediaPipeDetector:
    """BlazeFace short range (faces within ~2 m of the camera) via the mediapipe tasks API.

    The tasks API (``mediapipe.tasks.python.vision.FaceDetector``) is used
    rather than the legacy ``solutions.face_detection`` graph because it takes
    the model as bytes: the file is read once, hashed, and those bytes run.
    MediaPipe has no batched inference; frames are detected one by one.
    """

    name = "mediapipe"
    n_landmarks = 6

    def __init__(self, min_score: float = 0.5, model_path: str | os.PathLike[str] | None = None,
                 expected_sha256: str = MEDIAPIPE_SHORT_RANGE_SHA256) -> None:
        mp = _import_mediapipe(self.name)
        from mediapipe.tasks.python import BaseOptions, vision

        path = Path(model_path) if model_path else Path(mp.__path__[0]) / MEDIAPIPE_SHORT_RANGE_RELPATH
        data = _verified_bytes(path, expected_sha256)
        self.weights_path = path
        self.weights_sha256 = expected_sha256
        self.min_score = float(min_score)
        self._mp = mp
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_buffer=data),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=self.min_score,
        )
        self._detector = vision.FaceDetector.create_from_options(options)

    def detect(self, frames_rgb: list[np.ndarray]) -> list[list[Detection]]:
        out: list[list[Detection]] = []
        for frame in frames_rgb:
            h, w = frame.shape[:2]
            image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
            faces: list[Detection] = []
            with warnings.catch_warnings():  # protobuf's deprecation notice, once per result conversion
                warnings.filterwarnings("ignore", message=".*GetPrototype", category=UserWarning)
                detections = self._detector.detect(image).detections
            for d in detections:
                score = float(d.categories[0].score) if d.categories else 0.0
                if score < self.min_score:
                    continue
                b = d.bounding_box
                bbox = np.array([b.origin_x, b.origin_y, b.origin_x + b.width, b.origin_y + b.height], np.float32)
                kp = np.array([[k.x * w, k.y * h] for k in d.keypoints], np.float32).reshape(-1, 2)
                faces.append(Detection(bbox=bbox, score=score, landmarks=kp))
            out.append(faces)
        return out

    def close(self) -> None:
        self._detector.close()


def _import_mediapipe(detector: str) -> Any:
    os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's C++ start-up chatter
    try:
        import mediapipe as mp
    except ImportError as e:
        raise FaceStageError(
            f"detector {detector!r} needs the mediapipe package ({e}); "
            "install it with: pip install --no-deps mediapipe==0.10.14"
        ) from e
    return mp


def _verified_bytes(path: Path, expected_sha256: str) -> bytes:
    """The file's bytes, after checking them against ``expected_sha256`` (an error naming the file otherwise)."""
    if not path.is_file():
        raise FaceStageError(
            f"MediaPipe face detector weights not found at {path}: mediapipe 0.10.14 ships them; "
            "reinstall it (pip install --no-deps mediapipe==0.10.14)"
        )
    data = path.read_bytes()
    actual = sha256_bytes(data)
    if actual != expected_sha256:
        raise FaceStageError(
            f"{path}: sha256 mismatch for the MediaPipe face detector weights "
            f"(expected {expected_sha256}, actual {actual}); reinstall mediapipe==0.10.14"
        )
    return data


class MediaPipeFullRangeDetector:
    """BlazeFace full range (sparse): faces at any distance, small ones included (192x192 input).

    The tasks API cannot run this model (its anchors are the short-range
    model's), so MediaPipe's legacy full-range graph runs it; that graph reads
    ``face_detection_full_range_sparse.tflite`` from the mediapipe package
    folder, whose sha256 is checked here first. Frames are detected one by one.
    """

    name = "mediapipe_full"
    n_landmarks = 6

    def __init__(self, min_score: float = 0.5, expected_sha256: str = MEDIAPIPE_FULL_RANGE_SHA256) -> None:
        mp = _import_mediapipe(self.name)
        path = Path(mp.__path__[0]) / MEDIAPIPE_FULL_RANGE_RELPATH
        _verified_bytes(path, expected_sha256)
        self.weights_path = path
        self.weights_sha256 = expected_sha256
        self.min_score = float(min_score)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)
            self._graph = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=self.min_score)

    def detect(self, frames_rgb: list[np.ndarray]) -> list[list[Detection]]:
        out: list[list[Detection]] = []
        for frame in frames_rgb:
            h, w = frame.shape[:2]
            with warnings.catch_warnings():  # protobuf's deprecation notice, once per result conversion
                warnings.filterwarnings("ignore", message=".*GetPrototype", category=UserWarning)
                detections = self._graph.process(np.ascontiguousarray(frame)).detections or []
            faces: list[Detection] = []
            for d in detections:
                score = float(d.score[0]) if d.score else 0.0
                if score < self.min_score:
                    continue
                b = d.location_data.relative_bounding_box
                bbox = np.array([b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h], np.float32)
                kp = np.array([[k.x * w, k.y * h] for k in d.location_data.relative_keypoints], np.float32)
                faces.append(Detection(bbox=bbox, score=score, landmarks=kp.reshape(-1, 2)))
            out.append(faces)
        return out

    def close(self) -> None:
        self._graph.close()


# ---------------------------------------------------------------- RetinaFace
# The insightface RetinaFace head (which retina-face's ONNX export keeps): per
# feature stride two square anchors of side 16 * scale centred on the cell's
# pixel (7.5, 7.5), outputs per stride in NHWC as
# [face/background scores (2A), box deltas (4A), landmark deltas (10A)].
_RETINA_STRIDES = (32, 16, 8)
_RETINA_SCALES = {32: (32, 16), 16: (8, 4), 8: (2, 1)}


def retina_base_anchors(stride: int) -> np.ndarray:
    """(A, 4) anchors x0, y0, x1, y1 of the cell at the origin (inclusive pixel boxes)."""
    half = (16.0 * np.asarray(_RETINA_SCALES[stride], np.float64) - 1.0) / 2.0
    return np.stack([7.5 - half, 7.5 - half, 7.5 + half, 7.5 + half], axis=1)


def retina_anchors(height: int, width: int, stride: int) -> np.ndarray:
    """(height * width * A, 4) anchors in the (row, column, anchor) order of the NHWC outputs."""
    base = retina_base_anchors(stride)
    ys, xs = np.meshgrid(np.arange(height) * stride, np.arange(width) * stride, indexing="ij")
    shift = np.stack([xs, ys, xs, ys], axis=-1).astype(np.float64)  # (H, W, 4)
    return (shift[:, :, None, :] + base[None, None]).reshape(-1, 4)


def retina_decode(anchors: np.ndarray, box_deltas: np.ndarray, lmk_deltas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (M, 4) and landmarks (M, 5, 2) from anchor-relative deltas (no variances: stds are 1)."""
    w = anchors[:, 2] - anchors[:, 0] + 1.0
    h = anchors[:, 3] - anchors[:, 1] + 1.0
    cx = anchors[:, 0] + 0.5 * (w - 1.0)
    cy = anchors[:, 1] + 0.5 * (h - 1.0)
    pcx = box_deltas[:, 0] * w + cx
    pcy = box_deltas[:, 1] * h + cy
    pw = np.exp(box_deltas[:, 2]) * w
    ph = np.exp(box_deltas[:, 3]) * h
    hw, hh = 0.5 * (pw - 1.0), 0.5 * (ph - 1.0)
    boxes = np.stack([pcx - hw, pcy - hh, pcx + hw, pcy + hh], 1)
    lmk = lmk_deltas.reshape(-1, 5, 2) * np.stack([w, h], 1)[:, None, :] + np.stack([cx, cy], 1)[:, None, :]
    return boxes, lmk


def retina_postprocess(outputs: list[np.ndarray], scale: float, image_hw: tuple[int, int], min_score: float,
                       nms_iou: float = 0.4) -> list[list[Detection]]:
    """Turn the nine NHWC outputs of a batch into detections in original-image pixels."""
    n = outputs[0].shape[0]
    result: list[list[Detection]] = []
    h_in, w_in = image_hw
    for b in range(n):
        boxes_l, scores_l, lmk_l = [], [], []
        for k, stride in enumerate(_RETINA_STRIDES):
            cls, box, lmk = (outputs[3 * k + j][b] for j in range(3))
            fh, fw = box.shape[:2]
            a = cls.shape[-1] // 2
            scores = cls[..., a:].reshape(-1)
            sel = np.flatnonzero(scores >= min_score)
            if sel.size == 0:
                continue
            anchors = retina_anchors(fh, fw, stride)[sel]
            bx, lm = retina_decode(anchors, box.reshape(-1, 4)[sel].astype(np.float64),
                                   lmk.reshape(-1, 10)[sel].astype(np.float64))
            boxes_l.append(bx)
            scores_l.append(scores[sel])
            lmk_l.append(lm)
        faces: list[Detection] = []
        if boxes_l:
            boxes = np.concatenate(boxes_l)
            scores = np.concatenate(scores_l).astype(np.float64)
            lmks = np.concatenate(lmk_l)
            boxes[:, 0::2] = boxes[:, 0::2].clip(0, w_in - 1)
            boxes[:, 1::2] = boxes[:, 1::2].clip(0, h_in - 1)
            for i in nms(boxes, scores, nms_iou):
                faces.append(Detection(bbox=(boxes[i] / scale).astype(np.float32), score=float(scores[i]),
                                       landmarks=(lmks[i] / scale).astype(np.float32)))
        result.append(faces)
    return result


def order_retina_outputs(outputs: list[np.ndarray]) -> list[np.ndarray]:
    """The nine outputs as [scores, boxes, landmarks] for strides 32, 16, 8, whatever order the graph lists them.

    Strides are told apart by map size (coarsest first), heads by channel count (2A, 4A, 10A).
    """
    return sorted(outputs, key=lambda o: (o.shape[1] * o.shape[2], o.shape[3]))


class RetinaFaceDetector:
    """RetinaFace (ResNet-50) ONNX export of the retina-face package, on onnxruntime.

    Input: RGB float32 0..255 in NHWC with dynamic batch, height and width;
    frames are resized so that their short side is ``target_size`` (long side
    at most ``max_size``; never enlarged unless ``allow_upscaling``). The
    retina-face package itself uses 1024 / 1980 with upscaling, which is slow
    on a CPU; 640 finds faces down to about 16 px at 640 short side.
    """

    name = "retinaface"
    n_landmarks = 5

    def __init__(self, min_score: float = 0.5, models_dir: str | os.PathLike[str] | None = None,
                 model_pins: Mapping[str, str] | None = None, spec: Any = None, target_size: int = 640,
                 max_size: int = 1280, allow_upscaling: bool = False, nms_iou: float = 0.4) -> None:
        try:  # imported here so that the rest of the faces stage works without them
            from affectflow.models.catalogue import weights
        except ImportError as e:  # pragma: no cover - affectflow.models.catalogue.weights is part of the package
            raise FaceStageError(f"detector 'retinaface' needs affectflow.models.catalogue.weights ({e})") from e
        if spec is None:
            from affectflow.models.catalogue.registry import get

            spec = get("retinaface").files[0]
        if model_pins:
            spec = weights.apply_pins([spec], model_pins)[0]
        try:
            path = weights.ensure(spec, weights.models_dir(models_dir), model="retinaface")
        except weights.WeightsError as e:
            raise FaceStageError(f"detector 'retinaface': {e}") from e
        import onnxruntime as ort

        self.weights_path = Path(path)
        try:  # the session parses the bytes hashed here, not the path again
            data, self.weights_sha256 = weights.read_verified(self.weights_path, spec)
        except weights.WeightsError as e:
            raise FaceStageError(f"detector 'retinaface': {e}") from e
        self.min_score = float(min_score)
        self.target_size, self.max_size, self.allow_upscaling = int(target_size), int(max_size), allow_upscaling
        self.nms_iou = float(nms_iou)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:  # device auto: CUDA where this onnxruntime has it, as faces.device does not reach this detector
            providers = ort_providers("auto")
        except DeviceError as e:
            raise FaceStageError(f"detector 'retinaface': {e}") from e
        self._session = ort.InferenceSession(data, sess_options=opts, providers=providers)
        self._input = self._session.get_inputs()[0].name
        if len(self._session.get_outputs()) != 9:
            raise FaceStageError(
                f"{path}: expected the retina-face ONNX export with 9 outputs (scores, boxes, landmarks "
                f"for strides 32, 16, 8), found {len(self._session.get_outputs())}"
            )

    def detect(self, frames_rgb: list[np.ndarray]) -> list[list[Detection]]:
        if not frames_rgb:
            return []
        h, w = frames_rgb[0].shape[:2]
        scale = input_scale(h, w, self.target_size, self.max_size, self.allow_upscaling)
        size = (int(round(w * scale)), int(round(h * scale)))
        batch = np.stack([
            (cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) if scale != 1.0 else f) for f in frames_rgb
        ]).astype(np.float32)
        # onnxruntime's CUDA provider keeps per-thread state: on CUDA, on the device's one thread (DeviceThread)
        outputs = order_retina_outputs(on_device(provider_device(self._session.get_providers()[0]),
                                                 self._session.run, None, {self._input: batch}))
        return retina_postprocess(outputs, scale, (size[1], size[0]), self.min_score, self.nms_iou)

    def close(self) -> None:
        pass


def make_detector(name: str, min_score: float = 0.5, models_dir: str | os.PathLike[str] | None = None,
                  model_pins: Mapping[str, str] | None = None, *, engine: str = "auto",
                  device: str = "auto", batch_size: int = 0) -> FaceDetector:
    """The detector called ``name`` (config ``faces.detector``) keeping detections scored ``min_score`` or more.

    ``engine``, ``device`` and ``batch_size`` matter to ``retinaface_mnet025`` only: ``"onnx"``, ``"torch"``,
    or ``"auto"`` (torch on a CUDA GPU, onnxruntime on the CPU); ``device`` "auto", "cpu" or "cuda";
    ``batch_size`` the frames per ``detect`` call at most (see its class).
    """
    min_score = float(min_score)
    if name == "mediapipe":
        return MediaPipeDetector(min_score=min_score)
    if name == "mediapipe_full":
        return MediaPipeFullRangeDetector(min_score=min_score)
    if name == "retinaface":
        return RetinaFaceDetector(min_score=min_score, models_dir=models_dir, model_pins=model_pins)
    if name == "retinaface_mnet025":
        from affectflow.faces.retinaface_mnet import RetinaFaceMnetDetector

        return RetinaFaceMnetDetector(min_score, models_dir, model_pins, engine=engine, device=device,
                                      batch_size=batch_size)
    if name == "organiser":
        raise FaceStageError("detector 'organiser' reads crops from disk; use OrganiserCropsSource")
    raise FaceStageError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")
