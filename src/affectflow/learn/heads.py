"""Trainable heads on top of frozen features (paper section 3): one-hidden-layer MLPs, trained and saved.

EXPR: 8-way softmax frame classifier (cross-entropy); AH and AH-video: one logit (BCE); EMI: six sigmoid
outputs per video, trained with the *weighted Pearson loss* -- our reading of the paper's "weighted Pearson
correlations", taken from the authors' public ABAW-6 EMI notebook. Training is bit-reproducible on CPU
(seeded, forked RNG state, deterministic kernels, no DataLoader) and keeps the best validation epoch, as
the authors' ``SaveBestModel`` callback does.

Output contract: a :class:`TrainedHead` whose ``predict_proba`` gives (N, 8) EXPR, (N,) P(A/H) or (N, 6)
EMI posteriors; :func:`save_head` writes the weights (tensors only) and a JSON sidecar with their sha256.

Options and the full behaviour: docs/learning.md, section "Heads and training".
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from affectflow.core.device import resolve_device
from affectflow.core.files import atomic_write, sha256_file
from affectflow.core.vocabulary import BINARY_TASKS
from affectflow.evaluate.metrics import IGNORE_LABEL, N_EXPR, ah_macro_f1, emi_scores, expr_macro_f1
from affectflow.learn.settings import TrainConfig

log = logging.getLogger("affectflow.learn")

HeadTask = Literal["expr", "ah", "emi", "ah_video"]
HEAD_TASKS: tuple[str, ...] = ("expr", "ah", "emi", "ah_video")
FORMAT_VERSION = 1


# ------------------------------------------------------------------- model


class MLPHead(nn.Module):
    """``in_dim -> hidden (ReLU, dropout) -> out_dim`` logits; ``hidden=0`` gives a linear head.

    The activation of the output (softmax / sigmoid) belongs to the task and is
    applied by the loss and by :meth:`TrainedHead.predict_proba`, so the module
    itself always returns logits (numerically stable losses).
    """

    def __init__(self, in_dim: int, hidden: int = 128, out_dim: int = N_EXPR, dropout: float = 0.0) -> None:
        super().__init__()
        if in_dim < 1 or out_dim < 1 or hidden < 0:
            raise ValueError(f"bad head dims in={in_dim} hidden={hidden} out={out_dim}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_dim, self.hidden, self.out_dim, self.dropout = in_dim, hidden, out_dim, dropout
        if hidden:
            self.net = nn.Sequential(
                nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)
            )
        else:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# ------------------------------------------------------------------ config


def torch_device(device: str = "auto") -> torch.device:
    """The torch device of a ``TrainConfig.device`` name (resolved by :func:`affectflow.core.device.resolve_device`)."""
    return torch.device(resolve_device(device))


def training_device(config: TrainConfig) -> torch.device:
    """Where a head trains: ``auto`` is the CPU, ``cuda`` a GPU.

    Only CPU training is bit-reproducible, and the learn rule asks for no GPU (a cluster job sees none), so an
    ``auto`` that took a workstation's GPU made a head depend on the machine under one rerun key.
    """
    return torch_device("cpu" if config.device == "auto" else config.device)


@contextlib.contextmanager
def deterministic(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch inside a forked RNG state and force deterministic kernels; restore both afterwards."""
    was = torch.are_deterministic_algorithms_enabled()
    was_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        # On CUDA some kernels have no deterministic variant (and cuBLAS needs
        # CUBLAS_WORKSPACE_CONFIG); warn instead of failing there.
        torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was, warn_only=was_warn)


# ----------------------------------------------------------------- weights


def class_weights_inverse_frequency(y: np.ndarray, n_classes: int = N_EXPR) -> np.ndarray:
    """Weights ``n / (K_present * count_c)`` (sklearn's 'balanced'); absent classes get 0.

    Inverse to class frequency as in the authors' EXPR training; the
    normalisation keeps the average per-frame weight at 1 so the learning rate
    means the same with and without weighting.
    """
    yy = np.asarray(y, dtype=np.int64)
    yy = yy[yy != IGNORE_LABEL]
    counts = np.bincount(yy, minlength=n_classes).astype(np.float64)[:n_classes]
    w = np.zeros(n_classes)
    present = counts > 0
    w[present] = yy.size / (present.sum() * counts[present])
    return w.astype(np.float32)


def ah_pos_weight(y: np.ndarray) -> float:
    """``n_negative / n_positive`` for BCE (1 when there is no positive)."""
    yy = np.asarray(y).ravel()
    pos = float(np.sum(yy == 1))
    neg = float(np.sum(yy == 0))
    return neg / pos if pos > 0 else 1.0


def emi_emotion_weights(y: np.ndarray, how: Literal["dominant", "mass"] = "dominant") -> np.ndarray:
    """Per-emotion weights inverse to 'class counts', normalised to sum 1 (docs/learning.md, "Heads and training").

    ``dominant``: count = number of videos where the emotion has the maximal
    intensity (ties count for each tied emotion), floored at 1.
    ``mass``: count = summed intensity of the emotion over videos.
    """
    yy = np.asarray(y, dtype=np.float64)
    if yy.ndim != 2 or yy.shape[0] == 0:
        raise ValueError(f"expected a non-empty (n_videos, n_emotions) matrix, got {yy.shape}")
    if how == "dominant":
        counts = (yy == yy.max(axis=1, keepdims=True)).sum(axis=0).astype(np.float64)
        counts = np.maximum(counts, 1.0)
    elif how == "mass":
        counts = np.maximum(yy.sum(axis=0), 1e-6)
    else:
        raise ValueError(f"how must be 'dominant' or 'mass', got {how!r}")
    w = 1.0 / counts
    return (w / w.sum()).astype(np.float32)


def weighted_pearson_loss(
    pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """``1 - sum_i w_i * r_i`` with r_i Pearson's r of column i over the batch (population moments)."""
    pm = pred - pred.mean(dim=0, keepdim=True)
    tm = target - target.mean(dim=0, keepdim=True)
    cov = (pm * tm).mean(dim=0)
    denom = pm.pow(2).mean(dim=0).sqrt() * tm.pow(2).mean(dim=0).sqrt() + eps
    r = cov / denom
    return 1.0 - (weights * r).sum()


def early_fusion(*matrices: np.ndarray) -> np.ndarray:
    """Early fusion = concatenate per-frame (or per-video) modality matrices column-wise.

    All matrices must have one row per sample in the same order (use
    :func:`affectflow.learn.align.align_video` for frames).
    """
    if not matrices:
        raise ValueError("nothing to fuse")
    arrs = [np.asarray(m, dtype=np.float32) for m in matrices]
    rows = {a.shape[0] for a in arrs}
    if any(a.ndim != 2 for a in arrs) or len(rows) != 1:
        raise ValueError(f"early fusion needs 2-D matrices with equal row counts, got {[a.shape for a in arrs]}")
    return np.ascontiguousarray(np.concatenate(arrs, axis=1))


# ------------------------------------------------------------- trained head


@dataclass
class TrainedHead:
    """A trained head with everything needed to use and reproduce it."""

    task: HeadTask
    model: MLPHead
    config: TrainConfig
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_metric: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def in_dim(self) -> int:
        return self.model.in_dim

    @property
    def out_dim(self) -> int:
        return self.model.out_dim

    def predict_proba(self, x: np.ndarray, batch_size: int = 65536) -> np.ndarray:
        """Posteriors: (N, 8) softmax for EXPR, (N,) P(AH) for AH, (N, 6) sigmoid for EMI."""
        return _predict(self.model, self.task, x, batch_size)

    def save(self, path: str | os.PathLike[str]) -> tuple[Path, Path]:
        return save_head(self, path)


def _activation(task: str, logits: torch.Tensor) -> torch.Tensor:
    if task == "expr":
        return torch.softmax(logits, dim=1)
    if task in BINARY_TASKS:
        return torch.sigmoid(logits[:, 0])
    return torch.sigmoid(logits)


def _as_float_tensor(x: np.ndarray, in_dim: int | None = None) -> torch.Tensor:
    arr = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if arr.ndim != 2:
        raise ValueError(f"expected a (N, D) feature matrix, got shape {arr.shape}")
    if in_dim is not None and arr.shape[1] != in_dim:
        raise ValueError(f"feature dim {arr.shape[1]} != head input dim {in_dim}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("features contain NaN or inf; align/impute them first")
    return torch.from_numpy(arr)


@torch.no_grad()
def _predict(model: MLPHead, task: str, x: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    xt = _as_float_tensor(x, model.in_dim)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outs = [_activation(task, model(xt[i : i + batch_size].to(device))).cpu() for i in range(0, len(xt), batch_size)]
    model.train(was_training)
    if not outs:
        shape = (0,) if task in BINARY_TASKS else (0, model.out_dim)
        return np.zeros(shape, dtype=np.float32)
    return torch.cat(outs).numpy()


def _batches(n: int, batch_size: int, gen: torch.Generator, min_size: int = 1) -> list[torch.Tensor]:
    perm = torch.randperm(n, generator=gen)
    chunks = list(torch.split(perm, batch_size))
    if len(chunks) > 1 and len(chunks[-1]) < min_size:
        chunks[-2] = torch.cat([chunks[-2], chunks[-1]])
        chunks.pop()
    return chunks


def _fit(
    task: HeadTask,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    out_dim: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    val_metric: Callable[[np.ndarray, np.ndarray], float],
    metric_name: str,
    config: TrainConfig,
    y_dtype: torch.dtype,
    min_batch: int = 1,
    extra: dict[str, Any] | None = None,
) -> TrainedHead:
    device = training_device(config)
    xt, yt, has_val = _training_tensors(x_train, y_train, x_val, y_val, y_dtype, min_batch)
    with deterministic(config.seed, device):
        model = MLPHead(xt.shape[1], config.hidden, out_dim, config.dropout).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        gen = torch.Generator().manual_seed(config.seed)
        history: list[dict[str, float]] = []
        best = _BestEpoch(copy.deepcopy(model.state_dict()), None, config.epochs)
        for epoch in range(1, config.epochs + 1):
            loss = _train_epoch(model, opt, loss_fn, xt, yt, gen, config.batch_size, min_batch, device)
            row = {"epoch": float(epoch), "loss": loss}
            if has_val:
                assert x_val is not None and y_val is not None
                metric = float(val_metric(np.asarray(y_val), _predict(model, task, x_val)))
                row[f"val_{metric_name}"] = metric
                log.info("%s epoch %d: loss %.5f, val %s %.5f", task, epoch, row["loss"], metric_name, metric)
                best.update(model, metric, epoch)
            else:
                log.info("%s epoch %d: loss %.5f", task, epoch, row["loss"])
            history.append(row)
            if not math.isfinite(row["loss"]):
                raise FloatingPointError(f"{task} training diverged at epoch {epoch} (loss {row['loss']})")
            if has_val and config.patience and best.stale >= config.patience:
                log.info("%s: early stop after epoch %d (best epoch %d)", task, epoch, best.epoch)
                break
        if has_val:
            model.load_state_dict(best.state)
        model.eval()
    return TrainedHead(task, model, config, history, best.epoch, best.metric, dict(extra or {}))


def _training_tensors(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray | None, y_val: np.ndarray | None,
                      y_dtype: torch.dtype, min_batch: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Training rows and labels as tensors (checked against each other and the validation split), and
    whether there is a validation split to select on."""
    xt = _as_float_tensor(x_train)
    yt = torch.as_tensor(np.asarray(y_train), dtype=y_dtype)
    if len(xt) != len(yt):
        raise ValueError(f"{len(xt)} training rows but {len(yt)} labels")
    if len(xt) < min_batch:
        raise ValueError(f"need at least {min_batch} training samples, got {len(xt)}")
    has_val = x_val is not None and y_val is not None and len(y_val) > 0
    if has_val and len(x_val) != len(y_val):  # type: ignore[arg-type]
        raise ValueError(f"{len(x_val)} validation rows but {len(y_val)} labels")  # type: ignore[arg-type]
    return xt, yt, has_val


def _train_epoch(model: MLPHead, opt: torch.optim.Optimizer,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], xt: torch.Tensor, yt: torch.Tensor,
                 gen: torch.Generator, batch_size: int, min_batch: int, device: torch.device) -> float:
    """One pass over the training rows in ``gen``'s shuffled order; the mean loss per row."""
    model.train()
    total, seen = 0.0, 0
    for idx in _batches(len(xt), batch_size, gen, min_batch):
        xb, yb = xt[idx].to(device), yt[idx].to(device)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(idx)
        seen += len(idx)
    return total / max(seen, 1)


@dataclass
class _BestEpoch:
    """Early stopping's memory: the best validation metric so far, its epoch and weights, epochs since."""

    state: dict[str, Any]
    metric: float | None
    epoch: int
    stale: int = 0

    def update(self, model: MLPHead, metric: float, epoch: int) -> None:
        if self.metric is None or metric > self.metric:
            self.metric, self.epoch, self.stale = metric, epoch, 0
            self.state = copy.deepcopy(model.state_dict())
        else:
            self.stale += 1


def _rows_match(x: np.ndarray, y: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.shape[0] != len(y):
        raise ValueError(f"{what}: features of shape {arr.shape} do not match {len(y)} labels")
    return arr


def _expr_labels(y: np.ndarray, name: str) -> np.ndarray:
    yy = np.asarray(y, dtype=np.int64).ravel()
    if yy.size and (yy.min() < IGNORE_LABEL or yy.max() >= N_EXPR):
        raise ValueError(f"{name}: EXPR labels must be in -1..{N_EXPR - 1}")
    return yy


def train_expr_head(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    config: TrainConfig | None = None,
    *,
    class_weighted: bool = True,
) -> TrainedHead:
    """Frame-level 8-class EXPR head (softmax + cross-entropy); frames labelled -1 are dropped.

    Early stopping / model selection on validation macro F1 (the challenge metric).
    """
    cfg = config or TrainConfig()
    y_tr = _expr_labels(y_train, "y_train")
    x_tr = _rows_match(x_train, y_tr, "training")
    keep = y_tr != IGNORE_LABEL
    x_tr, y_tr = x_tr[keep], y_tr[keep]
    xv = yv = None
    if x_val is not None and y_val is not None:
        yv = _expr_labels(y_val, "y_val")
        kv = yv != IGNORE_LABEL
        xv, yv = _rows_match(x_val, yv, "validation")[kv], yv[kv]
    weights = class_weights_inverse_frequency(y_tr) if class_weighted else np.ones(N_EXPR, dtype=np.float32)
    device = training_device(cfg)
    criterion = nn.CrossEntropyLoss(weight=torch.as_tensor(weights, device=device))
    return _fit(
        task="expr",
        x_train=x_tr,
        y_train=y_tr,
        x_val=xv,
        y_val=yv,
        out_dim=N_EXPR,
        loss_fn=criterion,
        val_metric=expr_macro_f1,
        metric_name="f1",
        config=cfg,
        y_dtype=torch.long,
        extra={"class_weights": weights.tolist()},
    )


def train_ah_head(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    config: TrainConfig | None = None,
    *,
    pos_weighted: bool = True,
    threshold: float = 0.5,
    task: Literal["ah", "ah_video"] = "ah",
) -> TrainedHead:
    """Binary A/H head (one logit, BCE): rows are frames (``ah``) or videos (``ah_video``), selected on macro
    F1 over both classes (the challenges' metric at either level) at ``threshold``; rows labelled -1 (frames a
    label file does not cover) are dropped."""
    cfg = config or TrainConfig()
    y_tr = np.asarray(y_train).ravel()
    if y_tr.size and not np.isin(y_tr, (IGNORE_LABEL, 0, 1)).all():
        raise ValueError("AH labels must be 0 or 1 (or -1: no label)")
    keep = y_tr != IGNORE_LABEL  # frames past the end of a label file (data.adapters.frame_labels)
    x_train, y_tr = _rows_match(x_train, y_tr, "training")[keep], y_tr[keep]
    if y_val is not None and x_val is not None:
        kv = np.asarray(y_val).ravel() != IGNORE_LABEL
        x_val, y_val = _rows_match(x_val, np.asarray(y_val).ravel(), "validation")[kv], np.asarray(y_val).ravel()[kv]
    pw = ah_pos_weight(y_tr) if pos_weighted else 1.0
    device = training_device(cfg)
    bce = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([pw], device=device))

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return bce(logits[:, 0], y)

    def metric(y: np.ndarray, p: np.ndarray) -> float:
        return ah_macro_f1(y.astype(np.int64), (p >= threshold).astype(np.int64))

    yv = None if y_val is None else np.asarray(y_val, dtype=np.float32).ravel()
    return _fit(
        task=task,
        x_train=np.asarray(x_train),
        y_train=y_tr.astype(np.float32),
        x_val=x_val,
        y_val=yv,
        out_dim=1,
        loss_fn=loss,
        val_metric=metric,
        metric_name="f1",
        config=cfg,
        y_dtype=torch.float32,
        extra={"pos_weight": pw, "threshold": threshold},
    )


def train_emi_head(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    config: TrainConfig | None = None,
    *,
    emotion_weights: Sequence[float] | np.ndarray | Literal["dominant", "mass", "uniform"] = "dominant",
) -> TrainedHead:
    """Video-level EMI regressor: six sigmoid outputs, weighted Pearson loss, selection on mean r.

    ``emotion_weights``: explicit weights (normalised to sum 1) or how to derive
    them from the training targets (see :func:`emi_emotion_weights`).
    """
    cfg = config or TrainConfig()
    y_tr = np.asarray(y_train, dtype=np.float32)
    if y_tr.ndim != 2:
        raise ValueError(f"EMI targets must be (n_videos, n_emotions), got {y_tr.shape}")
    if isinstance(emotion_weights, str):
        if emotion_weights == "uniform":
            w = np.full(y_tr.shape[1], 1.0 / y_tr.shape[1], dtype=np.float32)
        else:
            w = emi_emotion_weights(y_tr, emotion_weights)  # type: ignore[arg-type]
    else:
        w = np.asarray(emotion_weights, dtype=np.float32).ravel()
        if w.shape[0] != y_tr.shape[1] or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"need {y_tr.shape[1]} non-negative emotion weights, not all zero, got {w}")
        w = w / w.sum()
    device = training_device(cfg)
    wt = torch.as_tensor(w, device=device)

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return weighted_pearson_loss(torch.sigmoid(logits), y, wt)

    def metric(y: np.ndarray, p: np.ndarray) -> float:
        return emi_scores(y, p)["pearson_r"]

    return _fit(
        task="emi",
        x_train=np.asarray(x_train),
        y_train=y_tr,
        x_val=x_val,
        y_val=y_val,
        out_dim=y_tr.shape[1],
        loss_fn=loss,
        val_metric=metric,
        metric_name="pearson_r",
        config=cfg,
        y_dtype=torch.float32,
        min_batch=2,
        extra={"emotion_weights": w.tolist()},
    )


# ------------------------------------------------------------- persistence


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """``head.pt`` -> ``head.pt.json``."""
    p = Path(path)
    return p.with_name(p.name + ".json")


def save_head(head: TrainedHead, path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``state_dict`` with ``torch.save`` and a JSON sidecar (dims, config, history, sha256).

    Only tensors go into the .pt file so it can be read back with
    ``weights_only=True``; everything else is plain JSON. Both writes are atomic.
    """
    pt = Path(path)
    state = {k: v.detach().cpu() for k, v in head.model.state_dict().items()}
    # Serialise through a file object: given a path, torch.save names the zip's
    # root folder after the (random, temporary) file name, so identical weights
    # would give different bytes and a different sha256 on every run.
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(pt, lambda tmp: tmp.write_bytes(buf.getvalue()))
    meta = {
        "format_version": FORMAT_VERSION,
        "task": head.task,
        "in_dim": head.model.in_dim,
        "hidden": head.model.hidden,
        "out_dim": head.model.out_dim,
        "dropout": head.model.dropout,
        "config": asdict(head.config),
        "history": head.history,
        "best_epoch": head.best_epoch,
        "best_metric": head.best_metric,
        "extra": head.extra,
        "weights_sha256": sha256_file(pt),
        "torch_version": torch.__version__,
    }
    side = sidecar_path(pt)

    def write_json(tmp: str) -> None:
        Path(tmp).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    atomic_write(side, write_json)
    return pt, side


def load_head(path: str | os.PathLike[str], device: str = "cpu") -> TrainedHead:
    """Load a head saved by :func:`save_head` (``torch.load(weights_only=True)`` only).

    The sidecar's sha256 must match the weights file, so a .pt and .json from
    different runs are never combined.
    """
    pt = Path(path)
    meta = json.loads(sidecar_path(pt).read_text(encoding="utf-8"))
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{pt}: unsupported head format {meta.get('format_version')!r}")
    if meta.get("task") not in HEAD_TASKS:
        raise ValueError(f"{pt}: unknown task {meta.get('task')!r}")
    digest = sha256_file(pt)
    if digest != meta.get("weights_sha256"):
        raise ValueError(f"{pt}: weights do not match the sidecar (sha256 {digest} != {meta.get('weights_sha256')})")
    dev = torch_device(device)
    model = MLPHead(int(meta["in_dim"]), int(meta["hidden"]), int(meta["out_dim"]), float(meta["dropout"]))
    state = torch.load(pt, map_location=dev, weights_only=True)
    model.load_state_dict(state)
    model.to(dev).eval()
    return TrainedHead(
        task=meta["task"],
        model=model,
        config=TrainConfig.from_dict(meta["config"]),
        history=meta.get("history", []),
        best_epoch=int(meta.get("best_epoch", 0)),
        best_metric=meta.get("best_metric"),
        extra=meta.get("extra", {}),
    )
