"""The ``problems`` rule: ``results/<run>/problems.tsv``, every video a run skipped or warned about.

Reading the shards' skipped lists and warnings into rows is :mod:`affectflow.report.problems`; this
module holds the stage's options, its rerun key and the rule's ``run()``. Faces shards also get a
warning for each video whose target face is missing in more than ``face_missing_share`` of its
analysed frames. The files of ``folder`` datasets that are not videos (the units table's ``skipped``)
come first, as stage ``units``; label files whose rows do not match their video's decoded frames
(fitted, never silently) come last, as stage ``labels``.

Details (column contents, row order, atomic writing): docs/bad_inputs.md, section "The problems rule".
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from affectflow.core import joblog
from affectflow.core.job import Job
from affectflow.core.options import StageOptions
from affectflow.data.units import SkippedFile, Unit, UnitsTable
from affectflow.plan.rerun import Stage
from affectflow.report.problems import Problem, collect_problems, summary, write_problems

log = logging.getLogger("affectflow.stages.problems")

#: bump when problems.tsv changes for the same shards (docs/reruns.md)
STAGE_VERSION = 4  # 2: rows for frame label files that do not fit their video (stage `labels`);
# 3: a warning row's message starts with the video's file; 4: a faces warning for frames lost to damaged data


@dataclass(frozen=True)
class ProblemsOptions(StageOptions):
    """Config ``problems``: ``face_missing_share`` -- warn about a video whose target face is missing in
    more than this share of its analysed frames (a video that lost its subject)."""

    SECTION = "problems"

    face_missing_share: float = 0.5

    def check(self) -> None:
        if not 0.0 <= float(self.face_missing_share) <= 1.0:
            raise ValueError(f"face_missing_share must be in [0, 1], got {self.face_missing_share!r}")


#: what the plan reads of this stage (affectflow.stages.catalogue)
STAGE = Stage("problems", STAGE_VERSION, ProblemsOptions, ("problems",), downstream="index_page",
              triggers="a file of a `folder` dataset that is not a video added or removed; a frame label file "
              "changed")


def run_problems(shard_paths: Sequence[str], out_tsv: str, options: ProblemsOptions | None = None,
                 skipped: Iterable[SkippedFile] = (), units: Iterable[Unit] = ()) -> list[Problem]:
    """Write ``out_tsv`` from every shard's ``skipped`` list and per-video ``warnings``, after the files of
    folder datasets that are no videos (``skipped``: the units table's), then the label files of ``units``
    that do not fit their video's frames; return the rows.

    A shard that is missing, unfinished or not an affectflow shard raises
    :class:`affectflow.io.store.StoreError` (and nothing is written).
    """
    share = float((options or ProblemsOptions()).face_missing_share)
    rows = collect_problems(shard_paths, share, skipped, units)
    write_problems(rows, out_tsv)
    log.info("%s: %s", out_tsv, summary(rows))
    return rows


def run(job: Job) -> None:
    """The rule: ``input.media`` and ``input.faces`` (every shard), ``input.units`` (the units table, whose
    frame label files are compared with the media shards' frame counts) and ``params.skipped`` (the files of
    folder datasets left out, as mappings) -> ``output[0]``, ``problems.tsv``."""
    joblog.setup(job.log)
    skipped = [SkippedFile(**s) for s in getattr(job.params, "skipped", None) or ()]
    units = UnitsTable.read_tsv(job.input.units) if getattr(job.input, "units", None) else ()
    run_problems([*job.input.media, *job.input.faces], job.output[0], ProblemsOptions.from_config(job.config),
                 skipped, units)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m affectflow.stages.problems OUT.tsv SHARD.h5...``"""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        return print("usage: python -m affectflow.stages.problems OUT.tsv SHARD.h5...", file=sys.stderr) or 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run_problems(args[1:], args[0])
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
