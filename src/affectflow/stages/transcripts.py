"""The ``transcripts`` rule: speech to text with Whisper, segments and word timestamps per video.

Two optional backends run the same model family: ``faster-whisper`` (a CTranslate2 model directory)
and ``openai-whisper`` (the released ``.pt`` checkpoint, a torch pickle, so it is loaded only after
its sha256 is verified, and then with ``weights_only=True``). Audio comes from the media shard, so no
ffmpeg is needed here. Empty audio, or audio quieter than ``silence_rms``, is not sent to the model
(Whisper invents text on silence): such videos get zero segments. The backends and the transcript
record are :mod:`affectflow.text` (``whisper``, ``asr``, ``transcript``).

Output per video (``transcripts/{asr}/{shard}.h5``): ``seg_start``, ``seg_end`` (s), ``seg_text``;
``word_start``, ``word_end``, ``word_text``, ``word_prob``, ``word_seg`` (index of the word's
segment); attributes ``language``, ``language_probability``, ``audio_duration``.

Details (model files, backend choice, options): docs/features.md, section "Transcripts (ASR)".
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from affectflow.core import joblog
from affectflow.core.device import with_device
from affectflow.core.job import Job
from affectflow.core.options import StageOptions, at_least, one_of, runtime, wiring
from affectflow.core.progress import progress_bar
from affectflow.core.vocabulary import SAMPLE_RATE
from affectflow.io.shards import StageResult, media_audio
from affectflow.io.store import Provenance, ShardReader, ShardWriter
from affectflow.models.catalogue.manifest import PreparedModel
from affectflow.models.resolve import resolve_model
from affectflow.plan.rerun import AFTER_LEARN, PREDICTED, Stage, stage_key
from affectflow.text.asr import BACKENDS, load_recognizer, transcribe_audio

log = logging.getLogger("affectflow.stages.transcripts")

#: bump when transcripts change for the same audio, model and options (docs/reruns.md)
STAGE_VERSION = 1
#: CTranslate2's precisions (its ``auto`` and ``default`` depend on the device, so they are none of them)
COMPUTE_TYPES = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16", "float32")


@dataclass(frozen=True)
class TranscriptsOptions(StageOptions):
    """Config ``asr``; all but ``device``/``cpu_threads`` are part of the rerun key and provenance.

    ``language``: a language code (``"en"``) or ``None`` to detect it
    (English-only ``.en`` models always use ``"en"``). ``compute_type``: the precision, the same on every
    device so that the key says what made a transcript (``int8`` and ``float16`` give different words for
    the same audio); openai-whisper runs ``float16`` as half precision and any other value as float32.
    ``temperature``: one value, or the fallback sequence Whisper retries with.
    ``max_new_tokens``: cap on tokens decoded per 30 s window (``None``: Whisper's 224).
    """

    SECTION = "asr"

    model: str = wiring("faster_whisper_tiny_en")
    backend: str = "auto"
    language: str | None = "en"
    word_timestamps: bool = True
    beam_size: int = 5
    temperature: float | tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    condition_on_previous_text: bool = True
    initial_prompt: str | None = None
    vad_filter: bool = False
    max_new_tokens: int | None = None
    compute_type: str = "int8"
    silence_rms: float = 1e-4
    device: str = runtime("auto")
    cpu_threads: int = runtime(0)

    def unused_fields(self) -> frozenset[str]:
        """``language`` with an English-only model (Whisper's ``.en``), which always transcribes English."""
        from affectflow.models.catalogue.registry import find

        spec = find(self.model)  # None: a checkpoint directory given directly, its language read when loaded
        return frozenset({"language"}) if spec and spec.english_only else frozenset()

    def check(self) -> None:
        one_of("backend", self.backend, BACKENDS)
        if self.compute_type == "auto":
            raise ValueError("compute_type auto chose float16 on CUDA and int8 on a CPU, so a transcript depended on "
                             "the device without its key saying so: write int8 (what a CPU used) or float16 (what "
                             "a GPU used)")
        one_of("compute_type", self.compute_type, COMPUTE_TYPES)
        if isinstance(self.temperature, list):
            self._set("temperature", tuple(float(t) for t in self.temperature))
        at_least("beam_size", self.beam_size, 1)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **wired: Any) -> TranscriptsOptions:
        return cls.from_mapping(with_device(config, "asr"), **wired)


#: what the plan reads of this stage (affectflow.stages.catalogue)
STAGE = Stage(
    "transcripts",
    STAGE_VERSION,
    TranscriptsOptions,
    ("transcripts",),
    downstream=f"text_features, learn, {AFTER_LEARN} of sets with text; {PREDICTED}",
)


def run_transcripts(
    media_shard: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    cfg: Mapping[str, Any] | TranscriptsOptions,
    *,
    models_dir: str | os.PathLike[str] | None = None,
    pins: Mapping[str, str] | None = None,
    spec: Any | None = None,
    progress: bool | None = None,
    key: str | None = None,
) -> StageResult:
    """Write ``transcripts/{asr}/{shard}.h5``: Whisper segments and words for every video of a media shard.

    The model is the registry entry ``cfg["model"]`` (or ``spec``), verified in
    ``models_dir`` (config ``models_dir``; ``$AFFECTFLOW_MODELS_DIR`` wins),
    with ``pins`` (config ``model_pins``) for files without a registry hash.
    """
    conf = TranscriptsOptions.coerce(cfg)
    rerun = stage_key(STAGE, conf, expected=key)
    resolved = resolve_model(spec if spec is not None else conf.model, models_dir, pins)
    recognizer = load_recognizer(resolved, conf)
    prov = Provenance.of(rerun, model=conf.model, weights_sha256=resolved.weights_sha256,
                         resolved={"backend_used": recognizer.name, "registry_name": resolved.name})
    result = StageResult()
    with ShardReader(media_shard, stage="media") as reader, ShardWriter(out_path, prov) as writer:
        skipped = list(reader.skipped())
        for vid in progress_bar(reader.video_ids(), desc=f"asr {conf.model}", unit="video", log=log, show=progress):
            audio = media_audio(reader.read(vid), media_shard)
            if audio is None:
                skipped.append((vid, "media record has no audio array"))
                continue
            transcript, note = transcribe_audio(recognizer, audio, conf.silence_rms)
            if note:
                log.info("%s: %s: no transcription", vid, note)
            writer.add(transcript.to_record(vid, {"audio_duration": len(audio) / SAMPLE_RATE, "note": note}))
            result.written.append(vid)
        result.skipped = skipped
        writer.set_skipped(skipped)
    return result


def run(job: Job) -> None:
    """The rule: ``input.media`` and ``input.model`` (a manifest) -> ``output[0]``, the transcripts shard."""
    joblog.setup(job.log)
    model = PreparedModel.for_job(job.input.model, job.config["models_dir"])
    with model.explained():
        run_transcripts(job.input.media, job.output[0], TranscriptsOptions.from_config(job.config, model=model.name),
                        models_dir=model.root, pins=model.pins, key=job.params.key)
