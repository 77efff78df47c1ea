"""Where and how a torch face model runs: device, precision, memory layout and batch shapes, chosen once per model.

Half precision and the channels-last layout are what make convolutional
networks fast on GPUs with tensor cores (cuDNN picks NHWC fp16 kernels); they
change results by float16 rounding only. They are opt-in (``precision``)
because the paper's numbers were computed in float32. On a CPU, float16 runs
(slowly) and is for checking results, not for speed; channels-last is applied
on CUDA unless asked for explicitly. :func:`torch_threads` sets a model's
intra-op thread count for the duration of a call.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from affectflow.core.device import is_cuda, resolve_device

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {PRECISIONS}")
    return precision


#: the fewest rows a bucketed batch has (:func:`bucket_rows`): below this a GPU takes as long for fewer
MIN_BUCKET = 8


def bucket_rows(n: int, cap: int) -> int:
    """The rows a batch of ``n`` is padded to: the next power of two (at least :data:`MIN_BUCKET`), at most
    ``cap`` (the full batch, whatever its size) and never fewer than ``n``.

    Why: cuDNN plans (and, with ``cudnn.benchmark``, times) its kernels for
    each input shape anew. The detector is given each video's frames a batch
    at a time, so every video ends in a batch of its own size; padded, a job
    sees at most ``log2(cap / 8) + 2`` shapes, and a video's last batch costs
    at most twice its rows. (Its network plans a shape in 0.08 s on an H100;
    the face models, at about 2 s a shape, pad to the full batch instead:
    :attr:`TorchRuntime.pad_batches`.)
    """
    if n >= cap:
        return n
    return min(cap, max(MIN_BUCKET, 1 << max(0, n - 1).bit_length()))


def pad_rows(x: Any, rows: int) -> Any:
    """``x`` (a batch on the device) with zero rows appended up to ``rows``, in ``x``'s memory layout."""
    import torch

    n = int(x.shape[0])
    if rows <= n:
        return x
    channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    out = torch.cat([x, x.new_zeros((rows - n, *x.shape[1:]))])
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


@dataclass(frozen=True)
class TorchRuntime:
    """How inputs and the module are placed: ``prepare`` the module once, convert each batch with ``tensor``.

    ``pad_batches`` (on CUDA): a batch is padded to the full batch size before
    the network sees it (:meth:`padded`), and its results cut back, so a job
    runs the network at one input shape. cuDNN plans its kernels for each new
    shape: about 2 s for EfficientNet-B0 in fp16 on an H100, against 20 ms for
    a full batch of 256 crops, the most padding costs. The face features stage
    fills its batches across videos, so only a job's last batch is padded.
    """

    device: str
    precision: str = "fp32"
    channels_last: bool = False
    pad_batches: bool = False

    @property
    def dtype(self) -> Any:
        import torch

        return torch.float16 if self.precision == "fp16" else torch.float32

    def prepare(self, module: Any) -> Any:
        import torch

        # cudnn.benchmark is left as it is (off unless the caller turned it on): timing every convolution's kernels
        # took 8.0 s per input shape for EfficientNet-B0 in fp16 on an H100 (run D), once per process and shape,
        # and bought 1.8%, which a face features job never earns back (docs/performance.md, "GPU")
        module = module.to(self.device, dtype=self.dtype)  # TorchScript modules too
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        return module.eval()

    def padded(self, x: Any, cap: int) -> Any:
        """The batch ``x`` as the network gets it: padded to ``cap`` rows (the full batch) when ``pad_batches``;
        the caller keeps the first ``len(x)`` rows of the results."""
        return pad_rows(x, cap) if self.pad_batches else x

    def tensor(self, x: np.ndarray) -> Any:
        """A preprocessed float32 (N,C,H,W) batch on the device, in the model's dtype and layout."""
        import torch

        t = torch.from_numpy(x).to(self.device, non_blocking=True).to(self.dtype)
        return t.contiguous(memory_format=torch.channels_last) if self.channels_last else t

    def images(self, crops: np.ndarray | Sequence[np.ndarray], size: int, mean: Sequence[float], std: Sequence[float],
               staging: HostStaging | None = None) -> Any:
        """uint8 RGB crops, (N,H,W,3) or (H,W,3) each of any size, as one normalised (N,3,size,size) batch made on
        the device.

        Only the uint8 pixels cross the bus (a quarter of the float32 bytes, from
        pinned memory on CUDA); resizing and normalising run where the model
        does, so the host does not cap a GPU at its preprocessing rate. The
        resize is bilinear with half-pixel centres and no antialiasing, rounded
        to uint8 levels: what ``cv2.resize`` (the onnxruntime engine's
        preprocessing, EmotiEffLib's ONNX recogniser) computes, up to its
        fixed-point rounding (at most one level per pixel). EmotiEffLib's torch
        recogniser resizes with PIL, which antialiases when it shrinks;
        docs/models.md gives the measured difference.
        """
        import torch

        if isinstance(crops, np.ndarray):
            groups: list[tuple[list[int], np.ndarray]] = [([], crops)]
        else:
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for i, c in enumerate(crops):
                by_shape.setdefault(c.shape, []).append(i)
            groups = [(rows, np.stack([crops[i] for i in rows])) for rows in by_shape.values()]
        if len(groups) == 1:
            out = _resized(self._upload(groups[0][1], staging), size)
        else:  # several sizes (library use: a faces shard holds one): one staging buffer cannot serve them all
            out = torch.empty((len(crops), 3, size, size), dtype=torch.float32, device=self.device)
            for rows, group in groups:
                out[torch.as_tensor(rows, device=self.device)] = _resized(self._upload(group, None), size)
        m = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1) * 255
        s = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1) * 255
        t = out.sub_(m).div_(s).to(self.dtype)
        return t.contiguous(memory_format=torch.channels_last) if self.channels_last else t

    def _upload(self, batch: np.ndarray, staging: HostStaging | None) -> Any:
        import torch

        if staging is not None:
            return staging.upload(batch, self.device)
        return torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)


def _resized(x: Any, size: int) -> Any:
    """(N,H,W,3) uint8 on the device -> (N,3,size,size) float32 pixel levels, bilinear as cv2 (half-up rounding)."""
    import torch.nn.functional as F

    x = x.permute(0, 3, 1, 2).float()
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=False).add_(0.5).floor_().clamp_(0, 255)


class HostStaging:
    """One reusable page-locked host buffer for uint8 batches bound for a CUDA device.

    Copies from pinned memory run asynchronously and at full bus speed;
    allocating pinned memory is slow, so the buffer is kept and grown. The
    caller reads results back (a synchronisation) before the next upload
    overwrites it.
    """

    def __init__(self) -> None:
        self._buf: Any = None

    def upload(self, batch: np.ndarray, device: str) -> Any:
        """``batch`` (uint8) as a tensor on ``device``."""
        import torch

        src = torch.from_numpy(np.ascontiguousarray(batch))
        if not is_cuda(device):
            return src
        n = src.numel()
        if self._buf is None or self._buf.numel() < n:
            self._buf = torch.empty(n, dtype=torch.uint8).pin_memory()
        staged = self._buf[:n].view(src.shape)
        staged.copy_(src)
        return staged.to(device, non_blocking=True)


def torch_runtime(device: str = "auto", precision: str = "fp32", channels_last: bool | None = None) -> TorchRuntime:
    """The runtime for ``device`` and ``precision``; ``channels_last`` None means: on CUDA only."""
    check_precision(precision)
    dev = resolve_device(device)
    if precision == "fp16" and dev == "cpu":
        log.warning("precision fp16 on the CPU: results as on a GPU up to rounding, but slower than fp32")
    cuda = is_cuda(dev)
    return TorchRuntime(dev, precision, cuda if channels_last is None else bool(channels_last), pad_batches=cuda)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` for the block (process-wide; restored afterwards).

    Why per call: a model's ``threads`` setting (config) must not leak into the
    other models and stages that share the process.
    """
    if not n:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
