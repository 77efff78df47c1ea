"""Audio features: wav2vec 2.0 / HuBERT embeddings with the time of each vector.

A wav2vec 2.0-style speech encoder (wav2vec 2.0, HuBERT, WavLM, data2vec-audio) turns each video's
16 kHz mono audio from the media shard into one vector per 20 ms frame, written as they are or
mean-pooled over sliding windows or the whole recording (``pooling``). Long recordings are encoded in
overlapping chunks, so memory stays bounded whatever their length, while the frame grid, the first
GroupNorm's statistics and input normalisation stay those of the whole recording.

Output per video (``features/audio/{model}/{shard}.h5``): ``timestamps`` (N,) in seconds (frame or
window centres), ``embeddings`` (N, D) float32; attributes ``audio_duration``, ``n_vectors``, ``dim``,
``device``. Videos the media stage skipped stay skipped.

Details (pooling, frame times, chunking and how close it is to whole-recording output):
docs/features.md, section "Audio features".
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from affectflow.core import joblog
from affectflow.core.device import resolve_device
from affectflow.core.errors import AffectflowError
from affectflow.core.files import sha256_file
from affectflow.core.job import Job
from affectflow.core.options import StageOptions, at_least, one_of, runtime, wiring
from affectflow.core.vocabulary import SAMPLE_RATE
from affectflow.io.shards import StageResult, media_audio
from affectflow.io.store import Provenance, ShardReader, ShardWriter, VideoRecord
from affectflow.models.manifest import PreparedModel
from affectflow.plan.rerun import stage_key

log = logging.getLogger("affectflow.stages.audio_features")

STAGE = "audio_features"
#: bump when the vectors change for the same audio, model and options (docs/reruns.md)
STAGE_VERSION = 1
POOLINGS = ("frame", "window", "utterance")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class AudioFeatureError(AffectflowError, RuntimeError):
    """The audio encoder cannot run with the given model files or configuration."""


class _StopForward(Exception):
    """Raised by a hook to end a forward pass once the wanted hidden state is captured."""


@dataclass(frozen=True)
class AudioFeatureConfig(StageOptions):
    """Config ``audio``: how vectors are computed (the rerun key and provenance hold all but
    ``batch_size``, ``device`` and ``standin``, which the model fingerprint already says).

    ``layer``: ``"last"`` (the encoder's last hidden state) or an index into
    ``hidden_states`` (0 = input of the first transformer layer, ``n`` = output
    of layer ``n``; negative counts from the end). ``pooling``: ``"frame"`` (one
    vector per 20 ms frame), ``"window"`` (mean over windows of ``window_s``
    every ``hop_s`` seconds) or ``"utterance"`` (one mean vector per video).
    ``normalize``: zero-mean/unit-variance input normalisation; ``None`` takes
    the checkpoint's ``preprocessor_config.json`` ``do_normalize``.
    """

    SECTION = "audio"

    model: str = wiring("wav2vec2-base")
    layer: int | str = "last"
    pooling: str = "frame"
    window_s: float = 1.0
    hop_s: float = 0.5
    chunk_s: float = 30.0
    overlap_s: float = 1.5
    normalize: bool | None = None
    batch_size: int = runtime(4)
    device: str = runtime("auto")
    standin: bool = runtime(False, wired=True)  # the model fingerprint says it; recorded in provenance for people

    def check(self) -> None:
        one_of("pooling", self.pooling, POOLINGS)
        if not (self.layer == "last" or (isinstance(self.layer, int) and not isinstance(self.layer, bool))):
            raise ValueError(f"audio layer must be 'last' or an integer, got {self.layer!r}")
        if self.chunk_s <= 0 or self.overlap_s < 0:
            raise ValueError("chunk_s must be > 0 and overlap_s >= 0")
        if self.pooling == "window" and (self.window_s <= 0 or self.hop_s <= 0):
            raise ValueError("window_s and hop_s must be > 0")
        at_least("batch_size", self.batch_size, 1)

    @classmethod
    def from_config(cls, config, **wired):
        return cls.from_mapping(with_device(config, "audio"), **wired)


def with_device(config: Mapping[str, Any], section: str) -> dict[str, Any]:
    """A model stage's config section with ``device`` from ``features.device`` unless the section sets it."""
    cfg = dict(config.get(section) or {})
    device = (config.get("features") or {}).get("device")
    if device is not None:
        cfg.setdefault("device", device)
    return cfg


def weights_file(model_dir: str | os.PathLike[str]) -> Path:
    """The weights file of a ``transformers`` checkpoint directory."""
    d = Path(model_dir)
    for name in WEIGHT_FILES:
        if (d / name).is_file():
            return d / name
    raise AudioFeatureError(f"{d}: no weights file ({' or '.join(WEIGHT_FILES)}) in the model directory")


# ----------------------------------------------------------------------------- encoder
class SpeechEncoder:
    """A loaded wav2vec 2.0-style encoder and what is needed to time its frames."""

    def __init__(self, model_dir: str | os.PathLike[str], device: str = "auto") -> None:
        import torch
        from transformers import AutoConfig, AutoModel

        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise AudioFeatureError(f"{self.model_dir}: no config.json; not a transformers model directory")
        weights_file(self.model_dir)
        self.device = resolve_device(device)
        config = AutoConfig.from_pretrained(str(self.model_dir))
        kernels = list(getattr(config, "conv_kernel", []) or [])
        strides = list(getattr(config, "conv_stride", []) or [])
        if not kernels or len(kernels) != len(strides):
            raise AudioFeatureError(
                f"{self.model_dir}: model type {config.model_type!r} has no convolutional front end "
                f"(conv_kernel/conv_stride); expected a wav2vec 2.0-style speech encoder"
            )
        self.kernels, self.strides = kernels, strides
        self.stride = int(np.prod(strides))
        rf = 1
        for k, s in zip(reversed(kernels), reversed(strides), strict=True):
            rf = (rf - 1) * s + k
        self.receptive_field = rf
        self.hidden_size = int(config.hidden_size)
        self.num_layers = int(config.num_hidden_layers)
        self.do_normalize = _preprocessor_normalize(self.model_dir)
        self.model = AutoModel.from_pretrained(str(self.model_dir)).to(self.device).eval()
        self._torch = torch

    # frame grid ----------------------------------------------------------------
    def n_frames(self, n_samples: int) -> int:
        """Frames the front end produces for ``n_samples`` samples (transformers' formula)."""
        n = n_samples
        for k, s in zip(self.kernels, self.strides, strict=True):
            if n < k:
                return 0
            n = (n - k) // s + 1
        return n

    def frame_times(self, n: int, first: int = 0) -> np.ndarray:
        """Centre time (s) of frames ``first .. first + n - 1``."""
        idx = np.arange(first, first + n, dtype=np.float64)
        return (idx * self.stride + self.receptive_field / 2.0) / SAMPLE_RATE

    # forward -------------------------------------------------------------------
    def _group_norm_layer(self) -> Any | None:
        """The first conv layer when it normalises over time (``feat_extract_norm="group"``), else None."""
        torch = self._torch
        fe = getattr(self.model, "feature_extractor", None)
        layers = getattr(fe, "conv_layers", None)
        if not layers:
            return None
        first = layers[0]
        return first if isinstance(getattr(first, "layer_norm", None), torch.nn.GroupNorm) else None

    def _group_norm_stats(self, audio: np.ndarray, layer0: Any) -> tuple[Any, Any]:
        """Per-channel mean and variance of the first conv layer's output over the whole recording.

        Computed in pieces of ~30 s that partition the conv output exactly, so
        memory stays bounded; these are the statistics ``GroupNorm`` would use on
        the unchunked recording.
        """
        torch = self._torch
        conv = layer0.conv
        k, s = int(conv.kernel_size[0]), int(conv.stride[0])
        step = max(1, (30 * SAMPLE_RATE) // s) * s
        s1 = torch.zeros(conv.out_channels, dtype=torch.float64, device=self.device)
        s2 = torch.zeros_like(s1)
        total = 0
        with torch.inference_mode():
            for a in range(0, len(audio), step):
                seg = audio[a : min(a + step + k - s, len(audio))]
                if len(seg) < k:
                    break
                y = conv(torch.from_numpy(np.ascontiguousarray(seg))[None, None].to(self.device))[0].double()
                s1 += y.sum(dim=1)
                s2 += (y * y).sum(dim=1)
                total += y.shape[1]
        mean = s1 / total
        var = (s2 / total - mean * mean).clamp_min(0.0)
        return mean.float(), var.float()

    def _forward(self, batch: np.ndarray, layer: int | str) -> np.ndarray:
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        k = self.num_layers if layer == "last" else int(layer) % (self.num_layers + 1)
        with torch.inference_mode():
            if k == self.num_layers:  # hidden_states[-1] is the last hidden state (after any final norm)
                return self.model(x).last_hidden_state.float().cpu().numpy()
            return self._hidden_state(x, k).float().cpu().numpy()

    def _hidden_state(self, x: Any, k: int) -> Any:
        """``hidden_states[k]`` (k < number of layers): the input of transformer layer ``k + 1``.

        Captured with a hook on that layer, and the forward pass stops there, so
        the layers after it cost nothing. (Hooks rather than
        ``output_hidden_states``, whose recording in transformers 5 is set up
        once per model and breaks if the layer list is changed.)
        """
        layers = self.model.encoder.layers
        captured: list[Any] = []

        def grab(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            captured.append(args[0] if args else kwargs["hidden_states"])
            raise _StopForward

        handle = layers[k].register_forward_pre_hook(grab, with_kwargs=True)
        try:
            self.model(x)
        except _StopForward:
            pass
        finally:
            handle.remove()
        if not captured:
            raise AudioFeatureError(f"could not capture hidden state {k} of {self.model_dir.name}")
        return captured[0]

    def check_layer(self, layer: int | str) -> None:
        if layer == "last":
            return
        n = self.num_layers + 1
        if not -n <= int(layer) < n:
            raise AudioFeatureError(
                f"layer {layer} does not exist: {self.model_dir.name} has hidden_states 0..{self.num_layers}"
            )

    def frame_features(
        self,
        audio: np.ndarray,
        layer: int | str = "last",
        chunk_s: float = 30.0,
        overlap_s: float = 1.5,
        batch_size: int = 4,
        normalize: bool | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(timestamps (N,), vectors (N, D)) of every frame of ``audio`` (16 kHz mono)."""
        self.check_layer(layer)
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(audio)):
            audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
        n_total = self.n_frames(len(audio))
        empty = (np.zeros(0, dtype=np.float64), np.zeros((0, self.hidden_size), dtype=np.float32))
        if n_total == 0:
            return empty
        if self.do_normalize if normalize is None else normalize:
            audio = _zero_mean_unit_var(audio)
        stride = self.stride
        core = max(1, int(round(chunk_s * SAMPLE_RATE / stride))) * stride
        ctx = int(math.ceil(overlap_s * SAMPLE_RATE / stride)) * stride
        ctx = max(ctx, int(math.ceil(self.receptive_field / stride)) * stride)  # a frame never straddles a cut
        plans: list[tuple[int, int, int, int]] = []  # (seg_start, seg_end, first_frame, n_keep)
        for start in range(0, n_total * stride, core):
            first = start // stride
            n_keep = min(core // stride, n_total - first)
            if n_keep <= 0:
                break
            seg_start = max(0, start - ctx)
            seg_end = min(len(audio), start + core + ctx)
            plans.append((seg_start, seg_end, first, n_keep))
        out = np.zeros((n_total, self.hidden_size), dtype=np.float32)
        layer0 = self._group_norm_layer() if len(plans) > 1 else None
        with _fixed_group_norm(layer0, *(self._group_norm_stats(audio, layer0) if layer0 is not None else (0, 0))):
            self._run_plans(audio, plans, layer, batch_size, out)
        return self.frame_times(n_total), out

    def _run_plans(
        self, audio: np.ndarray, plans: list[tuple[int, int, int, int]], layer: int | str, batch_size: int,
        out: np.ndarray,
    ) -> None:
        stride = self.stride
        # equal-length segments are batched together, without padding
        by_len: dict[int, list[tuple[int, int, int, int]]] = {}
        for p in plans:
            by_len.setdefault(p[1] - p[0], []).append(p)
        for group in by_len.values():
            for i in range(0, len(group), batch_size):
                part = group[i : i + batch_size]
                feats = self._forward(np.stack([audio[s:e] for s, e, _, _ in part]), layer)
                for (s, _e, first, n_keep), f in zip(part, feats, strict=True):
                    off = first - s // stride
                    if off + n_keep > f.shape[0]:
                        raise AudioFeatureError("internal error: chunk produced fewer frames than planned")
                    out[first : first + n_keep] = f[off : off + n_keep]


@contextlib.contextmanager
def _fixed_group_norm(layer0: Any | None, mean: Any, var: Any) -> Iterator[None]:
    """Within the block, ``layer0``'s GroupNorm uses the given whole-recording statistics."""
    if layer0 is None:
        yield
        return
    import torch

    gn = layer0.layer_norm

    class _FixedStatsNorm(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            scale = (gn.weight / torch.sqrt(var + gn.eps))[None, :, None]
            return (x - mean[None, :, None]) * scale + gn.bias[None, :, None]

    layer0.layer_norm = _FixedStatsNorm()
    try:
        yield
    finally:
        layer0.layer_norm = gn


def _zero_mean_unit_var(x: np.ndarray) -> np.ndarray:
    """Wav2Vec2FeatureExtractor's normalisation, over the whole recording."""
    x64 = x.astype(np.float64)
    return ((x64 - x64.mean()) / np.sqrt(x64.var() + 1e-7)).astype(np.float32)


def _preprocessor_normalize(model_dir: Path) -> bool:
    import json

    p = model_dir / "preprocessor_config.json"
    if not p.is_file():
        log.warning("%s: no preprocessor_config.json; input normalisation off", model_dir)
        return False
    cfg = json.loads(p.read_text(encoding="utf-8"))
    sr = int(cfg.get("sampling_rate", SAMPLE_RATE))
    if sr != SAMPLE_RATE:
        raise AudioFeatureError(f"{model_dir}: model expects {sr} Hz audio; affectflow provides {SAMPLE_RATE} Hz")
    return bool(cfg.get("do_normalize", False))


# ----------------------------------------------------------------------------- pooling
def pool_windows(
    times: np.ndarray, feats: np.ndarray, duration: float, window_s: float, hop_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the frame vectors whose centre lies in each window ``[k hop, k hop + window)``.

    Windows start every ``hop_s`` seconds until one reaches the end of the
    recording; each window's timestamp is the centre of its span clipped to the
    recording. Windows without any frame are left out.
    """
    d = feats.shape[1] if feats.ndim == 2 else 0
    if len(times) == 0 or duration <= 0:
        return np.zeros(0, dtype=np.float64), np.zeros((0, d), dtype=np.float32)
    n_win = max(1, int(math.ceil(max(duration - window_s, 0.0) / hop_s - 1e-9)) + 1)
    starts = np.arange(n_win, dtype=np.float64) * hop_s
    ends = np.minimum(starts + window_s, duration)
    lo = np.searchsorted(times, starts, side="left")
    hi = np.searchsorted(times, ends, side="left")
    keep = hi > lo
    csum = np.concatenate([np.zeros((1, d)), np.cumsum(feats.astype(np.float64), axis=0)])
    pooled = (csum[hi] - csum[lo]) / np.maximum(hi - lo, 1)[:, None]
    centers = (starts + ends) / 2.0
    return centers[keep], pooled[keep].astype(np.float32)


def embed_audio(
    audio: np.ndarray, encoder: SpeechEncoder, cfg: AudioFeatureConfig, duration: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps, embeddings) of one recording under ``cfg``."""
    times, feats = encoder.frame_features(
        audio, layer=cfg.layer, chunk_s=cfg.chunk_s, overlap_s=cfg.overlap_s,
        batch_size=cfg.batch_size, normalize=cfg.normalize,
    )
    if duration is None:
        duration = len(audio) / SAMPLE_RATE
    if cfg.pooling == "frame":
        return times, feats
    if cfg.pooling == "window":
        return pool_windows(times, feats, duration, cfg.window_s, cfg.hop_s)
    if len(times) == 0:
        return np.zeros(0, dtype=np.float64), feats
    return np.array([duration / 2.0]), feats.mean(axis=0, keepdims=True).astype(np.float32)


# ----------------------------------------------------------------------------- model files
# The weights file of a model directory, by preference (the largest file when none of these).
_WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin", "model.bin")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".script", ".hdf5", ".h5")


@dataclass(frozen=True)
class ResolvedModel:
    """A registry model whose files are all present and verified.

    ``directory``: the folder holding the files under their in-model relative
    names (what ``from_pretrained`` and ``WhisperModel`` want); ``files``: file
    name in the registry -> verified path; ``weights_sha256``: sha256 of the
    main weights file ("" for models without files, e.g. API embedders).
    """

    spec: Any
    directory: Path | None
    files: dict[str, Path]
    weights_sha256: str

    @property
    def name(self) -> str:
        return str(self.spec.name)


def resolve_model(
    model: Any, models_root: str | os.PathLike[str] | None = None, pins: Mapping[str, str] | None = None
) -> ResolvedModel:
    """Verify every file of a registry model (a name, alias or ``ModelSpec``) and locate them.

    Nothing is downloaded (``affectflow.models.weights.ensure``): a missing file raises
    ``WeightsError`` naming it, its URL and where to put it; a file without a
    hash on record must be pinned (``pins``: config ``model_pins``).
    """
    from affectflow.models.registry import get
    from affectflow.models.weights import apply_pins, ensure, models_dir

    spec = get(model) if isinstance(model, str) else model
    root = models_dir(models_root)
    files = apply_pins(spec.files, pins)
    paths = {wf.name: ensure(wf, root, model=spec.name) for wf in files}
    if not files:
        return ResolvedModel(spec=spec, directory=None, files={}, weights_sha256="")
    directory = _common_directory([(wf.name, paths[wf.name]) for wf in files])
    main = _main_weights([wf.name for wf in files], paths)
    wf_main = next(wf for wf in files if wf.name == main)
    sha = wf_main.sha256 or sha256_file(paths[main])
    return ResolvedModel(spec=spec, directory=directory, files=paths, weights_sha256=sha)


def _main_weights(names: list[str], paths: Mapping[str, Path]) -> str:
    base = {n: n.rsplit("/", 1)[-1] for n in names}
    for want in _WEIGHT_NAMES:
        for n in names:
            if base[n] == want:
                return n
    weights = [n for n in names if base[n].endswith(_WEIGHT_SUFFIXES)] or names
    return max(weights, key=lambda n: paths[n].stat().st_size)


def _common_directory(items: list[tuple[str, Path]]) -> Path:
    """The folder in which every file sits at its name relative to the names' common prefix.

    Files found in different places (some fetched into the models directory,
    some used in place from a package) are linked into a private temporary
    folder instead.
    """
    import tempfile
    from pathlib import PurePosixPath

    parts = [PurePosixPath(n).parts for n, _ in items]
    prefix = 0
    while all(len(p) > prefix + 1 for p in parts) and len({p[prefix] for p in parts}) == 1:
        prefix += 1
    rels = [PurePosixPath(*p[prefix:]) for p in parts]
    dirs = set()
    for rel, (_, path) in zip(rels, items, strict=True):
        d = path
        for _ in rel.parts:
            d = d.parent
        dirs.add(d)
    if len(dirs) == 1:
        return dirs.pop()
    tmp = Path(tempfile.mkdtemp(prefix="affectflow-model-"))
    for rel, (_, path) in zip(rels, items, strict=True):
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).symlink_to(path.resolve())
    return tmp


def checkpoint_or_registry(
    model_dir: str | os.PathLike[str], model: Any, pins: Mapping[str, str] | None
) -> tuple[Path, str, str]:
    """(checkpoint directory, weights sha256, registry name) for a stage's ``model_dir`` argument.

    ``model_dir`` is either a checkpoint directory itself (it has a
    ``config.json``; the hash is computed from its weights file) or the models
    directory, in which case ``model`` is looked up in the registry and its
    files are verified there.
    """
    d = Path(model_dir).expanduser()
    if isinstance(model, str) and (d / "config.json").is_file():
        return d, sha256_file(weights_file(d)), model
    resolved = resolve_model(model, d, pins)
    if resolved.directory is None:
        raise AudioFeatureError(f"model {resolved.name} has no files to load")
    return resolved.directory, resolved.weights_sha256, resolved.name


# ----------------------------------------------------------------------------- stage
def extract_audio_features(
    media_shard_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    cfg: Mapping[str, Any] | AudioFeatureConfig,
    *,
    pins: Mapping[str, str] | None = None,
    spec: Any | None = None,
    progress: bool | None = None,
    key: str | None = None,
) -> StageResult:
    """Write ``features/audio/{model}/{shard}.h5`` for every video of a media shard.

    ``model_dir``: the models directory (config ``models_dir``), where the
    registry model ``cfg["model"]`` (or ``spec``, a ``ModelSpec`` given
    directly) is found and verified, with ``pins`` (config ``model_pins``) for
    files whose hash the registry does not have; or a checkpoint directory
    itself (``config.json``, weights, ``preprocessor_config.json``). Per
    video: ``timestamps`` (N,) and ``embeddings`` (N, D); videos the media
    stage skipped stay skipped, with its reason.
    """
    from tqdm import tqdm

    conf = AudioFeatureConfig.coerce(cfg)
    rerun = stage_key(STAGE, conf, expected=key)
    ckpt, sha, registry_name = checkpoint_or_registry(model_dir, spec if spec is not None else conf.model, pins)
    encoder = SpeechEncoder(ckpt, device=conf.device)
    encoder.check_layer(conf.layer)
    result = StageResult()
    prov = Provenance.of(rerun, model=conf.model, weights_sha256=sha,
                         resolved={"registry_name": registry_name, "standin": conf.standin})
    with ShardReader(media_shard_path, stage="media") as reader, ShardWriter(out_path, prov) as writer:
        skipped = list(reader.skipped())
        ids = reader.video_ids()
        for vid in tqdm(ids, desc=f"audio {conf.model}", unit="video", disable=None if progress is None
                        else not progress):
            audio = media_audio(reader.read(vid), media_shard_path)
            if audio is None:
                skipped.append((vid, "media record has no audio array"))
                continue
            duration = len(audio) / SAMPLE_RATE
            times, emb = embed_audio(audio, encoder, conf, duration=duration)
            writer.add(VideoRecord(
                video_id=vid,
                arrays={"timestamps": times.astype(np.float64), "embeddings": emb.astype(np.float32)},
                attrs={"audio_duration": float(duration), "n_vectors": int(len(times)),
                       "dim": int(emb.shape[1]), "device": encoder.device},
            ))
            result.written.append(vid)
        result.skipped = skipped
        writer.set_skipped(skipped)
    return result


def run(job: Job) -> None:
    """The rule: ``input.media`` and ``input.model`` (a manifest) -> ``output[0]``, the features shard."""
    joblog.setup(job.log)
    model = PreparedModel.for_job(job.input.model, job.config["models_dir"])
    extract_audio_features(
        job.input.media,
        job.output[0],
        model.root,
        AudioFeatureConfig.from_config(job.config, model=model.name, standin=model.standin),
        pins=model.pins,
        key=job.params.key,
    )
