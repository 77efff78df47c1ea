"""The ``predictions`` stage: the shards' frame tables -> one CSV per video and one Parquet file per run.

People open one video's CSV in a spreadsheet; scripts read the whole run from ``predictions.parquet``.
Both are put in place only when complete: the folder of CSVs is written beside its target and renamed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from affectflow.core import joblog
from affectflow.core.errors import AffectflowError
from affectflow.core.files import atomic_folder, atomic_write, bounded_name
from affectflow.core.job import Job
from affectflow.core.options import StageOptions
from affectflow.plan.rerun import Stage, stage_key

log = logging.getLogger("affectflow.predict")

#: bump when the CSVs or the Parquet file change for the same shard tables (docs/reruns.md)
STAGE_VERSION = 2  # 2: CSV timestamps to the microsecond, not 6 significant digits (equal past 10,000 s)


class PredictionsError(AffectflowError, ValueError):
    """Shard tables that do not fit together (other columns, a video twice)."""


@dataclass(frozen=True)
class PredictionsOptions(StageOptions):
    """No options: the columns are decided by the shard tables."""

    SECTION = ""


#: what the plan reads of this stage (affectflow.stages.catalogue)
STAGE = Stage(
    "predictions",
    STAGE_VERSION,
    PredictionsOptions,
    ("predictions",),
    downstream="index_page",
)


def csv_name(video_id: str) -> str:
    """A video's CSV file name (ids are file stems; a path separator, never expected, is replaced; an id too
    long for a file name is cut and tagged with its hash)."""
    return bounded_name(video_id.replace(os.sep, "_").replace("/", "_"), ".csv")


def run_predictions(shard_tables: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                      out_parquet: str | os.PathLike[str], *, key: str | None = None) -> pd.DataFrame:
    """Join the shard tables (same columns, each video once) and write both outputs."""
    stage_key(STAGE, PredictionsOptions(), expected=key)
    tables = [pd.read_parquet(p) for p in shard_tables]
    for p, t in zip(shard_tables[1:], tables[1:], strict=True):
        if list(t.columns) != list(tables[0].columns):
            raise PredictionsError(f"{p}: columns {list(t.columns)} differ from {shard_tables[0]}'s; "
                                   "rerun its frame_predictions job")
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    videos = list(dict.fromkeys(table["video_id"])) if len(table) else []
    names = [csv_name(v) for v in videos]
    if len(set(names)) != len(names):
        raise PredictionsError("two videos map to one CSV file name: " + ", ".join(
            v for v, n in zip(videos, names, strict=True) if names.count(n) > 1))
    _write_csv_folder(table, videos, Path(out_dir))
    atomic_write(out_parquet, lambda tmp: table.to_parquet(tmp, index=False), suffix=".parquet")
    log.info("%d frames of %d videos -> %s and %s", len(table), len(videos), out_dir, out_parquet)
    return table


def _write_csv_folder(table: pd.DataFrame, videos: list[str], out: Path) -> None:
    with atomic_folder(out) as tmp:
        for vid, rows in table.groupby("video_id", sort=False) if videos else []:
            # scores to 6 significant digits keep the files small; a frame's time needs a fixed number of
            # decimals (6 digits of 10010.0333 s would write it as the frame before it)
            rows = rows.assign(timestamp=rows["timestamp"].map("{:.6f}".format))
            rows.to_csv(tmp / csv_name(str(vid)), index=False, float_format="%.6g")


def run(job: Job) -> None:
    """The rule: ``input`` (every shard's table) -> ``output.folder`` (CSVs) and ``output.parquet``."""
    joblog.setup(job.log)
    run_predictions(list(job.input), job.output.folder, job.output.parquet, key=job.params.key)
