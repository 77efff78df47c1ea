"""A wav2vec 2.0-style speech encoder (wav2vec 2.0, HuBERT, WavLM, data2vec-audio): one vector per 20 ms frame.

Long recordings are encoded in overlapping chunks, so memory stays bounded
whatever their length, while the frame grid, the first GroupNorm's statistics
(:mod:`affectflow.audio.group_norm`) and input normalisation stay those of the
whole recording. How close chunked output is to whole-recording output:
docs/features.md, section "Audio features".
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from affectflow.audio.group_norm import fixed_group_norm, group_norm_layer, group_norm_stats
from affectflow.core.device import resolve_device
from affectflow.core.errors import AffectflowError
from affectflow.core.vocabulary import SAMPLE_RATE
from affectflow.models.hf_progress import no_load_progress
from affectflow.models.resolve import weights_file

log = logging.getLogger(__name__)

#: one chunk of a recording: (first sample, end sample, first frame kept, frames kept)
ChunkPlan = tuple[int, int, int, int]


class AudioFeatureError(AffectflowError, RuntimeError):
    """The audio encoder cannot run with the given model files or configuration."""


class _StopForward(Exception):
    """Raised by a hook to end a forward pass once the wanted hidden state is captured."""


class SpeechEncoder:
    """A loaded wav2vec 2.0-style encoder and what is needed to time its frames."""

    def __init__(self, model_dir: str | os.PathLike[str], device: str = "auto") -> None:
        import torch
        from transformers import AutoConfig

        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise AudioFeatureError(f"{self.model_dir}: no config.json; not a transformers model directory")
        weights = weights_file(self.model_dir)
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
        self.model = load_encoder(self.model_dir, weights).to(self.device).eval()
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
        """Raise :class:`AudioFeatureError` unless ``layer`` is ``"last"`` or a hidden state this model has."""
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
            audio = zero_mean_unit_var(audio)
        plans = self._chunk_plans(n_total, len(audio), chunk_s, overlap_s)
        out = np.zeros((n_total, self.hidden_size), dtype=np.float32)
        layer0 = group_norm_layer(self.model) if len(plans) > 1 else None
        stats = group_norm_stats(audio, layer0, self.device) if layer0 is not None else (0, 0)
        with fixed_group_norm(layer0, *stats):
            self._run_plans(audio, plans, layer, batch_size, out)
        return self.frame_times(n_total), out

    def _chunk_plans(self, n_total: int, n_samples: int, chunk_s: float, overlap_s: float) -> list[ChunkPlan]:
        """Chunks of ``chunk_s`` seconds of frames, each read with ``overlap_s`` of context on both sides.

        Chunk starts fall on the frame grid and the context covers at least the
        front end's receptive field, so a frame never straddles a cut.
        """
        stride = self.stride
        core = max(1, int(round(chunk_s * SAMPLE_RATE / stride))) * stride
        ctx = int(math.ceil(overlap_s * SAMPLE_RATE / stride)) * stride
        ctx = max(ctx, int(math.ceil(self.receptive_field / stride)) * stride)  # a frame never straddles a cut
        plans: list[ChunkPlan] = []
        for start in range(0, n_total * stride, core):
            first = start // stride
            n_keep = min(core // stride, n_total - first)
            if n_keep <= 0:
                break
            seg_start = max(0, start - ctx)
            seg_end = min(n_samples, start + core + ctx)
            plans.append((seg_start, seg_end, first, n_keep))
        return plans

    def _run_plans(
        self, audio: np.ndarray, plans: list[ChunkPlan], layer: int | str, batch_size: int, out: np.ndarray,
    ) -> None:
        stride = self.stride
        # equal-length segments are batched together, without padding
        by_len: dict[int, list[ChunkPlan]] = {}
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


#: parameters of the bare encoders used only in training (SpecAugment's mask vector): a checkpoint
#: without them (facebook/wav2vec2-base-960h has none) encodes the same
TRAINING_ONLY_PARAMETERS = frozenset({"masked_spec_embed"})

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _LoadReportCatcher(logging.Filter):
    """Keeps transformers' "LOAD REPORT" on one checkpoint (a table with ANSI colour codes) out of the log.

    Set on ``transformers.modeling_utils``' logger for one ``from_pretrained`` call; the report's
    text is kept (ANSI codes stripped) for the error when loading fails. Any other record passes.
    """

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source
        self.text = ""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        # transformers 5's report; 4.x said "Some weights of ... were not used / not initialized"
        if ("LOAD REPORT" in msg or "Some weights of" in msg) and self.source in msg:
            self.text = _ANSI.sub("", msg)
            return False
        return True


def load_encoder(model_dir: Path, weights: Path) -> Any:
    """The bare encoder (``AutoModel``) of the checkpoint at ``model_dir``, its weights checked here.

    Released speech checkpoints carry task heads the bare encoder has no use for
    (wav2vec2-base-960h's CTC ``lm_head``, wav2vec2-base's quantizer): those unused
    weights are expected and only logged at DEBUG, instead of transformers' load report
    (a table with terminal colour codes, read by users as an error). A parameter of the
    encoder the checkpoint has no weights for is an :class:`AudioFeatureError`: transformers
    would initialise it at random and every feature would be meaningless.
    """
    from transformers import AutoModel

    catcher = _LoadReportCatcher(str(model_dir))
    hf_log = logging.getLogger("transformers.modeling_utils")  # the logger transformers reports with
    hf_log.addFilter(catcher)
    try:
        with no_load_progress():
            model, info = AutoModel.from_pretrained(str(model_dir), output_loading_info=True)
    except RuntimeError as e:  # mismatched shapes, failed weight conversion: raised after the report
        if not catcher.text:
            raise
        raise AudioFeatureError(
            f"{weights}: the weights do not fit the architecture in {model_dir / 'config.json'} "
            f"({e}); transformers' load report:\n{catcher.text}"
        ) from e
    finally:
        hf_log.removeFilter(catcher)
    _check_loaded_keys(model, info, weights)
    return model


def _check_loaded_keys(model: Any, info: dict[str, Any], weights: Path) -> None:
    """Refuse missing encoder weights; log unused checkpoint weights (DEBUG for task heads)."""
    name = type(model).__name__

    def training_only(key: str) -> bool:
        return key.rsplit(".", 1)[-1] in TRAINING_ONLY_PARAMETERS

    missing = sorted(k for k in info.get("missing_keys", ()) if not training_only(k))
    if missing:
        shown = ", ".join(missing[:5]) + (f", ... ({len(missing)} in all)" if len(missing) > 5 else "")
        raise AudioFeatureError(
            f"{weights}: no weights for {len(missing)} parameter(s) of {name}: {shown}. transformers would "
            f"initialise them at random and the audio features would be meaningless; the weights file does not "
            f"match the architecture in {weights.parent / 'config.json'} (a truncated or different checkpoint?)"
        )
    benign = sorted(k for k in info.get("missing_keys", ()) if training_only(k))
    if benign:
        log.debug("%s: no %s in the checkpoint (used in training only)", weights, ", ".join(benign))
    # the encoder's own parts; a checkpoint's other weights belong to a task head
    own = {n for n, _ in model.named_children()} | {n for n, _ in model.named_parameters(recurse=False)}
    own |= {n for n, _ in model.named_buffers(recurse=False)}
    unused = sorted(info.get("unexpected_keys", ()))
    heads = [k for k in unused if k.split(".", 1)[0] not in own]
    odd = [k for k in unused if k.split(".", 1)[0] in own]
    if heads:
        log.debug("%s: %d weight(s) of a task head %s does not have, not used: %s",
                  weights, len(heads), name, ", ".join(heads))
    if odd:
        log.warning("%s: %d weight(s) for parts of %s that the architecture in config.json does not have, "
                    "not used (does config.json describe this checkpoint?): %s",
                    weights, len(odd), name, ", ".join(odd[:5]) + (", ..." if len(odd) > 5 else ""))


def zero_mean_unit_var(x: np.ndarray) -> np.ndarray:
    """Wav2Vec2FeatureExtractor's normalisation, over the whole recording (not per chunk)."""
    x64 = x.astype(np.float64)
    return ((x64 - x64.mean()) / np.sqrt(x64.var() + 1e-7)).astype(np.float32)


def _preprocessor_normalize(model_dir: Path) -> bool:
    """The checkpoint's ``do_normalize``; a model made for another sample rate is refused."""
    p = model_dir / "preprocessor_config.json"
    if not p.is_file():
        log.warning("%s: no preprocessor_config.json; input normalisation off", model_dir)
        return False
    cfg = json.loads(p.read_text(encoding="utf-8"))
    sr = int(cfg.get("sampling_rate", SAMPLE_RATE))
    if sr != SAMPLE_RATE:
        raise AudioFeatureError(f"{model_dir}: model expects {sr} Hz audio; affectflow provides {SAMPLE_RATE} Hz")
    return bool(cfg.get("do_normalize", False))
