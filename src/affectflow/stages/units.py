"""The ``units`` rule: the units table (``units.tsv``), one row per video, from the configured datasets.

The adapters (:mod:`affectflow.data.adapters`) only list files and check cheap
things, so the same table is built when the workflow is parsed; this rule
writes it for the record and for the jobs that read labels.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from affectflow.core import joblog
from affectflow.core.job import Job
from affectflow.core.options import StageOptions
from affectflow.core.vocabulary import TASKS
from affectflow.data.adapters import build_units
from affectflow.data.adapters.labels import check_label_files
from affectflow.data.units import UnitsTable
from affectflow.plan.rerun import AFTER_LEARN, PREDICTED, Stage

log = logging.getLogger("affectflow.stages.units")
#: bump when the units table changes for the same files on disk (docs/reruns.md)
STAGE_VERSION = 3  # 2: the ah_video_labels column (BAH video-level split files); 3: test_of (whose test list)


@dataclasses.dataclass(frozen=True)
class UnitsOptions(StageOptions):
    """The units table has no options of its own: it is what the datasets on disk give,
    so its rerun key holds a digest of the units built from them (``datasets``, ``n_shards``)."""

    SECTION = ""


#: what the plan reads of this stage (affectflow.stages.catalogue)
STAGE = Stage(
    "units",
    STAGE_VERSION,
    UnitsOptions,
    ("units",),
    downstream=f"problems, learn, {AFTER_LEARN}; {PREDICTED}; a changed `n_shards` regroups the videos, and every "
               "shard whose videos change reruns its media, faces and feature jobs (nearly all of them)",
    triggers="the videos and label files that `datasets` and `n_shards` give",
)


def run_units(datasets: Sequence[Mapping[str, Any]], n_shards: int, out_tsv: str | os.PathLike[str],
                base_dir: str | os.PathLike[str] = ".", tasks: Sequence[str] = TASKS) -> UnitsTable:
    """Build the units table of ``datasets``, read every label file of ``tasks`` (those the run trains) it
    names, and write it to ``out_tsv`` atomically; the files of folder datasets that are not videos are
    logged (the problems table lists them).

    A bad label value stops this rule before the table is written, so learn (which waits for the table)
    does not start; with keep-going (the cluster profiles) the extraction jobs, which read no labels, go on.
    """
    table = build_units(list(datasets), n_shards=n_shards, base_dir=Path(base_dir))
    n = check_label_files(table.units, Path(base_dir), tasks)
    log.info("%d videos' label files read: every value is in range", n)
    table.write_tsv(out_tsv)
    for s in table.skipped:
        log.info("left out %s: %s", s.path, s.reason)
    return table


def run(job: Job) -> None:
    """The rule: ``output[0]`` is ``units.tsv``."""
    joblog.setup(job.log)
    # config["tasks"] as the workflow left it: the tasks this run trains (workflow/rules/common.smk); a driver
    # without it gets every task's labels read
    run_units(job.config["datasets"], job.config["n_shards"], job.output[0], tasks=job.config.get("tasks", TASKS))
