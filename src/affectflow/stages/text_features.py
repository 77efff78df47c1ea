"""The ``text_features`` rule: one embedding per transcript segment.

Encoders (the kind is taken from the registry entry, or set with ``kind``): ``sentence``
(sentence-transformers checkpoints such as all-MiniLM-L6-v2, SentenceBERT and E5, run with
``transformers`` as their own files describe), ``goemotions`` (RoBERTa-GoEmotions: logits over its
28 labels and a pooled embedding), and the ``openai`` and ``gigachat`` embedding APIs, whose keys come
from the environment only and never reach logs, messages or the output file. The encoders and the
API clients are :mod:`affectflow.text`.

Output per video (``features/text/{asr}/{model}/{shard}.h5``): ``seg_start``, ``seg_end``,
``embeddings`` (N, D) and, for GoEmotions, ``logits`` (N, 28). A video without speech has zero
segments: ``embeddings`` is an empty (0, D) array, not an error.

Details (pooling, prefixes, the API requests and their retries): docs/features.md, section
"Text features".
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from affectflow.core import joblog
from affectflow.core.device import with_device
from affectflow.core.job import Job
from affectflow.core.options import StageOptions, added, at_least, one_of, runtime, wiring
from affectflow.io.shards import StageResult
from affectflow.io.store import Provenance, ShardWriter
from affectflow.models.catalogue.manifest import PreparedModel
from affectflow.models.resolve import resolve_model
from affectflow.plan.rerun import AFTER_LEARN, PREDICTED, Stage, stage_key
from affectflow.text.api_clients import GIGACHAT_KEY_ENV, OPENAI_KEY_ENV
from affectflow.text.embedding import embed_segments, encoder_provenance
from affectflow.text.loading import KINDS, kind_of, load_text_encoder
from affectflow.text.transcript import read_transcripts

#: bump when embeddings change for the same transcripts, model and options (docs/reruns.md)
STAGE_VERSION = 1


@dataclass(frozen=True)
class TextFeaturesOptions(StageOptions):
    """Config ``text``; device, batch size, the CA bundle and the API client's retries, backoff and
    timeout change no vector, so they stay out of the rerun key and provenance.

    ``prefix``: text put before every segment (``None``: ``"query: "`` for E5,
    nothing otherwise). ``pooling``/``normalize``/``max_length``: ``None``
    takes them from the checkpoint's sentence-transformers files. API options:
    ``api_model`` (the API's model id), ``base_url``, ``auth_url`` and
    ``scope`` (GigaChat), ``ca_bundle`` (a CA file for TLS verification),
    ``dim`` (vector width, for videos without speech; default from the
    registry), ``max_retries``, ``backoff_s``, ``timeout_s``.
    ``whole_transcript``: one embedding per video, of its whole transcript
    (:meth:`~affectflow.text.transcript.TranscriptShard.whole`), as the paper's
    EMI code embedded Whisper's text of each video once.
    """

    SECTION = "text"

    model: str = wiring("all_minilm_l6_v2")
    kind: str = "auto"
    prefix: str | None = None
    pooling: str | None = None
    normalize: bool | None = None
    max_length: int | None = None
    api_model: str | None = None
    base_url: str | None = None
    auth_url: str | None = None
    scope: str = "GIGACHAT_API_PERS"
    dim: int | None = None
    whole_transcript: bool = added(False)
    batch_size: int = runtime(32)
    device: str = runtime("auto")
    ca_bundle: str | None = runtime(None)
    max_retries: int = runtime(5)
    backoff_s: float = runtime(1.0)
    timeout_s: float = runtime(60.0)

    def check(self) -> None:
        one_of("kind", self.kind, KINDS)
        if self.kind == "goemotions":  # a classifier head on a model trained without one: random logits, silently
            from affectflow.models.catalogue.registry import find

            spec = find(self.model)  # None: a checkpoint directory given directly
            own = kind_of(spec) if spec else "goemotions"
            if own != "goemotions":
                raise ValueError(f"kind 'goemotions' does not fit text model {self.model!r} (its kind is {own!r}; "
                                 "the text section applies to every text model of the run): leave kind auto")
        one_of("pooling", self.pooling, (None, "mean", "cls", "max"))
        at_least("batch_size", self.batch_size, 1)

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None, **wired: Any) -> TextFeaturesOptions:
        cfg = dict(cfg or {})
        secret = sorted(k for k in cfg if any(w in k.lower() for w in ("key", "credential", "token", "secret")))
        if secret:
            raise ValueError(
                f"text feature config has {secret}: API keys are read from the environment only "
                f"({OPENAI_KEY_ENV}, {GIGACHAT_KEY_ENV}), never from the config"
            )
        return super().from_mapping(cfg, **wired)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **wired: Any) -> TextFeaturesOptions:
        return cls.from_mapping(with_device(config, "text"), **wired)


#: what the plan reads of this stage (affectflow.stages.catalogue)
STAGE = Stage(
    "text_features",
    STAGE_VERSION,
    TextFeaturesOptions,
    ("text_features",),
    downstream=f"learn, {AFTER_LEARN} of sets with text; {PREDICTED}",
)


def run_text_features(
    transcripts_shard: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    cfg: Mapping[str, Any] | TextFeaturesOptions,
    *,
    models_dir: str | os.PathLike[str] | None = None,
    pins: Mapping[str, str] | None = None,
    spec: Any | None = None,
    progress: bool | None = None,
    sleep: Callable[[float], None] = time.sleep,
    key: str | None = None,
) -> StageResult:
    """Write ``features/text/{asr}/{model}/{shard}.h5``: an embedding per transcript segment (or per video).

    All segments of the shard are embedded in batches of ``batch_size``
    (fewer API calls), then split back per video.
    """
    conf = TextFeaturesOptions.coerce(cfg)
    rerun = stage_key(STAGE, conf, expected=key)
    resolved = resolve_model(spec if spec is not None else conf.model, models_dir, pins)
    encoder = load_text_encoder(resolved, conf, sleep)
    shard = read_transcripts(transcripts_shard)
    if conf.whole_transcript:
        shard = shard.whole()
    embedded = embed_segments(encoder, shard.texts(), conf.batch_size, desc=f"text {conf.model}", progress=progress)
    prov = Provenance.of(rerun, model=conf.model, weights_sha256=resolved.weights_sha256,
                         resolved=encoder_provenance(encoder, resolved, shard.asr_model, embedded))
    result = StageResult()
    with ShardWriter(out_path, prov) as writer:
        for record in embedded.records(shard.videos):
            writer.add(record)
            result.written.append(record.video_id)
        result.skipped = shard.skipped
        writer.set_skipped(shard.skipped)
    return result


def run(job: Job) -> None:
    """The rule: ``input.transcripts`` and ``input.model`` (a manifest) -> ``output[0]``, the features shard."""
    joblog.setup(job.log)
    model = PreparedModel.for_job(job.input.model, job.config["models_dir"])
    with model.explained():
        run_text_features(job.input.transcripts, job.output[0],
                          TextFeaturesOptions.from_config(job.config, model=model.name),
                          models_dir=model.root, pins=model.pins, key=job.params.key)
