"""The run page: ``results/<run>/index.html``, written by the workflow as its last local job.

One self-contained HTML file per run (affectflow.report): per task the ranked
table of every feature set and fusion with the sweep plots, the predictions
table's summary, problems.tsv, and per video a timeline and its contact sheet.
Its one option, ``report.max_videos``, caps the videos drawn (a 15,000-video run
would otherwise write a page nobody can open); it changes the page, so it is in
the rerun key.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import affectflow
from affectflow.core import joblog
from affectflow.core.files import atomic_write_text
from affectflow.core.job import Job
from affectflow.core.options import StageOptions
from affectflow.plan.rerun import Stage

#: bump when index.html changes for the same inputs and options (docs/reruns.md)
STAGE_VERSION = 3  # 2: video ids and words in any script drawn with a font that has them (report.fonts); 3: the
# applied bundle named

PathLike = str | os.PathLike[str]
log = logging.getLogger("affectflow.stages")


@dataclass(frozen=True)
class IndexPageOptions(StageOptions):
    """Config ``report``: ``max_videos`` -- draw the timelines and contact sheets of at most this many videos
    (the first by id; the page says how many were left out)."""

    SECTION = "report"

    max_videos: int = 50

    def check(self) -> None:
        if isinstance(self.max_videos, bool) or not isinstance(self.max_videos, int) or self.max_videos < 0:
            raise ValueError(f"max_videos must be an integer >= 0, got {self.max_videos!r}")


#: what the plan reads of this stage (affectflow.stages.catalogue)
STAGE = Stage("index_page", STAGE_VERSION, IndexPageOptions, ("index_page",))


def run_index_page(
    out_html: PathLike, *, run_name: str, units: PathLike, problems: PathLike, predictions: PathLike,
    metrics: PathLike | None = None, fusion_dirs: Iterable[PathLike] = (), faces: Iterable[PathLike] = (),
    transcripts: Iterable[PathLike] = (), media: Iterable[PathLike] = (),
    options: IndexPageOptions | dict[str, Any] | None = None, base_dir: PathLike = ".",
    bundle: PathLike | None = None,
) -> Path:
    """Write the run page of these files to ``out_html`` (``metrics`` None: the run trained no task).

    ``base_dir``: the folder the units table's relative label paths start from (the workflow's directory).
    ``bundle``: the applied bundle (config ``bundle``), named on the page with its source run, manifest
    sha256 and stand-ins, since the task columns are its and not this run's.
    """
    opts = IndexPageOptions.coerce(options)
    # pandas, OpenCV and matplotlib: loaded when the job runs, not at every workflow parse (the catalogue)
    from affectflow.report.collect import PageInputs, collect_page
    from affectflow.report.page import render_page

    page = collect_page(PageInputs(
        run_name=run_name, units=units, problems=problems, predictions=predictions, metrics=metrics,
        fusion_dirs=tuple(fusion_dirs), faces=tuple(faces), transcripts=tuple(transcripts),
        media=tuple(media), max_videos=opts.max_videos, base_dir=base_dir,
        bundle=describe_applied(Path(bundle)) if bundle else ""))
    return atomic_write_text(out_html, render_page(page, affectflow.__version__))


def describe_applied(path: Path) -> str:
    """The applied bundle in one line: where, from which run, its manifest's sha256 and its stand-ins."""
    from affectflow.predict.bundle import Bundle

    b = Bundle.load(path)
    standins = [name for name, m in b.models.items() if m.get("standin")]
    stood = (f"; stand-in weights for {', '.join(standins)}: its task columns carry no emotion" if standins
             else "")
    return (f"{b.root} (from run {b.run_name!r}, affectflow {b.version}; tasks {', '.join(b.tasks)}; manifest "
            f"sha256 {b.digest}{stood})")


def _paths(job: Job, name: str) -> list[str]:
    """A named input as a list of paths (absent or empty: none; one path: itself)."""
    value = getattr(job.input, name, None)
    if value is None:
        return []
    return [str(value)] if isinstance(value, (str, os.PathLike)) else [str(v) for v in value]


def run(job: Job) -> None:
    """The rule: ``input.units``, ``problems``, ``predictions``, ``metrics`` (when the run trains tasks),
    ``fusion``, ``faces``, ``transcripts`` and ``media`` -> ``output[0]``, the run's ``index.html``."""
    joblog.setup(job.log)
    metrics = _paths(job, "metrics")
    out = run_index_page(
        job.output[0], run_name=str(job.config.get("run_name", "")), units=job.input.units,
        problems=job.input.problems, predictions=job.input.predictions, metrics=metrics[0] if metrics else None,
        fusion_dirs=_paths(job, "fusion"), faces=_paths(job, "faces"),
        transcripts=_paths(job, "transcripts"), media=_paths(job, "media"),
        options=IndexPageOptions.from_config(job.config), bundle=next(iter(_paths(job, "applied_bundle")), None))
    log.info("index page: %s (%d bytes)", out, out.stat().st_size)
