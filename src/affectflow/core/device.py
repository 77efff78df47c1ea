"""The one device choice (``auto`` means CUDA when torch sees a GPU, else the CPU), and the one thread that runs
a process's network calls on each CUDA device (:func:`on_device`)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from affectflow.core.errors import AffectflowError

P = ParamSpec("P")
R = TypeVar("R")

#: the device settings of the config (``faces.device``, ``features.device``): resolved by :func:`resolve_device`
DEVICES = ("auto", "cpu", "cuda")


class DeviceError(AffectflowError, RuntimeError):
    """A device that does not exist here (``cuda`` without a GPU) or is not a device name."""


def hide_unallocated_gpus(gpus: int, env: MutableMapping[str, str] | None = None) -> bool:
    """In a Slurm job that asked for no GPU (``gpus`` 0), make none visible; True when it did.

    Why: where Slurm does not confine devices (no ``ConstrainDevices`` in cgroup.conf), every GPU of the node
    is visible to every job, and ``auto`` would put a CPU job (learn, say) on a card that another job was
    given, with results that differ from the CPU's. A job that got GPUs has ``CUDA_VISIBLE_DEVICES`` set by
    Slurm, and one outside Slurm (a workstation) is left to ``auto``.
    """
    env = os.environ if env is None else env
    if gpus or not env.get("SLURM_JOB_ID") or "CUDA_VISIBLE_DEVICES" in env:
        return False
    env["CUDA_VISIBLE_DEVICES"] = ""
    return True


def is_cuda(device: str) -> bool:
    """Whether ``device`` (a resolved device name, or a setting) names a CUDA device: ``cuda`` or ``cuda:<n>``."""
    return str(device).startswith("cuda")


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` or ``cpu``; ``cpu``, ``cuda`` and ``cuda:<n>`` are checked and returned.

    Asking for CUDA where torch sees none is an error, never a silent CPU run.
    torch is imported only here, when asked.
    """
    import torch

    device = str(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if is_cuda(device) and not torch.cuda.is_available():
        raise DeviceError(f"device={device!r} but torch sees no CUDA device; use device='auto' or 'cpu'")
    if device != "cpu" and not (device == "cuda" or device.startswith("cuda:")):
        raise DeviceError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda'")
    return device


def with_device(config: Mapping[str, Any], section: str) -> dict[str, Any]:
    """A model stage's config section with ``device`` from ``features.device`` unless the section sets it.

    Why: one ``features.device`` moves every feature model (audio, ASR, text) to a GPU or off it, while a
    section that names its own device keeps it.
    """
    cfg = dict(config.get(section) or {})
    device = (config.get("features") or {}).get("device")
    if device is not None:
        cfg.setdefault("device", device)
    return cfg


#: onnxruntime's name for its CUDA provider (what an onnxruntime session's first provider is when it runs on CUDA)
CUDA_PROVIDER = "CUDAExecutionProvider"

def ort_providers(device: str) -> list[str]:
    """onnxruntime's providers for ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:<n>``): ``auto`` is CUDA when
    this onnxruntime has it, else the CPU. The one place a session's providers are chosen, so asking for CUDA
    where onnxruntime cannot use it is the same :class:`DeviceError` everywhere, never a silent CPU run."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "auto":
        device = "cuda" if CUDA_PROVIDER in available else "cpu"
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if is_cuda(device):
        if CUDA_PROVIDER not in available:
            raise DeviceError(f"device={device!r} but this onnxruntime has no {CUDA_PROVIDER} "
                              f"(available: {', '.join(available)}); install onnxruntime-gpu or use device='cpu'")
        return [CUDA_PROVIDER, "CPUExecutionProvider"]
    raise DeviceError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda'")


def provider_device(provider: str) -> str:
    """The device an onnxruntime session runs on, from its first provider: ``cuda`` or ``cpu``."""
    return "cuda" if provider == CUDA_PROVIDER else "cpu"


#: the name (before ``-<device>``) of the thread :func:`on_device` runs a CUDA device's work on
DEVICE_THREAD = "device"


class DeviceThread:
    """One long-lived thread that runs every call made to it, one at a time, in the order they come.

    Why: PyTorch keeps cuDNN's execution plans per thread (its plan caches are
    ``thread_local``), and with ``cudnn.benchmark`` the kernels it timed for
    each layer too. A network first run on a new thread plans (and times) every
    convolution again: 2 s for EfficientNet-B0 in fp16 on an H100, 6.6 s with
    ``cudnn.benchmark``. The stages call their models from threads of their own
    (a worker per video in the faces stage; the face features stage once had a
    model thread per video, and each video paid that again). Calls made here
    all run on one thread, which plans once per process and input shape; it
    also serialises calls to one model from several threads.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._ident: int | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name, initializer=self._started)

    def _started(self) -> None:
        self._ident = threading.get_ident()

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args, **kwargs)`` run on this thread; its result or its exception, here.

        A call made from this thread itself (a model calling another) runs at
        once, where a queued one would wait for itself.
        """
        if threading.get_ident() == self._ident:
            return fn(*args, **kwargs)
        return self._pool.submit(fn, *args, **kwargs).result()


_device_threads: dict[str, DeviceThread] = {}
_device_threads_lock = threading.Lock()


def uses_device_thread(device: str) -> bool:
    """Whether work for ``device`` runs on its :class:`DeviceThread`: CUDA devices only (a CPU keeps no
    per-thread plans worth keeping, and calls run where they are made)."""
    return is_cuda(device)


def device_thread(device: str) -> DeviceThread:
    """The process's one :class:`DeviceThread` for ``device`` (started at the first call). Keyed by the name as
    given: ``cuda`` and ``cuda:0`` get a thread each (the config names ``cuda`` only)."""
    with _device_threads_lock:
        t = _device_threads.get(device)
        if t is None:
            t = _device_threads[device] = DeviceThread(f"{DEVICE_THREAD}-{device}")
        return t


def on_device(device: str, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(*args, **kwargs)`` for work on ``device`` (a resolved device, see :func:`resolve_device`): on the
    device's thread for CUDA, where the caller is otherwise. Wrap the whole call of a network (upload,
    forward, read-back), so that every kernel of it is planned on that thread."""
    if not uses_device_thread(device):
        return fn(*args, **kwargs)
    return device_thread(device).call(fn, *args, **kwargs)
