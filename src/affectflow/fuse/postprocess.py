"""Late fusion and post-processing of frame posteriors (paper sections 3, 3.1, 4.1).

Per video, in this order (:func:`postprocess_video`): blend the feature sets' posteriors, EXPR confidence
filter with the pre-trained face model, temporal smoothing (never across videos), AH video filter; then
:func:`decide`. Filtering comes before smoothing because the paper replaces a confident frame's prediction
frame by frame ("filtering + smoothing"); smoothing uses a shrinking window at the edges, like the authors'
ABAW code.

Output contract: post-processed posteriors in the input's shape ((T, 8) EXPR, (T,) P(A/H), (6,) EMI,
(1,) AH-video; zeros for a video the filter rejects) and decisions: class per frame (EXPR), 0/1 per frame
or video (AH, AH-video), the six intensities (EMI).

Options and the full behaviour: docs/learning.md, section "Post-processing".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import correlate1d

from affectflow.core.vocabulary import BINARY_TASKS, TASKS, is_video_task
from affectflow.evaluate.metrics import N_EXPR
from affectflow.fuse.settings import SMOOTHINGS

Smoothing = Literal["box", "gaussian", "median"]
FilterMode = Literal["onehot", "mapped"]

# Aff-Wild2 order: Neutral, Anger, Disgust, Fear, Happiness, Sadness, Surprise, Other.
AFFECTNET8_CLASSES = ("Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise")
#: source class index -> Aff-Wild2 class index; Contempt -> Other.
AFFECTNET8_TO_AFFWILD2: tuple[int, ...] = (1, 7, 2, 3, 4, 0, 5, 6)
AFFECTNET7_CLASSES = ("Anger", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise")
AFFECTNET7_TO_AFFWILD2: tuple[int, ...] = (1, 2, 3, 4, 0, 5, 6)
FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER2013_TO_AFFWILD2: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 0)


# --------------------------------------------------------------------- blend


def blend(p1: np.ndarray, p2: np.ndarray, w: float) -> np.ndarray:
    """``w * p1 + (1 - w) * p2``, w in [0, 1] (w = 1: only the first modality)."""
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"blend weight must be in [0, 1], got {w}")
    a, b = np.asarray(p1, dtype=np.float64), np.asarray(p2, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"cannot blend posteriors of shapes {a.shape} and {b.shape}")
    return (w * a + (1.0 - w) * b).astype(np.float32)


def normalise_weights(weights: Sequence[float], n: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64).ravel()
    if w.shape[0] != n:
        raise ValueError(f"{n} posteriors but {w.shape[0]} weights")
    if np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {list(w)}")
    return w / w.sum()


def blend_many(posteriors: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted mean of N posteriors; weights are normalised to sum 1 (None = equal)."""
    if not posteriors:
        raise ValueError("no posteriors to blend")
    arrs = [np.asarray(p, dtype=np.float64) for p in posteriors]
    if len({a.shape for a in arrs}) != 1:
        raise ValueError(f"cannot blend posteriors of shapes {[a.shape for a in arrs]}")
    w = normalise_weights(weights if weights is not None else [1.0] * len(arrs), len(arrs))
    return np.tensordot(w, np.stack(arrs), axes=1).astype(np.float32)


# -------------------------------------------------------------------- smooth


def _window(k: int) -> tuple[int, int]:
    if int(k) != k or k < 1:
        raise ValueError(f"kernel size k must be a positive integer, got {k}")
    k = int(k)
    return k // 2, (k - 1) // 2


def smooth(posteriors: np.ndarray, k: int, method: Smoothing = "box", sigma: float | None = None) -> np.ndarray:
    """Smooth a (T, C) or (T,) posterior sequence of ONE video along time (shrinking window at edges).

    ``gaussian`` weights are ``exp(-d^2 / (2 sigma^2))`` over the same k-frame
    window (``sigma`` defaults to k/4) and are renormalised over the frames
    that exist at the edges.
    """
    if method not in SMOOTHINGS:
        raise ValueError(f"smoothing must be one of {SMOOTHINGS}, got {method!r}")
    left, right = _window(k)
    x = np.asarray(posteriors, dtype=np.float64)
    one_d = x.ndim == 1
    if one_d:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"expected (T, C) or (T,) posteriors, got shape {np.shape(posteriors)}")
    t = x.shape[0]
    if k == 1 or t <= 1:
        out = x.copy()
    elif method == "box":
        c = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
        i = np.arange(t)
        lo, hi = np.maximum(i - left, 0), np.minimum(i + right, t - 1) + 1
        out = (c[hi] - c[lo]) / (hi - lo)[:, None]
    elif method == "gaussian":
        s = float(sigma) if sigma is not None else k / 4.0
        if s <= 0:
            raise ValueError(f"sigma must be positive, got {s}")
        offsets = np.arange(-left, right + 1, dtype=np.float64)
        g = np.exp(-(offsets**2) / (2 * s * s))
        num = correlate1d(x, g, axis=0, mode="constant", cval=0.0)
        den = correlate1d(np.ones(t), g, mode="constant", cval=0.0)
        out = num / den[:, None]
    else:  # median
        padded = np.pad(x, ((left, right), (0, 0)), constant_values=np.nan)
        win = sliding_window_view(padded, k, axis=0)  # (T, C, k)
        out = np.nanmedian(win, axis=2)
    out = out.astype(np.float32)
    return out[:, 0] if one_d else out


def smooth_videos(
    posteriors: Mapping[str, np.ndarray], k: int, method: Smoothing = "box", sigma: float | None = None
) -> dict[str, np.ndarray]:
    """:func:`smooth` applied to each video separately (windows never cross videos)."""
    return {v: smooth(p, k, method, sigma) for v, p in posteriors.items()}


# -------------------------------------------------------- confidence filter


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax (the pre-trained model stores logits)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


def frame_softmax(logits: np.ndarray, frame_index: np.ndarray, n_frames: int) -> np.ndarray:
    """A face model's softmax on every frame of a video, uniform where it saw no face: the confidence
    filter's input, the same in fusion and when a bundle is applied."""
    n_classes = logits.shape[1]
    full = np.full((n_frames, n_classes), 1.0 / n_classes, dtype=np.float32)
    if frame_index.size:
        full[frame_index] = softmax(logits)
    return full


def _check_mapping(mapping: Sequence[int], n_source: int, n_target: int) -> np.ndarray:
    m = np.asarray(mapping, dtype=np.int64).ravel()
    if m.shape[0] != n_source:
        raise ValueError(f"class mapping has {m.shape[0]} entries for {n_source} pre-trained classes")
    if m.min() < 0 or m.max() >= n_target:
        raise ValueError(f"class mapping targets must be in 0..{n_target - 1}")
    return m


def map_posteriors(proba: np.ndarray, mapping: Sequence[int], n_target: int = N_EXPR) -> np.ndarray:
    """Re-index a (T, S) posterior from the pre-trained model's classes to the target classes.

    Probabilities of source classes mapped to the same target are summed;
    target classes no source maps to get 0.
    """
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"expected (T, S) probabilities, got shape {p.shape}")
    m = _check_mapping(mapping, p.shape[1], n_target)
    out = np.zeros((p.shape[0], n_target))
    for s, tgt in enumerate(m):
        out[:, tgt] += p[:, s]
    return out.astype(np.float32)


@dataclass(frozen=True)
class FilterResult:
    posteriors: np.ndarray  # (T, 8) after replacement
    replaced: np.ndarray  # (T,) bool: frames where the pre-trained model won


def confidence_filter(
    posteriors: np.ndarray,
    pretrained_proba: np.ndarray,
    t: float | None,
    mapping: Sequence[int] = AFFECTNET8_TO_AFFWILD2,
    mode: FilterMode = "onehot",
) -> FilterResult:
    """Replace the head's posterior by the pre-trained model's where its max probability > t.

    ``pretrained_proba`` must be softmax probabilities (use :func:`softmax` on
    logits); rows not summing to 1 are rejected because a threshold on logits
    means something else. ``t=None`` (or t >= 1) disables the filter.
    ``mode="onehot"`` puts a one-hot of the mapped class (the paper "returns this
    expression"); ``"mapped"`` puts the whole mapped posterior.
    """
    p = np.asarray(posteriors, dtype=np.float32)
    q = np.asarray(pretrained_proba, dtype=np.float64)
    if p.ndim != 2 or q.ndim != 2 or p.shape[0] != q.shape[0]:
        raise ValueError(f"posteriors {p.shape} and pre-trained probabilities {q.shape} do not match")
    if q.size and not np.allclose(q.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("pre-trained scores do not sum to 1 per frame; pass softmax probabilities, not logits")
    if mode not in ("onehot", "mapped"):
        raise ValueError(f"filter mode must be 'onehot' or 'mapped', got {mode!r}")
    m = _check_mapping(mapping, q.shape[1], p.shape[1])
    if t is None or q.shape[0] == 0:
        return FilterResult(p.copy(), np.zeros(p.shape[0], dtype=bool))
    replaced = q.max(axis=1) > t
    out = p.copy()
    if replaced.any():
        if mode == "onehot":
            cls = m[q[replaced].argmax(axis=1)]
            out[replaced] = 0.0
            out[np.flatnonzero(replaced), cls] = 1.0
        else:
            out[replaced] = map_posteriors(q[replaced], m, p.shape[1])
    return FilterResult(out, replaced)


# ------------------------------------------------------------------ pipeline


@dataclass(frozen=True)
class PostConfig:
    """Everything that turns per-source posteriors of a video into its final prediction.

    ``sources`` are the names of the head outputs to blend (in order) with
    ``weights`` (None = equal; normalised). For EXPR, ``t`` enables the
    confidence filter with the source named ``pretrained`` holding the
    pre-trained model's softmax probabilities in its own class order
    (``mapping``). ``k``/``smoothing``/``sigma`` control temporal smoothing;
    ``ah_threshold`` and ``video_filter`` apply to AH and AH-video. The video
    tasks (EMI, AH-video) have one prediction per video: no smoothing.
    """

    task: Literal["expr", "ah", "emi", "ah_video"]
    sources: tuple[str, ...]
    weights: tuple[float, ...] | None = None
    k: int = 1
    smoothing: Smoothing = "box"
    sigma: float | None = None
    t: float | None = None
    pretrained: str = "pretrained"
    mapping: tuple[int, ...] = AFFECTNET8_TO_AFFWILD2
    filter_mode: FilterMode = "onehot"
    ah_threshold: float = 0.5
    video_filter: bool = False

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}")
        if not self.sources:
            raise ValueError("PostConfig needs at least one source")
        object.__setattr__(self, "sources", tuple(self.sources))
        if self.weights is not None:
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
            normalise_weights(self.weights, len(self.sources))
        object.__setattr__(self, "mapping", tuple(int(m) for m in self.mapping))
        _window(self.k)
        if self.smoothing not in SMOOTHINGS:
            raise ValueError(f"smoothing must be one of {SMOOTHINGS}")
        if self.task != "expr" and self.t is not None:
            raise ValueError("the confidence filter (t) applies to EXPR only")
        if is_video_task(self.task) and self.k != 1:
            raise ValueError(f"{self.task} predictions are per video: no smoothing")
        if self.task not in BINARY_TASKS and self.video_filter:
            raise ValueError("the video filter applies to AH and AH-video only")

    def with_param(self, name: str, value: Any) -> PostConfig:
        """A copy with one swept parameter set; ``w`` means weights = (w, 1 - w) for two sources."""
        if name == "w":
            if len(self.sources) != 2:
                raise ValueError(f"the blend weight w needs exactly 2 sources, have {self.sources}")
            return replace(self, weights=(float(value), 1.0 - float(value)))
        if name == "weights":
            return replace(self, weights=tuple(float(x) for x in value))
        if name == "k":
            return replace(self, k=int(value))
        if name == "t":
            return replace(self, t=None if value is None else float(value))
        if name in ("ah_threshold", "sigma"):
            return replace(self, **{name: float(value)})
        raise ValueError(f"cannot sweep {name!r}; use 'k', 't', 'w', 'weights', 'ah_threshold' or 'sigma'")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def needed_sources(self) -> tuple[str, ...]:
        return self.sources + ((self.pretrained,) if self.t is not None else ())


def postprocess_video(sources: Mapping[str, np.ndarray], cfg: PostConfig, keep_video: bool = True) -> np.ndarray:
    """Blend -> confidence filter (EXPR) -> smooth -> video filter (AH, AH-video) for one video's posteriors."""
    missing = [s for s in cfg.needed_sources if s not in sources]
    if missing:
        raise KeyError(f"missing posterior sources {missing}")
    parts = [np.asarray(sources[s], dtype=np.float32) for s in cfg.sources]
    p = parts[0].copy() if len(parts) == 1 else blend_many(parts, cfg.weights)
    if cfg.task == "expr" and cfg.t is not None:
        p = confidence_filter(p, sources[cfg.pretrained], cfg.t, cfg.mapping, cfg.filter_mode).posteriors
    if cfg.k > 1:
        p = smooth(p, cfg.k, cfg.smoothing, cfg.sigma)
    if cfg.task in BINARY_TASKS and cfg.video_filter and not keep_video:
        p = np.zeros_like(p)
    return p


def positive_probability(posterior: np.ndarray) -> np.ndarray:
    """P(A/H) of each row of a binary task's posterior: (T,) as it is, or (T, 2) with class 1 last."""
    p = np.asarray(posterior)
    return p[:, -1] if p.ndim == 2 else p


def decide(posterior: np.ndarray, cfg: PostConfig) -> np.ndarray:
    """Final labels: argmax for EXPR, threshold for AH and AH-video, the posterior itself for EMI."""
    p = np.asarray(posterior)
    if cfg.task == "expr":
        return p.argmax(axis=-1).astype(np.int64)
    if cfg.task in BINARY_TASKS:
        return (positive_probability(p) >= cfg.ah_threshold).astype(np.int64)
    return p.astype(np.float32)


def predict_videos(
    sources: Mapping[str, Mapping[str, np.ndarray]],
    cfg: PostConfig,
    video_keep: Mapping[str, int | bool] | None = None,
) -> dict[str, np.ndarray]:
    """Apply :func:`postprocess_video` + :func:`decide` to every video.

    ``sources[name][video]`` is a posterior array; ``video_keep`` is the AH video
    classifier's decision (required when ``cfg.video_filter``).
    """
    return {v: decide(p, cfg) for v, p in fused_posteriors(sources, cfg, video_keep).items()}


def fused_posteriors(
    sources: Mapping[str, Mapping[str, np.ndarray]],
    cfg: PostConfig,
    video_keep: Mapping[str, int | bool] | None = None,
) -> dict[str, np.ndarray]:
    """Every video's posterior after :func:`postprocess_video`, before :func:`decide` (what scores that rank,
    such as average precision, need)."""
    if cfg.video_filter and video_keep is None:
        raise ValueError("video_filter is on but no video_keep decisions were given")
    first = sources[cfg.sources[0]]
    out: dict[str, np.ndarray] = {}
    for v in first:
        per = {name: sources[name][v] for name in cfg.needed_sources}
        keep = True if video_keep is None else bool(video_keep[v])
        out[v] = postprocess_video(per, cfg, keep)
    return out
