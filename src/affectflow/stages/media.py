"""The ``media`` rule: one media shard per shard of videos (frame timestamps, 16 kHz audio, probe facts).

Every later stage reads the videos this one accepted (:func:`accepted_units`),
so a video skipped here is skipped everywhere, with the reason recorded once.
Decoding itself is :mod:`affectflow.media.decode`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from affectflow.core import joblog
from affectflow.core.files import FileStat
from affectflow.core.job import Job
from affectflow.core.options import OptionsError, StageOptions, canonical, one_of
from affectflow.core.vocabulary import SAMPLE_RATE
from affectflow.data.units import VIDEO_FIELDS, Unit
from affectflow.io.shards import StageResult, apply_bad_video_policy
from affectflow.io.store import Provenance, ShardReader, ShardWriter
from affectflow.media.decode import MediaError, stream_video
from affectflow.plan.rerun import Stage, stage_key

#: bump when the media shard's content changes for the same videos and options (docs/reruns.md)
STAGE_VERSION = 5  # 2: audio on the video's clock (a late or early audio start padded or cut); 3: a photo
# named as a video is skipped, audio longer than the video is warned about; 4: an AVI's frames at its chunks' times,
# each video's file recorded: size, time, sha256 (plan.replaced); 5: an AVI's chunks placed by its index (a chunk
# the demuxer passed over is still a frame; empty chunks are not counted as frames the file lacks)
BAD_VIDEO_POLICIES = ("skip", "fail")


@dataclass(frozen=True)
class MediaOptions(StageOptions):
    """Config ``media`` (plus the workflow-wide ``on_bad_video``: skip a broken video or fail the job).

    ``on_bad_video`` changes the output: a shard written under ``skip`` may list
    skipped videos that ``fail`` would have stopped on. Audio is always 16 kHz
    mono (:data:`~affectflow.core.vocabulary.SAMPLE_RATE`, what wav2vec 2.0,
    HuBERT and Whisper take): a fact of every media shard, in :data:`FIXED_OUTPUT`.
    """

    SECTION = "media"
    TOP_LEVEL = ("on_bad_video",)
    #: facts of every output that are no options: they enter the rerun key and the provenance as they are.
    #: ``media.sample_rate`` was an option whose only legal value was 16000; its keys carried
    #: ``sample_rate: 16000``, and so do they now, so removing the option reran nothing. An older config
    #: may still set it, to that value only (:meth:`from_mapping`).
    FIXED_OUTPUT: ClassVar[Mapping[str, Any]] = {"sample_rate": SAMPLE_RATE}

    on_bad_video: str = "skip"

    def check(self) -> None:
        one_of("on_bad_video", self.on_bad_video, BAD_VIDEO_POLICIES)

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None, **wired: Any) -> MediaOptions:
        """As :meth:`StageOptions.from_mapping`; a removed key (one of :data:`FIXED_OUTPUT`) at its one
        value is dropped with a ``FutureWarning`` saying to delete it, at any other value it is an error."""
        cfg = dict(cfg or {})
        for name, only in cls.FIXED_OUTPUT.items():
            if name not in cfg:
                continue
            value = cfg.pop(name)
            if canonical(value) != canonical(only):
                raise OptionsError(f"{cls.config_key(name)} was removed: audio is always {only} Hz mono; "
                                   f"got {value!r}, delete the key")
            warnings.warn(f"{cls.config_key(name)} was removed (audio is always {only} Hz mono, nothing "
                          f"changes): delete it from your config", FutureWarning, stacklevel=2)
        return super().from_mapping(cfg, **wired)

    def output_options(self) -> dict[str, Any]:
        return canonical({**super().output_options(), **self.FIXED_OUTPUT})


#: what the plan reads of this stage (affectflow.stages.catalogue)
STAGE = Stage(
    "media",
    STAGE_VERSION,
    MediaOptions,
    ("media",),
    downstream="every later stage",
    triggers="a video of the shard added, removed or changed (not its labels or split)",
    unit_fields=VIDEO_FIELDS,
)


def run_media(
    units: list[Unit],
    out_path: str | Path,
    options: MediaOptions | Mapping[str, Any] | None = None,
    on_bad_video: str | None = None,
    *,
    key: str | None = None,
) -> StageResult:
    """Write the media shard for ``units``; bad videos are skipped or fatal by policy.

    ``key``: the rerun key the workflow planned this job with (checked, then
    written into the shard's provenance); without it the key is built here.
    """
    opts = MediaOptions.coerce(options, on_bad_video=on_bad_video)
    rerun = stage_key(STAGE, opts, expected=key, units=units)
    result = StageResult()
    sources: dict[str, FileStat] = {}  # each file as it was read, skipped ones too (plan.replaced)
    with ShardWriter(out_path, Provenance.of(rerun)) as writer:
        for unit in units:
            if (stat := FileStat.of(unit.path, content=True)) is not None:
                sources[unit.video_id] = stat
            try:  # the audio streams into the shard (a video that fails part-way is dropped from it)
                with writer.video(unit.video_id) as out:
                    info = stream_video(unit.path, lambda chunk: out.append({"audio": chunk}), SAMPLE_RATE)
                    out.put("timestamps", info.probe.timestamps)
                    out.attrs.update(info.attrs())
            except MediaError as e:
                apply_bad_video_policy(result.skipped, unit.video_id, e, opts.on_bad_video)
                continue
            result.written.append(unit.video_id)
        writer.set_skipped(result.skipped)
        writer.set_sources(sources)
    return result


def accepted_units(media_shard: str | Path, units: list[Unit]) -> list[Unit]:
    """The units the media stage wrote, so every later stage skips the same videos."""
    with ShardReader(media_shard, stage="media") as r:
        ok = set(r.video_ids())
    return [u for u in units if u.video_id in ok]


def run(job: Job) -> None:
    """The rule: ``params.units`` (the shard's work list) -> ``output[0]``, the media shard."""
    joblog.setup(job.log)
    run_media([Unit.from_video(u) for u in job.params.units], job.output[0], MediaOptions.from_config(job.config),
                    key=job.params.key)
