"""The one device choice: ``auto`` means CUDA when torch sees a GPU, else the CPU."""

from __future__ import annotations

from affectflow.core.errors import AffectflowError

#: the device settings of the config (``faces.device``, ``features.device``): resolved by :func:`resolve_device`
DEVICES = ("auto", "cpu", "cuda")


class DeviceError(AffectflowError, RuntimeError):
    """A device that does not exist here (``cuda`` without a GPU) or is not a device name."""


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` or ``cpu``; ``cpu``, ``cuda`` and ``cuda:<n>`` are checked and returned.

    Asking for CUDA where torch sees none is an error, never a silent CPU run.
    torch is imported only here, when asked.
    """
    import torch

    device = str(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"device={device!r} but torch sees no CUDA device; use device='auto' or 'cpu'")
    if device != "cpu" and not (device == "cuda" or device.startswith("cuda:")):
        raise DeviceError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda'")
    return device
