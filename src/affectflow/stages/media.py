"""The ``media`` rule: one media shard per shard of videos (frame timestamps, 16 kHz audio, probe facts).

Every later stage reads the videos this one accepted (:func:`accepted_units`),
so a video skipped here is skipped everywhere, with the reason recorded once.
Decoding itself is :mod:`affectflow.media.decode`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from affectflow.core import joblog
from affectflow.core.job import Job
from affectflow.core.options import StageOptions, one_of
from affectflow.core.vocabulary import SAMPLE_RATE
from affectflow.data.units import Unit
from affectflow.io.shards import StageResult, apply_bad_video_policy
from affectflow.io.store import Provenance, ShardReader, ShardWriter
from affectflow.media.decode import MediaError, process_video
from affectflow.plan.rerun import stage_key

#: bump when the media shard's content changes for the same videos and options (docs/reruns.md)
STAGE_VERSION = 2  # 2: audio on the video's clock (a late or early audio start padded or cut)
BAD_VIDEO_POLICIES = ("skip", "fail")


@dataclass(frozen=True)
class MediaOptions(StageOptions):
    """Config ``media`` (plus the workflow-wide ``on_bad_video``: skip a broken video or fail the job).

    ``on_bad_video`` changes the output: a shard written under ``skip`` may list
    skipped videos that ``fail`` would have stopped on.
    """

    SECTION = "media"
    TOP_LEVEL = ("on_bad_video",)

    sample_rate: int = SAMPLE_RATE
    on_bad_video: str = "skip"

    def check(self) -> None:
        one_of("sample_rate", self.sample_rate, (SAMPLE_RATE,))
        one_of("on_bad_video", self.on_bad_video, BAD_VIDEO_POLICIES)


def run_media_stage(
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
    rerun = stage_key("media", opts, expected=key, units=units)
    result = StageResult()
    with ShardWriter(out_path, Provenance.of(rerun)) as writer:
        for unit in units:
            try:
                rec = process_video(unit.path, opts.sample_rate)
            except MediaError as e:
                apply_bad_video_policy(result.skipped, unit.video_id, e, opts.on_bad_video)
                continue
            writer.add(rec.to_record(unit.video_id))
            result.written.append(unit.video_id)
        writer.set_skipped(result.skipped)
    return result


def accepted_units(media_shard: str | Path, units: list[Unit]) -> list[Unit]:
    """The units the media stage wrote, so every later stage skips the same videos."""
    with ShardReader(media_shard, stage="media") as r:
        ok = set(r.video_ids())
    return [u for u in units if u.video_id in ok]


def run(job: Job) -> None:
    """The rule: ``params.units`` (the shard's work list) -> ``output[0]``, the media shard."""
    joblog.setup(job.log)
    run_media_stage([Unit(**u) for u in job.params.units], job.output[0], MediaOptions.from_config(job.config),
                    key=job.params.key)
