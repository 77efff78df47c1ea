"""Where and how a torch face model runs: device, precision and memory layout, chosen once per model.

Half precision and the channels-last layout are what make convolutional
networks fast on GPUs with tensor cores (cuDNN picks NHWC fp16 kernels); they
change results by float16 rounding only. They are opt-in (``precision``)
because the paper's numbers were computed in float32. On a CPU, float16 runs
(slowly) and is for checking results, not for speed; channels-last is applied
on CUDA unless asked for explicitly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from affectflow.core.device import resolve_device

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {PRECISIONS}")
    return precision




@dataclass(frozen=True)
class TorchRuntime:
    """How inputs and the module are placed: ``prepare`` the module once, convert each batch with ``tensor``."""

    device: str
    precision: str = "fp32"
    channels_last: bool = False

    @property
    def dtype(self) -> Any:
        import torch

        return torch.float16 if self.precision == "fp16" else torch.float32

    def prepare(self, module: Any) -> Any:
        import torch

        module = module.to(self.device, dtype=self.dtype)  # TorchScript modules too
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        return module.eval()

    def tensor(self, x: np.ndarray) -> Any:
        """A preprocessed float32 (N,C,H,W) batch on the device, in the model's dtype and layout."""
        import torch

        t = torch.from_numpy(x).to(self.device, non_blocking=True).to(self.dtype)
        return t.contiguous(memory_format=torch.channels_last) if self.channels_last else t


def torch_runtime(device: str = "auto", precision: str = "fp32", channels_last: bool | None = None) -> TorchRuntime:
    """The runtime for ``device`` and ``precision``; ``channels_last`` None means: on CUDA only."""
    check_precision(precision)
    dev = resolve_device(device)
    if precision == "fp16" and dev == "cpu":
        log.warning("precision fp16 on the CPU: results as on a GPU up to rounding, but slower than fp32")
    return TorchRuntime(dev, precision, dev.startswith("cuda") if channels_last is None else bool(channels_last))
