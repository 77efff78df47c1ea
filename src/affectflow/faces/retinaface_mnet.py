"""RetinaFace MobileNet-0.25 (uniface's ``retinaface_mv1_0.25.onnx``), batched, on onnxruntime or in torch.

Both engines run the same verified file: onnxruntime runs its bytes, and the torch engine builds
:class:`affectflow.models.networks.retinaface_mnet.RetinaFace` and fills it from that file's initialisers (the same
bytes, hashed then parsed), so they are one network. ``detect`` runs the frames it is given (one video's,
all one size) as one batch. The torch engine keeps everything on the device: uint8 frames go up once, and
resizing, BGR mean subtraction, anchor decoding and non-maximum suppression run there; only the kept
faces come back. The onnxruntime engine does the same steps in numpy (its resize is torch's bilinear
interpolation, so both engines see the same input). Pre- and post-processing follow uniface's
``RetinaFace`` (BGR minus (104, 117, 123), variances 0.1 / 0.2, NMS IoU 0.4, at most 5000 candidates
before and 750 faces after NMS per frame); frames are resized as
:class:`~affectflow.faces.detectors.RetinaFaceDetector` resizes them (short side ``target_size``, long side
at most ``max_size``), not letterboxed into a 640 x 640 square as uniface does: the network takes any size.

Details: docs/models.md, section "Face detectors".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from affectflow.core.device import DeviceError, is_cuda, on_device, ort_providers
from affectflow.faces.detection import DETECTOR_ENGINES as ENGINES
from affectflow.faces.detection import Detection, input_scale, nms
from affectflow.faces.errors import FaceStageError
from affectflow.models.networks import retinaface_mnet as rm
from affectflow.models.runtimes.torch_runtime import bucket_rows, pad_rows

NAME = "retinaface_mnet025"
# IoU matrices of at most this many entries per NMS call (images are taken in chunks to stay under it)
NMS_CHUNK_ELEMENTS = 1 << 24
#: frames per onnxruntime call on the CPU (_detect_onnx says why)
ONNX_CPU_CHUNK = 4


# ---------------------------------------------------------------- geometry shared by both engines
def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (lower, upper) and upper weight of each output position: torch's bilinear rule
    (half-pixel centres, ``align_corners=False``, no antialiasing), computed in float32 as torch does."""
    scale = np.float32(n_in) / np.float32(n_out)
    src = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    lo = src.astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (src - lo.astype(np.float32)).astype(np.float32)


def _resize_into(frames: np.ndarray, out: np.ndarray) -> None:
    """(N, H, W, K) pixels (any real type) resized into ``out`` (K, N, out_h, out_w) float32, as
    ``torch.nn.functional.interpolate`` (``mode="bilinear"``, ``align_corners=False``) resizes them.

    Why separable and plane by plane: the columns are gathered and blended once per source row (in the
    planes' own type, then made float32) and the rows of that once per output row, where blending the four
    corner taps of every output pixel gathered the source rows four times; each output value is the same
    sequence of float32 operations as the four-tap form (blend in x, then in y), so the result is bit for bit
    the same, at a third of the time for a 720p frame (a 1080p frame is 25 MB as float32)."""
    _, h, w, _ = frames.shape
    out_h, out_w = out.shape[2:]
    y0, y1, ly = _axis_weights(h, out_h)
    x0, x1, lx = _axis_weights(w, out_w)
    rows = np.union1d(y0, y1)  # a frame more than twice the output's height: only these rows are read
    y0, y1 = np.searchsorted(rows, y0), np.searchsorted(rows, y1)
    ly1, ly = (1 - ly)[:, None], ly[:, None]
    planes = np.ascontiguousarray((frames[:, rows] if len(rows) < h else frames).transpose(3, 0, 1, 2))
    for k, plane in enumerate(planes):
        left = np.take(plane, x0, axis=2).astype(np.float32)
        right = np.take(plane, x1, axis=2).astype(np.float32)
        left *= 1 - lx
        right *= lx
        left += right
        top = np.take(left, y0, axis=1)
        top *= ly1
        bottom = np.take(left, y1, axis=1)
        bottom *= ly
        np.add(top, bottom, out=out[k])


def resize_bilinear(frames: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """(N, H, W, C) pixels resized to (N, out_h, out_w, C) float32, as ``torch.nn.functional.interpolate``
    (``mode="bilinear"``, ``align_corners=False``) resizes them."""
    n, h, w, c = frames.shape
    if (h, w) == (out_h, out_w):
        return frames.astype(np.float32, copy=False)
    out = np.empty((c, n, out_h, out_w), np.float32)
    _resize_into(frames, out)
    return np.ascontiguousarray(out.transpose(1, 2, 3, 0))


def preprocess_numpy(frames: list[np.ndarray], out_h: int, out_w: int) -> np.ndarray:
    """RGB uint8 frames -> the network's input (N, 3, out_h, out_w) float32: BGR minus the mean, written
    channel by channel into the array the network reads (no interleaved float copy to transpose)."""
    pixels = np.stack(frames)
    n, h, w, _ = pixels.shape
    mean = np.asarray(rm.MEAN_BGR, np.float32)
    out = np.empty((n, 3, out_h, out_w), np.float32)
    planes = out.transpose(1, 0, 2, 3)  # (3, N, out_h, out_w) view: channel-first writes land in place
    bgr = pixels[..., ::-1]
    if (h, w) == (out_h, out_w):
        for c in range(3):
            np.subtract(bgr[..., c], mean[c], out=planes[c], dtype=np.float32)
        return out
    _resize_into(bgr, planes)
    planes -= mean[:, None, None, None]
    return out


def decode_numpy(loc: np.ndarray, lmk: np.ndarray, priors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (M, 4) x0, y0, x1, y1 and landmarks (M, 5, 2) in input pixels (uniface's decode, in pixels)."""
    v0, v1 = (np.float32(v) for v in rm.VARIANCE)
    centre, size = priors[:, :2], priors[:, 2:]
    cxcy = centre + loc[:, :2] * v0 * size
    wh = size * np.exp(loc[:, 2:] * v1)
    boxes = np.concatenate([cxcy - wh / 2, cxcy + wh / 2], axis=1)
    landmarks = centre[:, None, :] + lmk.reshape(-1, 5, 2) * v0 * size[:, None, :]
    return boxes, landmarks


# ---------------------------------------------------------------- torch: decode and NMS on the device
def upload(frames: list[np.ndarray], device: Any) -> Any:
    """RGB uint8 frames as one (N, H, W, 3) uint8 tensor on ``device``: the pixels cross to the device once."""
    import torch

    return torch.from_numpy(np.stack(frames)).to(device)


def preprocess_torch(frames: list[np.ndarray] | Any, out_h: int, out_w: int, device: Any) -> Any:
    """RGB uint8 frames (or their :func:`upload`) -> the network's input on ``device``."""
    import torch
    import torch.nn.functional as F

    pixels = frames if isinstance(frames, torch.Tensor) else upload(frames, device)
    x = pixels.permute(0, 3, 1, 2).float()
    if tuple(x.shape[2:]) != (out_h, out_w):
        x = F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=False)
    mean = torch.tensor(rm.MEAN_BGR, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return (x.flip(1) - mean).contiguous()


def decode_torch(loc: Any, lmk: Any, priors: Any) -> tuple[Any, Any]:
    """:func:`decode_numpy` on tensors with any leading dimensions."""
    import torch

    v0, v1 = rm.VARIANCE
    centre, size = priors[..., :2], priors[..., 2:]
    cxcy = centre + loc[..., :2] * v0 * size
    wh = size * torch.exp(loc[..., 2:] * v1)
    boxes = torch.cat([cxcy - wh / 2, cxcy + wh / 2], dim=-1)
    landmarks = centre[..., None, :] + lmk.reshape(*lmk.shape[:-1], 5, 2) * v0 * size[..., None, :]
    return boxes, landmarks


def _pairwise_iou(boxes: Any) -> Any:
    """(B, K, K) IoU with :func:`affectflow.faces.detectors.nms`'s inclusive-pixel (+1) areas, same op order."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    areas = (x1 - x0 + 1) * (y1 - y0 + 1)
    w = (x1[:, :, None].minimum(x1[:, None, :]) - x0[:, :, None].maximum(x0[:, None, :]) + 1).clamp(min=0)
    h = (y1[:, :, None].minimum(y1[:, None, :]) - y0[:, :, None].maximum(y0[:, None, :]) + 1).clamp(min=0)
    inter = w * h
    return inter / (areas[:, :, None] + areas[:, None, :] - inter)


def batched_nms(boxes: Any, valid: Any, iou: float) -> Any:
    """Greedy NMS of each row of ``boxes`` (B, K, 4), already sorted best first; ``valid`` (B, K) marks the
    real candidates. Returns the (B, K) mask of kept boxes.

    Same result as :func:`affectflow.faces.detectors.nms` (a box is dropped when its IoU with a kept,
    better box is ``iou`` or more), computed without a per-box loop: the greedy choice is the unique
    ``keep`` with ``keep[j] = valid[j] and no kept i < j suppresses j``, and iterating that rule from
    ``keep = valid`` settles on it; each pass fixes at least one more leading position, and in practice
    a pass or a few suffice (as many as the longest chain of boxes suppressing one another).
    """
    import torch

    k = boxes.shape[1]
    later = torch.ones(k, k, dtype=torch.bool, device=boxes.device).triu(1)
    suppresses = (_pairwise_iou(boxes) >= iou) & later & valid[:, :, None]
    keep = valid
    for _ in range(k + 1):
        new = valid & ~(suppresses & keep[:, :, None]).any(dim=1)
        if torch.equal(new, keep):
            break
        keep = new
    return keep


def nms_torch(boxes: Any, scores: Any, iou: float) -> Any:
    """Indices kept by greedy NMS, best first: :func:`affectflow.faces.detectors.nms` on one image's tensors."""
    import torch

    order = torch.sort(scores, descending=True, stable=True).indices
    keep = batched_nms(boxes[order][None], torch.ones(1, len(order), dtype=torch.bool, device=boxes.device), iou)
    return order[keep[0]]


# ---------------------------------------------------------------- the detector
class RetinaFaceMnetDetector:
    """RetinaFace MobileNet-0.25 of uniface (5 landmarks), one batch per ``detect`` call.

    ``engine``: ``"onnx"`` (onnxruntime), ``"torch"``, or ``"auto"`` (torch where ``device`` resolves to
    CUDA, onnxruntime on the CPU, where it is the faster of the two). ``device``: ``"auto"``, ``"cpu"``
    or ``"cuda"`` (``affectflow.core.device.resolve_device``); for onnxruntime, CUDA means its CUDA
    execution provider, which must be installed. ``target_size`` / ``max_size`` / ``allow_upscaling``: how
    frames are resized (as :class:`~affectflow.faces.detectors.RetinaFaceDetector`); ``nms_iou``,
    ``pre_nms_topk``, ``post_nms_topk``: uniface's post-processing. ``batch_size``: the frames a caller
    gives ``detect`` at most (the faces stage's ``batch_size``; 0 if unknown), which caps the sizes a torch
    batch on CUDA is padded to from the first call on. ``spec``: another
    :class:`~affectflow.models.catalogue.weights.WeightFile` than the registry's (tests).
    """

    name = NAME
    n_landmarks = 5

    def __init__(self, min_score: float = 0.5, models_dir: str | os.PathLike[str] | None = None,
                 model_pins: Mapping[str, str] | None = None, *, engine: str = "auto", device: str = "auto",
                 target_size: int = 640, max_size: int = 1280, allow_upscaling: bool = False,
                 nms_iou: float = 0.4, pre_nms_topk: int = 5000, post_nms_topk: int = 750,
                 batch_size: int = 0, spec: Any = None) -> None:
        if engine not in ENGINES:
            raise FaceStageError(f"detector {NAME!r}: unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        self.min_score = float(min_score)
        self.target_size, self.max_size, self.allow_upscaling = int(target_size), int(max_size), allow_upscaling
        self.nms_iou = float(nms_iou)
        self.pre_nms_topk, self.post_nms_topk = int(pre_nms_topk), int(post_nms_topk)
        self.device = _resolve(device)
        self.engine = engine if engine != "auto" else ("torch" if is_cuda(self.device) else "onnx")
        data = self._verified_bytes(models_dir, model_pins, spec)
        if self.engine == "onnx":
            self._session, self._outputs = self._onnx_session(data)
        else:
            self._module = self._torch_module(data)
        self._priors: dict[tuple[int, int], Any] = {}  # per input size: numpy (onnx engine) or tensors (torch)
        # torch on CUDA: batches padded to a few sizes (capped by the batch size, or the largest batch seen), so a
        # video's last batch is not a new shape for cuDNN to plan (affectflow.models.runtimes.torch_runtime.bucket_rows)
        self.bucket_batches = self.engine == "torch" and is_cuda(self.device)
        self._widest = max(0, int(batch_size))
        self.crops: tuple[int, float] | None = None  # (size, margin): cut each face's crop on the device

    def crop_on_device(self, size: int, margin: float) -> None:
        """Cut every detection's square crop where the frames are (:mod:`affectflow.faces.device_crops`), so the
        host does not: ``Detection.crop``. The torch engine only (it holds the frames on its device)."""
        if self.engine != "torch":
            raise FaceStageError(f"detector {NAME!r}: crops are cut on the device by the torch engine only "
                                 f"(faces.detector_engine: torch), not {self.engine!r}")
        self.crops = (int(size), float(margin))

    # ------------------------------------------------------------ loading
    def _verified_bytes(self, models_dir: Any, model_pins: Mapping[str, str] | None, spec: Any) -> bytes:
        from affectflow.models.catalogue import weights
        from affectflow.models.catalogue.weights import read_verified

        if spec is None:
            from affectflow.models.catalogue.registry import get

            spec = get(NAME).files[0]
        if model_pins:
            spec = weights.apply_pins([spec], model_pins)[0]
        try:
            path = weights.ensure(spec, weights.models_dir(models_dir), model=NAME)
            data, self.weights_sha256 = read_verified(Path(path), spec)
        except weights.WeightsError as e:
            raise FaceStageError(f"detector {NAME!r}: {e}") from e
        self.weights_path = Path(path)
        return data

    def _onnx_session(self, data: bytes) -> tuple[Any, list[str]]:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            providers = ort_providers(self.device)
        except DeviceError as e:
            raise FaceStageError(f"detector {NAME!r} with engine 'onnx': {e} (or engine='torch', which needs "
                                 "no onnxruntime-gpu)") from e
        try:
            session = ort.InferenceSession(data, sess_options=opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for unreadable graphs
            raise FaceStageError(f"{self.weights_path}: onnxruntime cannot load it ({e})") from e
        return session, self._output_order([(o.name, o.shape) for o in session.get_outputs()])

    def _output_order(self, outputs: list[tuple[str, Any]]) -> list[str]:
        """Output names as [loc, conf, landmarks], told apart by their last axis (4, 2, 10)."""
        by_width = {shape[-1] if shape else None: name for name, shape in outputs}
        if len(outputs) != 3 or set(by_width) != {4, 2, 10}:
            raise FaceStageError(
                f"{self.weights_path}: expected the RetinaFace export with outputs loc (N, A, 4), conf (N, A, 2) "
                f"and landmarks (N, A, 10), found {outputs}"
            )
        return [by_width[4], by_width[2], by_width[10]]

    def _torch_module(self, data: bytes) -> Any:
        import onnx
        from google.protobuf.message import DecodeError

        try:
            model = onnx.load_model_from_string(data)
        except DecodeError as e:
            raise FaceStageError(f"{self.weights_path}: not a readable ONNX file ({e})") from e
        try:  # the mapping checks every layer's shape, the heads' (2, 4, 10 per anchor) included
            module = rm.from_onnx(model, what=str(self.weights_path))
        except ValueError as e:
            raise FaceStageError(f"detector {NAME!r}: {e}") from e
        return module.to(self.device)

    # ------------------------------------------------------------ detecting
    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """(rows, columns) the network sees for frames of ``height`` x ``width``."""
        scale = input_scale(height, width, self.target_size, self.max_size, self.allow_upscaling)
        return max(1, int(round(height * scale))), max(1, int(round(width * scale)))

    def detect(self, frames_rgb: list[np.ndarray]) -> list[list[Detection]]:
        if not frames_rgb:
            return []
        h, w = frames_rgb[0].shape[:2]
        if any(f.shape[:2] != (h, w) for f in frames_rgb):
            raise FaceStageError(f"detector {NAME!r}: the frames of one call must share one size (one video's)")
        in_h, in_w = self.input_size(h, w)
        to_frame = np.array([w / in_w, h / in_h], np.float32)
        # on CUDA, on the device's one thread (both engines keep per-thread state there: DeviceThread says why)
        if self.engine == "onnx":
            rows = on_device(self.device, self._detect_onnx, frames_rgb, in_h, in_w)
        else:
            rows = on_device(self.device, self._detect_torch, frames_rgb, in_h, in_w, to_frame)
        return [[Detection(bbox=(b.reshape(2, 2) * to_frame).reshape(4), score=float(s), landmarks=lm * to_frame,
                           crop=None if crops is None else crops[k])
                 for k, (b, s, lm) in enumerate(zip(*row[:3], strict=True))]
                for row, crops in ((r, r[3] if len(r) > 3 else None) for r in rows)]

    def raw_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The network's (loc, conf, landmarks) on a preprocessed (N, 3, H, W) float32 batch, as numpy."""
        return on_device(self.device, self._raw_outputs, batch)

    def _raw_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.engine == "onnx":
            loc, conf, lmk = self._session.run(self._outputs, {self._session.get_inputs()[0].name: batch})
            return loc, conf, lmk
        import torch

        with torch.inference_mode():
            out = self._module(torch.from_numpy(batch).to(self.device))
        loc, conf, lmk = (t.float().cpu().numpy() for t in out)
        return loc, conf, lmk

    def _detect_onnx(self, frames: list[np.ndarray], in_h: int, in_w: int) -> list[tuple[np.ndarray, ...]]:
        # on the CPU the network runs ONNX_CPU_CHUNK frames at a time: a larger batch is no faster there, and
        # onnxruntime's arena keeps the largest batch's activations (+670 MiB at 32 frames of 640 x 360)
        step = len(frames) if is_cuda(self.device) else ONNX_CPU_CHUNK
        return [row for start in range(0, len(frames), step)  # detect() chose its thread
                for row in self._detect_onnx_batch(frames[start:start + step], in_h, in_w)]

    def _detect_onnx_batch(self, frames: list[np.ndarray], in_h: int, in_w: int) -> list[tuple[np.ndarray, ...]]:
        loc, conf, lmk = self._raw_outputs(preprocess_numpy(frames, in_h, in_w))
        priors = self._priors_numpy(in_h, in_w)
        rows = []
        for b in range(loc.shape[0]):
            scores = conf[b, :, 1]
            sel = np.flatnonzero(scores >= self.min_score)
            sel = sel[np.argsort(-scores[sel], kind="stable")[:self.pre_nms_topk]]
            boxes, lms = decode_numpy(loc[b, sel], lmk[b, sel], priors[sel])
            boxes = _clip(boxes, in_h, in_w)
            keep = nms(boxes, scores[sel], self.nms_iou)[:self.post_nms_topk]
            rows.append((boxes[keep], scores[sel][keep], lms[keep]))
        return rows

    def _detect_torch(self, frames: list[np.ndarray], in_h: int, in_w: int,
                      to_frame: np.ndarray | None = None) -> list[tuple[np.ndarray, ...]]:
        import torch

        n = len(frames)
        with torch.inference_mode():
            pixels = upload(frames, self.device)
            x = preprocess_torch(pixels, in_h, in_w, self.device)
            if self.bucket_batches:
                self._widest = max(self._widest, n)
                x = pad_rows(x, bucket_rows(n, self._widest))
            loc, conf, lmk = (t[:n] for t in self._module(x))
            scores = conf[..., 1].masked_fill(conf[..., 1] < self.min_score, float("-inf"))
            sorted_scores, order = torch.sort(scores, dim=1, descending=True, stable=True)
            valid = sorted_scores > float("-inf")
            k = min(self.pre_nms_topk, max(1, int(valid.sum(1).max())))
            order, sorted_scores, valid = order[:, :k], sorted_scores[:, :k], valid[:, :k]
            pick = order[..., None]
            boxes, lms = decode_torch(loc.gather(1, pick.expand(-1, -1, 4)), lmk.gather(1, pick.expand(-1, -1, 10)),
                                      self._priors_torch(in_h, in_w)[order])
            boxes = boxes.clamp(min=torch.zeros_like(boxes[0, 0]),
                                max=torch.tensor([in_w, in_h, in_w, in_h], dtype=boxes.dtype, device=boxes.device))
            keep = self._nms_chunks(boxes, valid)
            keep &= keep.cumsum(1) <= self.post_nms_topk
            host = [t.cpu().numpy() for t in (boxes, sorted_scores, lms, keep)]
            boxes_h, scores_h, lms_h, keep_h = host
            rows = [(boxes_h[b][keep_h[b]], scores_h[b][keep_h[b]], lms_h[b][keep_h[b]]) for b in range(len(frames))]
            if self.crops is None or to_frame is None:
                return rows
            return self._with_crops(rows, pixels, to_frame)

    def _with_crops(self, rows: list[tuple[np.ndarray, ...]], pixels: Any,
                    to_frame: np.ndarray) -> list[tuple[np.ndarray, ...]]:
        """Each row with its detections' crops, cut on the device from the uploaded frames (``pixels``)."""
        from affectflow.faces.device_crops import crop_squares

        assert self.crops is not None
        size, margin = self.crops
        index = np.concatenate([np.full(len(r[0]), b) for b, r in enumerate(rows)]).astype(np.int64)
        boxes = np.concatenate([(r[0].reshape(-1, 2, 2) * to_frame).reshape(-1, 4) for r in rows])
        # the boxes a row can hold (rows.usable: finite, some area); a box clamped flat at an edge gets none
        fine = np.all(np.isfinite(boxes), axis=1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        cut = crop_squares(pixels, index[fine], boxes[fine], size, margin).cpu().numpy()
        crops: list[np.ndarray | None] = [None] * len(boxes)
        for k, at in enumerate(np.flatnonzero(fine)):
            crops[at] = cut[k]
        starts = np.cumsum([0] + [len(r[0]) for r in rows])
        return [(*r, crops[starts[b]:starts[b + 1]]) for b, r in enumerate(rows)]

    def _nms_chunks(self, boxes: Any, valid: Any) -> Any:
        """:func:`batched_nms` over chunks of images, each chunk's IoU matrices within ``NMS_CHUNK_ELEMENTS``."""
        import torch

        b, k = valid.shape
        step = max(1, NMS_CHUNK_ELEMENTS // max(1, k * k))
        return torch.cat([batched_nms(boxes[i:i + step], valid[i:i + step], self.nms_iou) for i in range(0, b, step)])

    def _priors_numpy(self, in_h: int, in_w: int) -> np.ndarray:
        key = (in_h, in_w)
        if key not in self._priors:
            self._priors[key] = rm.prior_boxes(in_h, in_w).astype(np.float32)
        return self._priors[key]

    def _priors_torch(self, in_h: int, in_w: int) -> Any:
        key = (in_h, in_w)
        if key not in self._priors:
            self._priors[key] = rm.prior_boxes_torch(in_h, in_w, self.device)
        return self._priors[key]

    def close(self) -> None:
        pass


def _clip(boxes: np.ndarray, in_h: int, in_w: int) -> np.ndarray:
    """Boxes inside the input picture [0, in_w] x [0, in_h] (continuous pixel coordinates)."""
    out = boxes.copy()
    out[:, 0::2] = out[:, 0::2].clip(0, in_w)
    out[:, 1::2] = out[:, 1::2].clip(0, in_h)
    return out


def _resolve(device: str) -> str:
    from affectflow.core.device import resolve_device

    try:
        return resolve_device(device)
    except DeviceError as e:
        raise FaceStageError(f"detector {NAME!r}: {e}") from e
