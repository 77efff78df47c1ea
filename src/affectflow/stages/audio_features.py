"""The ``audio_features`` rule: wav2vec 2.0 / HuBERT embeddings with the time of each vector.

A wav2vec 2.0-style speech encoder (wav2vec 2.0, HuBERT, WavLM, data2vec-audio) turns each video's
16 kHz mono audio from the media shard into one vector per 20 ms frame, written as they are or
mean-pooled over sliding windows or the whole recording (``pooling``). The encoder and the pooling
are :mod:`affectflow.audio`; model files are verified by :mod:`affectflow.models.resolve`.

Output per video (``features/audio/{model}/{shard}.h5``): ``timestamps`` (N,) in seconds (frame or
window centres), ``embeddings`` (N, D) float32; attributes ``audio_duration``, ``n_vectors``, ``dim``,
``device``. Videos the media stage skipped stay skipped.

Details (pooling, frame times, chunking and how close it is to whole-recording output):
docs/features.md, section "Audio features".
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from affectflow.audio.embedding import POOLINGS, audio_record
from affectflow.audio.speech_encoder import SpeechEncoder
from affectflow.core import joblog
from affectflow.core.device import with_device
from affectflow.core.job import Job
from affectflow.core.options import StageOptions, at_least, one_of, runtime, wiring
from affectflow.core.progress import progress_bar
from affectflow.io.shards import StageResult, media_audio
from affectflow.io.store import Provenance, ShardReader, ShardWriter
from affectflow.models.catalogue.manifest import PreparedModel
from affectflow.models.resolve import registry_directory
from affectflow.plan.rerun import AFTER_LEARN, PREDICTED, Stage, stage_key

#: bump when the vectors change for the same audio, model and options (docs/reruns.md)
STAGE_VERSION = 1

log = logging.getLogger("affectflow.stages.audio_features")


@dataclass(frozen=True)
class AudioFeaturesOptions(StageOptions):
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
    def from_config(cls, config: Mapping[str, Any], **wired: Any) -> AudioFeaturesOptions:
        return cls.from_mapping(with_device(config, "audio"), **wired)


#: what the plan reads of this stage (affectflow.stages.catalogue)
STAGE = Stage(
    "audio_features",
    STAGE_VERSION,
    AudioFeaturesOptions,
    ("audio_features",),
    downstream=f"learn, {AFTER_LEARN} of sets with an audio model; {PREDICTED}",
)


def run_audio_features(
    media_shard_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    cfg: Mapping[str, Any] | AudioFeaturesOptions,
    *,
    pins: Mapping[str, str] | None = None,
    spec: Any | None = None,
    progress: bool | None = None,
    key: str | None = None,
) -> StageResult:
    """Write ``features/audio/{model}/{shard}.h5`` for every video of a media shard.

    ``model_dir``: the models directory (config ``models_dir``), where the
    registry model ``cfg["model"]`` (or ``spec``, a ``ModelSpec`` given
    directly, for a checkpoint of one's own) is found and verified, with
    ``pins`` (config ``model_pins``) for files whose hash the registry does
    not have; only its verified files are loaded. Per
    video: ``timestamps`` (N,) and ``embeddings`` (N, D); videos the media
    stage skipped stay skipped, with its reason.
    """
    conf = AudioFeaturesOptions.coerce(cfg)
    rerun = stage_key(STAGE, conf, expected=key)
    ckpt, sha, registry_name = registry_directory(model_dir, spec if spec is not None else conf.model, pins)
    encoder = SpeechEncoder(ckpt, device=conf.device)
    encoder.check_layer(conf.layer)
    result = StageResult()
    prov = Provenance.of(rerun, model=conf.model, weights_sha256=sha,
                         resolved={"registry_name": registry_name, "standin": conf.standin})
    with ShardReader(media_shard_path, stage="media") as reader, ShardWriter(out_path, prov) as writer:
        skipped = list(reader.skipped())
        ids = reader.video_ids()
        for vid in progress_bar(ids, desc=f"audio {conf.model}", unit="video", log=log, show=progress):
            audio = media_audio(reader.read(vid), media_shard_path)
            if audio is None:
                skipped.append((vid, "media record has no audio array"))
                continue
            writer.add(audio_record(vid, audio, encoder, conf))
            result.written.append(vid)
        result.skipped = skipped
        writer.set_skipped(skipped)
    return result


def run(job: Job) -> None:
    """The rule: ``input.media`` and ``input.model`` (a manifest) -> ``output[0]``, the features shard."""
    joblog.setup(job.log)
    model = PreparedModel.for_job(job.input.model, job.config["models_dir"])
    with model.explained():
        run_audio_features(job.input.media, job.output[0], model.root,
                           AudioFeaturesOptions.from_config(job.config, model=model.name, standin=model.standin),
                           pins=model.pins, key=job.params.key)
